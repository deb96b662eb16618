package gateway

import (
	"crypto/sha256"
	"math"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/lifeline-sre/lifeline/config"
	"github.com/lifeline-sre/lifeline/failover"
)

// client is one client key and what it may do (SPEC.md section 12): the names and operations it is granted, the
// names it sees in the models list, and its limits.
type client struct {
	name  string
	sum   [sha256.Size]byte
	names map[string]bool // nil: every name
	ops   map[failover.Operation]bool
	// visible are the configured names the client may use, sorted: its models list.
	visible []string
	limit   *clientLimit
	index   int // position in clients[], for the config key named in a 429
}

// anonymous is the client of a gateway with allow_unauthenticated: every name, the default operations, no limits.
const anonymous = "anonymous"

func newClient(c config.Client, index int, names []string, limit *clientLimit) *client {
	cl := &client{name: c.Name, sum: sha256.Sum256([]byte(c.Key)), ops: map[failover.Operation]bool{}, limit: limit, index: index}
	ops := failover.DefaultOperations()
	if c.Operations != nil {
		ops = ops[:0]
		for _, s := range c.Operations {
			if o, ok := failover.ParseOperation(s); ok {
				ops = append(ops, o)
			}
		}
	}
	for _, o := range ops {
		cl.ops[o] = true
	}
	cl.ops[failover.OpModels] = true
	if c.Names != nil {
		cl.names = map[string]bool{}
		for _, n := range c.Names {
			cl.names[n] = true
		}
	}
	for _, n := range names {
		if cl.mayUse(n) {
			cl.visible = append(cl.visible, n)
		}
	}
	return cl
}

func (c *client) mayUse(name string) bool { return c.names == nil || c.names[name] }

// clientLimit is one client's concurrency and rate limits. It outlives a reload (keyed by client name), so that
// reloading the config does not hand every client a fresh burst or forget what it has in flight.
type clientLimit struct {
	inFlight atomic.Int64
	max      atomic.Int64 // 0: no limit
	mu       sync.Mutex
	perMin   int
	rate     *rate.Limiter // nil: no limit
}

// set applies a client's configured limits.
func (l *clientLimit) set(c config.Client) {
	l.max.Store(int64(c.MaxConcurrent))
	l.mu.Lock()
	defer l.mu.Unlock()
	if c.RequestsPerMinute == l.perMin {
		return
	}
	l.perMin = c.RequestsPerMinute
	if c.RequestsPerMinute <= 0 {
		l.rate = nil
		return
	}
	burst := max(1, int(math.Ceil(float64(c.RequestsPerMinute)/6))) // ten seconds' worth
	l.rate = rate.NewLimiter(rate.Limit(float64(c.RequestsPerMinute)/60), burst)
}

// limitKind names a client limit in metrics and in the 429 it causes.
type limitKind string

const (
	limitConcurrency limitKind = "concurrency"
	limitRate        limitKind = "rate"
)

// acquire takes a slot for one request. When a limit refuses it, kind says which and wait how long the client
// should wait before trying again.
func (l *clientLimit) acquire(now time.Time) (release func(), kind limitKind, wait time.Duration) {
	if max := l.max.Load(); max > 0 {
		if l.inFlight.Add(1) > max {
			l.inFlight.Add(-1)
			return nil, limitConcurrency, time.Second
		}
	} else {
		l.inFlight.Add(1)
	}
	l.mu.Lock()
	lim := l.rate
	l.mu.Unlock()
	if lim != nil {
		if r := lim.ReserveN(now, 1); !r.OK() || r.DelayFrom(now) > 0 {
			d := r.DelayFrom(now)
			r.CancelAt(now)
			l.inFlight.Add(-1)
			return nil, limitRate, max(d, time.Millisecond)
		}
	}
	return func() { l.inFlight.Add(-1) }, "", 0
}

// limitFor returns the limit state of a client, kept across reloads.
func (g *Gateway) limitFor(c config.Client) *clientLimit {
	v, _ := g.limits.LoadOrStore(c.Name, &clientLimit{})
	l := v.(*clientLimit)
	l.set(c)
	return l
}

// limitMessage is the 429 message for a client limit: it names the client and the config key, so nobody takes
// it for a region's throttling.
func limitMessage(c *client, kind limitKind, wait time.Duration, cfg *config.Config) (code, msg string) {
	key := "clients[" + strconv.Itoa(c.index) + "]."
	switch kind {
	case limitConcurrency:
		return "client_concurrency_limit_exceeded", "lifeline: client " + strconv.Quote(c.name) + " already has " +
			strconv.Itoa(cfg.Clients[c.index].MaxConcurrent) + " requests in flight, its limit (" + key + "max_concurrent); retry after one ends"
	}
	return "client_rate_limit_exceeded", "lifeline: client " + strconv.Quote(c.name) + " exceeds its limit of " +
		strconv.Itoa(cfg.Clients[c.index].RequestsPerMinute) + " requests per minute (" + key + "requests_per_minute); retry after " +
		wait.Round(time.Millisecond).String()
}

// knownName returns the canonical string of a configured name (a metric label), or false.
func (gen *generation) knownName(name string) (string, bool) {
	canon, ok := gen.names[name]
	return canon, ok
}

func sortedNames(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for n := range m {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}
