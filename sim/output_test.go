package sim_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
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

// A deployment with a context window answers Azure's 400 context_length_exceeded to a longer prompt (with the
// completion tokens asked for), in the words of each operation; a prompt that fits is answered.
func TestContextWindow(t *testing.T) {
	deps := []sim.Deployment{{Name: "small", Model: "gpt-4o", Version: "2024-11-20", ContextWindow: 100}}
	s := start(t, sim.Config{Regions: []sim.RegionConfig{{Name: "eastus", Deployments: deps}}})
	base := s.Region("eastus").URL()
	long := strings.Repeat("word ", 100) // 125 tokens
	post := func(path, body string) (int, []byte) {
		req, _ := http.NewRequest(http.MethodPost, base+path, strings.NewReader(body))
		req.Header.Set("api-key", key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	for _, c := range []struct{ name, path, body, param, msg string }{
		{"chat", "/openai/deployments/small/chat/completions?api-version=2024-10-21", `{"messages":[{"role":"user","content":"` + long + `"}]}`,
			"messages", "This model's maximum context length is 100 tokens. However, your messages resulted in 131 tokens. Please reduce the length of the messages."},
		{"chat with max_tokens", "/openai/deployments/small/chat/completions?api-version=2024-10-21", `{"max_tokens":90,"messages":[{"role":"user","content":"short prompt of some words here"}]}`,
			"messages", "However, you requested 104 tokens (14 in the messages, 90 in the completion). Please reduce the length of the messages or completion."},
		{"completions", "/openai/deployments/small/completions?api-version=2024-10-21", `{"prompt":"` + long + `"}`,
			"", "This model's maximum context length is 100 tokens, however you requested 141 tokens (125 in your prompt; 16 for the completion)."},
		{"responses", "/openai/v1/responses", `{"model":"small","input":"` + long + `"}`,
			"input", "Your input exceeds the context window of this model. Please adjust your input and try again."},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, b := post(c.path, c.body)
			var e struct {
				Error struct {
					Message, Type, Code string
					Param               *string
				}
			}
			json.Unmarshal(b, &e)
			param := ""
			if e.Error.Param != nil {
				param = *e.Error.Param
			}
			if status != 400 || e.Error.Code != "context_length_exceeded" || e.Error.Type != "invalid_request_error" || param != c.param || !strings.Contains(e.Error.Message, c.msg) {
				t.Fatalf("%d %+v", status, e.Error)
			}
		})
	}
	if status, b := post("/openai/deployments/small/chat/completions?api-version=2024-10-21", `{"messages":[{"role":"user","content":"hi"}]}`); status != 200 {
		t.Fatalf("a prompt that fits: %d %s", status, b)
	}
}
