package gateway_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"

	"github.com/lifeline-sre/lifeline/config"
	"github.com/lifeline-sre/lifeline/gateway"
	"github.com/lifeline-sre/lifeline/sim"
)

// A gateway in front of two simulated regions; the primary goes down and the client does not notice.
func Example() {
	regions, _ := sim.Start(sim.Config{Regions: sim.DefaultRegions("eastus", "westus"), APIKey: "region-key"})
	defer regions.Close()

	cfg, err := config.Parse([]byte(`
clients: [{name: my-app, key: "${CLIENT_KEY}"}]
regions:
  - {name: eastus, endpoint: "`+regions.Region("eastus").URL()+`", api_key: region-key, priority: 1, deployments: {gpt-4o: gpt-4o}}
  - {name: westus, endpoint: "`+regions.Region("westus").URL()+`", api_key: region-key, priority: 2, deployments: {gpt-4o: gpt-4o}}
`), func(name string) (string, bool) { return "my-client-key", name == "CLIENT_KEY" })
	if err != nil {
		fmt.Println(err)
		return
	}
	gw, _ := gateway.New(cfg, gateway.Options{Logger: slog.New(slog.DiscardHandler)})
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- gw.Serve(ctx, ln, nil) }()

	ask := func() {
		req, _ := http.NewRequest("POST", "http://"+ln.Addr().String()+"/v1/chat/completions",
			strings.NewReader(`{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`))
		req.Header.Set("Authorization", "Bearer my-client-key")
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		fmt.Println(resp.StatusCode, resp.Header.Get("x-lifeline-region"))
	}
	ask()
	regions.Fault("eastus", sim.Fault{Mode: sim.ModeDown})
	ask()
	stop()
	<-done
	// Output:
	// 200 eastus
	// 200 westus
}
