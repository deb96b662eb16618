package sim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lifeline-sre/lifeline/sim"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/azure"
	"github.com/openai/openai-go/v3/option"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

const trainingData = `{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"}]}
{"messages":[{"role":"user","content":"bye"},{"role":"assistant","content":"goodbye"}]}
`

func TestFilesAndFineTuningWithOpenAIGo(t *testing.T) {
	clk := &clock{t: time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)}
	s := start(t, sim.Config{Now: clk.Now, FineTuneDuration: time.Hour, ControlAddr: "127.0.0.1:0",
		VerifyToken: func(tok string) bool { return tok == "arm-token" }, Regions: sim.DefaultRegions("eastus", "westus")})
	client := openai.NewClient(azure.WithEndpoint(s.Region("eastus").URL(), "2024-10-21"), azure.WithAPIKey(key),
		azure.WithUnsafeAllowHTTP(), option.WithMaxRetries(0))
	ctx := context.Background()

	f, err := client.Files.New(ctx, openai.FileNewParams{File: openai.File(strings.NewReader(trainingData), "train.jsonl", "application/jsonl"), Purpose: openai.FilePurposeFineTune})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(f.ID, "file-") || f.Filename != "train.jsonl" || f.Bytes != int64(len(trainingData)) || f.Purpose != "fine-tune" {
		t.Fatalf("file: %+v", f)
	}
	got, err := client.Files.Get(ctx, f.ID)
	if err != nil || got.ID != f.ID {
		t.Fatalf("get file: %v", err)
	}
	list, err := client.Files.List(ctx, openai.FileListParams{})
	if err != nil || len(list.Data) != 1 {
		t.Fatalf("list files: %v %+v", err, list)
	}
	content, err := client.Files.Content(ctx, f.ID)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(content.Body)
	content.Body.Close()
	if string(b) != trainingData {
		t.Fatalf("content: %q", b)
	}

	job, err := client.FineTuning.Jobs.New(ctx, openai.FineTuningJobNewParams{Model: "gpt-4o-mini-2024-07-18", TrainingFile: f.ID, Seed: openai.Int(42)})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(job.ID, "ftjob-") || job.Status != "pending" || job.Seed != 42 || job.Model != "gpt-4o-mini-2024-07-18" {
		t.Fatalf("new job: %+v", job)
	}
	clk.Advance(30 * time.Minute)
	if j, err := client.FineTuning.Jobs.Get(ctx, job.ID); err != nil || j.Status != "running" {
		t.Fatalf("running: %v %+v", err, j)
	}
	clk.Advance(31 * time.Minute)
	j, err := client.FineTuning.Jobs.Get(ctx, job.ID)
	if err != nil || j.Status != "succeeded" {
		t.Fatalf("succeeded: %v %+v", err, j)
	}
	hex := strings.TrimPrefix(job.ID, "ftjob-")
	wantModel := "gpt-4o-mini-2024-07-18.ft-" + hex
	if j.FineTunedModel != wantModel || len(j.ResultFiles) != 1 || j.TrainedTokens == 0 || j.FinishedAt == 0 {
		t.Fatalf("succeeded job: %+v", j)
	}
	jobs, err := client.FineTuning.Jobs.List(ctx, openai.FineTuningJobListParams{})
	if err != nil || len(jobs.Data) != 1 {
		t.Fatalf("list jobs: %v", err)
	}
	events, err := client.FineTuning.Jobs.ListEvents(ctx, job.ID, openai.FineTuningJobListEventsParams{})
	if err != nil || len(events.Data) < 3 || events.Data[len(events.Data)-1].Message != "Job succeeded." {
		t.Fatalf("events: %v %+v", err, events)
	}
	cps, err := client.FineTuning.Jobs.Checkpoints.List(ctx, job.ID, openai.FineTuningJobCheckpointListParams{})
	if err != nil || len(cps.Data) != 3 || cps.Data[0].StepNumber != 30 || cps.Data[0].FineTunedModelCheckpoint != wantModel {
		t.Fatalf("checkpoints: %v %+v", err, cps)
	}
	if _, err := client.FineTuning.Jobs.Cancel(ctx, job.ID); err == nil {
		t.Error("cancelling a succeeded job must fail")
	}
	models, err := client.Models.List(ctx)
	if err != nil || !hasModel(models.Data, wantModel) {
		t.Fatalf("models list lacks %s: %v", wantModel, err)
	}

	// A second job is cancelled while running.
	job2, err := client.FineTuning.Jobs.New(ctx, openai.FineTuningJobNewParams{Model: "gpt-4o-mini-2024-07-18", TrainingFile: f.ID})
	if err != nil {
		t.Fatal(err)
	}
	if c, err := client.FineTuning.Jobs.Cancel(ctx, job2.ID); err != nil || c.Status != "cancelled" {
		t.Fatalf("cancel: %v %+v", err, c)
	}

	// The fine-tuned model can be deployed in its region only, by the control API or the ARM endpoint.
	if err := s.AddDeployment("westus", sim.Deployment{Name: "ft", Model: wantModel, Version: "1"}); err == nil {
		t.Error("westus has no such fine-tuned model; AddDeployment must refuse")
	}
	arm := s.ControlURL() + "/subscriptions/sub1/resourceGroups/rg1/providers/Microsoft.CognitiveServices/accounts/eastus/deployments/support-bot?api-version=2024-10-01"
	armBody := `{"sku":{"name":"Standard","capacity":10},"properties":{"model":{"format":"OpenAI","name":"` + wantModel + `","version":"1"}}}`
	if st, _ := armDo(t, "PUT", arm, armBody, "wrong"); st != 401 {
		t.Errorf("ARM with a bad token: %d", st)
	}
	st, body := armDo(t, "PUT", arm, armBody, "arm-token")
	if st != 201 || !bytes.Contains(body, []byte(`"provisioningState":"Accepted"`)) || !bytes.Contains(body, []byte(`"id":"/subscriptions/sub1/resourceGroups/rg1/providers/Microsoft.CognitiveServices/accounts/eastus/deployments/support-bot"`)) {
		t.Fatalf("ARM PUT: %d %s", st, body)
	}
	if st, body := armDo(t, "PUT", arm, armBody, "arm-token"); st != 200 || !bytes.Contains(body, []byte(`"Succeeded"`)) {
		t.Fatalf("ARM PUT again: %d %s", st, body)
	}
	if st, body := armDo(t, "GET", arm, "", "arm-token"); st != 200 || !bytes.Contains(body, []byte(`"capacity":10`)) {
		t.Fatalf("ARM GET: %d %s", st, body)
	}
	listURL := strings.Replace(arm, "/support-bot?", "?", 1)
	st, body = armDo(t, "GET", listURL, "", "arm-token")
	var armList struct {
		Value []struct{ Name string } `json:"value"`
	}
	if json.Unmarshal(body, &armList); st != 200 || len(armList.Value) != 4 {
		t.Fatalf("ARM list: %d %s", st, body)
	}
	cc, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "support-bot", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}})
	if err != nil || cc.Model != wantModel {
		t.Fatalf("chat with the fine-tuned deployment: %v model %q", err, cc.Model)
	}
	if err := s.AddDeployment("eastus", sim.Deployment{Name: "ft2", Model: wantModel}); err != nil {
		t.Fatalf("AddDeployment of the fine-tuned model: %v", err)
	}

	if _, err := client.Files.Delete(ctx, f.ID); err != nil {
		t.Fatal(err)
	}
	_, err = client.Files.Get(ctx, f.ID)
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 404 {
		t.Fatalf("deleted file: %v", err)
	}
}

func hasModel(ms []openai.Model, id string) bool {
	for _, m := range ms {
		if m.ID == id {
			return true
		}
	}
	return false
}

func armDo(t *testing.T, method, url, body, token string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}
