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
	HalfOpen State = 1 // open_for passed (or a probe answered): one trial request decides
	Open     State = 2 // out of service until open_for passes or a probe answers
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

// Reasons a breaker gives for a change of state that no attempt outcome explains. A change caused by an
// attempt carries that attempt's outcome name (`timeout`, `stream_error`, `ok`...).
const (
	ReasonOpenForPassed = "open_for_passed" // open -> half_open: the time out ran out; the next request is the trial
	ReasonProbeOK       = "probe_ok"        // open -> half_open: an active probe got an answer
	ReasonProbeFailed   = "probe_failed"    // half_open -> open: an active probe failed during the trial
	ReasonFailureRate   = "failure_rate"    // healthy -> open: the failed share within the window reached the limit
	ReasonManual        = "manual"          // disabled / enabled by hand
	ReasonShared        = "shared"          // applied from another replica (ApplyRegionEvent)
)

// windowBuckets is the resolution of the failure-rate window.
const windowBuckets = 10

type bucket struct {
	start      int64 // unix nanos of the bucket's start
	ok, failed uint32
}

// transition is a state change, reported to the breaker's notify hook outside any lock.
type transition struct {
	from, to State
	reason   string
	until    time.Time // Open: when a trial may go
	shared   bool      // applied from outside (ApplyRegionEvent), not decided here
}

// breaker is one region's circuit breaker. It owns its accounting: an attempt asks acquire for a
// ticket and reports how it ended exactly once with ticket.done; the breaker alone decides what an
// outcome means for the region's health and reports its own changes of state (gobreaker's two-step
// Allow). Consecutive failures or a failure rate over a window open it; after openFor, or as soon as
// an active probe gets an answer, a single trial request decides; each failed trial lengthens openFor
// up to MaxOpenFor. Manual disable sits on top of it and wins.
type breaker struct {
	p      BreakerPolicy
	notify func(transition) // called outside the lock; nil: nobody listens

	state    atomic.Int32 // State without the manual override: Healthy, HalfOpen, Open
	disabled atomic.Bool

	mu sync.Mutex
	// consecutive counts failures in a row: [kindAll] of every attempt, and per kind of attempt (streamed
	// or not), so that the successes of one kind do not hide that every attempt of the other fails
	// (embeddings answering while every stream breaks).
	consecutive [3]int
	trips       int       // consecutive trips without a lasting recovery
	tripKind    int       // the kind of attempt whose failures opened it: only that kind may be the trial
	openUntil   time.Time // while Open
	trial       uint64    // generation of the half-open trial in flight (0: none)
	trialSeq    uint64
	since       time.Time    // when the current state was entered
	reason      string       // why
	recovered   atomic.Int64 // unix nanos: start of slow start (0: none)
	slowStart   atomic.Int64 // policy SlowStart, readable without the lock
	window      [windowBuckets]bucket
}

// ticket is one admitted attempt. done must be called exactly once, when the attempt ended.
type ticket struct {
	b     *breaker
	trial uint64 // non-zero: this attempt is the half-open trial of that generation
	kind  int    // kindStreamed or kindOther: failures in a row are also counted per kind
}

// Kinds of attempts, for counting failures in a row.
const (
	kindOther    = 0
	kindStreamed = 1
	kindAll      = 2
)

func newBreaker(p BreakerPolicy) *breaker {
	b := &breaker{tripKind: kindAll}
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

// available reports whether the region may be tried now without taking the trial slot.
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
	return st == Open && !now.Before(b.openUntil) || st == HalfOpen && b.trial == 0
}

// acquire asks to send an attempt now. The ticket's trial field says the attempt is the half-open
// trial that decides whether the region comes back.
func (b *breaker) acquire(now time.Time) (ticket, bool) { return b.acquireKind(now, kindOther) }

