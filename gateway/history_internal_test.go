package gateway

import (
	"testing"
	"time"

	"github.com/lifeline-sre/lifeline/config"
	"github.com/lifeline-sre/lifeline/failover"
)

func TestHistorySlots(t *testing.T) {
	var h history
	t0 := time.Unix(1_800_000_000, 0) // on a slot boundary
	h.request(t0, "eastus", 200, false, 100*time.Millisecond)
	h.request(t0.Add(time.Second), "eastus", 200, false, 300*time.Millisecond)
	h.request(t0.Add(2*time.Second), "eastus", 200, true, 200*time.Millisecond) // a broken stream the client saw
	h.request(t0.Add(6*time.Second), "eastus", 502, false, time.Second)
	h.attempt(t0, failover.AttemptResult{Region: "eastus", Outcome: failover.OutcomeTimeout})
	h.attempt(t0, failover.AttemptResult{Region: "eastus", Outcome: failover.OutcomeOK})
	h.attempt(t0, failover.AttemptResult{Region: "eastus", Outcome: failover.OutcomeStreamError})
	h.attempt(t0, failover.AttemptResult{Region: "eastus", Outcome: failover.OutcomeThrottled}) // not against it
	// eastus was slow: two hedges went to westus, one won; one was not allowed by the budget.
	h.hedge(t0, failover.HedgeEvent{From: "eastus", To: "westus", Outcome: failover.HedgeWon})
	h.hedge(t0, failover.HedgeEvent{From: "eastus", To: "westus", Outcome: failover.HedgeLost})
	h.hedge(t0, failover.HedgeEvent{From: "eastus", To: "westus", Outcome: failover.HedgeNoBudget})
	// eastus broke three streams: one went on from westus; one diverged in westus, then no region was left; one
	// could not be resumed at all (only its stream error counts).
	h.resume(t0.Add(7*time.Second), failover.ResumeEvent{From: "eastus", To: "westus", Outcome: failover.ResumeOK})
	h.resume(t0.Add(7*time.Second), failover.ResumeEvent{From: "eastus", To: "westus", Outcome: failover.ResumeDiverged})
	h.resume(t0.Add(7*time.Second), failover.ResumeEvent{From: "eastus", Outcome: failover.ResumeNoRegion})
	h.resume(t0.Add(7*time.Second), failover.ResumeEvent{From: "eastus", Outcome: failover.ResumeUnsupported})
	h.probe(t0.Add(8*time.Second), failover.ProbeEvent{Region: "eastus", Outcome: failover.OutcomeTimeout})
	h.probe(t0.Add(8*time.Second), failover.ProbeEvent{Region: "eastus", Outcome: failover.OutcomeOK})
	h.request(t0, "none", 499, false, time.Second) // nobody answered: not a region's

	s := h.series("eastus", t0.Add(9*time.Second))
	n := len(s.Requests)
	if n != historySlots {
		t.Fatalf("%d slots", n)
	}
	prev, last := n-2, n-1
	if s.Requests[prev] != 3 || s.ClientErrors[prev] != 1 || s.StreamErrors[prev] != 1 || s.Hedges[prev] != 2 ||
		s.Attempts[prev] != 4 || s.FailedAttempts[prev] != 2 || s.LatencyMs[prev] != 200 {
		t.Errorf("first slot: %+v", s)
	}
	if s.Requests[last] != 1 || s.ClientErrors[last] != 1 || s.Resumes[last] != 1 || s.ResumesFailed[last] != 2 || s.LatencyMs[last] != 1000 ||
		s.Probes[last] != 2 || s.ProbesFailed[last] != 1 {
		t.Errorf("second slot: req %d err %d resumes %d/%d failed probes %d/%d lat %v", s.Requests[last], s.ClientErrors[last],
			s.Resumes[last], s.ResumesFailed[last], s.ProbesFailed[last], s.Probes[last], s.LatencyMs[last])
	}
	want := Recent{Requests: 4, ClientErrors: 2, StreamErrors: 1, Attempts: 4, FailedAttempts: 2, Hedges: 2, Resumes: 1,
		ResumesFailed: 2, Probes: 2, ProbesFailed: 1}
	if r := h.recent("eastus", t0.Add(9*time.Second)); r != want {
		t.Errorf("recent = %+v\nwant %+v", r, want)
	}
	if r := h.recent("westus", t0.Add(9*time.Second)); r != (Recent{HedgesWon: 1, Resumed: 1}) {
		t.Errorf("westus: the hedge it won and the stream it took over: %+v", r)
	}
	// 15 minutes later the slots have passed out of the window; writing there again starts from zero.
	later := t0.Add(15*time.Minute + 10*time.Second)
	if r := h.recent("eastus", later); r != (Recent{}) {
		t.Errorf("after 15 minutes: %+v", r)
	}
	h.request(later, "eastus", 200, false, 10*time.Millisecond)
	if r := h.recent("eastus", later); r.Requests != 1 || r.ClientErrors != 0 {
		t.Errorf("a reused slot kept old counts: %+v", r)
	}
	if s := h.series("mars", later); len(s.Requests) != historySlots || s.Requests[historySlots-1] != 0 {
		t.Errorf("an unknown region: %+v", s)
	}
}

