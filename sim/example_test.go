package sim_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/lifeline-sre/lifeline/sim"
)

// Start two regions, call one, take it down, and bring it back on the same port.
func Example() {
	s, err := sim.Start(sim.Config{APIKey: "k", Regions: sim.DefaultRegions("eastus", "westus")})
	if err != nil {
		panic(err)
	}
	defer s.Close()
	chat := func(region string) string {
		req, _ := http.NewRequest("POST", s.Region(region).URL()+"/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21",
			strings.NewReader(`{"messages":[{"role":"user","content":"Hi"}]}`))
		req.Header.Set("api-key", "k")
		req.Header.Set("Content-Type", "application/json")
		resp, err := s.Client().Do(req)
		if err != nil {
			return "connection error"
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		return fmt.Sprintf("%d from %s", resp.StatusCode, resp.Header.Get("x-ms-region"))
	}
	fmt.Println(chat("eastus"))
	s.Fault("eastus", sim.Fault{Mode: sim.ModeDown})
	fmt.Println(chat("eastus"))
	fmt.Println(chat("westus"))
	s.Fault("eastus", sim.Fault{Mode: sim.ModeClear})
	fmt.Println(chat("eastus"))
	// Output:
	// 200 from East US
	// connection error
	// 200 from West US
	// 200 from East US
}
