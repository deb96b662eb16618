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

func testBreaker() *breaker {
	return newBreaker(Policy{Breaker: BreakerPolicy{Failures: 3, OpenFor: 10 * time.Second, MaxOpenFor: 35 * time.Second,
		Window: 10 * time.Second, MinRequests: 10, SlowStart: 20 * time.Second}}.WithDefaults().Breaker)
}

func TestBreakerConsecutiveFailuresOpen(t *testing.T) {
	c := newManualClock()
	b := testBreaker()
	for i := range 2 {
		if tr := b.record(c.Now(), false, true, false); tr != nil {
			t.Fatalf("failure %d tripped", i+1)
		}
	}
	b.record(c.Now(), false, false, false) // a success resets the count
	b.record(c.Now(), false, true, false)
	b.record(c.Now(), false, true, false)
	if b.State() != Healthy {
		t.Fatal("tripped without 3 consecutive failures")
	}
	tr := b.record(c.Now(), false, true, false)
	if tr == nil || tr.to != Open || b.State() != Open {
		t.Fatalf("third consecutive failure: %+v, state %v", tr, b.State())
	}
	if ok, _, _ := b.acquire(c.Now()); ok {
		t.Fatal("open breaker let an attempt through")
	}
	// After open_for exactly one probe goes.
	c.Add(10 * time.Second)
	ok, probe, tr := b.acquire(c.Now())
	if !ok || !probe || tr == nil || tr.to != HalfOpen {
		t.Fatalf("after open_for: ok=%v probe=%v tr=%+v", ok, probe, tr)
	}
	if ok, _, _ := b.acquire(c.Now()); ok {
		t.Fatal("second attempt while the probe is in flight")
	}
	// A failed probe opens it for twice as long.
	b.record(c.Now(), true, true, false)
	c.Add(19 * time.Second)
	if ok, _, _ := b.acquire(c.Now()); ok {
		t.Fatal("second trip did not lengthen open_for")
	}
	c.Add(time.Second)
	if ok, probe, _ := b.acquire(c.Now()); !ok || !probe {
		t.Fatal("no probe after 2*open_for")
	}
	// Third trip: 40s, capped at MaxOpenFor 35s.
	b.record(c.Now(), true, true, false)
	if _, until := b.info(); until.Sub(c.Now()) != 35*time.Second {
		t.Fatalf("third trip open for %v, want the 35s cap", until.Sub(c.Now()))
	}
	c.Add(35 * time.Second)
	b.acquire(c.Now())
	if tr := b.record(c.Now(), true, false, false); tr == nil || tr.to != Healthy {
		t.Fatalf("successful probe: %+v", tr)
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

func TestBreakerFailureRate(t *testing.T) {
	c := newManualClock()
	b := testBreaker()
	// Alternate success and failure: never 3 in a row, but 50% over the window.
	var tr *transition
	for i := 0; i < 10 && tr == nil; i++ {
		tr = b.record(c.Now(), false, i%2 == 1, false)
		c.Add(100 * time.Millisecond)
	}
	if tr == nil || tr.to != Open {
		t.Fatalf("50%% failures over 10 attempts did not trip: %v", b.State())
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

func TestBreakerNeutralReleasesProbe(t *testing.T) {
	c := newManualClock()
	b := testBreaker()
	for range 3 {
		b.record(c.Now(), false, true, false)
	}
	c.Add(10 * time.Second)
	if ok, probe, _ := b.acquire(c.Now()); !ok || !probe {
		t.Fatal("no probe")
	}
	b.record(c.Now(), true, false, true) // caller went away: undecided
	if b.State() != HalfOpen {
		t.Fatalf("state %v after a neutral probe", b.State())
	}
	if ok, probe, _ := b.acquire(c.Now()); !ok || !probe {
		t.Fatal("probe slot not released")
	}
}

func TestBreakerDisableWins(t *testing.T) {
	c := newManualClock()
	b := testBreaker()
	if tr := b.setDisabled(c.Now(), true); tr == nil || tr.from != Healthy || tr.to != Disabled {
		t.Fatalf("disable: %+v", tr)
	}
	if ok, _, _ := b.acquire(c.Now()); ok || b.available(c.Now()) {
		t.Fatal("disabled region available")
	}
	if tr := b.setDisabled(c.Now(), true); tr != nil {
		t.Fatal("second disable reported a change")
	}
	// Failures while disabled still count but are not reported as changes.
	for range 3 {
		if tr := b.record(c.Now(), false, true, false); tr != nil {
			t.Fatalf("change reported while disabled: %+v", tr)
		}
	}
	if b.State() != Disabled {
		t.Fatal("automatic state overrode disable")
	}
	if tr := b.setDisabled(c.Now(), false); tr == nil || tr.to != Open {
		t.Fatalf("enable: %+v", tr)
	}
}
