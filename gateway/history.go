package gateway

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/lifeline-sre/lifeline/failover"
)

// The status page's history: per region, what happened in each 5-second slot of the last 15 minutes.
const (
	historyStep  = 5 * time.Second
	historySlots = int(15 * time.Minute / historyStep)
)

// What a slot counts. Client requests are counted by the region that answered them; everything else comes from
// the engine's events (attempts, hedges, resumes, probes), by the region they happened in.
const (
	cRequests       = iota // client requests answered by the region
	cClientErrors          // of which the client saw a 5xx or a broken stream
	cLatencyMicros         // sum of the answered requests' durations
	cAttempts              // upstream attempts
	cFailedAttempts        // attempts that failed and count against the region
	cStreamErrors          // attempts whose stream broke, stalled or was truncated after it started
	cHedges                // requests hedged away from the region: no first byte after the hedge delay
	cHedgesWon             // hedges that the region answered first (the request waited for elsewhere)
	cResumes               // streams the region broke that went on from another region (a resume that worked)
	cResumesFailed         // resumes of streams the region broke that did not work (per region tried)
	cResumed               // streams another region broke that the region took over (the splice worked)
	cProbes                // active probes of the region (while it was out of service)
	cProbesFailed          // of which failed
	numCounters
)

// history counts requests, errors, latency, hedges, resumes and probes per region in time slots. Writers only add
// to atomics of the slot their instant falls in (the first writer of a new slot clears it), so the request path
// takes no lock; a count that lands while its slot is being cleared may be lost, which a chart can afford.
type history struct {
	regions sync.Map // region name -> *regionHistory
}

type regionHistory struct {
	slots [historySlots]historySlot
}

type historySlot struct {
	n atomic.Int64 // slot number (unix time / step) that the counters belong to
	c [numCounters]atomic.Int64
}

func (h *history) region(name string) *regionHistory {
	if r, ok := h.regions.Load(name); ok {
		return r.(*regionHistory)
	}
	r, _ := h.regions.LoadOrStore(name, &regionHistory{})
	return r.(*regionHistory)
}

// slot returns the slot of instant t, cleared if it still held an older slot's counts.
func (r *regionHistory) slot(t time.Time) *historySlot {
	n := t.UnixNano() / int64(historyStep)
	s := &r.slots[n%int64(historySlots)]
	if old := s.n.Load(); old != n && s.n.CompareAndSwap(old, n) {
		for i := range s.c {
			s.c[i].Store(0)
		}
	}
	return s
}

// add counts v in counter c of region's slot at now.
func (h *history) add(now time.Time, region string, c int, v int64) {
	if region == "" || region == "none" {
		return
	}
	h.region(region).slot(now).c[c].Add(v)
}

// request records a finished client request: the region that answered (SelfRegion for the gateway's own
// answers), whether the client saw an error, and how long it took.
func (h *history) request(now time.Time, region string, status int, streamErr bool, d time.Duration) {
	if region == "" || region == "none" {
		return
	}
	s := h.region(region).slot(now)
	s.c[cRequests].Add(1)
	if status >= 500 || streamErr {
		s.c[cClientErrors].Add(1)
	}
	s.c[cLatencyMicros].Add(d.Microseconds())
}

// attempt records an upstream attempt: whether it failed against the region, and whether that was a stream that
// broke after it started.
func (h *history) attempt(now time.Time, e failover.AttemptResult) {
	s := h.region(e.Region).slot(now)
	s.c[cAttempts].Add(1)
	if againstRegion(e.Outcome) {
		s.c[cFailedAttempts].Add(1)
	}
	if e.Outcome == failover.OutcomeStreamError {
		s.c[cStreamErrors].Add(1)
	}
}

// hedge records a hedge the engine started: against the region it had waited for and, when the hedge answered
// first, for the region that answered. A hedge the budget did not allow is not counted.
func (h *history) hedge(now time.Time, e failover.HedgeEvent) {
	if e.Outcome == failover.HedgeNoBudget {
		return
	}
	h.add(now, e.From, cHedges, 1)
	if e.Outcome == failover.HedgeWon {
		h.add(now, e.To, cHedgesWon, 1)
	}
}

// resume records a resume of a stream that a region broke after the client got bytes (failover.ResumeEvent: one
// per region tried, or one that says no region could take it). One that worked counts against the region that
// broke the stream and for the region that took it over; one that did not (diverged, failed, timeout, no_region)
// counts against the region that broke it. A stream that cannot be resumed at all (unsupported) is only the
// stream error it already is.
func (h *history) resume(now time.Time, e failover.ResumeEvent) {
	switch e.Outcome {
	case failover.ResumeOK:
		h.add(now, e.From, cResumes, 1)
		h.add(now, e.To, cResumed, 1)
	case failover.ResumeUnsupported:
	default:
		h.add(now, e.From, cResumesFailed, 1)
	}
}

