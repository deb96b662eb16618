package gateway_test

import (
	"testing"
	"time"

	"github.com/lifeline-sre/lifeline/internal/nodetest"
	"github.com/lifeline-sre/lifeline/sim"
)

// TestNodeOpenAIClient runs e2e/node/gateway.test.mjs (npm openai: AzureOpenAI and OpenAI with a base URL, streaming
// and not) against the gateway in front of simulated regions, once per fault of the primary region.
func TestNodeOpenAIClient(t *testing.T) {
	scenarios := []struct {
		name     string
		fault    *sim.Fault
		scenario string
		region   string
	}{
		{"healthy", nil, "ok", "eastus"},
		{"primary-down", &sim.Fault{Mode: sim.ModeDown}, "ok", "westus"},
		{"primary-blackholed", &sim.Fault{Mode: sim.ModeBlackhole}, "ok", "westus"},
		{"primary-throttled", &sim.Fault{Mode: sim.ModeThrottle, RetryAfter: sim.Duration(30 * time.Second)}, "ok", "westus"},
		{"stream-cut-midway", &sim.Fault{Mode: sim.ModeCutStream, AfterEvents: 3}, "cut", "eastus"},
	}
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			h := startHarness(t, harnessOpts{})
			if s.fault != nil {
				h.fault("eastus", *s.fault)
			}
			nodetest.Run(t, "gateway.test.mjs", map[string]string{
				"GATEWAY_URL": h.url, "CLIENT_KEY": clientKey, "SCENARIO": s.scenario, "EXPECT_REGION": s.region,
			})
		})
	}
}
