// Package finetune brings a fine-tuned model from one Azure OpenAI region to another: it reads the job in the
// source region, copies its training and validation files, starts the same job in the target region, follows it,
// and can deploy the result through Azure Resource Manager. Every step first looks for what an earlier run
// already did (the copied files carry a marker in their filename, and the copied job is found by its training
// file), so running it again never uploads twice or starts a second job.
package finetune

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/lifeline-sre/lifeline/ops/aoai"
)

// Errors that tell the caller which step refused; each wrapped error also says what to do.
var (
	ErrJobNotSucceeded  = errors.New("source job has not succeeded")
	ErrBaseModelMissing = errors.New("base model not available in the target region")
	ErrQuota            = errors.New("quota exhausted")
	ErrReplicaFailed    = errors.New("replica job failed")
)

// Replicator copies fine-tuning jobs from Source to Target.
type Replicator struct {
	Source *aoai.Client // the region that ran the job
	Target *aoai.Client // the region that should get the model
	// Progress receives one line per step and, while waiting, per status change and event. Nil: discarded.
	Progress io.Writer
	// PollInterval is how often a job or an uploaded file is polled. Zero: 10s.
	PollInterval time.Duration
	// Now is the clock for the progress display. Nil: time.Now.
	Now func() time.Time
}

// Request says which job to replicate and how far to go.
type Request struct {
	JobID string
	// Wait follows the target job until it succeeds or fails.
	Wait bool
	// Restart starts a new job when the copy made by an earlier run failed or was cancelled.
	Restart bool
}

// Result is what was found and done.
type Result struct {
	SourceJob      *Job   `json:"source_job"`
	TrainingFile   string `json:"training_file"`             // in the target region
	ValidationFile string `json:"validation_file,omitempty"` // in the target region
	Job            *Job   `json:"job"`                       // in the target region, latest state seen
	Steps          []Step `json:"steps"`
}

// Step is one step of a replication and whether it was done now or found from an earlier run.
type Step struct {
	Name   string `json:"name"`   // source, base_model, training_file, validation_file, job, wait
	Action string `json:"action"` // checked | reused | created | uploaded | finished
	Detail string `json:"detail"`
}

// FineTunedModel is the model the target job produced, "" until it succeeded.
func (r *Result) FineTunedModel() string {
	if r.Job != nil && r.Job.Status == StatusSucceeded {
		return r.Job.FineTunedModel
	}
	return ""
}

func (rp *Replicator) step(res *Result, name, action, format string, args ...any) {
	s := Step{Name: name, Action: action, Detail: fmt.Sprintf(format, args...)}
	res.Steps = append(res.Steps, s)
	if rp.Progress != nil {
		fmt.Fprintf(rp.Progress, "%-15s %-9s %s\n", name, action, s.Detail)
	}
}

func (rp *Replicator) interval() time.Duration {
	if rp.PollInterval > 0 {
		return rp.PollInterval
	}
	return 10 * time.Second
}

func (rp *Replicator) now() time.Time {
	if rp.Now != nil {
		return rp.Now()
	}
	return time.Now()
}

// Replicate runs every step that an earlier run has not done yet. On error, res holds the steps that
// succeeded, so a rerun continues from there.
func (rp *Replicator) Replicate(ctx context.Context, req Request) (*Result, error) {
	res := &Result{}
	src, tgt := dataPlane{rp.Source}, dataPlane{rp.Target}
	job, err := rp.sourceJob(ctx, src, req.JobID, res)
	if err != nil {
		return res, err
	}
	if err := rp.checkBaseModel(ctx, job.Model, res); err != nil {
		return res, err
	}
	if res.TrainingFile, err = rp.copyFile(ctx, src, tgt, job, job.TrainingFile, "training", res); err != nil {
		return res, err
	}
	if job.ValidationFile != "" {
		if res.ValidationFile, err = rp.copyFile(ctx, src, tgt, job, job.ValidationFile, "validation", res); err != nil {
			return res, err
		}
	}
	if res.Job, err = rp.ensureJob(ctx, tgt, job, res, req.Restart); err != nil {
		return res, err
	}
	if !req.Wait {
		return res, nil
	}
	return res, rp.follow(ctx, tgt, res)
}

func (rp *Replicator) sourceJob(ctx context.Context, src dataPlane, id string, res *Result) (*Job, error) {
	job, err := src.job(ctx, id)
	if err != nil {
		if e, ok := aoai.AsAPIError(err); ok && e.Status == 404 {
			return nil, fmt.Errorf("job %s not found in %s: check --job (an id such as ftjob-...) and that --from names the region that ran it", id, rp.Source.Region)
		}
		return nil, fmt.Errorf("reading job %s in %s: %w", id, rp.Source.Region, withFix(err))
	}
	res.SourceJob = job
	if job.Status != StatusSucceeded {
		why := ""
		if job.Error != nil && job.Error.Message != "" {
			why = " (" + job.Error.Message + ")"
		}
		return nil, fmt.Errorf("%w: job %s in %s is %s%s; only a succeeded job has a model to replicate",
			ErrJobNotSucceeded, id, rp.Source.Region, job.Status, why)
	}
	rp.step(res, "source", "checked", "%s %s: succeeded, base %s, model %s", rp.Source.Region, job.ID, job.Model, job.FineTunedModel)
	return job, nil
}