// probe records an active probe of a region out of service.
func (h *history) probe(now time.Time, e failover.ProbeEvent) {
	s := h.region(e.Region).slot(now)
	s.c[cProbes].Add(1)
	if e.Outcome != failover.OutcomeOK {
		s.c[cProbesFailed].Add(1)
	}
}

// Series is one region's history, oldest slot first, one value per StepSeconds.
type Series struct {
	Region         string    `json:"region"`
	Requests       []int64   `json:"requests"`
	ClientErrors   []int64   `json:"client_errors"`
	StreamErrors   []int64   `json:"stream_errors"`
	FailedAttempts []int64   `json:"failed_attempts"`
	Attempts       []int64   `json:"attempts"`
	LatencyMs      []float64 `json:"latency_ms"` // mean duration of the answered requests (0: none)
	Hedges         []int64   `json:"hedges"`
	HedgesWon      []int64   `json:"hedges_won"`
	Resumes        []int64   `json:"resumes"`
	ResumesFailed  []int64   `json:"resumes_failed"`
	Resumed        []int64   `json:"resumed"`
	Probes         []int64   `json:"probes"`
	ProbesFailed   []int64   `json:"probes_failed"`
}

// Recent is what a region did in the last 15 minutes.
type Recent struct {
	// Requests are the client requests the region answered; ClientErrors those where the client saw a 5xx or a
	// broken stream.
	Requests     int64 `json:"requests"`
	ClientErrors int64 `json:"client_errors"`
	// Attempts are the upstream attempts in the region; FailedAttempts those that count against it (SPEC section
	// 5); StreamErrors those whose stream broke, stalled or was truncated after it had started, whether or not
	// the client saw it (a resumed stream's client does not).
	Attempts       int64 `json:"attempts"`
	FailedAttempts int64 `json:"failed_attempts"`
	StreamErrors   int64 `json:"stream_errors"`
	// Hedges are the requests hedged away from the region (no first byte after the hedge delay); HedgesWon the
	// hedges the region answered first for another region.
	Hedges    int64 `json:"hedges"`
	HedgesWon int64 `json:"hedges_won"`
	// Resumes are the streams the region broke after the client got bytes that went on from another region
	// (policy.streams.resume), so the client saw no error; ResumesFailed the resumes of its broken streams that
	// did not work (one per region tried: the new answer diverged, that region failed or took too long, or no
	// region could take it); Resumed the streams another region broke that this one continued.
	Resumes       int64 `json:"resumes"`
	ResumesFailed int64 `json:"resumes_failed"`
	Resumed       int64 `json:"resumed"`
	// Probes are the active probes of the region while it was out of service; ProbesFailed those that failed.
	Probes       int64 `json:"probes"`
	ProbesFailed int64 `json:"probes_failed"`
}

// series reads a region's slots from the oldest to the one that holds now.
func (h *history) series(name string, now time.Time) Series {
	out := Series{Region: name}
	cols := [numCounters][]int64{}
	v, ok := h.regions.Load(name)
	cur := now.UnixNano() / int64(historyStep)
	for n := cur - int64(historySlots) + 1; n <= cur; n++ {
		var vals [numCounters]int64
		if ok {
			if s := &v.(*regionHistory).slots[n%int64(historySlots)]; s.n.Load() == n {
				for i := range vals {
					vals[i] = s.c[i].Load()
				}
			}
		}
		for i := range vals {
			cols[i] = append(cols[i], vals[i])
		}
		lat := 0.0
		if req := vals[cRequests]; req > 0 {
			lat = float64(vals[cLatencyMicros]) / float64(req) / 1000
		}
		out.LatencyMs = append(out.LatencyMs, lat)
	}
	out.Requests, out.ClientErrors, out.StreamErrors = cols[cRequests], cols[cClientErrors], cols[cStreamErrors]
	out.Attempts, out.FailedAttempts = cols[cAttempts], cols[cFailedAttempts]
	out.Hedges, out.HedgesWon = cols[cHedges], cols[cHedgesWon]
	out.Resumes, out.ResumesFailed, out.Resumed = cols[cResumes], cols[cResumesFailed], cols[cResumed]
	out.Probes, out.ProbesFailed = cols[cProbes], cols[cProbesFailed]
	return out
}

// recent sums a region's last 15 minutes.
func (h *history) recent(name string, now time.Time) Recent {
	s := h.series(name, now)
	sum := func(a []int64) (n int64) {
		for _, v := range a {
			n += v
		}
		return n
	}
	return Recent{Requests: sum(s.Requests), ClientErrors: sum(s.ClientErrors), Attempts: sum(s.Attempts),
		FailedAttempts: sum(s.FailedAttempts), StreamErrors: sum(s.StreamErrors), Hedges: sum(s.Hedges),
		HedgesWon: sum(s.HedgesWon), Resumes: sum(s.Resumes), ResumesFailed: sum(s.ResumesFailed), Resumed: sum(s.Resumed), Probes: sum(s.Probes),
		ProbesFailed: sum(s.ProbesFailed)}
}
