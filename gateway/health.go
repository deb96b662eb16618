package gateway

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lifeline-sre/lifeline/config"
	"github.com/lifeline-sre/lifeline/failover"
)

// Reasons a region is degraded (docs/monitoring.md, "Degraded").
const (
	DegradedErrors = "errors" // failed share of attempts at least half of breaker.failure_rate
	DegradedSlow   = "slow"   // usual time to headers at least breaker.abandoned_after
)

var degradedReasonList = [...]string{DegradedErrors, DegradedSlow}

// degraded says why a region that still takes traffic is on its way out, judged from the figures the engine uses
// to take a region out, at half the distance to the trip. Only a healthy region can be degraded.
func degraded(r failover.RegionStatus, b config.Breaker) []string {
	if r.State != failover.Healthy {
		return nil
	}
	var why []string
	minAttempts := max(2, b.MinRequests/4)
	if b.FailureRate > 0 && b.FailureRate <= 1 && r.Attempts >= minAttempts && r.ErrorRate >= b.FailureRate/2 {
		why = append(why, DegradedErrors)
	}
	if slow := b.AbandonedAfter.D(); slow > 0 && r.Latency >= slow {
		why = append(why, DegradedSlow)
	}
	return why
}

// regionCollector exports, at each scrape, what is computed from the engine's snapshot rather than counted:
// lifeline_region_degraded{region,reason} and lifeline_deployment_cooling{name,region}.
type regionCollector struct{ g *Gateway }

var (
	degradedDesc = prometheus.NewDesc("lifeline_region_degraded",
		"1 while a healthy region is degraded for the reason (errors, slow); see docs/monitoring.md.", []string{"region", "reason"}, nil)
	coolingDesc = prometheus.NewDesc("lifeline_deployment_cooling",
		"1 while the client-visible name cools down in the region after a 429.", []string{"name", "region"}, nil)
)

func (c regionCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- degradedDesc
	ch <- coolingDesc
}

func (c regionCollector) Collect(ch chan<- prometheus.Metric) {
	b := c.g.state.Load().cfg.Policy.Breaker
	for _, r := range c.g.transport.Regions() {
		why := degraded(r, b)
		for _, reason := range degradedReasonList {
			v := 0.0
			for _, w := range why {
				if w == reason {
					v = 1
				}
			}
			ch <- prometheus.MustNewConstMetric(degradedDesc, prometheus.GaugeValue, v, r.Name, reason)
		}
		for _, d := range r.Deployments {
			v := 0.0
			if !d.CoolingUntil.IsZero() {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(coolingDesc, prometheus.GaugeValue, v, d.Name, r.Name)
		}
	}
}
