package gateway

import (
	"fmt"
	"strings"
	"time"

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

// describeRegion is the state people see and, in words, why the region is in it.
func describeRegion(r failover.RegionStatus, why []string, b config.Breaker, now time.Time) (display, reason string) {
	switch r.State {
	case failover.Disabled:
		return "disabled", "disabled by hand (POST /admin/regions/" + r.Name + "/enable brings it back)"
	case failover.Open:
		switch r.StateReason {
		case failover.ReasonFailureRate:
			reason = fmt.Sprintf("opened: %.0f%% or more of its attempts failed within %s", 100*b.FailureRate, b.Window.D())
		case failover.ReasonProbeFailed:
			reason = "kept out: an active probe failed"
		case failover.ReasonShared:
			reason = "opened on another replica"
		case "":
			reason = "opened"
		default:
			reason = "opened after failed attempts; the last one: " + r.StateReason
		}
		return "open", reason
	case failover.HalfOpen:
		switch r.StateReason {
		case failover.ReasonProbeOK:
			return "half_open", "an active probe got an answer: the next request is the trial"
		default:
			return "half_open", "open_for passed: the next request is the trial that decides"
		}
	}
	if c := r.Credential; c != nil && c.State == failover.CredentialUnavailable {
		reason = "no valid Entra ID token: its requests fail over"
		if c.Problem != "" {
			reason += " (" + c.Problem + ")"
		}
		return "no_token", reason
	}
	if cooling, until := throttled(r.Deployments); cooling {
		return "throttled", "every deployment answered 429 and cools down (until " + until.UTC().Format("15:04:05") + " UTC)"
	}
	if len(why) > 0 {
		var parts []string
		for _, w := range why {
			switch w {
			case DegradedErrors:
				parts = append(parts, fmt.Sprintf("%.0f%% of its last %d attempts failed", 100*r.ErrorRate, r.Attempts))
			case DegradedSlow:
				parts = append(parts, fmt.Sprintf("its response headers take %s on average (abandoned_after %s)",
					r.Latency.Round(10*time.Millisecond), b.AbandonedAfter.D()))
			}
		}
		return "degraded", "degraded: " + strings.Join(parts, "; ")
	}
	switch r.StateReason {
	case failover.ReasonManual:
		reason = "enabled by hand"
	case failover.ReasonShared:
		reason = "back on another replica's news"
	case "":
	default:
		reason = "back: the trial request succeeded"
	}
	if r.Ramp < 1 {
		reason = strings.TrimPrefix(reason+"; ", "; ") + fmt.Sprintf("taking its traffic back (%.0f%% of its share)", 100*r.Ramp)
	}
	return "healthy", reason
}

// throttled reports whether every deployment of a region cools down after a 429, and until when the first ends.
func throttled(ds []failover.DeploymentStatus) (bool, time.Time) {
	var first time.Time
	for _, d := range ds {
		if d.CoolingUntil.IsZero() {
			return false, time.Time{}
		}
		if first.IsZero() || d.CoolingUntil.Before(first) {
			first = d.CoolingUntil
		}
	}
	return len(ds) > 0, first
}
