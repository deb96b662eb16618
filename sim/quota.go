package sim

import (
	"math"
	"sync"
	"time"
)

// quota enforces a deployment's tokens-per-minute and requests-per-minute the way Azure does: tokens are counted
// on an estimate made before generation (prompt + max_tokens), and requests are enforced over short windows
// (600 RPM allow bursts of 10 per second). Both are token buckets that refill continuously.
type quota struct {
	mu       sync.Mutex
	tpm, rpm int
	tokens   bucket
	requests bucket
}

type bucket struct {
	capacity float64
	level    float64
	perSec   float64
	last     time.Time
}

func newQuota(tpm, rpm int, now time.Time) *quota {
	q := &quota{tpm: tpm, rpm: rpm}
	if tpm > 0 {
		q.tokens = bucket{capacity: float64(tpm), level: float64(tpm), perSec: float64(tpm) / 60, last: now}
	}
	if rpm > 0 {
		// Azure enforces RPM over 1 s windows (600 RPM: 10 at once) or, for small quotas, 10 s windows.
		burst := math.Max(1, float64(rpm)/6)
		if rpm >= 60 {
			burst = float64(rpm) / 60
		}
		q.requests = bucket{capacity: burst, level: burst, perSec: float64(rpm) / 60, last: now}
	}
	return q
}

func (b *bucket) refill(now time.Time) {
	if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.level = math.Min(b.capacity, b.level+dt*b.perSec)
	}
	b.last = now
}

// wait is how long until n units are available.
func (b *bucket) wait(n float64) time.Duration {
	if b.level >= n {
		return 0
	}
	return time.Duration((n - b.level) / b.perSec * float64(time.Second))
}

// quotaVerdict is the outcome of admitting one request.
type quotaVerdict struct {
	ok                bool
	retryAfter        time.Duration
	kind              string // "token" or "call"
	remainingRequests int
	remainingTokens   int
	unlimitedRequests bool
	unlimitedTokens   bool
}

// admit takes one request and estimate tokens, or says how long to wait.
func (q *quota) admit(estimate int, now time.Time) quotaVerdict {
	q.mu.Lock()
	defer q.mu.Unlock()
	v := quotaVerdict{ok: true, unlimitedRequests: q.rpm == 0, unlimitedTokens: q.tpm == 0}
	if q.rpm > 0 {
		q.requests.refill(now)
		if w := q.requests.wait(1); w > 0 {
			v.ok, v.retryAfter, v.kind = false, w, "call"
		}
	}
	if v.ok && q.tpm > 0 {
		q.tokens.refill(now)
		need := math.Min(float64(estimate), q.tokens.capacity)
		if w := q.tokens.wait(need); w > 0 {
			v.ok, v.retryAfter, v.kind = false, w, "token"
		}
		if v.ok {
			q.tokens.level -= need
		}
	}
	if v.ok && q.rpm > 0 {
		q.requests.level--
	}
	v.remainingRequests = int(math.Max(0, q.requests.level/q.requests.capacity*float64(q.rpm)))
	v.remainingTokens = int(math.Max(0, q.tokens.level))
	return v
}