// acquireKind is acquire for an attempt of a kind (kindStreamed or kindOther). A region that every
// attempt of one kind failed takes only that kind as its trial: its other answers prove nothing.
func (b *breaker) acquireKind(now time.Time, kind int) (ticket, bool) {
	switch b.State() {
	case Healthy:
		return ticket{b: b, kind: kind}, true
	case Disabled:
		return ticket{}, false
	}
	var tr *transition
	b.mu.Lock()
	tk, ok := b.acquireLocked(now, kind, &tr)
	b.mu.Unlock()
	b.emit(tr)
	return tk, ok
}

func (b *breaker) acquireLocked(now time.Time, kind int, tr **transition) (ticket, bool) {
	switch State(b.state.Load()) {
	case Healthy:
		return ticket{b: b, kind: kind}, true
	case Open:
		if now.Before(b.openUntil) {
			return ticket{}, false
		}
		*tr = b.setState(now, HalfOpen, ReasonOpenForPassed)
	}
	if b.trial != 0 || b.tripKind != kindAll && kind != b.tripKind {
		return ticket{}, false
	}
	b.trialSeq++
	b.trial = b.trialSeq
	return ticket{b: b, trial: b.trial, kind: kind}, true
}

// healthOf is what one attempt's verdict means for its region: a failure, nothing (the caller went
// away), or a success (the region answered, whatever it answered).
func healthOf(v Verdict) (failed, neutral bool) {
	switch {
	case v.Outcome == OutcomeCanceled:
		return false, true
	case v.Scope == ScopeRegion:
		return true, false
	}
	return false, false
}

// done reports how the attempt ended. A failure that counts against the region (Verdict.Scope
// ScopeRegion) adds to the consecutive count and the window; OutcomeCanceled decides nothing and
// frees the trial slot; anything else is a success.
func (t ticket) done(now time.Time, v Verdict) {
	b := t.b
	if b == nil {
		return
	}
	failed, neutral := healthOf(v)
	b.mu.Lock()
	tr := b.doneLocked(now, t.trial, t.kind, v.Outcome, failed, neutral)
	b.mu.Unlock()
	b.emit(tr)
}

func (b *breaker) doneLocked(now time.Time, trial uint64, kind int, o Outcome, failed, neutral bool) *transition {
	isTrial := trial != 0 && trial == b.trial
	if isTrial {
		b.trial = 0
	}
	if neutral {
		return nil
	}
	b.count(now, failed)
	st := State(b.state.Load())
	if !failed {
		b.consecutive[kind], b.consecutive[kindAll] = 0, 0
		if st == HalfOpen && isTrial {
			b.recovered.Store(now.UnixNano())
			b.resetWindow()
			return b.setState(now, Healthy, o.String())
		}
		return nil
	}
	b.consecutive[kind]++
	b.consecutive[kindAll]++
	switch {
	case st == HalfOpen && isTrial:
		return b.trip(now, o.String())
	case st == Healthy && b.consecutive[kindAll] >= b.p.Failures:
		b.tripKind = kindAll
		return b.trip(now, o.String())
	case st == Healthy && b.consecutive[kind] >= b.p.Failures:
		b.tripKind = kind
		return b.trip(now, o.String())
	case st == Healthy && b.rateExceeded(now):
		b.tripKind = kindAll
		return b.trip(now, ReasonFailureRate)
	}
	return nil
}

// trip opens the breaker, for longer after each trip that follows a failed trial.
func (b *breaker) trip(now time.Time, reason string) *transition {
	// A trip long after the last recovery starts the backoff afresh.
	if rec := b.recovered.Load(); State(b.state.Load()) == Healthy && rec != 0 && now.UnixNano()-rec > int64(b.p.MaxOpenFor) {
		b.trips = 0
	}
	b.trips++
	d := b.p.OpenFor
	for i := 1; i < b.trips && d < b.p.MaxOpenFor; i++ {
		d *= 2
	}
	b.openUntil = now.Add(min(d, b.p.MaxOpenFor))
	b.consecutive = [3]int{}
	b.trial = 0
	return b.setState(now, Open, reason)
}