func (rp *Replicator) checkBaseModel(ctx context.Context, base string, res *Result) error {
	models, err := rp.Target.Models(ctx)
	if err != nil {
		return fmt.Errorf("listing models in %s: %w", rp.Target.Region, withFix(err))
	}
	anyFineTunable := false
	for _, m := range models {
		anyFineTunable = anyFineTunable || m.Capabilities.FineTune
	}
	for _, m := range models {
		if m.ID == base && (m.Capabilities.FineTune || !anyFineTunable) {
			rp.step(res, "base", "checked", "%s offers %s for fine-tuning", rp.Target.Region, base)
			return nil
		}
	}
	return fmt.Errorf("%w: %s does not offer %s for fine-tuning; choose a target region where that model can be fine-tuned (see the region availability table for fine-tuning)",
		ErrBaseModelMissing, rp.Target.Region, base)
}

// Marker is the filename a copied file gets in the target region: it names the source region, job and role, so
// that a rerun finds the copy instead of uploading again.
func Marker(sourceRegion, jobID, role, filename string) string {
	return fmt.Sprintf("lifeline-%s-%s-%s-%s", sourceRegion, jobID, role, filename)
}

func (rp *Replicator) copyFile(ctx context.Context, src, tgt dataPlane, job *Job, id, role string, res *Result) (string, error) {
	meta, err := src.file(ctx, id)
	if err != nil {
		return "", fmt.Errorf("reading %s file %s in %s: %w", role, id, rp.Source.Region, withFix(err))
	}
	name := Marker(rp.Source.Region, job.ID, role, meta.Filename)
	existing, err := tgt.files(ctx)
	if err != nil {
		return "", fmt.Errorf("listing files in %s: %w", rp.Target.Region, withFix(err))
	}
	for _, f := range existing {
		if f.Filename == name && f.Status != "error" && f.Status != "deleted" && f.Status != "deleting" {
			rp.step(res, role+"_file", "reused", "%s already in %s as %s (%s)", id, rp.Target.Region, f.ID, name)
			return f.ID, rp.waitFile(ctx, tgt, f.ID)
		}
	}
	data, err := src.content(ctx, id)
	if err != nil {
		return "", fmt.Errorf("downloading %s file %s from %s: %w", role, id, rp.Source.Region, withFix(err))
	}
	f, err := tgt.upload(ctx, name, "fine-tune", data)
	if err != nil {
		return "", fmt.Errorf("uploading %s file to %s: %w", role, rp.Target.Region, withFix(err))
	}
	rp.step(res, role+"_file", "uploaded", "%s (%s, %d bytes) -> %s %s", id, meta.Filename, len(data), rp.Target.Region, f.ID)
	return f.ID, rp.waitFile(ctx, tgt, f.ID)
}

// waitFile waits until an uploaded file has been processed, as a job needs it to be.
func (rp *Replicator) waitFile(ctx context.Context, tgt dataPlane, id string) error {
	for {
		f, err := tgt.file(ctx, id)
		if err != nil {
			return fmt.Errorf("reading file %s in %s: %w", id, rp.Target.Region, withFix(err))
		}
		switch f.Status {
		case "pending", "running":
		case "error":
			return fmt.Errorf("file %s in %s could not be processed; delete it and run again", id, rp.Target.Region)
		default:
			return nil
		}
		if err := sleep(ctx, rp.interval()); err != nil {
			return err
		}
	}
}

func (rp *Replicator) ensureJob(ctx context.Context, tgt dataPlane, src *Job, res *Result, restart bool) (*Job, error) {
	jobs, err := tgt.jobs(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing fine-tuning jobs in %s: %w", rp.Target.Region, withFix(err))
	}
	var failed *Job
	for i := range jobs {
		j := &jobs[i]
		if j.TrainingFile != res.TrainingFile || j.Model != src.Model {
			continue
		}
		if j.Status == StatusFailed || j.Status == StatusCancelled {
			failed = j
			continue
		}
		rp.step(res, "job", "reused", "%s %s from an earlier run is %s", rp.Target.Region, j.ID, j.Status)
		return j, nil
	}
	if failed != nil && !restart {
		return failed, fmt.Errorf("%w: the copy %s in %s from an earlier run is %s%s; rerun with --restart to start a new job",
			ErrReplicaFailed, failed.ID, rp.Target.Region, failed.Status, jobErr(failed))
	}
	j, err := tgt.createJob(ctx, createRequest(src, res))
	if err != nil {
		if e, ok := aoai.AsAPIError(err); ok && e.Kind == aoai.KindQuota {
			return nil, fmt.Errorf("%w: %s refused the job: %s; request more fine-tuning quota in %s or delete finished jobs and deployments there",
				ErrQuota, rp.Target.Region, e.Message, rp.Target.Region)
		}
		return nil, fmt.Errorf("creating the job in %s: %w", rp.Target.Region, withFix(err))
	}
	rp.step(res, "job", "created", "%s %s (%s)", rp.Target.Region, j.ID, j.Status)
	return j, nil
}

