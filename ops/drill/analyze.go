// Package drill rehearses a region outage through a running Lifeline gateway: it sends steady synthetic traffic,
// takes one region out (the admin switch, or a real simulator fault), brings it back, and measures what the
// clients saw. Analyze is a pure function over the recorded samples, so the verdict is testable on its own.
package drill

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
)

// Sample is one client request of the drill.
type Sample struct {
	Start   time.Duration `json:"start_ms"`   // since the drill started
	Latency time.Duration `json:"latency_ms"` // until the full answer (or the error)
	Region  string        `json:"region,omitempty"`
	Replica string        `json:"replica,omitempty"` // x-lifeline-replica: the gateway replica that answered
	Status  int           `json:"status,omitempty"`
	Err     string        `json:"error,omitempty"` // "" when the client got a good answer
}

// End is when the client had its answer.
func (s Sample) End() time.Duration { return s.Start + s.Latency }

// Timing says when the region was taken out and brought back, relative to the drill's start.
type Timing struct {
	Disable time.Duration
	Enable  time.Duration
	// Recovered is when failback finished: the region was healthy and took its full share of traffic again
	// (0: not seen). A running drill measures it; for samples alone Analyze works it out from the traffic.
	Recovered time.Duration
	// FailbackWait is how long a running drill waited for failback after Enable (0: no drill waited, and
	// Analyze judges failback from the traffic). FailbackState is what the region was doing when the wait ended
	// without failback ("open, next probe in 12s").
	FailbackWait  time.Duration
	FailbackState string
	End           time.Duration
}

// PhaseStats describes the requests that started in one phase.
type PhaseStats struct {
	Name     string         `json:"name"` // before | during | after
	Requests int            `json:"requests"`
	Errors   int            `json:"errors"`
	P50Ms    float64        `json:"p50_ms"`
	P99Ms    float64        `json:"p99_ms"`
	ByRegion map[string]int `json:"by_region"`
}

// Bucket is one slot of the timeline.
type Bucket struct {
	StartMs  float64        `json:"start_ms"`
	ByRegion map[string]int `json:"by_region"`
	Errors   int            `json:"errors"`
}

// Analysis is the verdict of a drill.
type Analysis struct {
	Region   string `json:"region"`
	Requests int    `json:"requests"`
	Errors   int    `json:"client_errors"`
	// FailoverMs is the time from the disable until every later request of the outage was answered by another
	// region; nil when that never happened.
	FailoverMs *float64 `json:"failover_ms"`
	// FirstAnswerMs is the time from the enable until the region answered a request again: failback began.
	FirstAnswerMs *float64 `json:"first_answer_ms"`
	// FailbackMs is the time from the enable until failback finished: the region healthy and back to its full
	// share of traffic; nil when that did not happen before the drill stopped waiting.
	FailbackMs   *float64       `json:"failback_ms"`
	CarriedFirst bool           `json:"region_carried_traffic_before"`
	Phases       []PhaseStats   `json:"phases"`
	Timeline     []Bucket       `json:"timeline"`
	BucketMs     float64        `json:"bucket_ms"`
	ErrorKinds   map[string]int `json:"error_kinds,omitempty"`
	Passed       bool           `json:"passed"`
	Problems     []string       `json:"problems,omitempty"` // why it did not pass
	Notes        []string       `json:"notes,omitempty"`    // worth knowing, not a failure
	// Replicas breaks the traffic down by the gateway replica that answered (x-lifeline-replica, sent by gateways
	// that share state), for drills through a load balancer. Empty when no answer named a replica.
	Replicas []ReplicaStats `json:"replicas,omitempty"`
}

// ReplicaStats is the traffic one gateway replica answered, by phase and region.
type ReplicaStats struct {
	Name     string                    `json:"name"`
	Requests int                       `json:"requests"`
	Errors   int                       `json:"errors"`
	ByPhase  map[string]map[string]int `json:"by_phase"` // phase name -> region -> answers
}

