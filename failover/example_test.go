package failover_test

import (
	"context"
	"fmt"
	"log"
	"net/http"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/azure"
	"github.com/openai/openai-go/v3/option"

	"github.com/lifeline-sre/lifeline/failover"
	"github.com/lifeline-sre/lifeline/sim"
)

// The transport under the official openai-go client: the primary region is down, and the
// call is answered by the secondary without the application noticing.
func Example() {
	// Two simulated Azure OpenAI regions; eastus is down.
	regions, err := sim.Start(sim.Config{Regions: sim.DefaultRegions("eastus", "westus"), APIKey: "region-key"})
	if err != nil {
		log.Fatal(err)
	}
	defer regions.Close()
	regions.Fault("eastus", sim.Fault{Mode: sim.ModeDown})

	t, err := failover.New(failover.Config{Regions: []failover.Region{
		{Name: "eastus", Endpoint: regions.Region("eastus").URL(), APIKey: "region-key", Priority: 1,
			Deployments: map[string]string{"gpt-4o": "gpt-4o"}},
		{Name: "westus", Endpoint: regions.Region("westus").URL(), APIKey: "region-key", Priority: 2,
			Deployments: map[string]string{"gpt-4o": "gpt-4o"}},
	}})
	if err != nil {
		log.Fatal(err)
	}
	defer t.Close()

	client := openai.NewClient(
		azure.WithEndpoint("https://lifeline.invalid", "2024-10-21"), // any host: the transport picks the region
		azure.WithAPIKey("unused"),                                   // replaced per region
		option.WithHTTPClient(&http.Client{Transport: t}),
	)
	var resp *http.Response
	completion, err := client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model:    "gpt-4o",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say hello")},
	}, option.WithResponseInto(&resp))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("answered by", resp.Header.Get("x-lifeline-region"), "after", resp.Header.Get("x-lifeline-attempts"), "attempts")
	fmt.Println("got an answer:", len(completion.Choices) == 1 && completion.Choices[0].Message.Content != "")
	// Output:
	// answered by westus after 2 attempts
	// got an answer: true
}
