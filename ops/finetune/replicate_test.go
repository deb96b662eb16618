package finetune

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lifeline-sre/lifeline/ops/aoai"
	"github.com/lifeline-sre/lifeline/ops/internal/simtest"
	"github.com/lifeline-sre/lifeline/sim"
)

const training = `{"messages":[{"role":"user","content":"Where is my order?"},{"role":"assistant","content":"Let me check."}]}
{"messages":[{"role":"user","content":"Cancel it"},{"role":"assistant","content":"Done."}]}
`

const validation = `{"messages":[{"role":"user","content":"Refund?"},{"role":"assistant","content":"Sure."}]}
`

func client(s *sim.Sim, region string) *aoai.Client {
	return &aoai.Client{Region: region, Endpoint: s.Region(region).URL(), APIKey: simtest.Key}
}

// sourceJob runs a finished job in eastus with every setting that must be copied.
func sourceJob(t *testing.T, s *sim.Sim) simtest.Job {
	east := s.Region("eastus").URL()
	j := simtest.CreateJob(t, east, map[string]any{
		"model": "gpt-4o-mini-2024-07-18", "training_file": simtest.Upload(t, east, "support.jsonl", training),
		"validation_file": simtest.Upload(t, east, "support-val.jsonl", validation),
		"hyperparameters": map[string]any{"n_epochs": 2, "batch_size": 4, "learning_rate_multiplier": 0.5},
		"seed":            42, "suffix": "support",
	})
	return simtest.WaitJob(t, east, j.ID)
}

func TestReplicateEndToEndAndAgain(t *testing.T) {
	s := simtest.Start(t, sim.Config{Regions: sim.DefaultRegions("eastus", "westus"), FineTuneDuration: 300 * time.Millisecond})
	src := sourceJob(t, s)
	west := s.Region("westus").URL()
	var progress bytes.Buffer
	rp := &Replicator{Source: client(s, "eastus"), Target: client(s, "westus"), Progress: &progress, PollInterval: 20 * time.Millisecond}
	res, err := rp.Replicate(context.Background(), Request{JobID: src.ID, Wait: true})
	if err != nil {
		t.Fatalf("replicate: %v\n%s", err, progress.String())
	}
	got := simtest.GetJob(t, west, res.Job.ID)
	if got.Status != "succeeded" || res.FineTunedModel() != got.FineTunedModel ||
		!strings.HasPrefix(got.FineTunedModel, "gpt-4o-mini-2024-07-18.ft-") || !strings.HasSuffix(got.FineTunedModel, "-support") {
		t.Fatalf("target job %+v, result model %q", got, res.FineTunedModel())
	}
	if got.Seed != 42 || got.Suffix != "support" || got.Hyperparameters["n_epochs"] != 2.0 ||
		got.Hyperparameters["batch_size"] != 4.0 || got.Hyperparameters["learning_rate_multiplier"] != 0.5 {
		t.Errorf("settings not copied: %+v", got)
	}
	if got.ValidationFile == "" || got.TrainingFile == src.TrainingFile {
		t.Errorf("files: %+v", got)
	}
	for _, want := range []string{"uploaded", "status: running", "event: Job succeeded.", "succeeded: " + got.FineTunedModel} {
		if !strings.Contains(progress.String(), want) {
			t.Errorf("progress lacks %q:\n%s", want, progress.String())
		}
	}
	files, jobs := len(simtest.Files(t, west)), len(simtest.Jobs(t, west))

	// A second run finds everything the first one did: no upload, no new job.
	progress.Reset()
	again, err := rp.Replicate(context.Background(), Request{JobID: src.ID, Wait: true})
	if err != nil {
		t.Fatalf("second run: %v", err)
	}
	if again.Job.ID != res.Job.ID || len(simtest.Files(t, west)) != files || len(simtest.Jobs(t, west)) != jobs {
		t.Errorf("second run did work again: job %s vs %s, files %d, jobs %d", again.Job.ID, res.Job.ID, len(simtest.Files(t, west)), len(simtest.Jobs(t, west)))
	}
	for _, st := range again.Steps {
		if st.Action == "uploaded" || st.Action == "created" {
			t.Errorf("second run step %+v", st)
		}
	}

	// Deploy through the ARM-shaped endpoint and use the model in westus.
	arm := httptest.NewServer(s.ControlHandler())
	defer arm.Close()
	dp := &Deployer{Endpoint: arm.URL, Credential: simtest.Cred{Token: simtest.Token}, PollInterval: 10 * time.Millisecond}
	state, err := dp.Deploy(context.Background(), Deployment{Subscription: "sub-1", ResourceGroup: "rg-ai", Account: "contoso-westus",
		Name: got.FineTunedModel, Model: got.FineTunedModel})
	if err != nil || state != "Succeeded" {
		t.Fatalf("deploy: %v (%s)", err, state)
	}
	if code, model := simtest.Chat(t, west, got.FineTunedModel); code != 200 || model != got.FineTunedModel {
		t.Errorf("westus answered %d with model %q", code, model)
	}
}

