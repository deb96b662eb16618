// Command library uses the failover package in process with the official openai-go client: two Azure OpenAI
// resources in two regions, and the transport picks the region per request. Set the four variables below and run
// `go run ./examples/library`.
package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/lifeline-sre/lifeline/failover"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/azure"
	"github.com/openai/openai-go/v3/option"
)

func main() {
	cfg := failover.Config{Regions: []failover.Region{
		{Name: "eastus", Endpoint: os.Getenv("AOAI_EASTUS_ENDPOINT"), APIKey: os.Getenv("AOAI_EASTUS_KEY"),
			Priority: 1, Deployments: map[string]string{"gpt-4o": "gpt-4o"}},
		{Name: "westus", Endpoint: os.Getenv("AOAI_WESTUS_ENDPOINT"), APIKey: os.Getenv("AOAI_WESTUS_KEY"),
			Priority: 2, Deployments: map[string]string{"gpt-4o": "gpt-4o"}},
	}}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	answer, region, err := ask(ctx, cfg, "gpt-4o", "Say hello in five words.")
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
	fmt.Printf("%s (answered by %s)\n", answer, region)
}

// ask sends one chat completion through a failover transport built from cfg and returns the answer and the region
// that gave it.
func ask(ctx context.Context, cfg failover.Config, name, prompt string) (answer, region string, err error) {
	t, err := failover.New(cfg)
	if err != nil {
		return "", "", err
	}
	defer t.Close()
	client := openai.NewClient(
		azure.WithEndpoint("https://lifeline.invalid", "2024-10-21"), // any host: the transport picks the region
		azure.WithAPIKey("unused"),                                   // replaced per region
		option.WithHTTPClient(&http.Client{Transport: t}),
	)
	var resp *http.Response
	res, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model:    openai.ChatModel(name),
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(prompt)},
	}, option.WithResponseInto(&resp))
	if err != nil {
		return "", "", err
	}
	return res.Choices[0].Message.Content, resp.Header.Get(failover.HeaderRegion), nil
}
