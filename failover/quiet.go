package failover

import (
	"errors"
	"net/http"
	"sync"
	"time"
)

// A stream that stalls mid-way is only cut after Timeouts.StreamIdle (60 s by default): a model may
// legitimately pause that long (a reasoning model thinking between its first chunk and its answer).
// Once a deployment has been seen to stall in a region, that patience is spent: for stalledFor after
// its last stall, a read of one of its streams that waits longer than the quiet bound is a stall too.
// So a region that stalls streams costs the first ones the idle timeout, and every later one (other
// streams in flight, new requests until its breaker opens, the trial requests after a probe) about
// the quiet bound, which is learned like the hedge delay: twice the 95th percentile of the longest
// wait within each recent complete stream of that deployment, within [quietFloor, Hedge.MaxDelay],
// defaultHedgeDelay until there are samples, never more than StreamIdle. A complete stream clears
// the mark.

// stalledFor is how long a deployment counts as seen stalling after its last stall.
const stalledFor = 5 * time.Minute

// quietFloor is the lowest quiet bound: a loaded machine's pauses must not cut healthy streams.
const quietFloor = time.Second

// stalled reports whether the deployment was seen stalling mid-stream recently.
func (s *deploymentState) stalled(now time.Time) bool {
	return now.UnixNano() < s.stalledUntil.Load()
}

// stall marks the deployment as seen stalling mid-stream.
func (s *deploymentState) stall(now time.Time) {
	extend(&s.stalledUntil, now.Add(stalledFor).UnixNano())
}

// streamEnded learns from a complete stream: its longest wait on one read, and that the deployment
// streams again.
func (s *deploymentState) streamEnded(longest time.Duration) {
	s.gaps.add(longest)
	if s.quietLosses.Load() != 0 {
		s.quietLosses.Store(0)
	}
	if s.stalledUntil.Load() != 0 {
		s.stalledUntil.Store(0)
	}
}

// quietBound is how long a read of a stream of tg may wait once tg has been seen stalling; 0 when
// there is no bound but StreamIdle.
func (rt *roundTrip) quietBound(tg *target) time.Duration {
	if tg == nil {
		return 0
	}
	d := defaultHedgeDelay
	if p, ok := tg.state.gaps.percentile95(); ok {
		d = 2 * p
	}
	d = min(max(d, quietFloor), max(rt.p.Hedge.MaxDelay, quietFloor))
	if d >= rt.p.Timeouts.StreamIdle {
		return 0
	}
	return d
}

// Early resume. A stream that has waited the quiet bound for its next event, in a deployment not yet
// seen stalling, may be stalling, or may be pausing (a model thinking). The engine does not cut it:
// it starts the resume in the next region at once, while the caller's stream goes on waiting, and
// the first of the two to go on wins.
//
//   - The first region sends its next event first: the early resume is cancelled (the hedge lost);
//     nothing counts against anyone.
//   - The early resume reaches the caller's position and has new output first (replay: the same
//     answer, checked as for any resume): the first region is cut, counted against like a stall, and
//     the caller's stream goes on from the new region, after the quiet bound plus the time the new
//     region took to catch up, instead of timeouts.stream_idle.
//   - The new region's answer differs (a sampled answer): the stream cannot be resumed, and the new
//     region has shown it answers while the first stays silent. That is one stream lost by silence;
//     the first region's stream waits on unless the deployment is now seen stalling.
//
// Each stream lost by silence counts; quietEvidence of them since the deployment's last complete
// stream mark it as seen stalling, and then every read of its streams that waits longer than the
// quiet bound is a stall (those streams are resumed, or end with the error event when their answer
// cannot be). Two and not one, so that one stream pausing long in a healthy region costs nothing but
// its own early resume. An early resume is a hedge: one per stream, within policy.hedge.budget, and
// never when hedging is off (policy.hedge.delay < 0) or the stream cannot be resumed.

// quietEvidence is how many streams lost by silence mark a deployment as seen stalling.
const quietEvidence = 2

// errQuietLost is the cause set on a stream's attempt cut because it stayed quiet while an early
// resume in another region answered.
var errQuietLost = errors.New("quiet mid-stream while another region answered")

// lostBySilence counts a stream of the deployment lost by silence, and reports whether the
// deployment is now seen stalling.
func (s *deploymentState) lostBySilence(now time.Time) bool {
	if s.quietLosses.Add(1) >= quietEvidence {
		s.stall(now)
	}
	return s.stalled(now)
}

