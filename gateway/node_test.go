package gateway_test

import (
	"testing"
	"time"

	"github.com/lifeline-sre/lifeline/config"
	"github.com/lifeline-sre/lifeline/internal/nodetest"
	"github.com/lifeline-sre/lifeline/sim"
)

// TestNodeOpenAIClient runs e2e/node/gateway.test.mjs (npm openai: AzureOpenAI and OpenAI with a base URL, streaming
// and not) against the gateway in front of simulated regions, once per fault of the primary region. In
// stream-cut-midway every region cuts its streams, so that no resume can complete them: the client must see the
// error event.
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
				if s.scenario == "cut" {
					h.fault("westus", *s.fault)
				}
			}
			nodetest.Run(t, "gateway.test.mjs", map[string]string{
				"GATEWAY_URL": h.url, "CLIENT_KEY": clientKey, "SCENARIO": s.scenario, "EXPECT_REGION": s.region,
			})
		})
	}
}

// TestNodeStoredAndRealtime runs e2e/node/stored.test.mjs (npm openai: stored responses, files and batches, and the
// Realtime WebSocket client) against the gateway on HTTPS, healthy and with the primary down before connect.
func TestNodeStoredAndRealtime(t *testing.T) {
	for _, scenario := range []string{"healthy", "primary-down"} {
		t.Run(scenario, func(t *testing.T) {
			t.Parallel()
			certFile, keyFile, _ := selfSigned(t)
			h := startHarness(t, harnessOpts{
				simCfg: func(c *sim.Config) {
					c.ControlAddr = "127.0.0.1:0"
					for i := range c.Regions {
						c.Regions[i].Deployments = append(c.Regions[i].Deployments, sim.Deployment{Name: "rt", Model: "gpt-4o-realtime-preview", Version: "2024-12-17"})
					}
				},
				mutate: func(c *config.Config) {
					c.TLS = &config.TLS{CertFile: certFile, KeyFile: keyFile}
					for i := range c.Regions {
						c.Regions[i].Deployments["realtime"] = "rt"
					}
				},
			})
			if scenario == "primary-down" {
				h.fault("eastus", sim.Fault{Mode: sim.ModeDown})
			}
			nodetest.Run(t, "stored.test.mjs", map[string]string{
				"GATEWAY_URL": h.url, "CLIENT_KEY": clientKey, "ADMIN_URL": h.adminURL, "ADMIN_KEY": adminKey,
				"CONTROL_URL": h.sim.ControlURL(), "SCENARIO": scenario, "NODE_EXTRA_CA_CERTS": certFile,
			})
		})
	}
}
