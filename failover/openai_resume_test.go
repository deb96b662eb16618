package failover_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/azure"
	"github.com/openai/openai-go/v3/option"

	"github.com/lifeline-sre/lifeline/failover"
	"github.com/lifeline-sre/lifeline/sim"
)

// TestOpenAIGoResume: openai-go's stream and its accumulator see one complete answer across a resume,
// on the default policy, with the SDK's retries off: no error, the same text as an answer nobody broke.
func TestOpenAIGoResume(t *testing.T) {
	s, err := sim.Start(sim.Config{Regions: sim.DefaultRegions("eastus", "westus"), APIKey: "k", Answers: sim.AnswersDeterministic})
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
	client := openai.NewClient(azure.WithEndpoint("https://lifeline.invalid", "2024-10-21"), azure.WithAPIKey("unused"),
		option.WithHTTPClient(&http.Client{Transport: tr}), option.WithMaxRetries(0))
	params := openai.ChatCompletionNewParams{Model: "chat", Messages: []openai.ChatCompletionMessageParamUnion{
		openai.UserMessage("Tell me about rivers")}, StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}}
	whole, err := client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{Model: "chat", Messages: params.Messages})
	if err != nil {
		t.Fatal(err)
	}
	s.Fault("eastus", sim.Fault{Mode: sim.ModeCutStream, AfterEvents: 6})
	stream := client.Chat.Completions.NewStreaming(context.Background(), params)
	var acc openai.ChatCompletionAccumulator
	ids := map[string]bool{}
	for stream.Next() {
		c := stream.Current()
		acc.AddChunk(c)
		if c.ID != "" { // Azure's first chunk (the prompt's filter results) has none
			ids[c.ID] = true
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatalf("resumed stream: %v", err)
	}
	if got, want := acc.Choices[0].Message.Content, whole.Choices[0].Message.Content; got != want {
		t.Errorf("accumulated %q, want %q", got, want)
	}
	if acc.Choices[0].FinishReason != "stop" || acc.Usage.TotalTokens == 0 || len(ids) != 1 {
		t.Errorf("finish %q usage %+v ids %v", acc.Choices[0].FinishReason, acc.Usage, ids)
	}
	if n := s.Region("eastus").Stats().StreamsCut; n != 1 {
		t.Errorf("eastus cut %d streams, want 1 (the test must go through a resume)", n)
	}
}
