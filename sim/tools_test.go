package sim_test

import (
	"context"
	"testing"

	"github.com/lifeline-sre/lifeline/sim"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/azure"
	"github.com/openai/openai-go/v3/shared"
)

// A function-calling loop through openai-go: tool call (streamed and not), then a text answer to the tool result.
func TestOpenAIGoToolCalls(t *testing.T) {
	s := start(t, sim.Config{Regions: sim.DefaultRegions("eastus")})
	client := openai.NewClient(azure.WithEndpoint(s.Region("eastus").URL(), "2024-10-21"), azure.WithAPIKey(key), azure.WithUnsafeAllowHTTP())
	ctx := context.Background()
	params := openai.ChatCompletionNewParams{
		Model:      "gpt-4o",
		Messages:   []openai.ChatCompletionMessageParamUnion{openai.UserMessage("What is the weather?")},
		Tools:      []openai.ChatCompletionToolUnionParam{openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{Name: "get_weather"})},
		ToolChoice: openai.ChatCompletionToolChoiceOptionUnionParam{OfAuto: openai.String("required")},
	}
	cc, err := client.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	msg := cc.Choices[0].Message
	if cc.Choices[0].FinishReason != "tool_calls" || len(msg.ToolCalls) != 1 || msg.ToolCalls[0].Function.Name != "get_weather" || msg.ToolCalls[0].Function.Arguments != `{"call":0,"query":"What is the weather?"}` || msg.ToolCalls[0].ID == "" {
		t.Fatalf("tool call: %+v", cc.Choices[0])
	}
	stream := client.Chat.Completions.NewStreaming(ctx, params)
	var acc openai.ChatCompletionAccumulator
	for stream.Next() {
		acc.AddChunk(stream.Current())
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if len(acc.Choices) != 1 || acc.Choices[0].FinishReason != "tool_calls" || len(acc.Choices[0].Message.ToolCalls) != 1 || acc.Choices[0].Message.ToolCalls[0].Function.Name != "get_weather" {
		t.Fatalf("streamed tool call: %+v", acc.Choices)
	}
	params.Messages = append(params.Messages, msg.ToParam(), openai.ToolMessage("sunny", msg.ToolCalls[0].ID))
	params.ToolChoice = openai.ChatCompletionToolChoiceOptionUnionParam{OfAuto: openai.String("auto")}
	final, err := client.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if final.Choices[0].FinishReason != "stop" || final.Choices[0].Message.Content == "" {
		t.Fatalf("answer to the tool result: %+v", final.Choices[0])
	}
}

func TestOpenAIGoSeveralChoices(t *testing.T) {
	s := start(t, sim.Config{Regions: sim.DefaultRegions("eastus")})
	client := openai.NewClient(azure.WithEndpoint(s.Region("eastus").URL(), "2024-10-21"), azure.WithAPIKey(key), azure.WithUnsafeAllowHTTP())
	params := openai.ChatCompletionNewParams{Model: "gpt-4o", N: openai.Int(3), Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("sim:tokens=4")},
		StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}}
	cc, err := client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{Model: "gpt-4o", N: openai.Int(3), Messages: params.Messages})
	if err != nil {
		t.Fatal(err)
	}
	if len(cc.Choices) != 3 || cc.Choices[2].Index != 2 || cc.Usage.CompletionTokens != 12 {
		t.Fatalf("n=3: %d choices, usage %+v", len(cc.Choices), cc.Usage)
	}
	stream := client.Chat.Completions.NewStreaming(context.Background(), params)
	var acc openai.ChatCompletionAccumulator
	for stream.Next() {
		acc.AddChunk(stream.Current())
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if len(acc.Choices) != 3 || acc.Choices[1].Message.Content != cc.Choices[1].Message.Content || acc.Choices[2].FinishReason != "stop" || acc.Usage.CompletionTokens != 12 {
		t.Fatalf("streamed n=3: %+v usage %+v", acc.Choices, acc.Usage)
	}
}
