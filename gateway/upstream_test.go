package gateway_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"
	"github.com/openai/openai-go/v3/shared"

	"github.com/lifeline-sre/lifeline/config"
	"github.com/lifeline-sre/lifeline/sim"
)

// Upstream streaming through the gateway, with openai-go (retries off) making ordinary non-streaming calls: a
// primary that breaks every stream mid-generation is invisible to the client, whatever the call asks for, and
// the answer is whole.
func TestOpenAIGoNonStreamingSurvivesBrokenStreams(t *testing.T) {
	h := startHarness(t, harnessOpts{mutate: func(c *config.Config) {
		c.Policy.Hedge.Delay = config.HedgeOff // the primary answers at once: hedging has nothing to do here
	}})
	h.fault("eastus", sim.Fault{Mode: sim.ModeCutStream, AfterEvents: 3})
	ctx := context.Background()
	for _, m := range clientModes {
		t.Run(m.name, func(t *testing.T) {
			c := m.client(h)
			var raw *http.Response
			cc, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
				Model: "gpt-4o", N: openai.Int(2), Logprobs: openai.Bool(true),
				Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("sim:tool_calls=2 weather")},
				Tools:    []openai.ChatCompletionToolUnionParam{openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{Name: "get_weather"})},
			}, option.WithResponseInto(&raw))
			if err != nil {
				t.Fatalf("the client saw an error: %v", err)
			}
			if r := raw.Header.Get("x-lifeline-region"); r != "westus" {
				t.Errorf("answered by %q, want westus", r)
			}
			if len(cc.Choices) != 2 || len(cc.Choices[1].Message.ToolCalls) != 2 || cc.Usage.TotalTokens == 0 || cc.Object != "chat.completion" {
				t.Errorf("answer: %+v", cc)
			}
			comp, err := c.Completions.New(ctx, openai.CompletionNewParams{Model: "gpt-4o", Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("sim:tokens=6")}})
			if err != nil || comp.Choices[0].Text == "" || comp.Usage.CompletionTokens != 6 {
				t.Errorf("completions: %+v %v", comp, err)
			}
		})
	}
	if st := h.sim.Region("eastus").Stats(); st.StreamsCut == 0 {
		t.Errorf("eastus cut no stream: %+v", st)
	}
	// Responses too, through the v1 surface.
	c := clientModes[1].client(h)
	resp, err := c.Responses.New(ctx, responses.ResponseNewParams{Model: "gpt-4o", Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("sim:tokens=5")}})
	if err != nil || resp.Status != "completed" || resp.OutputText() == "" {
		t.Errorf("responses: %+v %v", resp, err)
	}
	resp, err = c.Responses.New(ctx, responses.ResponseNewParams{
		Model: "gpt-4o", Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("sim:tool_calls=2 weather")},
		Tools: []responses.ToolUnionParam{{OfFunction: &responses.FunctionToolParam{Name: "get_weather", Parameters: map[string]any{"type": "object"}}}},
	})
	if err != nil || len(resp.Output) != 2 || resp.Output[1].Type != "function_call" || resp.Output[1].AsFunctionCall().Arguments == "" {
		t.Errorf("responses with function calls: %+v %v", resp, err)
	}
}
