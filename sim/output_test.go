package sim_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/lifeline-sre/lifeline/sim"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/azure"
	"github.com/openai/openai-go/v3/shared"
)

// The shapes issue 12 names, read by openai-go both ways: what its accumulator makes of the stream is what the
// non-streaming answer says. (failover/reassemble_test.go compares the two forms byte for byte.)
func TestOpenAIGoAnswersStreamedAndNot(t *testing.T) {
	deps := append(sim.DefaultDeployments(), sim.Deployment{Name: "o4-mini", Model: "o4-mini", Version: "2025-04-16"})
	s := start(t, sim.Config{Regions: []sim.RegionConfig{{Name: "eastus", Deployments: deps}}})
	client := openai.NewClient(azure.WithEndpoint(s.Region("eastus").URL(), "2025-04-01-preview"), azure.WithAPIKey(key), azure.WithUnsafeAllowHTTP())
	tools := []openai.ChatCompletionToolUnionParam{
		openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{Name: "get_weather"}),
		openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{Name: "get_time"}),
	}
	msgs := func(s string) []openai.ChatCompletionMessageParamUnion {
		return []openai.ChatCompletionMessageParamUnion{openai.UserMessage(s)}
	}
	cases := map[string]openai.ChatCompletionNewParams{
		"three choices":  {Model: "gpt-4o", N: openai.Int(3), Messages: msgs("Tell me")},
		"parallel calls": {Model: "gpt-4o", Messages: msgs("sim:tool_calls=3 in Zürich"), Tools: tools},
		"refusal":        {Model: "gpt-4o", Messages: msgs("sim:refusal")},
		"logprobs":       {Model: "gpt-4o", Messages: msgs("sim:tokens=4"), Logprobs: openai.Bool(true), TopLogprobs: openai.Int(2)},
		"reasoning":      {Model: "o4-mini", Messages: msgs("Think")},
		"flex tier":      {Model: "gpt-4o", Messages: msgs("hi"), ServiceTier: openai.ChatCompletionNewParamsServiceTierFlex},
	}
	ctx := context.Background()
	for name, p := range cases {
		t.Run(name, func(t *testing.T) {
			cc, err := client.Chat.Completions.New(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			p.StreamOptions.IncludeUsage = openai.Bool(true)
			st := client.Chat.Completions.NewStreaming(ctx, p)
			var acc openai.ChatCompletionAccumulator
			for st.Next() {
				acc.AddChunk(st.Current())
			}
			if err := st.Err(); err != nil {
				t.Fatal(err)
			}
			if len(acc.Choices) != len(cc.Choices) || acc.Usage.CompletionTokens != cc.Usage.CompletionTokens ||
				acc.Usage.CompletionTokensDetails.ReasoningTokens != cc.Usage.CompletionTokensDetails.ReasoningTokens ||
				acc.ServiceTier != cc.ServiceTier || acc.SystemFingerprint != cc.SystemFingerprint {
				t.Fatalf("streamed %+v\nnot streamed %+v", acc.ChatCompletion, cc)
			}
			for i, c := range cc.Choices {
				a := acc.Choices[i]
				if a.Message.Content != c.Message.Content || a.Message.Refusal != c.Message.Refusal || a.FinishReason != c.FinishReason ||
					len(a.Message.ToolCalls) != len(c.Message.ToolCalls) {
					t.Errorf("choice %d: streamed %+v, not streamed %+v", i, a, c)
				}
				for j, call := range c.Message.ToolCalls {
					if a.Message.ToolCalls[j].Function.Arguments != call.Function.Arguments || a.Message.ToolCalls[j].Function.Name != call.Function.Name {
						t.Errorf("call %d: %+v vs %+v", j, a.Message.ToolCalls[j], call)
					}
				}
			}
			switch name {
			case "three choices":
				if cc.Choices[0].Message.Content == cc.Choices[2].Message.Content {
					t.Errorf("choices say the same: %q", cc.Choices[0].Message.Content)
				}
			case "parallel calls":
				if n := len(cc.Choices[0].Message.ToolCalls); n != 3 || cc.Choices[0].Message.ToolCalls[1].Function.Name != "get_time" {
					t.Errorf("%d calls: %+v", n, cc.Choices[0].Message.ToolCalls)
				}
			case "refusal":
				if cc.Choices[0].Message.Refusal == "" || cc.Choices[0].Message.Content != "" {
					t.Errorf("refusal: %+v", cc.Choices[0].Message)
				}
			case "logprobs":
				lp := cc.Choices[0].Logprobs.Content
				if len(lp) != 4 || len(lp[0].TopLogprobs) != 2 || lp[0].Logprob > 0 {
					t.Errorf("logprobs: %+v", lp)
				}
			case "reasoning":
				if cc.Usage.CompletionTokensDetails.ReasoningTokens == 0 {
					t.Errorf("usage: %+v", cc.Usage)
				}
			case "flex tier":
				if cc.ServiceTier != "flex" {
					t.Errorf("service tier %q", cc.ServiceTier)
				}
			}
		})
	}
}

