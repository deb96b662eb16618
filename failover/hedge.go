package failover

import (
	"errors"
	"math"
	"slices"
	"sync"
	"time"
)

// Hedging (SPEC.md section 9). When an attempt has not produced its first byte after the hedge delay,
// the same request also starts in the next available region; the first of the two to produce a first
// byte (a stream's first events, or a non-streaming answer's headers) wins and the other is cancelled
// at once. The attempt that was waited for and lost stayed silent past the delay: that counts against
// its region like a timeout. One hedge per request at most, and a budget caps hedges as a share of all
// requests (with a floor of one per second), so an outage cannot double the load.
//
// The delay is learned per deployment in each region from its recent time to first byte (streams) or
// to the whole answer (non-streaming requests, such as embeddings, whose answer comes at once): the
// 95th percentile of the last samples, within MinDelay and MaxDelay; 2 s until there are enough.

// Errors set as the cause of a hedged attempt's cancellation.
var (
	// errLostBySilence: the attempt waited for had no first byte when the hedge produced one.
	errLostBySilence = errors.New("no first byte before the hedge in another region answered")
	// errHedgeSettled: the other attempt of the pair won, or the request ended; nothing to hold against.
	errHedgeSettled = errors.New("hedge settled by the other attempt")
	// errRegionOpened: the region's breaker opened while the attempt waited for its first byte.
	errRegionOpened = errors.New("the region was taken out of service while the attempt waited")
)

// Hedge outcomes, the values of HedgeEvent.Outcome and of lifeline_hedges_total's outcome label.
const (
	HedgeWon      = "won"       // the hedge produced the first byte; the attempt waited for was cancelled
	HedgeLost     = "lost"      // the attempt waited for answered first; the hedge was cancelled
	HedgeFailed   = "failed"    // the hedge failed (the attempt waited for went on alone)
	HedgeNoBudget = "no_budget" // a hedge was due but the budget was spent
)

// HedgeEvent is sent when a hedge is decided.
type HedgeEvent struct {
	Name     string
	From, To string        // the region waited for, and the region of the hedge
	Delay    time.Duration // how long the first attempt had been waiting
	Outcome  string        // HedgeWon, HedgeLost, HedgeFailed, HedgeNoBudget
	// MidStream: an early resume of a stream gone quiet mid-way (quiet.go), not a wait for a first
	// byte; Delay is then the quiet bound. Won: the other region answered while From stayed silent.
	MidStream bool
}

// hedgeOps are the operations that hedge: generation and embeddings. Images and audio cost too much
// to run twice, and requests without a name have nowhere else to go.
var hedgeOps = map[string]bool{"chat/completions": true, "completions": true, "responses": true, "embeddings": true}

// latencySamples is how many recent samples the learned delay looks at.
const latencySamples = 64

// minSamples is how many samples the learned delay needs; before that it is defaultHedgeDelay.
const minSamples = 8

// defaultHedgeDelay is the delay until a deployment has samples.
const defaultHedgeDelay = 2 * time.Second

// latencySketch keeps the recent latencies of one deployment in one region and their 95th percentile.
type latencySketch struct {
	mu    sync.Mutex
	ring  [latencySamples]time.Duration
	n     int // samples ever added
	p95   time.Duration
	dirty int // samples added since p95 was computed
}

func (s *latencySketch) add(d time.Duration) {
	s.mu.Lock()
	s.ring[s.n%latencySamples] = d
	s.n++
	s.dirty++
	s.mu.Unlock()
}

// percentile95 returns the 95th percentile of the recent samples and whether there are enough.
func (s *latencySketch) percentile95() (time.Duration, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n < minSamples {
		return 0, false
	}
	if s.dirty > 0 && (s.dirty >= 4 || s.p95 == 0) {
		var buf [latencySamples]time.Duration
		k := copy(buf[:], s.ring[:min(s.n, latencySamples)])
		v := buf[:k]
		slices.Sort(v)
		s.p95 = v[int(math.Ceil(0.95*float64(k)))-1]
		s.dirty = 0
	}
	return s.p95, true
}

// hedgeBudget is a token bucket of hedges: each eligible request adds Budget tokens, time adds one
// per second (the floor), a hedge takes one. It holds at most hedgeBurst.
type hedgeBudget struct {
	mu     sync.Mutex
	tokens float64
	last   time.Time
}

const hedgeBurst = 10

func newHedgeBudget() *hedgeBudget { return &hedgeBudget{tokens: hedgeBurst} }

func (b *hedgeBudget) refill(now time.Time) {
	if !b.last.IsZero() {
		b.tokens += now.Sub(b.last).Seconds()
	}
	b.last = now
	b.tokens = min(b.tokens, hedgeBurst)
}

// request counts one request that could hedge.
func (b *hedgeBudget) request(now time.Time, share float64) {
	b.mu.Lock()
	b.refill(now)
	b.tokens = min(b.tokens+share, hedgeBurst)
	b.mu.Unlock()
}

// take spends a hedge if the budget allows it.
func (b *hedgeBudget) take(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(now)
	if b.tokens < 1-1e-9 { // ten requests at 0.1 make one hedge, floating point aside
		return false
	}
	b.tokens--
	return true
}

// hedgeDelay is how long an attempt in r for tg waits for its first byte before a hedge starts.
func (rt *roundTrip) hedgeDelay(tg *target) time.Duration {
	hp := rt.p.Hedge
	if hp.Delay > 0 {
		return hp.Delay
	}
	d := defaultHedgeDelay
	if tg != nil {
		if p, ok := tg.state.sketch(rt.streamed()).percentile95(); ok {
			d = p
		}
	}
	return min(max(d, hp.MinDelay), hp.MaxDelay)
}

