package aoai

import (
	"context"
	"regexp"
	"strings"
)

// Model is one entry of GET /openai/models.
type Model struct {
	ID              string `json:"id"`
	Model           string `json:"model,omitempty"`     // base model of a fine-tuned model
	FineTune        string `json:"fine_tune,omitempty"` // job id of a fine-tuned model
	Status          string `json:"status,omitempty"`
	LifecycleStatus string `json:"lifecycle_status,omitempty"`
	Capabilities    struct {
		FineTune       bool `json:"fine_tune"`
		Inference      bool `json:"inference"`
		ChatCompletion bool `json:"chat_completion"`
		Completion     bool `json:"completion"`
		Embeddings     bool `json:"embeddings"`
	} `json:"capabilities"`
}

// Models lists the region's base and fine-tuned models.
func (c *Client) Models(ctx context.Context) ([]Model, error) {
	var out struct {
		Data []Model `json:"data"`
	}
	if err := c.JSON(ctx, "GET", "/openai/models", nil, &out); err != nil {
		return nil, err
	}
	return out.Data, nil
}

var versionSuffix = regexp.MustCompile(`^(.+)-(\d{4}-\d{2}-\d{2}|\d{4})$`)

// ModelID is a model name split into the parts that parity cares about.
type ModelID struct {
	Name      string `json:"name"`              // "gpt-4o-mini"
	Version   string `json:"version,omitempty"` // "2024-07-18"; "" when the id carries none
	FineTuned bool   `json:"fine_tuned,omitempty"`
	Base      string `json:"base,omitempty"` // fine-tuned: the full base model id, "gpt-4o-mini-2024-07-18"
	JobHex    string `json:"-"`              // fine-tuned: the hex after ".ft-"
}

// SplitModel reads a model id such as "gpt-4o-2024-08-06", "gpt-35-turbo-0613" or
// "gpt-4o-mini-2024-07-18.ft-0123abcd".
func SplitModel(id string) ModelID {
	if base, ft, ok := strings.Cut(id, ".ft-"); ok {
		m := SplitModel(base)
		m.FineTuned, m.Base = true, base
		m.JobHex, _, _ = strings.Cut(ft, ":")
		if i := strings.IndexAny(m.JobHex, "-_"); i > 0 {
			m.JobHex = m.JobHex[:i]
		}
		return m
	}
	if g := versionSuffix.FindStringSubmatch(id); g != nil {
		return ModelID{Name: g[1], Version: g[2]}
	}
	return ModelID{Name: id}
}

// IsFineTuned reports whether a model or deployment name names a fine-tuned model.
func IsFineTuned(id string) bool { return strings.Contains(id, ".ft-") }