func msf(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func phaseOf(s Sample, t Timing) int {
	switch {
	case s.Start < t.Disable:
		return 0
	case s.Start < t.Enable:
		return 1
	case t.Recovered == 0 || s.Start < t.Recovered:
		return 2
	}
	return 3
}

// Analyze computes the drill's verdict from its samples. buckets is the number of timeline slots (0: 40).
func Analyze(samples []Sample, region string, t Timing, buckets int) Analysis {
	sort.Slice(samples, func(i, j int) bool { return samples[i].Start < samples[j].Start })
	a := Analysis{Region: region, Requests: len(samples), ErrorKinds: map[string]int{}}
	if t.Recovered == 0 && t.FailbackWait == 0 {
		t.Recovered = settledBack(samples, region, t) // no drill measured it: judge by the traffic
	}
	names := []string{"before", "during", "failback", "after"}
	lat := make([][]time.Duration, len(names))
	for i := range names {
		a.Phases = append(a.Phases, PhaseStats{Name: names[i], ByRegion: map[string]int{}})
	}
	for _, s := range samples {
		p := &a.Phases[phaseOf(s, t)]
		p.Requests++
		if s.Err != "" {
			p.Errors++
			a.Errors++
			a.ErrorKinds[errorKind(s)]++
			continue
		}
		p.ByRegion[s.Region]++
		lat[phaseOf(s, t)] = append(lat[phaseOf(s, t)], s.Latency)
	}
	for i := range a.Phases {
		a.Phases[i].P50Ms, a.Phases[i].P99Ms = percentile(lat[i], 0.50), percentile(lat[i], 0.99)
	}
	a.CarriedFirst = a.Phases[0].ByRegion[region] > 0
	a.FailoverMs = failover(samples, region, t)
	a.FirstAnswerMs = firstAnswer(samples, region, t)
	if t.Recovered > 0 {
		v := msf(t.Recovered - t.Enable)
		a.FailbackMs = &v
	}
	a.Timeline, a.BucketMs = timeline(samples, t, buckets)
	a.Replicas = replicas(samples, t, names)
	a.verdict(t)
	return a
}

// replicas groups the answers by the replica that gave them (errors without an answer have no replica).
func replicas(samples []Sample, t Timing, names []string) []ReplicaStats {
	by := map[string]*ReplicaStats{}
	for _, s := range samples {
		if s.Replica == "" {
			continue
		}
		r := by[s.Replica]
		if r == nil {
			r = &ReplicaStats{Name: s.Replica, ByPhase: map[string]map[string]int{}}
			by[s.Replica] = r
		}
		r.Requests++
		if s.Err != "" {
			r.Errors++
			continue
		}
		p := names[phaseOf(s, t)]
		if r.ByPhase[p] == nil {
			r.ByPhase[p] = map[string]int{}
		}
		r.ByPhase[p][s.Region]++
	}
	out := make([]ReplicaStats, 0, len(by))
	for _, r := range by {
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func errorKind(s Sample) string {
	switch {
	case s.Status != 0:
		return fmt.Sprintf("HTTP %d", s.Status)
	case strings.Contains(s.Err, "deadline exceeded") || strings.Contains(s.Err, "Timeout"):
		return "client timeout"
	}
	return "connection error"
}

func (a *Analysis) verdict(t Timing) {
	if a.Errors > 0 {
		a.Problems = append(a.Problems, fmt.Sprintf("clients saw %d error(s) out of %d requests", a.Errors, a.Requests))
	}
	if a.CarriedFirst && a.Phases[1].Requests > 0 && a.FailoverMs == nil {
		a.Problems = append(a.Problems, fmt.Sprintf("traffic did not settle in another region while %s was out", a.Region))
	}
	if n := a.ErrorKinds["client timeout"]; n > 0 && n*2 >= a.Errors {
		a.Notes = append(a.Notes, "most errors are client timeouts: the gateway kept waiting for the region longer than the clients did, "+
			"and a request the client abandons does not count against the region. Set policy.timeouts.response (and "+
			"stream_first_byte) below your clients' timeout so that a region that stops answering is detected")
	}
	if a.Requests == 0 {
		a.Problems = append(a.Problems, "no request was sent")
	}
	if !a.CarriedFirst {
		a.Notes = append(a.Notes, fmt.Sprintf("%s carried no traffic before the drill (is it the primary for this name?), so the failover was not exercised", a.Region))
	}
	if a.CarriedFirst && a.FailbackMs == nil {
		msg := fmt.Sprintf("failback did not finish: %s did not take its traffic back before the drill ended", a.Region)
		if t.FailbackWait > 0 {
			msg = fmt.Sprintf("failback did not finish within %s", t.FailbackWait)
			if t.FailbackState != "" {
				msg += " (" + a.Region + " was " + t.FailbackState + ")"
			}
		}
		a.Problems = append(a.Problems, msg+"; raise --failback-timeout, or look at policy.breaker.open_for and slow_start")
	}
	a.Passed = len(a.Problems) == 0
}

// regionMayServe relaxes the verdict for a fault under which the region still answers some requests well (slow
// answers, a flap's healthy phases, a rate below 1): traffic need not leave it, so that is a note, not a problem.
func (a *Analysis) regionMayServe() {
	kept := a.Problems[:0]
	for _, p := range a.Problems {
		if strings.HasPrefix(p, "traffic did not settle") {
			a.Notes = append(a.Notes, p+" (the fault lets the region answer some requests, so that is allowed)")
			continue
		}
		kept = append(kept, p)
	}
	a.Problems = kept
	a.Passed = len(a.Problems) == 0
}

// failover: traffic has left the region once every later request of the outage is answered by another region;
// the time runs from the switch until the first of those answers. An answer from the region that came after
// restoring began is not held against the failover: the client took its start time before the switch back, but
// the request may have reached the gateway after it. samples are sorted by start.
func failover(samples []Sample, region string, t Timing) *float64 {
	settled := time.Duration(-1)
	for _, s := range samples {
		if s.Start < t.Disable || s.Start >= t.Enable {
			continue
		}
		switch {
		case s.Err == "" && s.Region == region && s.End() >= t.Enable:
		case s.Err != "" || s.Region == region:
			settled = -1
		case settled < 0:
			settled = s.End()
		}
	}
	if settled < 0 {
		return nil
	}
	v := msf(settled - t.Disable)
	return &v
}

// firstAnswer: the first answer from the region to a request sent after the enable.
func firstAnswer(samples []Sample, region string, t Timing) *float64 {
	first := time.Duration(-1)
	for _, s := range samples {
		if s.Start >= t.Enable && s.Err == "" && s.Region == region && (first < 0 || s.End() < first) {
			first = s.End()
		}
	}
	if first < 0 {
		return nil
	}
	v := msf(first - t.Enable)
	return &v
}

// settledBack is when traffic settled back in the region after the enable, judged from the samples alone: the end
// of the first request from which every later good answer came from the region, when it had carried all the
// traffic before the outage (0 otherwise: traffic alone cannot tell a shared region's full share).
func settledBack(samples []Sample, region string, t Timing) time.Duration {
	all := true
	for _, s := range samples {
		if s.Start < t.Disable && s.Err == "" && s.Region != region {
			all = false
		}
	}
	if !all {
		return 0
	}
	settled := time.Duration(0)
	for _, s := range samples {
		if s.Start < t.Enable || s.Err != "" {
			continue
		}
		switch {
		case s.Region != region:
			settled = 0
		case settled == 0:
			settled = s.End()
		}
	}
	return settled
}

// percentile is the nearest-rank percentile in milliseconds, 0 for no data.
func percentile(d []time.Duration, p float64) float64 {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(math.Ceil(p*float64(len(s)))) - 1
	return msf(s[max(0, min(i, len(s)-1))])
}

func timeline(samples []Sample, t Timing, n int) ([]Bucket, float64) {
	if n <= 0 {
		n = 40
	}
	end := t.End
	for _, s := range samples {
		end = max(end, s.Start+1)
	}
	if end <= 0 {
		return nil, 0
	}
	width := (end + time.Duration(n) - 1) / time.Duration(n)
	out := make([]Bucket, n)
	for i := range out {
		out[i] = Bucket{StartMs: msf(width * time.Duration(i)), ByRegion: map[string]int{}}
	}
	for _, s := range samples {
		i := min(int(s.Start/width), n-1)
		if s.Err != "" {
			out[i].Errors++
		} else {
			out[i].ByRegion[s.Region]++
		}
	}
	return out, msf(width)
}
