package failover

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// State is a region's state; its numeric value is the value of lifeline_region_state.
type State int32

const (
	Healthy  State = 0 // takes traffic
	HalfOpen State = 1 // open_for passed: one probe decides
	Open     State = 2 // out of service until open_for passes
	Disabled State = 3 // disabled by hand: no traffic at all
)

func (s State) String() string {
	switch s {
	case Healthy:
		return "healthy"
	case HalfOpen:
		return "half_open"
	case Open:
		return "open"
	case Disabled:
		return "disabled"
	}
	return "state(" + strconv.Itoa(int(s)) + ")"
}

// windowBuckets is the resolution of the failure-rate window.
const windowBuckets = 10

type bucket struct {
	start      int64 // unix nanos of the bucket's start
	ok, failed uint32
}

// breaker is one region's circuit breaker: consecutive failures and a failure rate over a
// window open it; after openFor a single probe decides; each failed probe lengthens openFor.
// Manual disable sits on top of it and wins.
type breaker struct {
	p BreakerPolicy

	state    atomic.Int32 // State without the manual override: Healthy, HalfOpen, Open
	disabled atomic.Bool

	mu          sync.Mutex
	consecutive int
	trips       int          // consecutive trips without a lasting recovery
	openUntil   time.Time    // while Open
	probing     bool         // a half-open probe is in flight
	recovered   atomic.Int64 // unix nanos: start of slow start (0: none)
	slowStart   atomic.Int64 // policy SlowStart, readable without the lock
	window      [windowBuckets]bucket
}

// transition is a state change to report to observers, outside any lock.
type transition struct{ from, to State }

func newBreaker(p BreakerPolicy) *breaker {
	b := &breaker{}
	b.setPolicy(p)
	return b
}

func (b *breaker) setPolicy(p BreakerPolicy) {
	b.mu.Lock()
	b.p = p
	b.slowStart.Store(int64(p.SlowStart))
	b.mu.Unlock()
}

// State is the effective state, Disabled winning.
func (b *breaker) State() State {
	if b.disabled.Load() {
		return Disabled
	}
	return State(b.state.Load())
}

