package failover

import (
	"strconv"
	"testing"
	"time"
)

func TestAbandonShare(t *testing.T) {
	for failures, want := range map[int]int{0: 0, 1: 0, 2: 1, 3: 2, 4: 2, 5: 3, 10: 5} {
		if got := abandonShare(failures); got != want {
			t.Errorf("abandonShare(%d) = %d, want %d", failures, got, want)
		}
	}
}

// TestAbandonLedger: one client's hang-ups count up to its share within the window, never enough to open the
// breaker alone; a second client's count too; the window forgets.
func TestAbandonLedger(t *testing.T) {
	p := BreakerPolicy{Failures: 5, Window: time.Minute}
	var l abandonLedger
	now := time.Unix(1000, 0)
	counted := 0
	for range 10 {
		if l.count("a", now, p) {
			counted++
		}
	}
	if counted != 3 {
		t.Fatalf("client a: %d of 10 counted, want 3", counted)
	}
	if !l.count("b", now, p) {
		t.Error("client b's first abandon did not count")
	}
	if !l.count("a", now.Add(time.Minute), p) {
		t.Error("client a's share did not come back after the window")
	}
	// The ledger stays bounded whatever the number of clients.
	for i := range 3 * maxLedgerClients {
		l.count("c"+strconv.Itoa(i), now.Add(time.Minute), p)
	}
	if n := len(l.byClient); n > maxLedgerClients {
		t.Errorf("ledger holds %d clients", n)
	}
	if l.count("a", now, BreakerPolicy{Failures: 1}) {
		t.Error("with failures 1 an abandon counted alone")
	}
}
