package demo

import (
	"sort"
	"sync"
	"time"
)

// Sample is one client request as the client saw it.
type Sample struct {
	Start   time.Duration // since the run began
	Latency time.Duration // until the full answer (or the error) arrived
	Region  string        // x-lifeline-region
	Stream  bool
	Err     string // empty when the client saw no error
}

// Event is something the gateway reported while the demo ran: a failover or a region state change.
type Event struct {
	At   time.Duration
	Text string
}

// recorder collects samples and events from many goroutines.
type recorder struct {
	mu      sync.Mutex
	samples []Sample
	events  []Event
	direct  []time.Duration // baseline pairs: straight to the primary ...
	viaGW   []time.Duration // ... and the same request through the gateway
}

func (r *recorder) pair(direct, gateway time.Duration) {
	r.mu.Lock()
	r.direct = append(r.direct, direct)
	r.viaGW = append(r.viaGW, gateway)
	r.mu.Unlock()
}

// baseline returns copies of the paired latencies.
func (r *recorder) baseline() (direct, gateway []time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Duration(nil), r.direct...), append([]time.Duration(nil), r.viaGW...)
}

func (r *recorder) add(s Sample) {
	r.mu.Lock()
	r.samples = append(r.samples, s)
	r.mu.Unlock()
}

func (r *recorder) event(e Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

// snapshot returns copies of what was recorded so far, samples ordered by start time and events by time.
func (r *recorder) snapshot() ([]Sample, []Event) {
	r.mu.Lock()
	s := append([]Sample(nil), r.samples...)
	e := append([]Event(nil), r.events...)
	r.mu.Unlock()
	sort.Slice(s, func(i, j int) bool { return s[i].Start < s[j].Start })
	sort.SliceStable(e, func(i, j int) bool { return e[i].At < e[j].At })
	return s, e
}

// percentile returns the p-th percentile (0..100) of d, or 0 when d is empty. d is sorted in place.
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	i := int(float64(len(d)-1) * p / 100)
	return d[i]
}