// setState moves the automatic state and returns the change to report (nil while disabled: observers
// see Disabled until Enable).
func (b *breaker) setState(now time.Time, to State, reason string) *transition {
	from := State(b.state.Load())
	b.state.Store(int32(to))
	b.since, b.reason = now, reason
	if b.disabled.Load() || from == to {
		return nil
	}
	tr := &transition{from: from, to: to, reason: reason}
	if to == Open {
		tr.until = b.openUntil
	}
	return tr
}

func (b *breaker) emit(tr *transition) {
	if tr != nil && b.notify != nil {
		b.notify(*tr)
	}
}

// wantsProbe reports whether the region is out of service and not disabled: open, or half-open with
// no trial in flight yet.
func (b *breaker) wantsProbe() bool {
	switch b.State() {
	case Open:
		return true
	case HalfOpen:
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.trial == 0
	}
	return false
}

// probed applies an active probe's result to a region out of service: an answer ends the time out
// at once (half_open: the next request is the trial), a failure keeps it open (and sends a half-open
// region that still waits for its trial back to open).
func (b *breaker) probed(now time.Time, ok bool) {
	if b.disabled.Load() {
		return
	}
	var tr *transition
	b.mu.Lock()
	switch st := State(b.state.Load()); {
	case st == Open && ok:
		tr = b.setState(now, HalfOpen, ReasonProbeOK)
	case st == HalfOpen && !ok && b.trial == 0:
		// The region was given its trial but went away again before any request came.
		b.openUntil = now.Add(b.p.OpenFor)
		tr = b.setState(now, Open, ReasonProbeFailed)
	}
	b.mu.Unlock()
	b.emit(tr)
}

// apply sets a state decided elsewhere (another replica): Open until a time, or Healthy (a recovery,
// with slow start). Disabled is not applied here: manual switches go through setDisabled.
func (b *breaker) apply(now time.Time, to State, until time.Time, reason string) {
	var tr *transition
	b.mu.Lock()
	switch to {
	case Open:
		if !until.After(now) {
			break
		}
		if State(b.state.Load()) == Open && !b.openUntil.Before(until) {
			break // already out for at least as long
		}
		b.openUntil = until
		b.consecutive, b.trial, b.tripKind = [3]int{}, 0, kindAll
		tr = b.setState(now, Open, reason)
	case Healthy:
		if State(b.state.Load()) == Healthy {
			break
		}
		b.consecutive, b.trial = [3]int{}, 0
		b.recovered.Store(now.UnixNano())
		b.resetWindow()
		tr = b.setState(now, Healthy, reason)
	}
	b.mu.Unlock()
	if tr != nil {
		tr.shared = true
	}
	b.emit(tr)
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

// retryAt is when an open region may next be tried (zero when it is not open).
func (b *breaker) retryAt() time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	if State(b.state.Load()) != Open {
		return time.Time{}
	}
	return b.openUntil
}

// breakerInfo is what the status snapshot shows of a breaker.
type breakerInfo struct {
	trips     int
	openUntil time.Time
	since     time.Time
	reason    string
}

func (b *breaker) info() breakerInfo {
	b.mu.Lock()
	defer b.mu.Unlock()
	return breakerInfo{trips: b.trips, openUntil: b.openUntil, since: b.since, reason: b.reason}
}

// setDisabled applies the manual override and reports the state change it makes.
func (b *breaker) setDisabled(now time.Time, d bool, reason string) {
	if b.disabled.Swap(d) == d {
		return
	}
	st := State(b.state.Load())
	if d {
		b.emit(&transition{from: st, to: Disabled, reason: reason})
		return
	}
	if st == Healthy {
		b.recovered.Store(now.UnixNano()) // failback is gradual after a manual enable too
	}
	tr := &transition{from: Disabled, to: st, reason: reason}
	if st == Open {
		tr.until = b.retryAt()
	}
	b.emit(tr)
}