// What cannot stream says so as Azure does: a model without streaming, and stream_options on an api-version
// that does not know it.
func TestStreamingRefusals(t *testing.T) {
	deps := append(sim.DefaultDeployments(), sim.Deployment{Name: "o1-preview", Model: "o1-preview", Version: "2024-09-12", NoStreaming: true})
	s := start(t, sim.Config{Regions: []sim.RegionConfig{{Name: "eastus", Deployments: deps}}})
	ctx := context.Background()
	p := openai.ChatCompletionNewParams{Model: "o1-preview", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}}
	client := openai.NewClient(azure.WithEndpoint(s.Region("eastus").URL(), "2024-10-21"), azure.WithAPIKey(key), azure.WithUnsafeAllowHTTP())
	if _, err := client.Chat.Completions.New(ctx, p); err != nil {
		t.Fatalf("not streamed: %v", err)
	}
	st := client.Chat.Completions.NewStreaming(ctx, p)
	for st.Next() {
	}
	var apiErr *openai.Error
	if err := st.Err(); !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || apiErr.Param != "stream" || apiErr.Code != "unsupported_value" {
		t.Fatalf("streamed on a model that cannot stream: %v", err)
	}
	old := openai.NewClient(azure.WithEndpoint(s.Region("eastus").URL(), "2024-06-01"), azure.WithAPIKey(key), azure.WithUnsafeAllowHTTP())
	p.Model = "gpt-4o"
	st = old.Chat.Completions.NewStreaming(ctx, p) // no stream_options: fine on any version
	for st.Next() {
	}
	if err := st.Err(); err != nil {
		t.Fatalf("stream without stream_options on 2024-06-01: %v", err)
	}
	p.StreamOptions.IncludeUsage = openai.Bool(true)
	st = old.Chat.Completions.NewStreaming(ctx, p)
	for st.Next() {
	}
	if err := st.Err(); !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || !strings.Contains(apiErr.Message, "Unrecognized request argument supplied: stream_options") {
		t.Fatalf("stream_options on 2024-06-01: %v", err)
	}
}

// A prefill deployment continues the assistant message it is given; another deployment answers afresh.
func TestPrefill(t *testing.T) {
	deps := append(sim.DefaultDeployments(), sim.Deployment{Name: "prefill", Model: "gpt-4o", Version: "2024-11-20", Prefill: true})
	s := start(t, sim.Config{Answers: sim.AnswersDeterministic, Regions: []sim.RegionConfig{{Name: "eastus", Deployments: deps}}})
	client := openai.NewClient(azure.WithEndpoint(s.Region("eastus").URL(), "2024-10-21"), azure.WithAPIKey(key), azure.WithUnsafeAllowHTTP())
	ctx := context.Background()
	ask := func(dep string, m ...openai.ChatCompletionMessageParamUnion) string {
		cc, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: dep, Messages: m})
		if err != nil {
			t.Fatal(err)
		}
		return cc.Choices[0].Message.Content
	}
	whole := ask("prefill", openai.UserMessage("Tell me about rivers"))
	head := whole[:strings.Index(whole, " ")+1] + strings.Fields(whole)[1] + " "
	rest := ask("prefill", openai.UserMessage("Tell me about rivers"), openai.AssistantMessage(head))
	if head+rest != whole {
		t.Fatalf("prefill %q continued with %q, want the rest of %q", head, rest, whole)
	}
	if other := ask("gpt-4o", openai.UserMessage("Tell me about rivers"), openai.AssistantMessage(head)); head+other == whole {
		t.Errorf("a deployment without prefill continued the message: %q", other)
	}
}
