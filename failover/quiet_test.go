package failover

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/lifeline-sre/lifeline/sim"
)

// TestQuietAfterStall: a deployment seen stalling mid-stream has spent its patience. The first stall
// costs StreamIdle; the next stream of that deployment that stalls is cut after the quiet bound (here
// 1 s: Hedge.MaxDelay caps it); a complete stream gives the patience back.
func TestQuietAfterStall(t *testing.T) {
	p := hedgePolicy() // Hedge.MaxDelay 1s: the quiet bound is 1s
	p.Timeouts.StreamIdle = 4 * time.Second
	p.Streams.Resume = ResumeOff
	p.Breaker.Failures = 10 // eastus stays in rotation
	s := newScenario(t, p)
	stall := func(what string) time.Duration {
		t.Helper()
		start := time.Now()
		a := s.send("gpt-4o", true)
		if a.region != "eastus" || !errors.Is(a.err, ErrStreamIdle) {
			t.Fatalf("%s: region %q error %v; want eastus and the idle error", what, a.region, a.err)
		}
		return time.Since(start)
	}
	s.fault("eastus", sim.Fault{Mode: sim.ModeStall, AfterEvents: 3})
	if d := stall("first stall"); d < p.Timeouts.StreamIdle-50*time.Millisecond {
		t.Errorf("the first stall was cut after %v, before the idle timeout (%v)", d, p.Timeouts.StreamIdle)
	}
	if d := stall("second stall"); d > 3*time.Second {
		t.Errorf("a stall of a deployment seen stalling was cut after %v; want about the quiet bound (1s)", d)
	}
	s.fault("eastus", sim.Fault{Mode: sim.ModeClear})
	s.ok(s.send("gpt-4o", true), true, "eastus")
	s.fault("eastus", sim.Fault{Mode: sim.ModeStall, AfterEvents: 3})
	if d := stall("stall after a complete stream"); d < p.Timeouts.StreamIdle-50*time.Millisecond {
		t.Errorf("after a complete stream, a stall was cut after %v, before the idle timeout", d)
	}
}

// TestHedgeOnFirstBodyByte: an answer that is not streamed is only "first byte" when its body starts,
// not at its headers: a region that sends headers and then nothing is hedged like a silent one.
func TestHedgeOnFirstBodyByte(t *testing.T) {
	east := newBackend(t, okJSON)
	west := newBackend(t, okJSON)
	rec := &recorder{}
	tr := mustNew(t, Config{Regions: []Region{testRegion("eastus", east.URL, 1, "embed", "e"),
		testRegion("westus", west.URL, 2, "embed", "e")}, Policy: hedgePolicy()}, WithObserver(rec))
	east.set(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		select {
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
		}
	})
	start := time.Now()
	req, _ := http.NewRequest("POST", "https://x.invalid/openai/deployments/embed/embeddings?api-version=2024-10-21",
		http.NoBody)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(t, resp)
	if resp.Header.Get(HeaderRegion) != "westus" || resp.Header.Get(HeaderHedged) != "true" || time.Since(start) > 4*time.Second {
		t.Errorf("answered by %s (hedged %q) after %v: %s", resp.Header.Get(HeaderRegion), resp.Header.Get(HeaderHedged), time.Since(start), body)
	}
}
