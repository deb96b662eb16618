package cli

import (
	"bytes"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lifeline-sre/lifeline/sim"
)

// opsAPI calls a simulated region's data plane with the test key.
func opsAPI(t *testing.T, method, url, ct string, body []byte, out any) {
	t.Helper()
	req, _ := http.NewRequest(method, url, bytes.NewReader(body))
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	req.Header.Set("api-key", opsSimKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode > 299 || json.Unmarshal(data, out) != nil {
		t.Fatalf("%s %s: %d %s", method, url, resp.StatusCode, data)
	}
}

// opsFineTune runs a fine-tuning job in a region and waits for it.
func opsFineTune(t *testing.T, base string) (id, model string) {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	mw.WriteField("purpose", "fine-tune")
	fw, _ := mw.CreateFormFile("file", "support.jsonl")
	io.WriteString(fw, `{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"}]}`+"\n")
	mw.Close()
	var f struct{ ID string }
	opsAPI(t, "POST", base+"/openai/files?api-version=2024-10-21", mw.FormDataContentType(), body.Bytes(), &f)
	var j struct {
		ID, Status     string
		FineTunedModel string `json:"fine_tuned_model"`
	}
	opsAPI(t, "POST", base+"/openai/fine_tuning/jobs?api-version=2024-10-21", "application/json",
		[]byte(`{"model":"gpt-4o-mini-2024-07-18","training_file":"`+f.ID+`","suffix":"bot","seed":7}`), &j)
	for deadline := time.Now().Add(10 * time.Second); j.Status != "succeeded"; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("job %s stuck in %s", j.ID, j.Status)
		}
		opsAPI(t, "GET", base+"/openai/fine_tuning/jobs/"+j.ID+"?api-version=2024-10-21", "", nil, &j)
	}
	return j.ID, j.FineTunedModel
}

func TestFinetuneReplicateCommand(t *testing.T) {
	s := opsSim(t, sim.Config{Regions: sim.DefaultRegions("eastus", "westus"), FineTuneDuration: 200 * time.Millisecond})
	jobID, srcModel := opsFineTune(t, s.Region("eastus").URL())
	cfg := opsConfigFile(t, `clients: [{name: app, key: client-key}]
regions:
  - name: eastus
    endpoint: `+s.Region("eastus").URL()+`
    api_key: `+opsSimKey+`
    deployments: {support-bot: `+srcModel+`}
  - name: westus
    endpoint: `+s.Region("westus").URL()+`
    api_key: `+opsSimKey+`
    priority: 2
    deployments: {gpt-4o: gpt-4o}
`)
	arm := httptest.NewServer(s.ControlHandler())
	defer arm.Close()
	args := []string{"finetune", "replicate", "--config", cfg, "--from", "eastus", "--job", jobID, "--to", "westus", "--poll", "20ms"}

	// Without --wait: the job is started, and the command says how to follow it.
	code, out, errOut := opsRun(t, nil, args...)
	if code != 0 || !strings.Contains(out, "uploaded") || !strings.Contains(out, "--wait to follow it") {
		t.Fatalf("first run: exit %d\n%s%s", code, out, errOut)
	}
	// Again with --wait and --deploy: finds the file and job, waits, deploys through ARM, prints the config line.
	env := map[string]string{"LIFELINE_ARM_TOKEN": "cli-test-token"}
	code, out, errOut = opsRun(t, env, append(args, "--wait", "--deploy", "--arm-endpoint", arm.URL,
		"--subscription", "sub-1", "--resource-group", "rg-ai", "--account", "contoso-westus")...)
	if code != 0 {
		t.Fatalf("second run: exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"training_file   reused", "job             reused", "status: succeeded", "deploy          created",
		"Add to regions[1] (westus)", "      support-bot: gpt-4o-mini-2024-07-18.ft-"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "uploaded") {
		t.Errorf("second run uploaded again:\n%s", out)
	}
	// --json: the same result for machines, and still nothing done twice.
	code, jsonOut, errOut := opsRun(t, nil, append(args, "--json")...)
	var res struct {
		Job   struct{ ID, Status string }
		Steps []struct{ Name, Action string }
	}
	if err := json.Unmarshal([]byte(jsonOut), &res); err != nil || code != 0 || res.Job.Status != "succeeded" {
		t.Fatalf("--json: exit %d, %v\n%s%s", code, err, jsonOut, errOut)
	}
	for _, st := range res.Steps {
		if st.Action == "uploaded" || st.Action == "created" {
			t.Errorf("--json run did %+v", st)
		}
	}
	line := out[strings.LastIndex(out, "support-bot: ")+len("support-bot: "):]
	deployment := strings.TrimSpace(strings.SplitN(line, "\n", 2)[0])
	var chat struct{ Model string }
	opsAPI(t, "POST", s.Region("westus").URL()+"/openai/deployments/"+deployment+"/chat/completions?api-version=2024-10-21",
		"application/json", []byte(`{"messages":[{"role":"user","content":"hi"}],"max_tokens":1}`), &chat)
	if chat.Model != deployment || !strings.HasSuffix(deployment, "-bot") {
		t.Errorf("westus serves %q as %q", chat.Model, deployment)
	}
}

func TestFinetuneErrors(t *testing.T) {
	s := opsSim(t, sim.Config{Regions: sim.DefaultRegions("eastus", "westus")})
	cfg := opsConfigFile(t, `clients: [{name: app, key: client-key}]
regions:
  - name: eastus
    endpoint: `+s.Region("eastus").URL()+`
    api_key: `+opsSimKey+`
    deployments: {gpt-4o: gpt-4o}
  - name: westus
    endpoint: `+s.Region("westus").URL()+`
    api_key: wrong
    deployments: {gpt-4o: gpt-4o}
`)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"finetune"}, 2, "the only subcommand is `replicate`"},
		{[]string{"finetune", "replicate", "--config", cfg}, 2, "--from, --job, --to required"},
		{[]string{"finetune", "replicate", "--config", cfg, "--from", "eastus", "--to", "eastus", "--job", "x"}, 2, "same region"},
		{[]string{"finetune", "replicate", "--config", cfg, "--from", "eastus", "--to", "mars", "--job", "x"}, 2, `no region "mars"`},
		{[]string{"finetune", "replicate", "--config", cfg, "--from", "eastus", "--to", "westus", "--job", "ftjob-nope"}, 1, "not found in eastus"},
		{[]string{"finetune", "replicate", "--config", cfg, "--from", "westus", "--to", "eastus", "--job", "ftjob-nope"}, 1, "copy Key 1"},
	} {
		code, _, errOut := opsRun(t, nil, tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.want) || strings.Contains(errOut, "goroutine") {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, code, errOut, tc.code, tc.want)
		}
	}
}