// TestReplicateDPOJob: a job trained with DPO is replicated as DPO, with the hyperparameters it used
// (beta included), not as a supervised job.
func TestReplicateDPOJob(t *testing.T) {
	s := simtest.Start(t, sim.Config{Regions: sim.DefaultRegions("eastus", "westus"), FineTuneDuration: 100 * time.Millisecond})
	east, west := s.Region("eastus").URL(), s.Region("westus").URL()
	j := simtest.CreateJob(t, east, map[string]any{
		"model": "gpt-4o-mini-2024-07-18", "training_file": simtest.Upload(t, east, "prefs.jsonl", training),
		"method": map[string]any{"type": "dpo", "dpo": map[string]any{"hyperparameters": map[string]any{"beta": 0.25, "n_epochs": 2}}},
	})
	src := simtest.WaitJob(t, east, j.ID)
	rp := &Replicator{Source: client(s, "eastus"), Target: client(s, "westus"), Progress: new(bytes.Buffer), PollInterval: 20 * time.Millisecond}
	res, err := rp.Replicate(context.Background(), Request{JobID: src.ID, Wait: true})
	if err != nil {
		t.Fatal(err)
	}
	got := simtest.GetJob(t, west, res.Job.ID)
	m, _ := got.Method["dpo"].(map[string]any)
	hp, _ := m["hyperparameters"].(map[string]any)
	if got.Method["type"] != "dpo" || hp["beta"] != 0.25 || hp["n_epochs"] != 2.0 {
		t.Errorf("target job method %v", got.Method)
	}
}

func TestReplicateRefusesAJobThatDidNotSucceed(t *testing.T) {
	s := simtest.Start(t, sim.Config{Regions: sim.DefaultRegions("eastus", "westus"), FineTuneDuration: time.Hour})
	east := s.Region("eastus").URL()
	j := simtest.CreateJob(t, east, map[string]any{"model": "gpt-4o-mini-2024-07-18", "training_file": simtest.Upload(t, east, "a.jsonl", training)})
	rp := &Replicator{Source: client(s, "eastus"), Target: client(s, "westus")}
	_, err := rp.Replicate(context.Background(), Request{JobID: j.ID})
	if !errors.Is(err, ErrJobNotSucceeded) || !strings.Contains(err.Error(), "is pending") {
		t.Fatalf("got %v", err)
	}
	_, err = rp.Replicate(context.Background(), Request{JobID: "ftjob-doesnotexist"})
	if err == nil || !strings.Contains(err.Error(), "not found in eastus") {
		t.Fatalf("unknown job: %v", err)
	}
	if n := len(simtest.Files(t, s.Region("westus").URL())); n != 0 {
		t.Errorf("%d files uploaded for a job that cannot be replicated", n)
	}
}

