package check

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/lifeline-sre/lifeline/ops/aoai"
	"github.com/lifeline-sre/lifeline/ops/internal/simtest"
	"github.com/lifeline-sre/lifeline/sim"
)

// Image, audio, embedding and Realtime deployments are checked with an operation they support, never a chat
// completion: a correct config gets no false error, with or without --probe.
func TestProbePerModelKind(t *testing.T) {
	deps := append(sim.DefaultDeployments(),
		sim.Deployment{Name: "images", Model: "dall-e-3", Version: "3.0"},
		sim.Deployment{Name: "whisper", Model: "whisper", Version: "001"},
		sim.Deployment{Name: "speech", Model: "tts-1-hd", Version: "001"},
		sim.Deployment{Name: "voice", Model: "gpt-4o-realtime-preview", Version: "2024-12-17"})
	s := simtest.Start(t, sim.Config{Regions: []sim.RegionConfig{{Name: "eastus", Deployments: deps}, {Name: "westus", Deployments: deps}}})
	names := map[string]string{"gpt-4o": "gpt-4o", "embed": "text-embedding-3-small", "images": "images", "whisper": "whisper",
		"speech": "speech", "voice": "voice"}
	var regions []Region
	for i, n := range []string{"eastus", "westus"} {
		regions = append(regions, Region{Name: n, Endpoint: s.Region(n).URL(), APIKey: simtest.Key, Priority: i + 1, Deployments: names})
	}
	want := map[string]struct {
		kind         ModelKind
		probe, model string
	}{
		"gpt-4o": {ModelChat, "chat/completions", "gpt-4o-2024-11-20"}, "embed": {ModelEmbedding, "embeddings", "text-embedding-3-small"},
		"images": {ModelImage, "exists", "dall-e-3"}, "whisper": {ModelAudio, "exists", "whisper"},
		"speech": {ModelAudio, "exists", "tts-1-hd"}, "voice": {ModelRealtime, "exists", "gpt-4o-realtime-preview"},
	}
	for _, probe := range []bool{false, true} {
		before := s.Region("eastus").Stats().CompletionTokens
		rep := Run(context.Background(), regions, Options{Probe: probe})
		if rep.ExitCode() != 0 {
			var sb strings.Builder
			rep.WriteText(&sb)
			t.Fatalf("probe=%v: exit %d:\n%s", probe, rep.ExitCode(), sb.String())
		}
		for _, d := range rep.Regions[0].Deployments {
			w := want[d.Name]
			if !probe && d.Name == "gpt-4o" {
				w.model = "" // without --probe a chat model is not identified (its deployment is not named after it)
			}
			if d.Status != StatusOK || d.Kind != w.kind || d.Model != w.model {
				t.Errorf("probe=%v %s: %+v, want kind %s model %s", probe, d.Name, d, w.kind, w.model)
			}
			if p := w.probe; probe && d.Probe != p || !probe && d.Probe != "exists" {
				t.Errorf("probe=%v %s: checked by %q", probe, d.Name, d.Probe)
			}
		}
		if spent := s.Region("eastus").Stats().CompletionTokens - before; !probe && spent != 0 || probe && spent != 1 {
			t.Errorf("probe=%v: %d completion tokens spent in eastus, want %d (the one chat probe)", probe, spent, map[bool]int64{true: 1}[probe])
		}
	}
}

func TestModelKind(t *testing.T) {
	for model, want := range map[string]ModelKind{
		"gpt-4o-2024-11-20": ModelChat, "gpt-4.1-mini": ModelChat, "o3-pro": ModelChat, "text-embedding-3-large": ModelEmbedding,
		"text-embedding-ada-002": ModelEmbedding, "dall-e-3": ModelImage, "gpt-image-1": ModelImage, "whisper": ModelAudio,
		"tts-1": ModelAudio, "gpt-4o-mini-tts": ModelAudio, "gpt-4o-transcribe": ModelAudio, "gpt-4o-realtime-preview": ModelRealtime,
		"gpt-realtime": ModelRealtime, "babbage-002": ModelCompletion, "gpt-35-turbo-instruct": ModelCompletion,
	} {
		if got := modelKind(model); got != want {
			t.Errorf("%s: %s, want %s", model, got, want)
		}
	}
	for msg, want := range map[string]string{
		"The chatCompletion operation does not work with the specified model, dall-e-3. Please choose different model and try again.": "dall-e-3",
		"The chatCompletion operation does not work with the specified model, gpt-4.1-mini. Please choose":                            "gpt-4.1-mini",
		"The embeddings operation does not work with the specified model, gpt-35-turbo.":                                              "gpt-35-turbo",
		"Invalid 'messages': empty array.": "",
	} {
		if got := modelFromRefusal(&aoai.APIError{Status: 400, Message: msg}); got != want {
			t.Errorf("%q: %q, want %q", msg, got, want)
		}
	}
	if modelFromRefusal(errors.New("x")) != "" {
		t.Error("not an API error")
	}
}
