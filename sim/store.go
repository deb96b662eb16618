package sim

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// store keeps a region's files and fine-tuning jobs in memory. Job state is computed from the clock when read,
// so no goroutine runs per job.
type store struct {
	r     *Region
	mu    sync.Mutex
	files map[string]*file
	jobs  map[string]*job
	order []string // job ids, oldest first
}

type file struct {
	ID        string `json:"id"`
	Bytes     int    `json:"bytes"`
	CreatedAt int64  `json:"created_at"`
	Filename  string `json:"filename"`
	Object    string `json:"object"`
	Purpose   string `json:"purpose"`
	Status    string `json:"status"`
	content   []byte
	seq       int
}

type job struct {
	id             string // ftjob-<hex>
	hex            string
	model          string
	trainingFile   string
	validationFile string
	hyper          map[string]any
	method         string // supervised, dpo or reinforcement
	seed           int64
	suffix         string
	created        time.Time
	cancelled      time.Time // zero: not cancelled
	resultFile     string
	trainedTokens  int
}

func newStore(r *Region) *store {
	return &store{r: r, files: map[string]*file{}, jobs: map[string]*job{}}
}

// Fine-tunable base models (Azure model-version names).
var fineTunable = map[string]bool{
	"gpt-4o-2024-08-06": true, "gpt-4o-mini-2024-07-18": true, "gpt-4.1-2025-04-14": true,
	"gpt-4.1-mini-2025-04-14": true, "gpt-4.1-nano-2025-04-14": true, "gpt-35-turbo-0613": true,
	"gpt-35-turbo-1106": true, "gpt-35-turbo-0125": true, "babbage-002": true, "davinci-002": true,
	"o4-mini-2025-04-16": true,
}

// catalog lists the base models every region offers in the models list.
var catalog = []string{
	"gpt-4o-2024-11-20", "gpt-4o-2024-08-06", "gpt-4o-mini-2024-07-18", "gpt-4.1-2025-04-14", "gpt-4.1-mini-2025-04-14",
	"gpt-4.1-nano-2025-04-14", "gpt-35-turbo-0125", "text-embedding-3-small", "text-embedding-3-large",
	"text-embedding-ada-002",
}

func (st *store) addFile(name, purpose string, content []byte) *file {
	now := st.r.sim.now().Unix()
	f := &file{
		ID: st.r.sim.randomID("file-", 32, "0123456789abcdef"), Bytes: len(content), CreatedAt: now, Filename: name,
		Object: "file", Purpose: purpose, Status: "processed", content: content,
	}
	st.mu.Lock()
	f.seq = len(st.files)
	st.files[f.ID] = f
	st.mu.Unlock()
	return f
}

func (st *store) file(id string) *file {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.files[id]
}

func (st *store) deleteFile(id string) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if _, ok := st.files[id]; !ok {
		return false
	}
	delete(st.files, id)
	return true
}

func (st *store) listFiles(purpose string) []file {
	st.mu.Lock()
	out := make([]file, 0, len(st.files))
	for _, f := range st.files {
		if purpose == "" || f.Purpose == purpose {
			out = append(out, *f)
		}
	}
	st.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].seq < out[j].seq })
	return out
}

// jobState is a job's status at now, with the times of its transitions.
func (st *store) jobState(j *job, now time.Time) string {
	dur := st.r.sim.ftDur
	if !j.cancelled.IsZero() {
		return "cancelled"
	}
	el := now.Sub(j.created)
	switch {
	case el < dur/4:
		return "pending"
	case el < dur:
		return "running"
	default:
		return "succeeded"
	}
}

func (j *job) fineTunedModel() string {
	name := j.model + ".ft-" + j.hex
	if j.suffix != "" {
		name += "-" + j.suffix
	}
	return name
}

// hasFineTunedModel reports whether a succeeded job of this region produced model.
func (st *store) hasFineTunedModel(model string) bool {
	now := st.r.sim.now()
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, j := range st.jobs {
		if j.fineTunedModel() == model && st.jobState(j, now) == "succeeded" {
			return true
		}
	}
	return false
}

// fineTunedModels returns the models of succeeded jobs with their job.
func (st *store) fineTunedModels() []*job {
	now := st.r.sim.now()
	st.mu.Lock()
	defer st.mu.Unlock()
	var out []*job
	for _, id := range st.order {
		if j := st.jobs[id]; st.jobState(j, now) == "succeeded" {
			out = append(out, j)
		}
	}
	return out
}

// jobRequest is the body of POST fine_tuning/jobs.
type jobRequest struct {
	Model           string          `json:"model"`
	TrainingFile    string          `json:"training_file"`
	ValidationFile  string          `json:"validation_file"`
	Hyperparameters map[string]any  `json:"hyperparameters"`
	Seed            *int64          `json:"seed"`
	Suffix          string          `json:"suffix"`
	Method          json.RawMessage `json:"method"`
}