// A job that continued training a fine-tuned model of eastus cannot run in westus, which lacks that model.
func TestReplicateBaseModelMissingInTarget(t *testing.T) {
	s := simtest.Start(t, sim.Config{Regions: sim.DefaultRegions("eastus", "westus"), FineTuneDuration: 100 * time.Millisecond})
	east := s.Region("eastus").URL()
	first := sourceJob(t, s)
	second := simtest.WaitJob(t, east, simtest.CreateJob(t, east, map[string]any{
		"model": first.FineTunedModel, "training_file": simtest.Upload(t, east, "more.jsonl", training)}).ID)
	rp := &Replicator{Source: client(s, "eastus"), Target: client(s, "westus")}
	_, err := rp.Replicate(context.Background(), Request{JobID: second.ID})
	if !errors.Is(err, ErrBaseModelMissing) || !strings.Contains(err.Error(), first.FineTunedModel) {
		t.Fatalf("got %v", err)
	}
}

// quotaProxy puts a real reverse proxy in front of a region that refuses job creation with Azure's quota error
// while refuse is set.
func quotaProxy(t *testing.T, target string, refuse *atomic.Bool) string {
	u, _ := url.Parse(target)
	rp := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if refuse.Load() && r.Method == http.MethodPost && r.URL.Path == "/openai/fine_tuning/jobs" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusTooManyRequests)
			w.Write([]byte(`{"error":{"code":"quotaExceeded","message":"The fine-tuning job quota of this resource (3 active jobs) has been reached."}}`))
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestReplicateQuotaErrorThenResume(t *testing.T) {
	s := simtest.Start(t, sim.Config{Regions: sim.DefaultRegions("eastus", "westus"), FineTuneDuration: 100 * time.Millisecond})
	src := sourceJob(t, s)
	var refuse atomic.Bool
	refuse.Store(true)
	target := &aoai.Client{Region: "westus", Endpoint: quotaProxy(t, s.Region("westus").URL(), &refuse), APIKey: simtest.Key}
	// The source is read with an Entra token, as a region configured with `entra:` is.
	source := &aoai.Client{Region: "eastus", Endpoint: s.Region("eastus").URL(), Credential: simtest.Cred{Token: simtest.Token}}
	rp := &Replicator{Source: source, Target: target, PollInterval: 10 * time.Millisecond}
	res, err := rp.Replicate(context.Background(), Request{JobID: src.ID})
	if !errors.Is(err, ErrQuota) || !strings.Contains(err.Error(), "request more fine-tuning quota in westus") {
		t.Fatalf("got %v", err)
	}
	if res.TrainingFile == "" || res.ValidationFile == "" {
		t.Fatalf("files should be copied before the job: %+v", res)
	}
	refuse.Store(false)
	again, err := rp.Replicate(context.Background(), Request{JobID: src.ID, Wait: true})
	if err != nil {
		t.Fatal(err)
	}
	if again.TrainingFile != res.TrainingFile || again.Steps[2].Action != "reused" || again.Steps[4].Action != "created" {
		t.Errorf("resume: %+v", again.Steps)
	}
	if n := len(simtest.Files(t, s.Region("westus").URL())); n != 3 { // two copies and the result file
		t.Errorf("westus has %d files, want 3", n)
	}
}

func TestHyperparametersAndMarker(t *testing.T) {
	hp := hyperparameters([]byte(`{"n_epochs":-1,"batch_size":8,"learning_rate_multiplier":"auto","x":null}`))
	if len(hp) != 2 || hp["batch_size"] != 8.0 || hp["learning_rate_multiplier"] != "auto" {
		t.Errorf("hyperparameters %v", hp)
	}
	if s := suffixOf(&Job{FineTunedModel: "gpt-4o-mini-2024-07-18.ft-0123abcd-support-v2"}); s != "support-v2" {
		t.Errorf("suffix %q", s)
	}
	if s := suffixOf(&Job{FineTunedModel: "gpt-4o-mini-2024-07-18.ft-0123abcd"}); s != "" {
		t.Errorf("suffix %q", s)
	}
	if m := Marker("eastus", "ftjob-1", "training", "a.jsonl"); m != "lifeline-eastus-ftjob-1-training-a.jsonl" {
		t.Error(m)
	}
}
