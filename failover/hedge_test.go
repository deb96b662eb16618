package failover

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lifeline-sre/lifeline/sim"
)

func TestLatencySketch(t *testing.T) {
	var s latencySketch
	for i := range minSamples - 1 {
		s.add(time.Duration(i+1) * time.Millisecond)
	}
	if _, ok := s.percentile95(); ok {
		t.Fatal("a percentile from too few samples")
	}
	for i := minSamples - 1; i < 100; i++ {
		s.add(time.Duration(i+1) * time.Millisecond)
	}
	// The last 64 samples are 37..100 ms; their 95th percentile is the 61st, 97 ms.
	if p, ok := s.percentile95(); !ok || p != 97*time.Millisecond {
		t.Errorf("p95 = %v %v", p, ok)
	}
}

func TestHedgeBudget(t *testing.T) {
	c := newManualClock()
	b := newHedgeBudget()
	for i := range hedgeBurst {
		if !b.take(c.Now()) {
			t.Fatalf("burst: hedge %d refused", i)
		}
	}
	if b.take(c.Now()) {
		t.Fatal("hedge beyond the burst")
	}
	// 10 requests at a budget of 0.1 earn one hedge.
	for range 10 {
		b.request(c.Now(), 0.1)
	}
	if !b.take(c.Now()) || b.take(c.Now()) {
		t.Fatal("10 requests at 0.1 did not earn exactly one hedge")
	}
	// The floor: one hedge per second without any request.
	c.Add(time.Second)
	if !b.take(c.Now()) || b.take(c.Now()) {
		t.Fatal("the floor of one hedge per second")
	}
}

// hedgePolicy hedges after 150 ms at the earliest; other timeouts are far away.
func hedgePolicy() Policy {
	return Policy{
		Retry:   RetryPolicy{Backoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond},
		Breaker: BreakerPolicy{Failures: 3, OpenFor: time.Hour, SlowStart: -1, ProbeInterval: -1},
		Hedge:   HedgePolicy{MinDelay: 150 * time.Millisecond, MaxDelay: time.Second},
	}
}

func (s *scenario) warm(region string, n int, stream bool) {
	s.t.Helper()
	for range n {
		s.ok(s.send("gpt-4o", stream), stream, region)
	}
}

// TestHedgeSilentRegion: a region that stops answering costs each request the hedge delay, not a
// timeout; the attempt it lost by silence counts against it, so it leaves rotation after
// breaker.failures such requests; the answer says it came from a hedge.
func TestHedgeSilentRegion(t *testing.T) {
	bothModes(t, func(t *testing.T, stream bool) {
		s := newScenario(t, hedgePolicy())
		s.warm("eastus", minSamples, stream) // learned delay: the floor, 150 ms
		s.fault("eastus", sim.Fault{Mode: sim.ModeBlackhole})
		for i := range 3 {
			start := time.Now()
			a := s.send("gpt-4o", stream)
			s.ok(a, stream, "westus")
			if el := time.Since(start); el > 2*time.Second {
				t.Errorf("request %d took %v with a hedge delay of 150ms", i, el)
			}
			if a.header.Get(HeaderHedged) != "true" || a.attempts != "2" {
				t.Errorf("request %d: hedged %q attempts %s", i, a.header.Get(HeaderHedged), a.attempts)
			}
		}
		eventually(t, "eastus open after 3 lost hedges", func() bool { return s.tr.Regions()[0].State == Open })
		if st := s.tr.Regions()[0]; st.StateReason != "timeout" {
			t.Errorf("eastus open because %q", st.StateReason)
		}
		if got := strings.Join(s.rec.hedgeOutcomes(), ","); got != "eastus>westus:won,eastus>westus:won,eastus>westus:won" {
			t.Errorf("hedges: %s", got)
		}
		// Once it is out, requests go straight to westus, unhedged.
		a := s.send("gpt-4o", stream)
		s.ok(a, stream, "westus")
		if a.header.Get(HeaderHedged) != "" || a.attempts != "1" {
			t.Errorf("after the trip: hedged %q attempts %s", a.header.Get(HeaderHedged), a.attempts)
		}
	})
}

