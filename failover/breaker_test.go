package failover

import (
	"sync"
	"testing"
	"time"
)

// manualClock is a Clock a test moves by hand.
type manualClock struct {
	mu  sync.Mutex
	now time.Time
}

func newManualClock() *manualClock {
	return &manualClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func testBreaker() (*breaker, *[]transition) {
	b := newBreaker(Policy{Breaker: BreakerPolicy{Failures: 3, OpenFor: 10 * time.Second, MaxOpenFor: 35 * time.Second,
		Window: 10 * time.Second, MinRequests: 10, SlowStart: 20 * time.Second}}.WithDefaults().Breaker)
	var seen []transition
	b.notify = func(tr transition) { seen = append(seen, tr) }
	return b, &seen
}

var (
	vOK      = Verdict{Outcome: OutcomeOK}
	vFail    = Verdict{Outcome: OutcomeTimeout, Scope: ScopeRegion}
	vCancel  = Verdict{Outcome: OutcomeCanceled}
	vCut     = Verdict{Outcome: OutcomeStreamError, Scope: ScopeRegion}
	vThrottl = Verdict{Outcome: OutcomeThrottled, Scope: ScopeDeployment}
)

// attempt takes a ticket and ends it with v at once.
func attemptWith(t *testing.T, b *breaker, now time.Time, v Verdict) ticket {
	t.Helper()
	tk, ok := b.acquire(now)
	if !ok {
		t.Fatalf("acquire refused in state %v", b.State())
	}
	tk.done(now, v)
	return tk
}

func last(seen *[]transition) transition {
	if len(*seen) == 0 {
		return transition{}
	}
	return (*seen)[len(*seen)-1]
}

func TestBreakerConsecutiveFailuresOpen(t *testing.T) {
	c := newManualClock()
	b, seen := testBreaker()
	attemptWith(t, b, c.Now(), vFail)
	attemptWith(t, b, c.Now(), vFail)
	attemptWith(t, b, c.Now(), vThrottl) // the region answered: a success for its health
	attemptWith(t, b, c.Now(), vFail)
	attemptWith(t, b, c.Now(), vCancel) // the caller went away: decides nothing
	attemptWith(t, b, c.Now(), vFail)
	if b.State() != Healthy || len(*seen) != 0 {
		t.Fatalf("tripped without 3 consecutive failures: %v %v", b.State(), *seen)
	}
	attemptWith(t, b, c.Now(), vCut)
	tr := last(seen)
	if b.State() != Open || tr.to != Open || tr.reason != "stream_error" || !tr.until.Equal(c.Now().Add(10*time.Second)) {
		t.Fatalf("third consecutive failure: %v, %+v", b.State(), tr)
	}
	if _, ok := b.acquire(c.Now()); ok {
		t.Fatal("open breaker let an attempt through")
	}
	// After open_for exactly one trial goes.
	c.Add(10 * time.Second)
	trial, ok := b.acquire(c.Now())
	if !ok || trial.trial == 0 || last(seen).to != HalfOpen || last(seen).reason != ReasonOpenForPassed {
		t.Fatalf("after open_for: ok=%v trial=%v %+v", ok, trial.trial, last(seen))
	}
	if _, ok := b.acquire(c.Now()); ok {
		t.Fatal("second attempt while the trial is in flight")
	}
	// A failed trial opens it for twice as long.
	trial.done(c.Now(), vFail)
	c.Add(19 * time.Second)
	if _, ok := b.acquire(c.Now()); ok {
		t.Fatal("second trip did not lengthen open_for")
	}
	c.Add(time.Second)
	trial, ok = b.acquire(c.Now())
	if !ok || trial.trial == 0 {
		t.Fatal("no trial after 2*open_for")
	}
	// Third trip: 40s, capped at MaxOpenFor 35s.
	trial.done(c.Now(), vFail)
	if bi := b.info(); bi.openUntil.Sub(c.Now()) != 35*time.Second || bi.trips != 3 {
		t.Fatalf("third trip open for %v, want the 35s cap", bi.openUntil.Sub(c.Now()))
	}
	c.Add(35 * time.Second)
	attemptWith(t, b, c.Now(), vOK)
	if tr := last(seen); b.State() != Healthy || tr.to != Healthy || tr.reason != "ok" {
		t.Fatalf("successful trial: %v %+v", b.State(), tr)
	}
	// Slow start: the recovered region ramps from 10% to full over 20s.
	if f := b.rampFactor(c.Now()); f != 0.1 {
		t.Errorf("ramp right after recovery = %v, want 0.1", f)
	}
	c.Add(10 * time.Second)
	if f := b.rampFactor(c.Now()); f != 0.5 {
		t.Errorf("ramp halfway = %v, want 0.5", f)
	}
	c.Add(10 * time.Second)
	if f := b.rampFactor(c.Now()); f != 1 {
		t.Errorf("ramp after slow start = %v", f)
	}
}

// TestBreakerTrialEndsWithTheAttempt: the half-open trial is decided when the attempt ends (a stream at
// its end), not when its headers came; attempts from before the trip decide nothing about the trial.
func TestBreakerTrialEndsWithTheAttempt(t *testing.T) {
	c := newManualClock()
	b, _ := testBreaker()
	old, _ := b.acquire(c.Now()) // a stream started while healthy, still going
	for range 3 {
		attemptWith(t, b, c.Now(), vFail)
	}
	c.Add(10 * time.Second)
	trial, ok := b.acquire(c.Now())
	if !ok || trial.trial == 0 {
		t.Fatal("no trial")
	}
	old.done(c.Now(), vOK) // the old stream completes: not the trial
	if b.State() != HalfOpen {
		t.Fatalf("an attempt from before the trip closed the breaker: %v", b.State())
	}
	if _, ok := b.acquire(c.Now()); ok {
		t.Fatal("trial slot free while the trial is in flight")
	}
	trial.done(c.Now(), vCut) // the trial's stream broke half-way
	if b.State() != Open {
		t.Fatalf("a trial whose stream broke: %v", b.State())
	}
}

func TestBreakerFailureRate(t *testing.T) {
	c := newManualClock()
	b, seen := testBreaker()
	// Alternate success and failure: never 3 in a row, but 50% over the window.
	for i := 0; i < 10 && b.State() == Healthy; i++ {
		v := vOK
		if i%2 == 1 {
			v = vFail
		}
		attemptWith(t, b, c.Now(), v)
		c.Add(100 * time.Millisecond)
	}
	if b.State() != Open || last(seen).reason != ReasonFailureRate {
		t.Fatalf("50%% failures over 10 attempts did not trip: %v %+v", b.State(), *seen)
	}
	rate, n := b.errorRate(c.Now())
	if n != 10 || rate != 0.5 {
		t.Errorf("errorRate = %v over %d", rate, n)
	}
	// Failures older than the window no longer count.
	c.Add(11 * time.Second)
	if _, n := b.errorRate(c.Now()); n != 0 {
		t.Errorf("window kept %d old attempts", n)
	}
}

func TestBreakerNeutralReleasesTrial(t *testing.T) {
	c := newManualClock()
	b, _ := testBreaker()
	for range 3 {
		attemptWith(t, b, c.Now(), vFail)
	}
	c.Add(10 * time.Second)
	tk, ok := b.acquire(c.Now())
	if !ok || tk.trial == 0 {
		t.Fatal("no trial")
	}
	tk.done(c.Now(), vCancel) // caller went away: undecided
	if b.State() != HalfOpen {
		t.Fatalf("state %v after a neutral trial", b.State())
	}
	if tk, ok := b.acquire(c.Now()); !ok || tk.trial == 0 {
		t.Fatal("trial slot not released")
	}
}

func TestBreakerDisableWins(t *testing.T) {
	c := newManualClock()
	b, seen := testBreaker()
	b.setDisabled(c.Now(), true, ReasonManual)
	if tr := last(seen); tr.from != Healthy || tr.to != Disabled || tr.reason != ReasonManual {
		t.Fatalf("disable: %+v", tr)
	}
	if _, ok := b.acquire(c.Now()); ok || b.available(c.Now()) {
		t.Fatal("disabled region available")
	}
	b.setDisabled(c.Now(), true, ReasonManual)
	if len(*seen) != 1 {
		t.Fatal("second disable reported a change")
	}
	// Failures while disabled (attempts that started before) still count but are not reported.
	for range 3 {
		tk := ticket{b: b}
		tk.done(c.Now(), vFail)
	}
	if b.State() != Disabled || len(*seen) != 1 {
		t.Fatalf("automatic state overrode disable: %v %v", b.State(), *seen)
	}
	b.setDisabled(c.Now(), false, ReasonManual)
	if tr := last(seen); tr.to != Open || tr.until.IsZero() {
		t.Fatalf("enable: %+v", tr)
	}
}

// TestBreakerProbes: an active probe's answer ends the time out at once (the next request is the trial);
// a failed probe keeps the region open.
func TestBreakerProbes(t *testing.T) {
	c := newManualClock()
	b, seen := testBreaker()
	for range 3 {
		attemptWith(t, b, c.Now(), vFail)
	}
	b.probed(c.Now(), false)
	if b.State() != Open {
		t.Fatalf("failed probe: %v", b.State())
	}
	c.Add(time.Second)
	b.probed(c.Now(), true)
	if tr := last(seen); b.State() != HalfOpen || tr.reason != ReasonProbeOK {
		t.Fatalf("probe answered: %v %+v", b.State(), tr)
	}
	// The region goes away again before any request came: open again.
	b.probed(c.Now(), false)
	if tr := last(seen); b.State() != Open || tr.reason != ReasonProbeFailed {
		t.Fatalf("failed probe while waiting for the trial: %v %+v", b.State(), tr)
	}
	b.probed(c.Now(), true)
	attemptWith(t, b, c.Now(), vOK)
	if b.State() != Healthy || b.rampFactor(c.Now()) != 0.1 {
		t.Fatalf("trial after a probe: %v ramp %v", b.State(), b.rampFactor(c.Now()))
	}
}

// TestBreakerApply: a trip or a recovery decided by another replica.
func TestBreakerApply(t *testing.T) {
	c := newManualClock()
	b, seen := testBreaker()
	until := c.Now().Add(7 * time.Second)
	b.apply(c.Now(), Open, until, "eastus: timeout")
	if tr := last(seen); b.State() != Open || !tr.shared || !tr.until.Equal(until) || tr.reason != "eastus: timeout" {
		t.Fatalf("shared trip: %v %+v", b.State(), tr)
	}
	b.apply(c.Now(), Open, c.Now().Add(time.Second), "shorter")
	if !b.info().openUntil.Equal(until) || len(*seen) != 1 {
		t.Fatal("a shorter shared trip shortened the time out")
	}
	c.Add(7 * time.Second)
	if _, ok := b.acquire(c.Now()); !ok {
		t.Fatal("no trial after the shared time out")
	}
	b.apply(c.Now(), Healthy, time.Time{}, ReasonShared)
	if tr := last(seen); b.State() != Healthy || !tr.shared || b.rampFactor(c.Now()) != 0.1 {
		t.Fatalf("shared recovery: %v %+v ramp %v", b.State(), tr, b.rampFactor(c.Now()))
	}
}

// TestBreakerCountsPerKind: a region that fails every stream leaves rotation after Failures streams even
// when the non-streamed attempts between them succeed.
func TestBreakerCountsPerKind(t *testing.T) {
	c := newManualClock()
	b, _ := testBreaker()
	for i := range 3 {
		if b.State() != Healthy {
			t.Fatalf("open after %d broken streams", i)
		}
		tk, _ := b.acquireKind(c.Now(), kindStreamed)
		tk.done(c.Now(), vCut)
		if i < 2 {
			attemptWith(t, b, c.Now(), vOK) // an embedding answers in between
		}
	}
	if b.State() != Open {
		t.Fatalf("3 streams broke in a row, with successes of another kind between them: %v", b.State())
	}
	// Its trial is a stream: an embedding's answer proves nothing about streams.
	c.Add(10 * time.Second)
	if _, ok := b.acquireKind(c.Now(), kindOther); ok {
		t.Fatal("a trial of the other kind")
	}
	tk, ok := b.acquireKind(c.Now(), kindStreamed)
	if !ok || tk.trial == 0 {
		t.Fatal("no stream trial")
	}
	tk.done(c.Now(), vOK)
	if b.State() != Healthy {
		t.Fatalf("after a stream trial that ended well: %v", b.State())
	}
}