// quietHedge is a stream's early resume, run on its own goroutine.
type quietHedge struct {
	b     *resumingBody
	src   *streamBody // the first region's stream
	read  int64       // the start of its read that went quiet (bodyGuard.readStart)
	start time.Time
	done  chan struct{} // closed when the result is set

	mu      sync.Mutex
	a       *attempt    // the early resume's attempt in flight
	asrc    *streamBody // its stream
	stopped bool        // the first region went on, or the stream ended: the early resume lost
	claimed bool        // the first region's stream failed: the caller waits for the result
	sp      *splicer    // the result: ready at the caller's position
	ev      ResumeEvent // the result's event (Outcome "" when nothing came of it)
	tried   []*region   // the regions tried (the run's goroutine writes it before done closes)
}

// startQuiet runs on src's idle timer when its read started at read has waited the quiet bound.
func (b *resumingBody) startQuiet(src *streamBody, read int64) {
	rt := b.rt
	if rt.ctx.Err() != nil || !b.hedgeUsed.CompareAndSwap(false, true) {
		return
	}
	now := rt.t.clock.Now()
	if !rt.t.hedges.take(now) {
		rt.t.obs.Hedge(HedgeEvent{Name: rt.name, From: src.a.r.cfg.Name, Delay: src.quiet, Outcome: HedgeNoBudget, MidStream: true})
		return
	}
	h := &quietHedge{b: b, src: src, read: read, start: time.Now(), done: make(chan struct{})}
	b.hedge.Store(h)
	go h.run()
}

func (h *quietHedge) run() {
	b, rt := h.b, h.b.rt
	from := h.src.a.r
	defer close(h.done)
	log := b.track.log
	log.mu.Lock()
	broken := log.broken
	log.mu.Unlock()
	if broken != "" {
		return
	}
	deadline := h.start.Add(rt.p.Streams.ResumeTimeout)
	var sp *splicer
	var ev ResumeEvent
	for _, r := range b.planWithout(from) {
		if time.Now().After(deadline) || h.isStopped() {
			break
		}
		e, s := b.try(r, from.cfg.Name, deadline, h)
		if e.Outcome == "" {
			continue
		}
		ev, sp = e, s
		if sp != nil || e.Outcome == ResumeDiverged || e.Outcome == ResumeTimedOut || rt.ctx.Err() != nil {
			break
		}
	}
	if ev.Outcome == "" {
		return // no region could take it
	}
	ev.Early = true
	hev := HedgeEvent{Name: rt.name, From: from.cfg.Name, To: ev.To, Delay: h.src.quiet, MidStream: true, Outcome: HedgeFailed}
	h.mu.Lock()
	quiet := !h.stopped && (h.claimed || h.src.readStart.Load() == h.read)
	keep := sp != nil && quiet
	switch {
	case keep:
		h.sp, h.ev = sp, ev
		hev.Outcome = HedgeWon
	case sp != nil || h.stopped:
		hev.Outcome = HedgeLost // the first region went on first
		h.ev = ResumeEvent{}
	case ev.Outcome == ResumeDiverged && quiet:
		h.ev = ev
		hev.Outcome = HedgeWon // the other region answered while this one stayed silent
	default:
		h.ev = ev
	}
	claimed := h.claimed
	h.mu.Unlock()
	if sp != nil && !keep {
		sp.Close()
	}
	rt.t.obs.Hedge(hev)
	if hev.Outcome != HedgeWon || claimed {
		return // a first region that failed on its own has counted against itself
	}
	// The first region stayed silent while the other answered: one stream lost by silence.
	stalled := h.src.a.tg.state.lostBySilence(rt.t.clock.Now())
	if keep || stalled {
		h.src.a.cancel(errQuietLost)
	}
}

func (h *quietHedge) isStopped() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stopped
}

// bind tells the early resume's attempt, so that it can be cancelled; false when it lost already.
func (h *quietHedge) bind(a *attempt) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.a = a
	return !h.stopped
}

// bindStream tells the early resume's stream, so that its cancellation is not the region's failure.
func (h *quietHedge) bindStream(sb *streamBody) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.asrc = sb
	if h.stopped {
		sb.closed.Store(true)
	}
}

// lose ends the early resume because the first region went on (or the stream ended): it is cancelled
// at once, and a result it had already is dropped.
func (h *quietHedge) lose() {
	h.mu.Lock()
	h.stopped = true
	a, asrc, sp := h.a, h.asrc, h.sp
	h.sp = nil
	h.mu.Unlock()
	if sp != nil {
		sp.Close()
		return
	}
	if asrc != nil {
		asrc.closed.Store(true) // our decision, not the region's failure
	}
	if a != nil {
		a.cancel(errHedgeSettled)
	}
}

// claim waits for the early resume's result once the first region's stream failed.
func (h *quietHedge) claim() (*splicer, ResumeEvent) {
	h.mu.Lock()
	h.claimed = true
	h.mu.Unlock()
	<-h.done
	h.mu.Lock()
	defer h.mu.Unlock()
	sp, ev := h.sp, h.ev
	h.sp = nil
	return sp, ev
}

