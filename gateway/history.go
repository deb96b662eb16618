package gateway

import (
	"sync"
	"sync/atomic"
	"time"
)

// The status page's history: per region, what happened in each 5-second slot of the last 15 minutes.
const (
	historyStep  = 5 * time.Second
	historySlots = int(15 * time.Minute / historyStep)
)

// history counts requests, errors and latency per region in time slots. Writers only add to atomics of the slot
// their instant falls in (the first writer of a new slot clears it), so the request path takes no lock; a count
// that lands while its slot is being cleared may be lost, which a chart can afford.
type history struct {
	regions sync.Map // region name -> *regionHistory
}

type regionHistory struct {
	slots [historySlots]historySlot
}

type historySlot struct {
	n              atomic.Int64 // slot number (unix time / step) that the counters belong to
	requests       atomic.Int64 // client requests answered by the region
	clientErrors   atomic.Int64 // of which the client saw a 5xx or a broken stream
	streamErrors   atomic.Int64 // of which the stream broke after it started
	latencyMicros  atomic.Int64 // sum of the answered requests' durations
	attempts       atomic.Int64 // upstream attempts
	failedAttempts atomic.Int64 // attempts that failed and count against the region
	hedges         atomic.Int64 // answers that came from a hedge
	resumes        atomic.Int64 // streams that another region continued after this one broke them
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
		s.requests.Store(0)
		s.clientErrors.Store(0)
		s.streamErrors.Store(0)
		s.latencyMicros.Store(0)
		s.attempts.Store(0)
		s.failedAttempts.Store(0)
		s.hedges.Store(0)
		s.resumes.Store(0)
	}
	return s
}

// request records a finished client request: the region that answered (SelfRegion for the gateway's own
// answers), whether the client saw an error, and how long it took.
func (h *history) request(now time.Time, region string, status int, streamErr, hedged bool, d time.Duration) {
	if region == "" || region == "none" {
		return
	}
	s := h.region(region).slot(now)
	s.requests.Add(1)
	if status >= 500 || streamErr {
		s.clientErrors.Add(1)
	}
	if streamErr {
		s.streamErrors.Add(1)
	}
	if hedged {
		s.hedges.Add(1)
	}
	s.latencyMicros.Add(d.Microseconds())
}

// attempt records an upstream attempt and whether it failed against the region.
func (h *history) attempt(now time.Time, region string, failed bool) {
	s := h.region(region).slot(now)
	s.attempts.Add(1)
	if failed {
		s.failedAttempts.Add(1)
	}
}

// resume records a stream that region broke and another region continued.
func (h *history) resume(now time.Time, region string) {
	h.region(region).slot(now).resumes.Add(1)
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
	Resumes        []int64   `json:"resumes"`
}

// Recent is what a region did in the last 15 minutes.
type Recent struct {
	Requests       int64 `json:"requests"`
	ClientErrors   int64 `json:"client_errors"`
	StreamErrors   int64 `json:"stream_errors"`
	Attempts       int64 `json:"attempts"`
	FailedAttempts int64 `json:"failed_attempts"`
	Hedges         int64 `json:"hedges"`
	Resumes        int64 `json:"resumes"`
}

// series reads a region's slots from the oldest to the one that holds now.
func (h *history) series(name string, now time.Time) Series {
	out := Series{Region: name}
	v, ok := h.regions.Load(name)
	cur := now.UnixNano() / int64(historyStep)
	for n := cur - int64(historySlots) + 1; n <= cur; n++ {
		var s *historySlot
		if ok {
			if c := &v.(*regionHistory).slots[n%int64(historySlots)]; c.n.Load() == n {
				s = c
			}
		}
		if s == nil {
			s = &historySlot{}
		}
		req := s.requests.Load()
		lat := 0.0
		if req > 0 {
			lat = float64(s.latencyMicros.Load()) / float64(req) / 1000
		}
		out.Requests = append(out.Requests, req)
		out.ClientErrors = append(out.ClientErrors, s.clientErrors.Load())
		out.StreamErrors = append(out.StreamErrors, s.streamErrors.Load())
		out.FailedAttempts = append(out.FailedAttempts, s.failedAttempts.Load())
		out.Attempts = append(out.Attempts, s.attempts.Load())
		out.LatencyMs = append(out.LatencyMs, lat)
		out.Hedges = append(out.Hedges, s.hedges.Load())
		out.Resumes = append(out.Resumes, s.resumes.Load())
	}
	return out
}

// recent sums a region's last 15 minutes.
func (h *history) recent(name string, now time.Time) Recent {
	s := h.series(name, now)
	var r Recent
	for i := range s.Requests {
		r.Requests += s.Requests[i]
		r.ClientErrors += s.ClientErrors[i]
		r.StreamErrors += s.StreamErrors[i]
		r.Attempts += s.Attempts[i]
		r.FailedAttempts += s.FailedAttempts[i]
		r.Hedges += s.Hedges[i]
		r.Resumes += s.Resumes[i]
	}
	return r
}
