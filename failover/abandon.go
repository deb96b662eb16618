package failover

import (
	"sync"
	"time"
)

// abandonLedger bounds how much of a region's health one client can spend by giving up on slow
// requests (OutcomeAbandoned). Within breaker.window, a client's abandoned attempts count against
// the region only up to its share, abandonShare(breaker.failures): always fewer than it takes to
// open the breaker, so a region opens on abandonment only when several clients agree, or when the
// gateway's own evidence (timeouts, errors, probes, hedges) joins in. Attempts beyond the share are
// recorded as canceled: neutral.
//
// Requests without a client (WithClient not called: the library's own caller) are not bounded;
// that caller is the process itself.
type abandonLedger struct {
	mu       sync.Mutex
	byClient map[string]abandonCount
}

type abandonCount struct {
	n     int
	since time.Time
}

// maxLedgerClients bounds the ledger; a full ledger forgets expired entries first, then the oldest.
const maxLedgerClients = 1024

// abandonShare is how many abandoned attempts of one client count within the window: half the
// failures that open the breaker, rounded up, and always fewer than all of them.
func abandonShare(failures int) int {
	s := (failures + 1) / 2
	if s >= failures {
		s = failures - 1
	}
	return max(s, 0)
}

// count reports whether client's abandoned attempt at now counts against the region, and records it.
func (l *abandonLedger) count(client string, now time.Time, p BreakerPolicy) bool {
	share := abandonShare(p.Failures)
	if share == 0 {
		return false
	}
	window := p.Window
	if window <= 0 {
		window = DefaultWindow
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byClient == nil {
		l.byClient = map[string]abandonCount{}
	}
	c, ok := l.byClient[client]
	if !ok || now.Sub(c.since) >= window {
		if !ok && len(l.byClient) >= maxLedgerClients {
			l.evict(now, window)
		}
		c = abandonCount{since: now}
	}
	if c.n >= share {
		return false
	}
	c.n++
	l.byClient[client] = c
	return true
}

func (l *abandonLedger) evict(now time.Time, window time.Duration) {
	var oldest string
	var at time.Time
	for k, c := range l.byClient {
		if now.Sub(c.since) >= window {
			delete(l.byClient, k)
			continue
		}
		if oldest == "" || c.since.Before(at) {
			oldest, at = k, c.since
		}
	}
	if len(l.byClient) >= maxLedgerClients {
		delete(l.byClient, oldest)
	}
}
