// Package simtest starts simulated regions for the operations commands' tests and runs fine-tuning jobs in
// them through the real data-plane API.
package simtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/lifeline-sre/lifeline/sim"
)

// Key is the API key the simulated regions accept.
const Key = "sim-test-key"

// Token is the Entra (and ARM) token the simulated regions accept.
const Token = "sim-test-token"

// Start starts regions and closes them when the test ends.
func Start(t testing.TB, cfg sim.Config) *sim.Sim {
	t.Helper()
	if cfg.APIKey == "" {
		cfg.APIKey = Key
	}
	if cfg.VerifyToken == nil {
		cfg.VerifyToken = func(tok string) bool { return tok == Token }
	}
	s, err := sim.Start(cfg)
	if err != nil {
		t.Fatalf("starting the simulator: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// Cred is an azcore.TokenCredential that returns a fixed token.
type Cred struct {
	Token string
	Err   error
}

// GetToken returns the fixed token.
func (c Cred) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: c.Token, ExpiresOn: time.Now().Add(time.Hour)}, c.Err
}

// Upload uploads a fine-tune file to the region at base and returns its id.
func Upload(t testing.TB, base, name, content string) string {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	mw.WriteField("purpose", "fine-tune")
	fw, _ := mw.CreateFormFile("file", name)
	io.WriteString(fw, content)
	mw.Close()
	var f struct{ ID string }
	call(t, http.MethodPost, base+"/openai/files?api-version=2024-10-21", mw.FormDataContentType(), body.Bytes(), &f)
	return f.ID
}

// Job is the part of a fine-tuning job the tests look at.
type Job struct {
	ID              string         `json:"id"`
	Status          string         `json:"status"`
	Model           string         `json:"model"`
	FineTunedModel  string         `json:"fine_tuned_model"`
	TrainingFile    string         `json:"training_file"`
	ValidationFile  string         `json:"validation_file"`
	Hyperparameters map[string]any `json:"hyperparameters"`
	Seed            int64          `json:"seed"`
	Suffix          string         `json:"suffix"`
	Method          map[string]any `json:"method"`
}

// CreateJob starts a fine-tuning job with the given request body.
func CreateJob(t testing.TB, base string, req map[string]any) Job {
	t.Helper()
	b, _ := json.Marshal(req)
	var j Job
	call(t, http.MethodPost, base+"/openai/fine_tuning/jobs?api-version=2024-10-21", "application/json", b, &j)
	return j
}

// GetJob reads a job.
func GetJob(t testing.TB, base, id string) Job {
	t.Helper()
	var j Job
	call(t, http.MethodGet, base+"/openai/fine_tuning/jobs/"+id+"?api-version=2024-10-21", "", nil, &j)
	return j
}

// WaitJob waits until the job succeeded.
func WaitJob(t testing.TB, base, id string) Job {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		j := GetJob(t, base, id)
		if j.Status == "succeeded" {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s still %s", id, j.Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Files lists the region's files.
func Files(t testing.TB, base string) []struct{ ID, Filename string } {
	t.Helper()
	var out struct {
		Data []struct{ ID, Filename string }
	}
	call(t, http.MethodGet, base+"/openai/files?api-version=2024-10-21", "", nil, &out)
	return out.Data
}

// Jobs lists the region's jobs.
func Jobs(t testing.TB, base string) []Job {
	t.Helper()
	var out struct{ Data []Job }
	call(t, http.MethodGet, base+"/openai/fine_tuning/jobs?limit=100&api-version=2024-10-21", "", nil, &out)
	return out.Data
}

// Chat sends a chat completion to a deployment and returns the status and the model that answered.
func Chat(t testing.TB, base, deployment string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/openai/deployments/"+deployment+"/chat/completions?api-version=2024-10-21",
		bytes.NewReader([]byte(`{"messages":[{"role":"user","content":"hi"}],"max_tokens":1}`)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("api-key", Key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ Model string }
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out.Model
}

func call(t testing.TB, method, url, ct string, body []byte, out any) {
	t.Helper()
	req, _ := http.NewRequest(method, url, bytes.NewReader(body))
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	req.Header.Set("api-key", Key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode > 299 {
		t.Fatalf("%s %s: %d %s", method, url, resp.StatusCode, data)
	}
	if err := json.Unmarshal(data, out); err != nil {
		t.Fatal(fmt.Errorf("%s: %w: %s", url, err, data))
	}
}
