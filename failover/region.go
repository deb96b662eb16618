package failover

import (
	"context"
	"math"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// health is what the engine knows about a region. It outlives Reconfigure: a region whose
// name persists keeps its breaker, latency and cool-downs.
type health struct {
	name     string
	breaker  *breaker
	ewma     atomic.Uint64 // float64 bits: latency to headers, nanoseconds (0: no sample yet)
	inflight atomic.Int64
	attempts atomic.Uint64 // all attempts ever, for traffic share
	abandons abandonLedger // each client's share of abandoned attempts (abandon.go)

	probing   atomic.Bool // an active probe is in flight
	lastProbe atomic.Pointer[ProbeStatus]

	// wait is cancelled, and replaced, when the region's breaker opens: attempts that had no answer
	// from the region yet stop waiting for it at once, since it has been seen to fail.
	waitMu     sync.Mutex
	wait       context.Context
	waitCancel context.CancelFunc

	mu   sync.Mutex
	deps map[string]*deploymentState // by deployment name in this region
}

func newHealth(name string, p BreakerPolicy) *health {
	h := &health{name: name, breaker: newBreaker(p), deps: map[string]*deploymentState{}}
	h.wait, h.waitCancel = context.WithCancel(context.Background())
	return h
}

// waiting is the context that ends when the region's breaker next opens.
func (h *health) waiting() context.Context {
	h.waitMu.Lock()
	defer h.waitMu.Unlock()
	return h.wait
}

// opened ends the waits of the attempts in flight: the breaker just opened.
func (h *health) opened() {
	h.waitMu.Lock()
	cancel := h.waitCancel
	h.wait, h.waitCancel = context.WithCancel(context.Background())
	h.waitMu.Unlock()
	cancel()
}

func (h *health) deployment(name string) *deploymentState {
	h.mu.Lock()
	defer h.mu.Unlock()
	d := h.deps[name]
	if d == nil {
		d = &deploymentState{}
		h.deps[name] = d
	}
	return d
}

// ewmaAlpha weighs the newest latency sample.
const ewmaAlpha = 0.2

func (h *health) observeLatency(d time.Duration) {
	for {
		old := h.ewma.Load()
		prev := math.Float64frombits(old)
		next := float64(d)
		if old != 0 {
			next = prev + ewmaAlpha*(float64(d)-prev)
		}
		if h.ewma.CompareAndSwap(old, math.Float64bits(next)) {
			return
		}
	}
}

func (h *health) latency() time.Duration {
	return time.Duration(math.Float64frombits(h.ewma.Load()))
}

// deploymentState is the state of one deployment in one region: a cool-down after a 429, or
// broken after 404 DeploymentNotFound, 401 or 403.
type deploymentState struct {
	coolUntil   atomic.Int64 // unix nanos
	brokenUntil atomic.Int64 // unix nanos
	brokenBy    atomic.Int32 // Outcome that broke it
	// Recent latencies, for the learned hedge delay: to the first events of a stream, and to the
	// headers of an answer that is not streamed.
	firstByte, answer latencySketch
	// noStream: api-versions for which the deployment refused the streamed form of a non-streaming request
	// (upstream.go), with the time until which requests go as they came.
	noStream noStreamSet
	// gaps: the longest wait of one read within each recent complete stream; stalledUntil: until when
	// the deployment counts as seen stalling mid-stream (unix nanos). quiet.go.
	gaps         latencySketch
	stalledUntil atomic.Int64
	// quietLosses: its streams lost by silence to an early resume since its last complete stream.
	quietLosses atomic.Int32
}

// extend moves an instant held in v later, never earlier.
func extend(v *atomic.Int64, until int64) {
	for {
		old := v.Load()
		if old >= until || v.CompareAndSwap(old, until) {
			return
		}
	}
}

// region is one configured region as the engine uses it for one config generation.
type region struct {
	cfg      Region
	h        *health
	url      regionURL
	rt       http.RoundTripper
	cred     credential
	priority int
	weight   int
	targets  map[string]*target // client-visible name -> target
	label    []string           // x-lifeline-region value, shared by every response
}

// target is a client-visible name in one region.
type target struct {
	deployment string
	quoted     []byte // deployment as a JSON string
	state      *deploymentState
}

// table is one config generation: regions, and per client-visible name its candidate regions
// in priority order. It is immutable; Reconfigure swaps it.
type table struct {
	regions []*region
	byName  map[string]*region
	names   map[string][]*region
	all     []*region // by priority, for requests without a name
	sorted  []string  // client-visible names, sorted
	policy  Policy
	// fallbacks: per client-visible name, the names to try when it cannot be served.
	fallbacks map[string][]string
}

func (t *table) candidates(name string, named bool) []*region {
	if !named {
		return t.all
	}
	return t.names[name]
}

func byPriority(rs []*region) {
	sort.SliceStable(rs, func(i, j int) bool { return rs[i].priority < rs[j].priority })
}

// unavailable says why a region cannot take an attempt for a target right now.
type unavailable uint8

const (
	isAvailable unavailable = iota
	isDisabled
	isOpen
	isCooling
	isBroken
)

// check reports whether r may serve tg at now (without taking a half-open probe slot), and
// when it might again.
func (r *region) check(tg *target, now time.Time) (unavailable, time.Time) {
	b := r.h.breaker
	switch b.State() {
	case Disabled:
		return isDisabled, time.Time{}
	case Open, HalfOpen:
		if !b.available(now) {
			return isOpen, b.retryAt()
		}
	}
	n := now.UnixNano()
	if tg != nil && tg.state != nil {
		if u := tg.state.coolUntil.Load(); u > n {
			return isCooling, time.Unix(0, u)
		}
		if u := tg.state.brokenUntil.Load(); u > n {
			return isBroken, time.Unix(0, u)
		}
	}
	return isAvailable, time.Time{}
}
