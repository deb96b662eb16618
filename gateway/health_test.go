package gateway_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/lifeline-sre/lifeline/config"
	"github.com/lifeline-sre/lifeline/gateway"
	"github.com/lifeline-sre/lifeline/sim"
)

// TestDegradedAndCoolingMetrics: a slow region is exported as degraded (slow) in /metrics and /admin/regions, and
// a throttled one as cooling for the name.
func TestDegradedAndCoolingMetrics(t *testing.T) {
	h := startHarness(t, harnessOpts{mutate: func(c *config.Config) {
		c.Policy.Breaker.AbandonedAfter = config.Duration(80 * time.Millisecond)
	}})
	h.fault("eastus", sim.Fault{Mode: sim.ModeSlow, Latency: sim.Duration(150 * time.Millisecond)})
	resp, out := h.do("POST", "/openai/v1/chat/completions", chatBody)
	wantStatus(t, resp, out, 200)
	m := h.metrics()
	for _, want := range []string{
		`lifeline_region_degraded{reason="slow",region="eastus"} 1`,
		`lifeline_region_degraded{reason="errors",region="eastus"} 0`,
		`lifeline_region_degraded{reason="slow",region="westus"} 0`,
		`lifeline_deployment_cooling{name="gpt-4o",region="eastus"} 0`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	_, body := h.admin("GET", "/admin/regions", adminKey)
	var v gateway.RegionsView
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatal(err)
	}
	if r := v.Regions[0]; !r.Degraded || len(r.DegradedReasons) != 1 || r.DegradedReasons[0] != "slow" || v.Regions[1].Degraded {
		t.Errorf("/admin/regions: %+v", v.Regions)
	}

	h.fault("eastus", sim.Fault{Mode: sim.ModeThrottle, RetryAfter: sim.Duration(30 * time.Second)})
	resp, out = h.do("POST", "/openai/v1/chat/completions", chatBody)
	wantStatus(t, resp, out, 200)
	if m := h.metrics(); !strings.Contains(m, `lifeline_deployment_cooling{name="gpt-4o",region="eastus"} 1`) ||
		!strings.Contains(m, `lifeline_deployment_cooling{name="gpt-4o-mini",region="eastus"} 0`) {
		t.Errorf("after a 429 /metrics shows:\n%s", grep(m, "lifeline_deployment_cooling"))
	}
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