// parseMethod reads a job request's method: {"type": T, T: {"hyperparameters": {...}}}. No method means
// supervised.
func parseMethod(raw json.RawMessage) (string, map[string]any, string) {
	if len(raw) == 0 || string(raw) == "null" {
		return "supervised", nil, ""
	}
	var m map[string]json.RawMessage
	var typ string
	if json.Unmarshal(raw, &m) != nil || json.Unmarshal(m["type"], &typ) != nil {
		return "", nil, "The method field must be an object with a type."
	}
	switch typ {
	case "supervised", "dpo", "reinforcement":
	default:
		return "", nil, fmt.Sprintf("The method type '%s' is not supported; use supervised, dpo or reinforcement.", typ)
	}
	var body struct {
		Hyperparameters map[string]any `json:"hyperparameters"`
	}
	if sub, ok := m[typ]; ok && json.Unmarshal(sub, &body) != nil {
		return "", nil, fmt.Sprintf("The method.%s field must be an object.", typ)
	}
	return typ, body.Hyperparameters, ""
}

// createJob validates a job request; it returns the error body and status on failure.
func (st *store) createJob(req jobRequest) (*job, int, []byte) {
	if req.Model == "" {
		return nil, 400, azureError("invalidPayload", "The model field is required.")
	}
	if req.TrainingFile == "" {
		return nil, 400, azureError("invalidPayload", "The training_file field is required.")
	}
	if !fineTunable[req.Model] && !st.hasFineTunedModel(req.Model) {
		return nil, 400, azureError("invalidPayload", fmt.Sprintf("The specified base model '%s' does not support fine-tuning.", req.Model))
	}
	for _, id := range []string{req.TrainingFile, req.ValidationFile} {
		if id == "" {
			continue
		}
		if f := st.file(id); f == nil {
			return nil, 400, azureError("invalidPayload", fmt.Sprintf("The file '%s' does not exist or has been deleted.", id))
		} else if f.Purpose != "fine-tune" {
			return nil, 400, azureError("invalidPayload", fmt.Sprintf("The file '%s' has purpose '%s'; fine-tuning needs purpose 'fine-tune'.", id, f.Purpose))
		}
	}
	if len(req.Suffix) > 40 || strings.ContainsFunc(req.Suffix, func(r rune) bool {
		return !(r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
	}) {
		return nil, 400, azureError("invalidPayload", "The suffix may have up to 40 characters (a-z, A-Z, 0-9, - and _).")
	}
	method, methodHyper, err := parseMethod(req.Method)
	if err != "" {
		return nil, 400, azureError("invalidPayload", err)
	}
	hyper := map[string]any{"n_epochs": 3, "batch_size": 1, "learning_rate_multiplier": 1.0}
	if method == "dpo" {
		hyper["beta"] = 0.1
	}
	for _, in := range []map[string]any{req.Hyperparameters, methodHyper} {
		for k, v := range in {
			if s, ok := v.(string); ok && s == "auto" {
				continue
			}
			hyper[k] = v
		}
	}
	hex := st.r.sim.randomID("", 32, "0123456789abcdef")
	j := &job{id: "ftjob-" + hex, hex: hex, model: req.Model, trainingFile: req.TrainingFile, validationFile: req.ValidationFile,
		hyper: hyper, method: method, suffix: req.Suffix, created: st.r.sim.now()}
	if req.Seed != nil {
		j.seed = *req.Seed
	} else {
		j.seed = int64(st.r.sim.randomSeed())
	}
	if f := st.file(req.TrainingFile); f != nil {
		j.trainedTokens = 3 * max(1, tokens(string(f.content)))
	}
	st.mu.Lock()
	st.jobs[j.id] = j
	st.order = append(st.order, j.id)
	st.mu.Unlock()
	return j, 0, nil
}

func (st *store) job(id string) *job {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.jobs[id]
}

// jobJSON is a job as the API returns it, at now. A succeeded job gets its result file when first seen.
func (st *store) jobJSON(live *job, now time.Time) map[string]any {
	j := st.snapshot(live)
	state := st.jobState(j, now)
	out := map[string]any{
		"id": j.id, "object": "fine_tuning.job", "model": j.model, "created_at": j.created.Unix(), "status": state,
		"training_file": j.trainingFile, "validation_file": nil, "hyperparameters": j.hyper, "seed": j.seed,
		"fine_tuned_model": nil, "finished_at": nil, "trained_tokens": nil, "result_files": []string{},
		"error": nil, "organization_id": "", "estimated_finish": nil, "integrations": nil,
		"method": map[string]any{"type": j.method, j.method: map[string]any{"hyperparameters": j.hyper}},
	}
	if j.validationFile != "" {
		out["validation_file"] = j.validationFile
	}
	if j.suffix != "" {
		out["suffix"] = j.suffix
	}
	if state == "pending" || state == "running" {
		out["estimated_finish"] = j.created.Add(st.r.sim.ftDur).Unix()
	}
	if state == "cancelled" {
		out["finished_at"] = j.cancelled.Unix()
	}
	if state == "succeeded" {
		out["fine_tuned_model"] = j.fineTunedModel()
		out["finished_at"] = j.created.Add(st.r.sim.ftDur).Unix()
		out["trained_tokens"] = j.trainedTokens
		out["result_files"] = []string{st.resultFile(live)}
	}
	return out
}

// snapshot copies a job under the lock (cancel changes it).
func (st *store) snapshot(j *job) *job {
	st.mu.Lock()
	defer st.mu.Unlock()
	c := *j
	return &c
}

func (st *store) resultFile(j *job) string {
	st.mu.Lock()
	id := j.resultFile
	st.mu.Unlock()
	if id != "" {
		return id
	}
	f := st.addFile("results.csv", "fine-tune-results", []byte("step,train_loss,train_mean_token_accuracy\n1,1.2,0.61\n2,0.8,0.74\n3,0.48,0.92\n"))
	st.mu.Lock()
	defer st.mu.Unlock()
	if j.resultFile == "" {
		j.resultFile = f.ID
	}
	return j.resultFile
}

// cancel cancels a pending or running job; it returns the state that prevented it otherwise.
func (st *store) cancel(j *job, now time.Time) (string, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	state := st.jobState(j, now)
	if state != "pending" && state != "running" {
		return state, false
	}
	j.cancelled = now
	return "cancelled", true
}

// events are the job's events so far, oldest first.
func (st *store) events(live *job, now time.Time) []map[string]any {
	j := st.snapshot(live)
	dur := st.r.sim.ftDur
	type ev struct {
		at  time.Time
		msg string
		typ string
	}
	all := []ev{{j.created, "Job enqueued. Waiting for jobs ahead to complete.", "message"}}
	end := now
	if !j.cancelled.IsZero() && j.cancelled.Before(end) {
		end = j.cancelled
	}
	if start := j.created.Add(dur / 4); !start.After(end) {
		all = append(all, ev{start, "Job started.", "message"}, ev{start, "Training started.", "message"})
	}
	for step := 1; step <= 3; step++ {
		at := j.created.Add(dur/4 + time.Duration(step)*(dur*3/4)/4)
		if !at.After(end) {
			all = append(all, ev{at, "Step " + strconv.Itoa(10*step) + ": training loss=" + strconv.FormatFloat(1.5/float64(step), 'f', 3, 64), "metrics"})
		}
	}
	if !j.cancelled.IsZero() {
		all = append(all, ev{j.cancelled, "Job cancelled.", "message"})
	} else if done := j.created.Add(dur); !done.After(now) {
		all = append(all, ev{done, "Completed results file: " + st.resultFile(live), "message"}, ev{done, "Job succeeded.", "message"})
	}
	out := make([]map[string]any, len(all))
	for i, e := range all {
		out[i] = map[string]any{"id": fmt.Sprintf("ftevent-%s%04d", j.hex[:28], i), "object": "fine_tuning.job.event",
			"created_at": e.at.Unix(), "level": "info", "message": e.msg, "type": e.typ}
	}
	return out
}

// checkpoints are the checkpoints of a succeeded job, newest first.
func (st *store) checkpoints(live *job, now time.Time) []map[string]any {
	j := st.snapshot(live)
	if st.jobState(j, now) != "succeeded" {
		return []map[string]any{}
	}
	var out []map[string]any
	done := j.created.Add(st.r.sim.ftDur)
	for step := 30; step >= 10; step -= 10 {
		name := j.fineTunedModel()
		if step != 30 {
			name += ":ckpt-step-" + strconv.Itoa(step)
		}
		out = append(out, map[string]any{
			"id": fmt.Sprintf("ftchkpt-%s%04d", j.hex[:28], step), "object": "fine_tuning.job.checkpoint",
			"created_at": done.Add(-time.Duration(30-step) * time.Second).Unix(), "fine_tuned_model_checkpoint": name,
			"fine_tuning_job_id": j.id, "step_number": step,
			"metrics": map[string]any{"step": step, "train_loss": 1.5 / float64(step/10), "train_mean_token_accuracy": 0.6 + 0.1*float64(step/10),
				"valid_loss": 1.6 / float64(step/10), "valid_mean_token_accuracy": 0.55 + 0.1*float64(step/10),
				"full_valid_loss": 1.6 / float64(step/10), "full_valid_mean_token_accuracy": 0.55 + 0.1*float64(step/10)},
		})
	}
	return out
}

// listJobs returns jobs newest first.
func (st *store) listJobs() []*job {
	st.mu.Lock()
	defer st.mu.Unlock()
	out := make([]*job, 0, len(st.order))
	for i := len(st.order) - 1; i >= 0; i-- {
		out = append(out, st.jobs[st.order[i]])
	}
	return out
}

// randomSeed is the seed a job gets when the caller gives none.
func (s *Sim) randomSeed() uint32 {
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	return s.rng.Uint32() >> 1
}

func sortDeployments(d []Deployment) {
	sort.Slice(d, func(i, j int) bool { return d[i].Name < d[j].Name })
}
