package sim

import (
	"strings"
	"testing"
	"time"
)

const fullFile = `
api_key: sim-key
seed: 7
control: 127.0.0.1:0
fine_tune_duration: 2s
time_to_first_token: 10ms
tokens_per_second: 1000
regions:
  - name: eastus
    addr: 127.0.0.1:0
    deployments:
      - {name: gpt-4o, model: gpt-4o, version: "2024-11-20", tpm: 30000, rpm: 180}
      - {name: emb, model: text-embedding-3-large}
  - name: swedencentral
    time_to_first_token: 0s
    disable_local_auth: true
    answers: random
`

func TestParseFile(t *testing.T) {
	f, err := ParseFile([]byte(fullFile))
	if err != nil {
		t.Fatal(err)
	}
	cfg := f.Config()
	if cfg.APIKey != "sim-key" || cfg.Seed != 7 || cfg.FineTuneDuration != 2*time.Second || len(cfg.Regions) != 2 {
		t.Fatalf("config: %+v", cfg)
	}
	east, sweden := cfg.Regions[0], cfg.Regions[1]
	if east.TimeToFirstToken != 10*time.Millisecond || east.TokensPerSecond != 1000 || east.Deployments[0].TPM != 30000 {
		t.Errorf("eastus: %+v", east)
	}
	if sweden.TimeToFirstToken != 0 || sweden.TokensPerSecond != 1000 || !sweden.DisableLocalAuth || sweden.Answers != AnswersRandom {
		t.Errorf("swedencentral: %+v", sweden)
	}
	if ttft, tps := f.SetsLatency("swedencentral"); !ttft || !tps {
		t.Error("SetsLatency")
	}
	s, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.ControlURL() == "" || s.Region("swedencentral").DisplayName() != "Sweden Central" || len(s.Region("swedencentral").Deployments()) != 3 ||
		s.Region("swedencentral").Answers() != AnswersRandom || s.Region("eastus").Answers() != AnswersRegion {
		t.Errorf("started from the file: control %q", s.ControlURL())
	}
}

func TestParseFileErrors(t *testing.T) {
	cases := map[string]string{
		"regions:\n  - name: eastus\n    colour: red\n":                                   "field colour not found",
		"regions:\n  - addr: x\n":                                                         "regions[0].name: a name is required",
		"regions:\n  - name: a\n  - name: a\n":                                            `regions[1].name: "a" is listed twice`,
		"regions:\n  - name: a\n    deployments:\n      - {model: gpt-4o}\n":              "regions[0].deployments[0].name: a name is required",
		"regions:\n  - name: a\n    deployments:\n      - {name: x, tpm: -1}\n":           "must not be negative",
		"tokens_per_second: -1\n":                                                         "tokens_per_second: must not be negative",
		"time_to_first_token: soon\n":                                                     `duration "soon"`,
		"regions:\n  - name: a\n    deployments:\n      - {name: x}\n      - {name: x}\n": `regions[0].deployments[1].name: "x" is listed twice`,
		"answers: creative\n":                                                             `answers "creative": use region, deterministic or random`,
		"regions:\n  - name: a\n    answers: sometimes\n":                                 `regions[0].answers "sometimes"`,
	}
	for in, want := range cases {
		_, err := ParseFile([]byte(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want it to contain %q", in, err, want)
		}
	}
	if f, err := ParseFile(nil); err != nil || len(f.Config().Regions) != 0 {
		t.Errorf("empty file: %v", err)
	}
}

func TestStartErrors(t *testing.T) {
	s := startSim(t, Config{Regions: DefaultRegions("eastus")})
	if _, err := Start(Config{Regions: []RegionConfig{{Name: "westus", Addr: s.Region("eastus").Addr()}}}); err == nil || !strings.Contains(err.Error(), "choose a free port") {
		t.Errorf("port in use: %v", err)
	}
	if _, err := Start(Config{Regions: []RegionConfig{{Name: "a"}, {Name: "a"}}}); err == nil || !strings.Contains(err.Error(), "listed twice") {
		t.Errorf("duplicate: %v", err)
	}
	if err := s.Fault("nowhere", Fault{Mode: ModeDown}); err == nil {
		t.Error("unknown region")
	}
}
