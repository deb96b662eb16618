package failover_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/azure"
	"github.com/openai/openai-go/v3/option"

	"github.com/lifeline-sre/lifeline/failover"
	"github.com/lifeline-sre/lifeline/sim"
)

// openaiClient is the official client over the transport, on the classic or v1 surface.
func openaiClient(t *testing.T, v1 bool) (openai.Client, *sim.Sim, *failover.Transport) {
	t.Helper()
	s, err := sim.Start(sim.Config{Regions: sim.DefaultRegions("eastus", "westus"), APIKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	var regions []failover.Region
	for i, name := range []string{"eastus", "westus"} {
		regions = append(regions, failover.Region{Name: name, Endpoint: s.Region(name).URL(), APIKey: "k", Priority: i + 1,
			Deployments: map[string]string{"chat": "gpt-4o-mini"}})
	}
	tr, err := failover.New(failover.Config{Regions: regions})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.Close)
	hc := option.WithHTTPClient(&http.Client{Transport: tr})
	if v1 {
		return openai.NewClient(option.WithBaseURL("https://lifeline.invalid/openai/v1/"), option.WithAPIKey("unused"), hc, option.WithMaxRetries(0)), s, tr
	}
	return openai.NewClient(azure.WithEndpoint("https://lifeline.invalid", "2024-10-21"), azure.WithAPIKey("unused"), hc, option.WithMaxRetries(0)), s, tr
}

func TestOpenAIGoStreaming(t *testing.T) {
	for _, v1 := range []bool{false, true} {
		name := "classic"
		if v1 {
			name = "v1"
		}
		t.Run(name, func(t *testing.T) {
			client, s, _ := openaiClient(t, v1)
			params := openai.ChatCompletionNewParams{Model: "chat", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Count to five")}}

			// Primary down: the stream comes from westus, complete.
			s.Fault("eastus", sim.Fault{Mode: sim.ModeDown})
			stream := client.Chat.Completions.NewStreaming(context.Background(), params)
			var text strings.Builder
			for stream.Next() {
				if c := stream.Current(); len(c.Choices) > 0 {
					text.WriteString(c.Choices[0].Delta.Content)
				}
			}
			if err := stream.Err(); err != nil || text.Len() == 0 {
				t.Fatalf("stream after failover: err %v text %q", err, text.String())
			}

			// A stream cut after the first events is an error the SDK reports, never a clean end.
			s.Fault("eastus", sim.Fault{Mode: sim.ModeClear})
			s.Fault("westus", sim.Fault{Mode: sim.ModeCutStream, AfterEvents: 3})
			s.Fault("eastus", sim.Fault{Mode: sim.ModeCutStream, AfterEvents: 3})
			stream = client.Chat.Completions.NewStreaming(context.Background(), params)
			n := 0
			for stream.Next() {
				n++
			}
			var se *failover.StreamError
			if err := stream.Err(); !errors.As(err, &se) {
				t.Fatalf("cut stream: %d chunks then err %v, want a *failover.StreamError", n, err)
			}
		})
	}
}