// hedging reports whether this request may hedge at all.
func (rt *roundTrip) hedging() bool {
	return rt.p.Hedge.Delay >= 0 && rt.name != "" && hedgeOps[rt.in.op]
}

// hedge is the second attempt of a request, running on its own goroutine.
type hedge struct {
	a    *attempt
	from *region
	wait time.Duration
	res  chan attemptResult // its result, once
}

// hedgeState is the state of a request's hedge, guarded by roundTrip.hmu.
type hedgeState uint8

const (
	hedgeIdle    hedgeState = iota // no timer
	hedgeArmed                     // the timer runs for the attempt in flight
	hedgeRunning                   // the hedge runs
	hedgeUsed                      // the request has had its hedge (or its chance of one)
)

// attemptHedged runs an attempt in r; if it has no first byte after the hedge delay, a hedge starts
// in the first available region of rest. It returns the winner's result, or the first attempt's
// failure after noting the hedge's.
func (rt *roundTrip) attemptHedged(r *region, tg *target, tk ticket, rest []*region) attemptResult {
	a := rt.newAttempt(r, tg, tk, false)
	var timer *time.Timer
	if rt.hedging() {
		rt.hmu.Lock()
		if rt.hstate == hedgeIdle {
			rt.hstate = hedgeArmed
			rt.hgen++
			if rt.hgen == 1 {
				rt.t.hedges.request(rt.t.clock.Now(), rt.p.Hedge.Budget)
			}
			delay, gen := rt.hedgeDelay(tg), rt.hgen
			timer = time.AfterFunc(delay, func() { rt.startHedge(gen, a, rest, delay) })
		}
		rt.hmu.Unlock()
	}
	res := a.run()
	if timer == nil {
		return res
	}
	timer.Stop()
	rt.hmu.Lock()
	h := rt.hrun
	if rt.hstate == hedgeArmed {
		rt.hstate = hedgeIdle // the next attempt of this request may still hedge
	}
	rt.hmu.Unlock()
	if h == nil {
		return res
	}
	return rt.settleHedge(a, res, h)
}

// startHedge runs on the timer: the attempt waited for has had no first byte for delay. gen tells
// this timer from one armed for a later attempt of the request.
func (rt *roundTrip) startHedge(gen int, first *attempt, rest []*region, delay time.Duration) {
	rt.hmu.Lock()
	defer rt.hmu.Unlock()
	if rt.hstate != hedgeArmed || rt.hgen != gen {
		return
	}
	rt.hstate = hedgeUsed
	now := rt.t.clock.Now()
	to, tk := rt.firstAvailable(rest, nil, now)
	if to == nil {
		return // nowhere to hedge to
	}
	if !rt.t.hedges.take(now) {
		tk.done(now, Verdict{Outcome: OutcomeCanceled})
		rt.t.obs.Hedge(HedgeEvent{Name: rt.name, From: first.r.cfg.Name, To: to.cfg.Name, Delay: delay, Outcome: HedgeNoBudget})
		return
	}
	h := &hedge{a: rt.newAttempt(to, to.targets[rt.name], tk, true), from: first.r, wait: delay, res: make(chan attemptResult, 1)}
	rt.hrun = h
	go func() {
		res := h.a.run()
		if res.final && res.resp != nil && rt.winner.CompareAndSwap(0, 2) {
			first.cancel(errLostBySilence) // the first attempt stayed silent: it lost
		}
		h.res <- res
	}()
}

// firstAvailable takes a ticket from the first region of cands, skip aside, that is available for
// this request now; nil when none is. It notes nothing on the request (hedges run on their own
// goroutines).
func (rt *roundTrip) firstAvailable(cands []*region, skip *region, now time.Time) (*region, ticket) {
	for _, r := range cands {
		if r == skip {
			continue
		}
		if why, _ := r.check(r.targets[rt.name], now); why != isAvailable {
			continue
		}
		if tk, ok := r.h.breaker.acquireKind(now, rt.kind()); ok {
			return r, tk
		}
	}
	return nil, ticket{}
}

// settleHedge decides between the first attempt's result and the hedge's.
func (rt *roundTrip) settleHedge(first *attempt, res attemptResult, h *hedge) attemptResult {
	ev := HedgeEvent{Name: rt.name, From: first.r.cfg.Name, To: h.a.r.cfg.Name, Delay: h.wait}
	if res.final && res.resp != nil && rt.winner.CompareAndSwap(0, 1) {
		h.a.cancel(errHedgeSettled)
		go discardResult(h.res)
		ev.Outcome = HedgeLost
		rt.t.obs.Hedge(ev)
		return res
	}
	if res.final && res.resp == nil { // the caller went away
		h.a.cancel(errHedgeSettled)
		go discardResult(h.res)
		return res
	}
	if res.resp != nil { // the hedge won by a hair: this answer goes nowhere
		res.resp.Body.Close()
	}
	hres := <-h.res
	if hres.final {
		ev.Outcome = HedgeWon
		rt.t.obs.Hedge(ev)
		return hres
	}
	ev.Outcome = HedgeFailed
	rt.t.obs.Hedge(ev)
	rt.note(h.a.r, hres.verdict)
	rt.skip = h.a.r // it just failed this request: the plan need not try it again
	return res
}

// discardResult closes the response of an attempt nobody wants.
func discardResult(ch chan attemptResult) {
	if res := <-ch; res.resp != nil {
		res.resp.Body.Close()
	}
}

// sketch returns the latency samples of a deployment for streamed attempts (time to first events)
// or for the others (time to the answer's headers).
func (d *deploymentState) sketch(streamed bool) *latencySketch {
	if streamed {
		return &d.firstByte
	}
	return &d.answer
}
