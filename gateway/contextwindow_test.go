package gateway_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"

	"github.com/lifeline-sre/lifeline/config"
	"github.com/lifeline-sre/lifeline/sim"
)

// A prompt longer than a deployment's context window: the simulated regions answer Azure's 400
// context_length_exceeded for gpt-4o, and with `fallbacks: {gpt-4o: [gpt-4o-128k]}` openai-go (retries off) gets
// the answer of the larger model, streamed or not, chat or Responses, with x-lifeline-name saying which name
// served. Without the fallback the client gets the region's 400 as it is.
func TestContextWindowFallbackWithSimulator(t *testing.T) {
	long := "sim:tokens=3 " + strings.Repeat("a long prompt ", 100) // about 350 tokens
	deps := append(sim.DefaultDeployments(),
		sim.Deployment{Name: "gpt-4o-128k", Model: "gpt-4o", Version: "2024-11-20"})
	deps[0].ContextWindow = 200 // gpt-4o
	simCfg := func(c *sim.Config) {
		for i := range c.Regions {
			c.Regions[i].Deployments = deps
		}
	}
	h := startHarness(t, harnessOpts{simCfg: simCfg, mutate: func(c *config.Config) {
		for i := range c.Regions {
			c.Regions[i].Deployments["gpt-4o-128k"] = "gpt-4o-128k"
		}
		c.Fallbacks = map[string][]string{"gpt-4o": {"gpt-4o-128k"}}
	}})
	ctx := context.Background()
	c := clientModes[0].client(h)
	var raw *http.Response
	cc, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "gpt-4o",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(long)}}, option.WithResponseInto(&raw))
	if err != nil || cc.Choices[0].Message.Content == "" {
		t.Fatalf("chat: %v", err)
	}
	if got := raw.Header.Get("x-lifeline-name"); got != "gpt-4o-128k" {
		t.Errorf("x-lifeline-name %q, want gpt-4o-128k", got)
	}
	// The short prompt stays on gpt-4o.
	if _, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "gpt-4o",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}}, option.WithResponseInto(&raw)); err != nil || raw.Header.Get("x-lifeline-name") != "" {
		t.Errorf("short prompt: %v, x-lifeline-name %q", err, raw.Header.Get("x-lifeline-name"))
	}
	stream := c.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{Model: "gpt-4o",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(long)}})
	var text strings.Builder
	for stream.Next() {
		if ch := stream.Current(); len(ch.Choices) > 0 {
			text.WriteString(ch.Choices[0].Delta.Content)
		}
	}
	if stream.Err() != nil || text.Len() == 0 {
		t.Errorf("streamed chat: %v, text %q", stream.Err(), text.String())
	}
	v1 := clientModes[1].client(h)
	resp, err := v1.Responses.New(ctx, responses.ResponseNewParams{Model: "gpt-4o", Input: responses.ResponseNewParamsInputUnion{OfString: openai.String(long)}})
	if err != nil || resp.OutputText() == "" {
		t.Errorf("responses: %v", err)
	}

	// Without fallbacks: the region's 400, as it is.
	h2 := startHarness(t, harnessOpts{simCfg: simCfg})
	c2 := clientModes[0].client(h2)
	_, err = c2.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "gpt-4o",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(long)}})
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || apiErr.Code != "context_length_exceeded" || !strings.Contains(apiErr.Message, "maximum context length is 200 tokens") {
		t.Errorf("without fallbacks: %v", err)
	}
}
