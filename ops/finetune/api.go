package finetune

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"

	"github.com/lifeline-sre/lifeline/ops/aoai"
)

// Job is a fine-tuning job as the data plane returns it.
type Job struct {
	ID              string          `json:"id"`
	Status          string          `json:"status"`
	Model           string          `json:"model"`
	FineTunedModel  string          `json:"fine_tuned_model,omitempty"`
	TrainingFile    string          `json:"training_file"`
	ValidationFile  string          `json:"validation_file,omitempty"`
	Hyperparameters json.RawMessage `json:"hyperparameters,omitempty"`
	Seed            *int64          `json:"seed,omitempty"`
	Suffix          string          `json:"suffix,omitempty"`
	// Method is how the job trained: {"type": "supervised" | "dpo" | "reinforcement", TYPE: {"hyperparameters": ...}}.
	Method    json.RawMessage `json:"method,omitempty"`
	CreatedAt int64           `json:"created_at,omitempty"`
	Error     *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error,omitempty"`
}

// Terminal job states.
const (
	StatusSucceeded = "succeeded"
	StatusFailed    = "failed"
	StatusCancelled = "cancelled"
)

// Done reports whether the job will not change any more.
func (j *Job) Done() bool {
	return j.Status == StatusSucceeded || j.Status == StatusFailed || j.Status == StatusCancelled
}

// File is an uploaded file.
type File struct {
	ID       string `json:"id"`
	Filename string `json:"filename"`
	Purpose  string `json:"purpose"`
	Status   string `json:"status"`
	Bytes    int64  `json:"bytes"`
}

// Event is one fine-tuning job event.
type Event struct {
	ID        string `json:"id"`
	CreatedAt int64  `json:"created_at"`
	Level     string `json:"level"`
	Message   string `json:"message"`
}

// dataPlane wraps a region's client with the files and fine-tuning routes.
type dataPlane struct{ c *aoai.Client }

func (d dataPlane) job(ctx context.Context, id string) (*Job, error) {
	var j Job
	err := d.c.JSON(ctx, http.MethodGet, "/openai/fine_tuning/jobs/"+url.PathEscape(id), nil, &j)
	return &j, err
}

func (d dataPlane) jobs(ctx context.Context) ([]Job, error) {
	var all []Job
	after := ""
	for page := 0; page < 100; page++ {
		path := "/openai/fine_tuning/jobs?limit=100"
		if after != "" {
			path += "&after=" + url.QueryEscape(after)
		}
		var out struct {
			Data    []Job `json:"data"`
			HasMore bool  `json:"has_more"`
		}
		if err := d.c.JSON(ctx, http.MethodGet, path, nil, &out); err != nil {
			return nil, err
		}
		all = append(all, out.Data...)
		if !out.HasMore || len(out.Data) == 0 {
			break
		}
		after = out.Data[len(out.Data)-1].ID
	}
	return all, nil
}

func (d dataPlane) createJob(ctx context.Context, req map[string]any) (*Job, error) {
	var j Job
	err := d.c.JSON(ctx, http.MethodPost, "/openai/fine_tuning/jobs", req, &j)
	return &j, err
}

func (d dataPlane) events(ctx context.Context, id string) ([]Event, error) {
	var out struct {
		Data []Event `json:"data"`
	}
	err := d.c.JSON(ctx, http.MethodGet, "/openai/fine_tuning/jobs/"+url.PathEscape(id)+"/events?limit=100", nil, &out)
	return out.Data, err
}

func (d dataPlane) file(ctx context.Context, id string) (*File, error) {
	var f File
	err := d.c.JSON(ctx, http.MethodGet, "/openai/files/"+url.PathEscape(id), nil, &f)
	return &f, err
}

func (d dataPlane) files(ctx context.Context) ([]File, error) {
	var out struct {
		Data []File `json:"data"`
	}
	err := d.c.JSON(ctx, http.MethodGet, "/openai/files", nil, &out)
	return out.Data, err
}

func (d dataPlane) content(ctx context.Context, id string) ([]byte, error) {
	resp, err := d.c.Do(ctx, http.MethodGet, "/openai/files/"+url.PathEscape(id)+"/content", nil, "")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 512<<20))
	if err != nil {
		return nil, fmt.Errorf("region %s: downloading file %s: %w", d.c.Region, id, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, aoai.ParseError(d.c.Region, resp, data)
	}
	return data, nil
}

func (d dataPlane) upload(ctx context.Context, name, purpose string, data []byte) (*File, error) {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	if err := mw.WriteField("purpose", purpose); err != nil {
		return nil, err
	}
	fw, err := mw.CreateFormFile("file", name)
	if err != nil {
		return nil, err
	}
	if _, err := fw.Write(data); err != nil {
		return nil, err
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}
	resp, err := d.c.Do(ctx, http.MethodPost, "/openai/files", body.Bytes(), mw.FormDataContentType())
	if err != nil {
		return nil, err
	}
	var f File
	return &f, d.c.Decode(resp, &f)
}
