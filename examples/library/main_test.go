package main

import (
	"context"
	"testing"
	"time"

	"github.com/lifeline-sre/lifeline/failover"
	"github.com/lifeline-sre/lifeline/sim"
)

// TestAsk runs the example against two simulated regions with the primary down: the answer must come from the
// secondary, with no error.
func TestAsk(t *testing.T) {
	s, err := sim.Start(sim.Config{Regions: sim.DefaultRegions("eastus", "westus"), APIKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Fault("eastus", sim.Fault{Mode: sim.ModeDown}); err != nil {
		t.Fatal(err)
	}
	cfg := failover.Config{Regions: []failover.Region{
		{Name: "eastus", Endpoint: s.Region("eastus").URL(), APIKey: "k", Priority: 1, Deployments: map[string]string{"gpt-4o": "gpt-4o"}},
		{Name: "westus", Endpoint: s.Region("westus").URL(), APIKey: "k", Priority: 2, Deployments: map[string]string{"gpt-4o": "gpt-4o"}},
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	answer, region, err := ask(ctx, cfg, "gpt-4o", "hello")
	if err != nil {
		t.Fatal(err)
	}
	if region != "westus" || answer == "" {
		t.Fatalf("answer %q from %q, want a non-empty answer from westus", answer, region)
	}
}