// available reports whether the region may be tried now without taking the probe slot.
func (b *breaker) available(now time.Time) bool {
	switch b.State() {
	case Healthy:
		return true
	case Disabled:
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	st := State(b.state.Load())
	return st == Open && !now.Before(b.openUntil) || st == HalfOpen && !b.probing
}

// acquire asks to send an attempt now. probe reports that the attempt is the half-open probe.
func (b *breaker) acquire(now time.Time) (ok, probe bool, tr *transition) {
	switch b.State() {
	case Healthy:
		return true, false, nil
	case Disabled:
		return false, false, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch State(b.state.Load()) {
	case Healthy:
		return true, false, nil
	case Open:
		if now.Before(b.openUntil) {
			return false, false, nil
		}
		b.state.Store(int32(HalfOpen))
		tr = &transition{Open, HalfOpen}
	}
	if b.probing {
		return false, false, tr
	}
	b.probing = true
	return true, true, tr
}

// settle resolves a half-open probe as a success and resets the consecutive count, without
// counting the attempt in the window: a delivered response is counted when its body ends.
func (b *breaker) settle(now time.Time, probe bool) *transition {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.consecutive = 0
	if !probe {
		return nil
	}
	b.probing = false
	if State(b.state.Load()) != HalfOpen {
		return nil
	}
	b.state.Store(int32(Healthy))
	b.recovered.Store(now.UnixNano())
	b.resetWindow()
	return b.report(HalfOpen, Healthy)
}

// countSuccess counts a delivered response whose body ended well.
func (b *breaker) countSuccess(now time.Time) {
	b.mu.Lock()
	b.count(now, false)
	b.mu.Unlock()
}

// record feeds one attempt's result. failed is true for a failure that counts against the
// region; neutral results (caller went away) release a probe without deciding.
func (b *breaker) record(now time.Time, probe, failed, neutral bool) *transition {
	b.mu.Lock()
	defer b.mu.Unlock()
	if probe {
		b.probing = false
	}
	if neutral {
		return nil
	}
	b.count(now, failed)
	st := State(b.state.Load())
	if !failed {
		b.consecutive = 0
		if st == HalfOpen && probe {
			b.state.Store(int32(Healthy))
			b.recovered.Store(now.UnixNano())
			b.resetWindow()
			return b.report(HalfOpen, Healthy)
		}
		return nil
	}
	b.consecutive++
	switch st {
	case HalfOpen:
		if probe {
			return b.trip(now, HalfOpen)
		}
	case Healthy:
		if b.consecutive >= b.p.Failures || b.rateExceeded(now) {
			return b.trip(now, Healthy)
		}
	}
	return nil
}

func (b *breaker) trip(now time.Time, from State) *transition {
	// A trip long after the last recovery starts the backoff afresh.
	if rec := b.recovered.Load(); from == Healthy && rec != 0 && now.UnixNano()-rec > int64(b.p.MaxOpenFor) {
		b.trips = 0
	}
	b.trips++
	d := b.p.OpenFor
	for i := 1; i < b.trips && d < b.p.MaxOpenFor; i++ {
		d *= 2
	}
	b.openUntil = now.Add(min(d, b.p.MaxOpenFor))
	b.consecutive = 0
	b.state.Store(int32(Open))
	return b.report(from, Open)
}

func (b *breaker) report(from, to State) *transition {
	if b.disabled.Load() {
		return nil // observers see Disabled until Enable
	}
	return &transition{from, to}
}

func (b *breaker) bucketWidth() int64 { return int64(b.p.Window) / windowBuckets }

func (b *breaker) count(now time.Time, failed bool) {
	w := b.bucketWidth()
	if w <= 0 {
		return
	}
	start := now.UnixNano() / w * w
	bk := &b.window[(start/w)%windowBuckets]
	if bk.start != start {
		*bk = bucket{start: start}
	}
	if failed {
		bk.failed++
	} else {
		bk.ok++
	}
}

// totals returns attempts and failures within the window.
func (b *breaker) totals(now time.Time) (n, failed int) {
	oldest := now.UnixNano() - int64(b.p.Window)
	for _, bk := range b.window {
		if bk.start > oldest {
			n += int(bk.ok + bk.failed)
			failed += int(bk.failed)
		}
	}
	return n, failed
}

func (b *breaker) rateExceeded(now time.Time) bool {
	if b.p.FailureRate > 1 {
		return false
	}
	n, f := b.totals(now)
	return n >= b.p.MinRequests && float64(f) >= b.p.FailureRate*float64(n)
}

func (b *breaker) resetWindow() { b.window = [windowBuckets]bucket{} }

// errorRate is the failed share of attempts within the window (0 with no attempts).
func (b *breaker) errorRate(now time.Time) (rate float64, attempts int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, f := b.totals(now)
	if n == 0 {
		return 0, 0
	}
	return float64(f) / float64(n), n
}

// rampFactor is the share of its normal traffic a region takes during slow start, in (0, 1].
func (b *breaker) rampFactor(now time.Time) float64 {
	ss, rec := b.slowStart.Load(), b.recovered.Load()
	if ss <= 0 || rec == 0 {
		return 1
	}
	el := now.UnixNano() - rec
	if el >= ss {
		return 1
	}
	return max(0.1, float64(el)/float64(ss))
}

// retryAt is when an open region may next be probed (zero when it is not open).
func (b *breaker) retryAt() time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	if State(b.state.Load()) != Open {
		return time.Time{}
	}
	return b.openUntil
}

func (b *breaker) info() (trips int, openUntil time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.trips, b.openUntil
}

// setDisabled applies the manual override and returns the state change it makes.
func (b *breaker) setDisabled(now time.Time, d bool) *transition {
	if b.disabled.Swap(d) == d {
		return nil
	}
	st := State(b.state.Load())
	if d {
		return &transition{st, Disabled}
	}
	if st == Healthy {
		b.recovered.Store(now.UnixNano()) // failback is gradual after a manual enable too
	}
	return &transition{Disabled, st}
}
