package failover

import (
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
