package sim

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"go.yaml.in/yaml/v3"
)

// File is the YAML file of `lifeline sim --config`: regions, deployments, quotas and latency. Unknown keys are
// errors. Every key is optional; command-line flags given explicitly override the file.
//
//	api_key: sim-key
//	seed: 7
//	control: 127.0.0.1:18000
//	time_to_first_token: 200ms        # default for every region
//	tokens_per_second: 50
//	fine_tune_duration: 30s
//	regions:
//	  - name: eastus
//	    addr: 127.0.0.1:18001
//	    deployments:
//	      - {name: gpt-4o, model: gpt-4o, version: "2024-11-20", tpm: 30000, rpm: 180}
//	  - name: swedencentral
//	    time_to_first_token: 400ms
//	    tokens_per_second: 30
type File struct {
	APIKey               string       `yaml:"api_key"`
	Seed                 *int64       `yaml:"seed"`
	TLS                  bool         `yaml:"tls"`
	TLSHosts             []string     `yaml:"tls_hosts"`
	Control              string       `yaml:"control"`
	FineTuneDuration     Duration     `yaml:"fine_tune_duration"`
	ContentFilterTrigger string       `yaml:"content_filter_trigger"`
	MaxBodyBytes         int64        `yaml:"max_body_bytes"`
	APIVersions          []string     `yaml:"api_versions"`
	TimeToFirstToken     *Duration    `yaml:"time_to_first_token"`
	TokensPerSecond      *float64     `yaml:"tokens_per_second"`
	Answers              string       `yaml:"answers"`
	Regions              []FileRegion `yaml:"regions"`
}

// FileRegion is one region in the YAML file.
type FileRegion struct {
	Name             string       `yaml:"name"`
	DisplayName      string       `yaml:"display_name"`
	Addr             string       `yaml:"addr"`
	TimeToFirstToken *Duration    `yaml:"time_to_first_token"`
	TokensPerSecond  *float64     `yaml:"tokens_per_second"`
	DisableLocalAuth bool         `yaml:"disable_local_auth"`
	Answers          string       `yaml:"answers"`
	Deployments      []Deployment `yaml:"deployments"`
}

// LoadFile reads and parses a simulator YAML file.
func LoadFile(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("sim config: %w", err)
	}
	f, err := ParseFile(data)
	if err != nil {
		return nil, fmt.Errorf("sim config %s: %w", path, err)
	}
	return f, nil
}

// ParseFile parses a simulator YAML file strictly (unknown keys are errors) and checks its values.
func ParseFile(data []byte) (*File, error) {
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if err := f.validate(); err != nil {
		return nil, err
	}
	return &f, nil
}

func (f *File) validate() error {
	if f.FineTuneDuration < 0 {
		return fmt.Errorf("fine_tune_duration: must not be negative")
	}
	if f.TimeToFirstToken != nil && *f.TimeToFirstToken < 0 {
		return fmt.Errorf("time_to_first_token: must not be negative")
	}
	if f.TokensPerSecond != nil && *f.TokensPerSecond < 0 {
		return fmt.Errorf("tokens_per_second: must not be negative (0 means infinitely fast)")
	}
	if err := validAnswers(f.Answers); err != nil {
		return err
	}
	seen := map[string]bool{}
	for i, r := range f.Regions {
		if err := validAnswers(r.Answers); err != nil {
			return fmt.Errorf("regions[%d].%w", i, err)
		}
		switch {
		case r.Name == "":
			return fmt.Errorf("regions[%d].name: a name is required (e.g. eastus)", i)
		case seen[r.Name]:
			return fmt.Errorf("regions[%d].name: %q is listed twice", i, r.Name)
		case r.TimeToFirstToken != nil && *r.TimeToFirstToken < 0:
			return fmt.Errorf("regions[%d].time_to_first_token: must not be negative", i)
		case r.TokensPerSecond != nil && *r.TokensPerSecond < 0:
			return fmt.Errorf("regions[%d].tokens_per_second: must not be negative", i)
		}
		seen[r.Name] = true
		names := map[string]bool{}
		for j, d := range r.Deployments {
			switch {
			case d.Name == "":
				return fmt.Errorf("regions[%d].deployments[%d].name: a name is required", i, j)
			case names[d.Name]:
				return fmt.Errorf("regions[%d].deployments[%d].name: %q is listed twice", i, j, d.Name)
			case d.TPM < 0 || d.RPM < 0 || d.Dimensions < 0:
				return fmt.Errorf("regions[%d].deployments[%d]: tpm, rpm and dimensions must not be negative", i, j)
			}
			names[d.Name] = true
		}
	}
	return nil
}

// Config converts the file to a Config; regions without settings inherit the file-wide latency.
func (f *File) Config() Config {
	cfg := Config{
		APIKey: f.APIKey, TLS: f.TLS, TLSHosts: f.TLSHosts, ControlAddr: f.Control,
		FineTuneDuration: time.Duration(f.FineTuneDuration), ContentFilterTrigger: f.ContentFilterTrigger,
		MaxBodyBytes: f.MaxBodyBytes, APIVersions: f.APIVersions, Answers: f.Answers,
	}
	if f.Seed != nil {
		cfg.Seed = *f.Seed
	}
	for _, r := range f.Regions {
		rc := RegionConfig{Name: r.Name, DisplayName: r.DisplayName, Addr: r.Addr, Deployments: r.Deployments, DisableLocalAuth: r.DisableLocalAuth, Answers: r.Answers}
		if t := pick(r.TimeToFirstToken, f.TimeToFirstToken); t != nil {
			rc.TimeToFirstToken = time.Duration(*t)
		}
		if t := pick(r.TokensPerSecond, f.TokensPerSecond); t != nil {
			rc.TokensPerSecond = *t
		}
		cfg.Regions = append(cfg.Regions, rc)
	}
	return cfg
}

func pick[T any](a, b *T) *T {
	if a != nil {
		return a
	}
	return b
}

// SetsLatency reports whether the file sets the time to first token and the tokens per second of a region,
// for that region or file-wide.
func (f *File) SetsLatency(region string) (ttft, tps bool) {
	ttft, tps = f.TimeToFirstToken != nil, f.TokensPerSecond != nil
	for _, r := range f.Regions {
		if r.Name == region {
			ttft = ttft || r.TimeToFirstToken != nil
			tps = tps || r.TokensPerSecond != nil
		}
	}
	return ttft, tps
}