func TestDescribeRegion(t *testing.T) {
	b := config.Breaker{FailureRate: 0.5, Window: config.Duration(time.Minute), MinRequests: 20, AbandonedAfter: config.Duration(5 * time.Second)}
	now := time.Unix(1_800_000_000, 0)
	cool := []failover.DeploymentStatus{{Name: "gpt-4o", CoolingUntil: now.Add(7 * time.Second)}, {Name: "gpt-4o-mini", CoolingUntil: now.Add(3 * time.Second)}}
	for _, tc := range []struct {
		r             failover.RegionStatus
		why           []string
		state, reason string
	}{
		{failover.RegionStatus{Name: "eastus", State: failover.Open, StateReason: "timeout"}, nil, "open", "opened after failed attempts; the last one: timeout"},
		{failover.RegionStatus{State: failover.Open, StateReason: failover.ReasonFailureRate}, nil, "open", "opened: 50% or more of its attempts failed within 1m0s"},
		{failover.RegionStatus{State: failover.HalfOpen, StateReason: failover.ReasonOpenForPassed}, nil, "half_open", "open_for passed: the next request is the trial that decides"},
		{failover.RegionStatus{Name: "westus", State: failover.Disabled}, nil, "disabled", "disabled by hand (POST /admin/regions/westus/enable brings it back)"},
		{failover.RegionStatus{State: failover.Healthy, Ramp: 1, Deployments: cool}, nil, "throttled", "every deployment answered 429 and cools down (until 08:00:03 UTC)"},
		{failover.RegionStatus{State: failover.Healthy, Ramp: 1, ErrorRate: 0.3, Attempts: 10, Latency: 6 * time.Second},
			[]string{DegradedErrors, DegradedSlow}, "degraded", "degraded: 30% of its last 10 attempts failed; its response headers take 6s on average (abandoned_after 5s)"},
		{failover.RegionStatus{State: failover.Healthy, Ramp: 0.4, StateReason: "ok"}, nil, "healthy", "back: the trial request succeeded; taking its traffic back (40% of its share)"},
		{failover.RegionStatus{State: failover.Healthy, Ramp: 1}, nil, "healthy", ""},
		{failover.RegionStatus{State: failover.Healthy, Ramp: 1, Credential: &failover.CredentialStatus{State: failover.CredentialUnavailable, Problem: "bad_secret"}},
			nil, "no_token", "no valid Entra ID token: its requests fail over (bad_secret)"},
		{failover.RegionStatus{State: failover.Healthy, Ramp: 1, Credential: &failover.CredentialStatus{State: failover.CredentialRefreshFailing}}, nil, "healthy", ""},
	} {
		state, reason := describeRegion(tc.r, tc.why, b, now)
		if state != tc.state || reason != tc.reason {
			t.Errorf("%+v: got %q, %q; want %q, %q", tc.r, state, reason, tc.state, tc.reason)
		}
	}
}