// TestHedgeLost: the region waited for answers first after the hedge started; the hedge is cancelled
// and counts against nobody.
func TestHedgeLost(t *testing.T) {
	s := newScenario(t, hedgePolicy())
	s.warm("eastus", minSamples, true)
	s.fault("eastus", sim.Fault{Mode: sim.ModeSlow, Latency: sim.Duration(400 * time.Millisecond)})
	s.fault("westus", sim.Fault{Mode: sim.ModeSlow, Latency: sim.Duration(3 * time.Second)})
	start := time.Now()
	a := s.send("gpt-4o", true)
	s.ok(a, true, "eastus")
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("took %v", el)
	}
	if got := strings.Join(s.rec.hedgeOutcomes(), ","); got != "eastus>westus:lost" {
		t.Errorf("hedges: %s", got)
	}
	eventually(t, "the hedge's end", func() bool {
		for _, o := range s.rec.outcomes() {
			if o == "westus:canceled" {
				return true
			}
		}
		return false
	})
	if st := s.tr.Regions()[1]; st.ErrorRate != 0 {
		t.Errorf("the cancelled hedge counted against westus: %+v", st)
	}
}

// TestHedgeEmbeddingsOnTotalLatency: embeddings hedge too, on the time to their whole answer.
func TestHedgeEmbeddingsOnTotalLatency(t *testing.T) {
	east := newBackend(t, okJSON)
	west := newBackend(t, okJSON)
	rec := &recorder{}
	tr := mustNew(t, Config{Regions: []Region{testRegion("eastus", east.URL, 1, "embed", "e"),
		testRegion("westus", west.URL, 2, "embed", "e")}, Policy: hedgePolicy()}, WithObserver(rec))
	embed := func() *http.Response {
		req, _ := http.NewRequest("POST", "https://x.invalid/openai/deployments/embed/embeddings?api-version=2024-10-21",
			strings.NewReader(`{"input":"hi"}`))
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, resp)
		return resp
	}
	for range minSamples {
		embed()
	}
	east.set(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
		}
	})
	start := time.Now()
	resp := embed()
	if resp.Header.Get(HeaderRegion) != "westus" || resp.Header.Get(HeaderHedged) != "true" || time.Since(start) > 2*time.Second {
		t.Errorf("answered by %s (hedged %q) after %v", resp.Header.Get(HeaderRegion), resp.Header.Get(HeaderHedged), time.Since(start))
	}
}

// TestHedgeOff: a negative delay turns hedging off; images never hedge.
func TestHedgeOff(t *testing.T) {
	p := hedgePolicy()
	p.Hedge.Delay = -1
	s := newScenario(t, p)
	s.fault("eastus", sim.Fault{Mode: sim.ModeSlow, Latency: sim.Duration(500 * time.Millisecond)})
	s.ok(s.send("gpt-4o", false), false, "eastus")
	if len(s.rec.hedgeOutcomes()) != 0 {
		t.Errorf("hedged with hedging off: %v", s.rec.hedgeOutcomes())
	}
}

// TestHedgeNoBudget: once the budget is spent, a due hedge is skipped and reported.
func TestHedgeNoBudget(t *testing.T) {
	s := newScenario(t, hedgePolicy())
	s.warm("eastus", minSamples, false)
	for s.tr.hedges.take(time.Now()) {
	}
	s.fault("eastus", sim.Fault{Mode: sim.ModeSlow, Latency: sim.Duration(400 * time.Millisecond)})
	s.ok(s.send("gpt-4o", false), false, "eastus")
	if got := strings.Join(s.rec.hedgeOutcomes(), ","); got != "eastus>westus:no_budget" {
		t.Errorf("hedges: %s", got)
	}
}

// TestRegionOpenReleasesWaiters: once a region is out of service, a request still waiting for its first
// byte there stops waiting and goes to the next region at once, hedge budget or not.
func TestRegionOpenReleasesWaiters(t *testing.T) {
	p := hedgePolicy()
	p.Hedge.Delay = -1 // no hedging: only the breaker can release the request
	p.Timeouts.Response = 20 * time.Second
	s := newScenario(t, p)
	s.fault("eastus", sim.Fault{Mode: sim.ModeBlackhole})
	go func() {
		time.Sleep(300 * time.Millisecond)
		s.tr.ApplyRegionEvent("eastus", RegionEvent{State: Open, Until: time.Now().Add(time.Hour)})
	}()
	start := time.Now()
	a := s.send("gpt-4o", false)
	s.ok(a, false, "westus")
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("the request waited %v on a region out of service", el)
	}
}