// Early answer. A non-streaming request that goes to its region as a stream (upstream streaming) has
// nothing of it with the caller until the whole answer is reassembled, so its stream can be hedged
// whole: when it has waited the quiet bound, the same request starts in the next available region,
// and the first of the two to complete its answer wins; the other is cancelled at once. A first
// region still silent on the same read when the other completed lost by silence (as above).

// quietAnswer is a request's early answer, run on its own goroutine.
type quietAnswer struct {
	src  *streamBody // the first region's stream
	read int64       // the start of its read that went quiet
	done chan struct{}

	mu      sync.Mutex
	a       *attempt
	stopped bool          // the first region's answer completed first
	res     attemptResult // the early answer (resp not nil) once done
}

// startQuietAnswer runs on src's idle timer when its read started at read has waited the quiet bound.
func (rt *roundTrip) startQuietAnswer(src *streamBody, read int64) {
	if rt.ctx.Err() != nil || !rt.quietAnswerUsed.CompareAndSwap(false, true) {
		return
	}
	from := src.a.r
	now := rt.t.clock.Now()
	var buf [maxCandidates]*region
	to, tk := rt.firstAvailable(rt.t.order(buf[:0], rt.tab.names[rt.name], rt.p, rt.name, now), from, now)
	if to == nil {
		return
	}
	if !rt.t.hedges.take(now) {
		tk.done(now, Verdict{Outcome: OutcomeCanceled})
		rt.t.obs.Hedge(HedgeEvent{Name: rt.name, From: from.cfg.Name, To: to.cfg.Name, Delay: src.quiet, Outcome: HedgeNoBudget, MidStream: true})
		return
	}
	q := &quietAnswer{src: src, read: read, done: make(chan struct{})}
	q.a = rt.newAttempt(to, to.targets[rt.name], tk, true)
	rt.quietAnswer.Store(q)
	go q.run(rt)
}

func (q *quietAnswer) run(rt *roundTrip) {
	defer close(q.done)
	a := q.a
	from := q.src.a.r
	ev := HedgeEvent{Name: rt.name, From: from.cfg.Name, To: a.r.cfg.Name, Delay: q.src.quiet, MidStream: true, Outcome: HedgeFailed}
	res := a.run()
	var ans attemptResult
	if res.final && res.resp != nil {
		if sb, ok := res.resp.Body.(*streamBody); ok && res.resp.StatusCode == http.StatusOK {
			out, err := reassemble(rt.in.op, sb, choicesWanted(rt.in.body), int(min(rt.p.MaxBodyBytes, 1<<31-1)))
			sb.Close()
			if err == nil {
				ans = attemptResult{resp: reassembled(res.resp, out), final: true}
			}
		} else {
			res.resp.Body.Close() // only a whole answer from a stream counts: anything else, the first region gives
		}
	}
	q.mu.Lock()
	quiet := q.src.readStart.Load() == q.read
	keep := ans.resp != nil && !q.stopped
	if keep {
		q.res = ans
		ev.Outcome = HedgeWon
	} else if ans.resp != nil || q.stopped {
		ev.Outcome = HedgeLost // the first region's answer came first
	}
	q.mu.Unlock()
	if ans.resp != nil && !keep {
		ans.resp.Body.Close()
	}
	if rt.ctx.Err() != nil && !keep {
		return
	}
	rt.t.obs.Hedge(ev)
	if keep {
		if quiet {
			q.src.a.tg.state.lostBySilence(rt.t.clock.Now())
		}
		q.src.a.cancel(errQuietLost) // the other region's whole answer came first
	}
}

// settleQuietAnswer decides between the first region's reassembled answer (res) and the request's
// early answer, if one started.
func (rt *roundTrip) settleQuietAnswer(res attemptResult) attemptResult {
	q := rt.quietAnswer.Swap(nil)
	if q == nil {
		return res
	}
	if res.final && res.resp != nil && res.err == nil {
		// The first region's answer came first. An early answer decided already is dropped; one still
		// running sees stopped and drops its own.
		q.mu.Lock()
		q.stopped = true
		ans := q.res
		q.res = attemptResult{}
		q.mu.Unlock()
		if ans.resp != nil {
			ans.resp.Body.Close()
		}
		q.a.cancel(errHedgeSettled)
		return res
	}
	<-q.done
	q.mu.Lock()
	ans := q.res
	q.mu.Unlock()
	if ans.resp != nil {
		if res.resp != nil {
			res.resp.Body.Close()
		}
		return ans
	}
	return res
}