func jobErr(j *Job) string {
	if j.Error != nil && j.Error.Message != "" {
		return ": " + j.Error.Message
	}
	return ""
}

// createRequest is the source job's settings pointed at the copied files.
func createRequest(src *Job, res *Result) map[string]any {
	req := map[string]any{"model": src.Model, "training_file": res.TrainingFile}
	if res.ValidationFile != "" {
		req["validation_file"] = res.ValidationFile
	}
	if m := method(src.Method); m != nil {
		req["method"] = m // its hyperparameters, not the top-level ones, are what a DPO or RFT job trained with
	} else if hp := hyperparameters(src.Hyperparameters); len(hp) > 0 {
		req["hyperparameters"] = hp
	}
	if src.Seed != nil {
		req["seed"] = *src.Seed
	}
	if suffix := suffixOf(src); suffix != "" {
		req["suffix"] = suffix
	}
	return req
}

// suffixOf is the job's suffix; regions that do not return it show it at the end of the model name
// ("base.ft-<hex>-<suffix>").
func suffixOf(j *Job) string {
	if j.Suffix != "" {
		return j.Suffix
	}
	_, ft, ok := strings.Cut(j.FineTunedModel, ".ft-")
	if !ok {
		return ""
	}
	_, suffix, _ := strings.Cut(ft, "-")
	return suffix
}

// method is the source job's training method for a job other than supervised (DPO, reinforcement),
// with the hyperparameters it really used; nil for supervised jobs, whose top-level hyperparameters
// say the same and which every API version takes.
func method(raw json.RawMessage) map[string]any {
	var m map[string]json.RawMessage
	var typ string
	if json.Unmarshal(raw, &m) != nil || json.Unmarshal(m["type"], &typ) != nil || typ == "" || typ == "supervised" {
		return nil
	}
	out := map[string]any{"type": typ}
	var body map[string]json.RawMessage
	if json.Unmarshal(m[typ], &body) != nil {
		return out
	}
	settings := map[string]any{}
	for k, v := range body {
		if k == "hyperparameters" {
			if hp := hyperparameters(v); len(hp) > 0 {
				settings[k] = hp
			}
			continue
		}
		settings[k] = v // e.g. a reinforcement job's grader, as it was
	}
	out[typ] = settings
	return out
}

// hyperparameters keeps the values the source job really used; Azure reports an unset one as -1.
func hyperparameters(raw json.RawMessage) map[string]any {
	var in map[string]any
	if json.Unmarshal(raw, &in) != nil {
		return nil
	}
	out := map[string]any{}
	for k, v := range in {
		if n, ok := v.(float64); ok && n <= 0 {
			continue
		}
		if v != nil {
			out[k] = v
		}
	}
	return out
}

// follow polls the target job until it ends, printing status changes and new events.
func (rp *Replicator) follow(ctx context.Context, tgt dataPlane, res *Result) error {
	start, last, seen := rp.now(), "", map[string]bool{}
	for {
		j, err := tgt.job(ctx, res.Job.ID)
		if err != nil {
			return fmt.Errorf("following job %s in %s: %w", res.Job.ID, rp.Target.Region, withFix(err))
		}
		res.Job = j
		evs, _ := tgt.events(ctx, j.ID)
		sort.SliceStable(evs, func(a, b int) bool { // regions differ in the order they list events
			return evs[a].CreatedAt < evs[b].CreatedAt || evs[a].CreatedAt == evs[b].CreatedAt && evs[a].ID < evs[b].ID
		})
		for _, e := range evs {
			if !seen[e.ID] {
				seen[e.ID] = true
				rp.progress(start, "event: "+e.Message)
			}
		}
		if j.Status != last {
			last = j.Status
			rp.progress(start, "status: "+j.Status)
		}
		if j.Done() {
			break
		}
		if err := sleep(ctx, rp.interval()); err != nil {
			return fmt.Errorf("stopped waiting for job %s in %s (it keeps running; rerun with --wait to follow it): %w", j.ID, rp.Target.Region, err)
		}
	}
	if res.Job.Status != StatusSucceeded {
		return fmt.Errorf("%w: job %s in %s is %s%s; rerun with --restart to start a new job",
			ErrReplicaFailed, res.Job.ID, rp.Target.Region, res.Job.Status, jobErr(res.Job))
	}
	rp.step(res, "wait", "finished", "%s %s succeeded: %s", rp.Target.Region, res.Job.ID, res.Job.FineTunedModel)
	return nil
}

func (rp *Replicator) progress(start time.Time, msg string) {
	if rp.Progress != nil {
		fmt.Fprintf(rp.Progress, "  [%6.1fs] %s\n", rp.now().Sub(start).Seconds(), msg)
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// withFix adds the operator's fix to an API error.
func withFix(err error) error {
	if e, ok := aoai.AsAPIError(err); ok && e.Explain() != "" {
		return fmt.Errorf("%w (%s)", err, e.Explain())
	}
	return err
}
