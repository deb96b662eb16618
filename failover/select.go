package failover

import (
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// rng is the engine's randomness: lock-free (a SplitMix64 sequence on an atomic counter),
// or a caller's seeded source behind a mutex.
type rng interface {
	Uint64() uint64
}

type splitMix struct{ state atomic.Uint64 }

func (s *splitMix) Uint64() uint64 {
	z := s.state.Add(0x9e3779b97f4a7c15)
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

type lockedSource struct {
	mu  sync.Mutex
	src rand.Source
}

func (l *lockedSource) Uint64() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.src.Uint64()
}

// float64n returns a number in [0, 1).
func float64n(r rng) float64 { return float64(r.Uint64()>>11) / (1 << 53) }

// maxCandidates is the stack buffer size for ordering; more regions still work, with an allocation.
const maxCandidates = 8

// order returns cands in the order a request tries them, per the routing mode. Regions that
// are unavailable stay in the list: the attempt loop skips them, and reports why.
func (t *Transport) order(dst, cands []*region, p *Policy, name string, now time.Time) []*region {
	dst = append(dst[:0], cands...)
	switch p.Routing {
	case RoutingWeighted:
		t.weightedShuffle(dst, now)
	case RoutingLatency:
		t.byLatency(dst, name, now)
		return dst
	default:
		for lo := 0; lo < len(dst); {
			hi := lo + 1
			for hi < len(dst) && dst[hi].priority == dst[lo].priority {
				hi++
			}
			t.weightedShuffle(dst[lo:hi], now)
			lo = hi
		}
	}
	t.slowStart(dst, now)
	return dst
}

// weightedShuffle orders rs by weighted random choice without replacement; a region in slow
// start weighs its ramp factor times its weight.
func (t *Transport) weightedShuffle(rs []*region, now time.Time) {
	if len(rs) < 2 {
		return
	}
	var wbuf [maxCandidates]float64
	w := wbuf[:0]
	total := 0.0
	for _, r := range rs {
		x := float64(r.weight) * r.h.breaker.rampFactor(now)
		w = append(w, x)
		total += x
	}
	for i := 0; i < len(rs)-1; i++ {
		x := float64n(t.rand) * total
		j := i
		for ; j < len(rs)-1; j++ {
			if x < w[j] {
				break
			}
			x -= w[j]
		}
		total -= w[j]
		rs[i], rs[j] = rs[j], rs[i]
		w[i], w[j] = w[j], w[i]
	}
}

// slowStart moves a recovering region to the back with probability 1 - its ramp factor, so a
// region that comes back takes its traffic back gradually, even as the preferred region.
func (t *Transport) slowStart(rs []*region, now time.Time) {
	for i := 0; i < len(rs)-1; i++ {
		f := rs[i].h.breaker.rampFactor(now)
		if f >= 1 || float64n(t.rand) < f {
			continue
		}
		r := rs[i]
		copy(rs[i:], rs[i+1:])
		rs[len(rs)-1] = r
		return // one demotion per request is enough
	}
}

// byLatency puts first the better of two random available regions (power of two choices on
// latency EWMA times in-flight load), then the rest by that score.
func (t *Transport) byLatency(rs []*region, name string, now time.Time) {
	if len(rs) < 2 {
		return
	}
	var sbuf [maxCandidates]float64
	score := sbuf[:0]
	for _, r := range rs {
		score = append(score, latencyScore(r, r.targets[name], now))
	}
	// Insertion sort by score: a handful of regions.
	for i := 1; i < len(rs); i++ {
		for j := i; j > 0 && score[j] < score[j-1]; j-- {
			rs[j], rs[j-1] = rs[j-1], rs[j]
			score[j], score[j-1] = score[j-1], score[j]
		}
	}
	avail := 0
	for avail < len(rs) && !math.IsInf(score[avail], 1) {
		avail++
	}
	if avail < 2 {
		return
	}
	i := int(t.rand.Uint64() % uint64(avail))
	j := int(t.rand.Uint64() % uint64(avail-1))
	if j >= i {
		j++
	}
	best := min(i, j) // sorted: the lower index has the better score
	r := rs[best]
	copy(rs[1:best+1], rs[:best])
	rs[0] = r
}

func latencyScore(r *region, tg *target, now time.Time) float64 {
	if why, _ := r.check(tg, now); why != isAvailable {
		return math.Inf(1)
	}
	l := float64(r.h.latency())
	if l == 0 {
		l = 1 // no sample yet: worth trying
	}
	return l * float64(r.h.inflight.Load()+1) / r.h.breaker.rampFactor(now)
}
