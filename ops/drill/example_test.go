package drill_test

import (
	"fmt"
	"time"

	"github.com/lifeline-sre/lifeline/ops/drill"
)

// Analyze turns the samples of a drill into its verdict: eastus was out from 1s to 2s, one client request
// failed while the gateway noticed, and traffic was all back in eastus 220 ms after it was restored.
func ExampleAnalyze() {
	ms := time.Millisecond
	var samples []drill.Sample
	for at := time.Duration(0); at < 3000*ms; at += 100 * ms {
		s := drill.Sample{Start: at, Latency: 20 * ms, Region: "eastus", Status: 200}
		switch {
		case at == 1000*ms:
			s.Region, s.Status, s.Err = "", 503, "503 Service Unavailable"
		case at > 1000*ms && at < 2200*ms:
			s.Region = "westus"
		}
		samples = append(samples, s)
	}
	a := drill.Analyze(samples, "eastus", drill.Timing{Disable: 1000 * ms, Enable: 2000 * ms, End: 3000 * ms}, 0)
	fmt.Println("passed:", a.Passed, "errors:", a.Errors)
	fmt.Printf("failover %.0f ms, failback %.0f ms\n", *a.FailoverMs, *a.FailbackMs)
	for _, p := range a.Phases {
		fmt.Println(p.Name, p.Requests, p.Errors, p.ByRegion)
	}
	// Output:
	// passed: false errors: 1
	// failover 120 ms, failback 220 ms
	// before 10 0 map[eastus:10]
	// during 10 1 map[westus:9]
	// failback 3 0 map[eastus:1 westus:2]
	// after 7 0 map[eastus:7]
}
