package failover

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lifeline-sre/lifeline/sim"
)

// Scenario tests: the engine against simulated regions (package sim) through real sockets.
// Each asserts what the client saw and how many attempts each region got.

type scenario struct {
	t   *testing.T
	sim *sim.Sim
	tr  *Transport
	rec *recorder
}

// newScenario starts eastus (priority 1) and westus (priority 2), both serving gpt-4o and
// gpt-4o-mini, behind a Transport with policy p.
func newScenario(t *testing.T, p Policy, simRegions ...sim.RegionConfig) *scenario {
	t.Helper()
	if len(simRegions) == 0 {
		simRegions = sim.DefaultRegions("eastus", "westus")
	}
	s, err := sim.Start(sim.Config{Regions: simRegions, APIKey: "k", Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	var regions []Region
	for i, rc := range simRegions {
		regions = append(regions, Region{
			Name: rc.Name, Endpoint: s.Region(rc.Name).URL(), APIKey: "k", Priority: i + 1,
			Deployments: map[string]string{"gpt-4o": "gpt-4o", "gpt-4o-mini": "gpt-4o-mini"},
		})
	}
	rec := &recorder{}
	// A seeded source: a scenario that fails replays the same choices.
	tr := mustNew(t, Config{Regions: regions, Policy: p}, WithObserver(rec), WithRand(rand.NewPCG(1, 2)))
	return &scenario{t: t, sim: s, tr: tr, rec: rec}
}

func (s *scenario) fault(region string, f sim.Fault) {
	s.t.Helper()
	if err := s.sim.Fault(region, f); err != nil {
		s.t.Fatal(err)
	}
}

// answer is what the client saw.
type answer struct {
	status   int
	region   string
	attempts string
	header   http.Header
	body     string
	err      error // from RoundTrip or from reading the body
}

// send makes one chat completion for name through the transport, streaming or not, and
// reads the whole answer.
func (s *scenario) send(name string, stream bool) answer {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return s.sendCtx(ctx, name, stream)
}

// sendCtx is send with the caller's context.
func (s *scenario) sendCtx(ctx context.Context, name string, stream bool) answer {
	s.t.Helper()
	body := `{"messages":[{"role":"user","content":"say hi"}],"max_tokens":8}`
	if stream {
		body = `{"messages":[{"role":"user","content":"say hi"}],"max_tokens":8,"stream":true}`
	}
	req, _ := http.NewRequestWithContext(ctx, "POST",
		"https://lifeline.invalid/openai/deployments/"+name+"/chat/completions?api-version=2024-10-21", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Api-Key", "caller-key-never-forwarded")
	resp, err := (&http.Client{Transport: s.tr}).Do(req)
	if err != nil {
		return answer{err: err}
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return answer{status: resp.StatusCode, region: resp.Header.Get(HeaderRegion), attempts: resp.Header.Get(HeaderAttempts),
		header: resp.Header, body: string(b), err: err}
}

// ok checks that the client got a complete, good answer from region.
func (s *scenario) ok(a answer, stream bool, region string) {
	s.t.Helper()
	if a.err != nil || a.status != 200 {
		s.t.Fatalf("client saw status %d err %v body %.200s", a.status, a.err, a.body)
	}
	if a.region != region {
		s.t.Fatalf("answered by %q, want %q", a.region, region)
	}
	if stream && !strings.HasSuffix(strings.TrimSpace(a.body), "data: [DONE]") {
		s.t.Fatalf("stream not complete: %.300s", a.body)
	}
	if !stream && !strings.Contains(a.body, `"chat.completion"`) {
		s.t.Fatalf("not a chat completion: %.300s", a.body)
	}
}

// attempts counts the attempts the engine sent to region.
func (s *scenario) attempts(region string) int {
	s.rec.mu.Lock()
	defer s.rec.mu.Unlock()
	n := 0
	for _, e := range s.rec.started {
		if e.Region == region {
			n++
		}
	}
	return n
}

func (s *scenario) wantAttempts(region string, want int) {
	s.t.Helper()
	if got := s.attempts(region); got != want {
		s.t.Errorf("%s got %d attempts, want %d (outcomes %v)", region, got, want, s.rec.outcomes())
	}
}

func scenarioPolicy() Policy {
	p := fastPolicy()
	p.Breaker.OpenFor = 10 * time.Second // long enough that no probe happens mid-test
	return p
}

func bothModes(t *testing.T, f func(t *testing.T, stream bool)) {
	for _, stream := range []bool{false, true} {
		name := "nonstream"
		if stream {
			name = "stream"
		}
		t.Run(name, func(t *testing.T) { f(t, stream) })
	}
}

func TestScenarioPrimaryDown(t *testing.T) {
	bothModes(t, func(t *testing.T, stream bool) {
		s := newScenario(t, scenarioPolicy())
		s.fault("eastus", sim.Fault{Mode: sim.ModeDown})
		for i := range 10 {
			a := s.send("gpt-4o", stream)
			s.ok(a, stream, "westus")
			if i == 0 && a.attempts != "2" {
				t.Errorf("first request: %s attempts, want 2 (connect refused is not retried in place)", a.attempts)
			}
		}
		// Three connect errors open eastus's breaker; after that it costs nothing.
		s.wantAttempts("eastus", 3)
		s.wantAttempts("westus", 10)
		if st := s.tr.Regions()[0].State; st != Open {
			t.Errorf("eastus state %v, want open", st)
		}
		if got := s.rec.stateChanges("eastus"); len(got) != 1 || got[0] != "open" {
			t.Errorf("eastus state changes %v", got)
		}
	})
}

func TestScenarioBlackholed(t *testing.T) {
	bothModes(t, func(t *testing.T, stream bool) {
		p := scenarioPolicy()
		p.Timeouts.Response, p.Timeouts.StreamFirstByte = 800*time.Millisecond, 800*time.Millisecond
		s := newScenario(t, p)
		s.fault("eastus", sim.Fault{Mode: sim.ModeBlackhole})
		for i := range 6 {
			start := time.Now()
			a := s.send("gpt-4o", stream)
			el := time.Since(start)
			s.ok(a, stream, "westus")
			switch {
			case i < 3 && el < 750*time.Millisecond:
				t.Errorf("request %d took %v: expected one 800ms timeout", i, el)
			case i < 3 && el > 1550*time.Millisecond:
				t.Errorf("request %d took %v: more than one timeout", i, el)
			case i >= 3 && el > 500*time.Millisecond:
				t.Errorf("request %d took %v after the breaker opened", i, el)
			}
		}
		s.wantAttempts("eastus", 3)
		if n := s.sim.Region("eastus").Stats().Blackholed; n != 3 {
			t.Errorf("eastus held %d requests, want 3", n)
		}
	})
}

// TestScenarioBlackholedImpatientClients: the region black-holes and every client gives up long before
// timeouts.response. Each abandoned attempt counts against the region, so its breaker opens and the
// clients that come next are answered by the secondary; the rule off, they keep waiting on the black hole.
func TestScenarioBlackholedImpatientClients(t *testing.T) {
	for _, c := range []struct {
		name           string
		abandonedAfter time.Duration
		wantOpen       bool
	}{{"counted", 150 * time.Millisecond, true}, {"rule-off", -1, false}} {
		t.Run(c.name, func(t *testing.T) {
			bothModes(t, func(t *testing.T, stream bool) {
				p := scenarioPolicy()
				p.Timeouts.Response, p.Timeouts.StreamFirstByte = time.Minute, time.Minute // far beyond the clients' patience
				p.Breaker.AbandonedAfter = c.abandonedAfter
				s := newScenario(t, p)
				s.fault("eastus", sim.Fault{Mode: sim.ModeBlackhole})
				for i := range 6 {
					ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
					a := s.sendCtx(ctx, "gpt-4o", stream)
					cancel()
					if c.wantOpen && i >= p.Breaker.Failures {
						s.ok(a, stream, "westus")
						continue
					}
					if !errors.Is(a.err, context.DeadlineExceeded) {
						t.Fatalf("request %d: err %v status %d region %q, want the client's deadline", i, a.err, a.status, a.region)
					}
				}
				if got := s.tr.Regions()[0].State; (got == Open) != c.wantOpen {
					t.Errorf("eastus breaker %v; outcomes %v", got, s.rec.outcomes())
				}
				if c.wantOpen {
					s.wantAttempts("eastus", p.Breaker.Failures)
				}
			})
		})
	}
}

// TestScenarioQuickCancelNotCounted: callers that give up quickly (before the abandon point) are not held
// against a region, however many there are.
func TestScenarioQuickCancelNotCounted(t *testing.T) {
	p := scenarioPolicy()
	p.Timeouts.Response = time.Minute
	p.Breaker.AbandonedAfter = 5 * time.Second
	s := newScenario(t, p)
	s.fault("eastus", sim.Fault{Mode: sim.ModeBlackhole})
	for i := range 2 * p.Breaker.Failures {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		a := s.sendCtx(ctx, "gpt-4o", false)
		cancel()
		if !errors.Is(a.err, context.DeadlineExceeded) {
			t.Fatalf("request %d: err %v, want the client's deadline", i, a.err)
		}
	}
	if got := s.tr.Regions()[0].State; got != Healthy {
		t.Errorf("eastus breaker %v after quick cancels; outcomes %v", got, s.rec.outcomes())
	}
}

func TestScenarioSlow(t *testing.T) {
	bothModes(t, func(t *testing.T, stream bool) {
		s := newScenario(t, scenarioPolicy())
		// Slow but within the timeout: eastus still serves.
		s.fault("eastus", sim.Fault{Mode: sim.ModeSlow, Latency: sim.Duration(100 * time.Millisecond)})
		start := time.Now()
		s.ok(s.send("gpt-4o", stream), stream, "eastus")
		if el := time.Since(start); el < 100*time.Millisecond {
			t.Errorf("slow answer took %v", el)
		}
		// Slower than the timeout: each attempt times out once, then the breaker keeps eastus out.
		s.fault("eastus", sim.Fault{Mode: sim.ModeSlow, Latency: sim.Duration(2 * time.Second)})
		for range 5 {
			s.ok(s.send("gpt-4o", stream), stream, "westus")
		}
		s.wantAttempts("eastus", 4)
		s.wantAttempts("westus", 5)
	})
}

func TestScenario503Burst(t *testing.T) {
	bothModes(t, func(t *testing.T, stream bool) {
		s := newScenario(t, scenarioPolicy())
		s.fault("eastus", sim.Fault{Mode: sim.ModeError, Status: 503})
		a := s.send("gpt-4o", stream)
		s.ok(a, stream, "westus")
		if a.attempts != "3" {
			t.Errorf("attempts %s, want 3: one retry in eastus, then westus", a.attempts)
		}
		s.wantAttempts("eastus", 2)
		s.fault("eastus", sim.Fault{Mode: sim.ModeClear})
		s.ok(s.send("gpt-4o", stream), stream, "eastus")
		// A burst at half the requests: the client never sees it.
		s.fault("eastus", sim.Fault{Mode: sim.ModeError, Status: 503, Rate: 0.5})
		for range 20 {
			a := s.send("gpt-4o", stream)
			if a.err != nil || a.status != 200 {
				t.Fatalf("client saw %d %v", a.status, a.err)
			}
		}
	})
}

func TestScenarioThrottledRetryAfter(t *testing.T) {
	bothModes(t, func(t *testing.T, stream bool) {
		s := newScenario(t, scenarioPolicy())
		s.fault("eastus", sim.Fault{Mode: sim.ModeThrottle, RetryAfter: sim.Duration(2 * time.Second)})
		start := time.Now()
		a := s.send("gpt-4o", stream)
		s.ok(a, stream, "westus")
		if a.attempts != "2" || time.Since(start) > time.Second {
			t.Errorf("429 did not fail over at once: %s attempts in %v", a.attempts, time.Since(start))
		}
		s.fault("eastus", sim.Fault{Mode: sim.ModeClear})
		// During the cool-down eastus gets nothing for gpt-4o, but still serves gpt-4o-mini.
		s.ok(s.send("gpt-4o", stream), stream, "westus")
		s.ok(s.send("gpt-4o-mini", stream), stream, "eastus")
		s.wantAttempts("eastus", 2)
		if h := s.tr.Regions()[0]; h.State != Healthy {
			t.Errorf("a 429 changed eastus's health: %v", h.State)
		}
		// After the wait, gpt-4o comes back to eastus.
		time.Sleep(time.Until(start.Add(2100 * time.Millisecond)))
		s.ok(s.send("gpt-4o", stream), stream, "eastus")
	})
}

func TestScenarioDeploymentMissing(t *testing.T) {
	regions := sim.DefaultRegions("eastus", "westus")
	regions[0].Deployments = []sim.Deployment{{Name: "gpt-4o-mini", Model: "gpt-4o-mini", Version: "2024-07-18"}}
	bothModes(t, func(t *testing.T, stream bool) {
		s := newScenario(t, scenarioPolicy(), regions...)
		a := s.send("gpt-4o", stream)
		s.ok(a, stream, "westus")
		if a.attempts != "2" {
			t.Errorf("attempts %s, want 2", a.attempts)
		}
		for range 3 {
			s.ok(s.send("gpt-4o", stream), stream, "westus")
		}
		s.ok(s.send("gpt-4o-mini", stream), stream, "eastus")
		s.wantAttempts("eastus", 2) // one 404, one gpt-4o-mini
		st := s.tr.Regions()[0]
		if st.State != Healthy {
			t.Errorf("eastus %v: a missing deployment is not a region failure", st.State)
		}
		for _, d := range st.Deployments {
			if d.Name == "gpt-4o" && (d.BrokenUntil.IsZero() || d.BrokenBy != "deployment_missing") {
				t.Errorf("gpt-4o in eastus not reported broken: %+v", d)
			}
		}
	})
}

func TestScenarioAllThrottled(t *testing.T) {
	bothModes(t, func(t *testing.T, stream bool) {
		s := newScenario(t, scenarioPolicy())
		s.fault("eastus", sim.Fault{Mode: sim.ModeThrottle, RetryAfter: sim.Duration(5 * time.Second)})
		s.fault("westus", sim.Fault{Mode: sim.ModeThrottle, RetryAfter: sim.Duration(2 * time.Second)})
		a := s.send("gpt-4o", stream)
		if a.status != 429 || a.attempts != "2" {
			t.Fatalf("status %d after %s attempts, want 429 after 2", a.status, a.attempts)
		}
		if a.header.Get("Retry-After") != "2" || a.header.Get("X-Should-Retry") != "true" {
			t.Errorf("Retry-After %q x-should-retry %q", a.header.Get("Retry-After"), a.header.Get("X-Should-Retry"))
		}
		if ErrorCode([]byte(a.body)) == "" {
			t.Errorf("not an OpenAI error body: %s", a.body)
		}
		// While both cool down, the answer comes at once and costs no attempt.
		a = s.send("gpt-4o", stream)
		if a.status != 429 || a.attempts != "0" {
			t.Errorf("status %d after %s attempts", a.status, a.attempts)
		}
		s.wantAttempts("eastus", 1)
		s.wantAttempts("westus", 1)
	})
}

// TestScenarioAllThrottledBriefly: every region throttled for about a second (less than
// retry.max_backoff): the engine waits for the first cool-down to end and serves; the client, with no
// retries of its own, sees no error.
func TestScenarioAllThrottledBriefly(t *testing.T) {
	bothModes(t, func(t *testing.T, stream bool) {
		s := newScenario(t, Policy{})
		s.fault("eastus", sim.Fault{Mode: sim.ModeThrottle, RetryAfter: sim.Duration(5 * time.Second)})
		s.fault("westus", sim.Fault{Mode: sim.ModeThrottle, RetryAfter: sim.Duration(time.Second)})
		go func() {
			time.Sleep(500 * time.Millisecond)
			s.fault("westus", sim.Fault{Mode: sim.ModeClear})
		}()
		start := time.Now()
		a := s.send("gpt-4o", stream)
		s.ok(a, stream, "westus")
		if el := time.Since(start); el < 900*time.Millisecond {
			t.Errorf("answered after %v: the cool-down of 1s was not waited for", el)
		}
		s.wantAttempts("westus", 2)
	})
}

func TestScenarioAllDown(t *testing.T) {
	bothModes(t, func(t *testing.T, stream bool) {
		s := newScenario(t, scenarioPolicy())
		s.fault("eastus", sim.Fault{Mode: sim.ModeDown})
		s.fault("westus", sim.Fault{Mode: sim.ModeDown})
		for i := range 5 {
			start := time.Now()
			a := s.send("gpt-4o", stream)
			if el := time.Since(start); el > time.Second {
				t.Errorf("request %d took %v", i, el)
			}
			if a.err != nil || a.status != 503 || a.header.Get("Retry-After") == "" || a.region != SelfRegion {
				t.Fatalf("status %d err %v Retry-After %q region %q", a.status, a.err, a.header.Get("Retry-After"), a.region)
			}
			if !strings.Contains(a.body, "eastus") || !strings.Contains(a.body, "westus") {
				t.Errorf("error does not say which regions failed: %s", a.body)
			}
		}
		s.wantAttempts("eastus", 3)
		s.wantAttempts("westus", 3)
		if s.tr.Ready() {
			t.Error("Ready with every region open")
		}
	})
}

func TestScenarioRecoveryAndGradualFailback(t *testing.T) {
	bothModes(t, func(t *testing.T, stream bool) {
		p := scenarioPolicy()
		p.Breaker.OpenFor = 300 * time.Millisecond
		p.Breaker.SlowStart = 1500 * time.Millisecond
		s := newScenario(t, p)
		s.fault("eastus", sim.Fault{Mode: sim.ModeDown})
		for range 4 {
			s.ok(s.send("gpt-4o", stream), stream, "westus")
		}
		s.wantAttempts("eastus", 3)
		s.fault("eastus", sim.Fault{Mode: sim.ModeClear})
		time.Sleep(350 * time.Millisecond)
		// The probe brings eastus back.
		s.ok(s.send("gpt-4o", stream), stream, "eastus")
		if got := strings.Join(s.rec.stateChanges("eastus"), ","); got != "open,half_open,healthy" {
			t.Errorf("eastus went %s", got)
		}
		// Slow start: right after recovery eastus takes only part of the traffic, from a floor of 10%. 60 requests
		// make "none at all on eastus" a 0.9^60 (0.2%) event even at the floor, where 30 made it 4%.
		early := map[string]int{}
		for range 60 {
			a := s.send("gpt-4o", stream)
			s.ok(a, stream, a.region)
			early[a.region]++
		}
		if early["westus"] == 0 || early["eastus"] == 0 {
			t.Errorf("early after recovery: %v; want traffic on both", early)
		}
		// After slow start, all of it.
		time.Sleep(1600 * time.Millisecond)
		before := s.attempts("westus")
		for range 10 {
			s.ok(s.send("gpt-4o", stream), stream, "eastus")
		}
		if s.attempts("westus") != before {
			t.Error("westus still got traffic after slow start")
		}
	})
}

func TestScenarioManualDisable(t *testing.T) {
	bothModes(t, func(t *testing.T, stream bool) {
		s := newScenario(t, scenarioPolicy())
		if err := s.tr.Disable("eastus"); err != nil {
			t.Fatal(err)
		}
		for range 5 {
			s.ok(s.send("gpt-4o", stream), stream, "westus")
		}
		s.wantAttempts("eastus", 0)
		if n := s.sim.Region("eastus").Stats().Requests; n != 0 {
			t.Errorf("disabled eastus got %d requests", n)
		}
		if st := s.tr.Regions()[0].State; st != Disabled {
			t.Errorf("state %v", st)
		}
		// Disabling the last region leaves nothing: a clear 503, no traffic.
		s.tr.Disable("westus")
		if a := s.send("gpt-4o", stream); a.status != 503 || !strings.Contains(a.body, "disabled") {
			t.Errorf("all disabled: %d %s", a.status, a.body)
		}
		s.tr.Enable("westus")
		if err := s.tr.Enable("eastus"); err != nil {
			t.Fatal(err)
		}
		s.ok(s.send("gpt-4o", stream), stream, "eastus")
		if got := strings.Join(s.rec.stateChanges("eastus"), ","); got != "disabled,healthy" {
			t.Errorf("eastus went %s", got)
		}
		if err := s.tr.Disable("nowhere"); !errors.Is(err, ErrUnknownRegion) {
			t.Errorf("Disable(unknown) = %v", err)
		}
	})
}

// TestScenarioStreamCutAfterHeaders: with resume off, a stream cut after events reached the caller is a
// *StreamError, never a clean end.
func TestScenarioStreamCutAfterHeaders(t *testing.T) {
	p := scenarioPolicy()
	p.Streams.Resume = ResumeOff
	s := newScenario(t, p)
	s.fault("eastus", sim.Fault{Mode: sim.ModeCutStream, AfterEvents: 2})
	a := s.send("gpt-4o", true)
	var se *StreamError
	if !errors.As(a.err, &se) || se.Region != "eastus" {
		t.Fatalf("cut stream: err %v (want *StreamError from eastus), body %q", a.err, a.body)
	}
	if a.status != 200 || !strings.Contains(a.body, "data: ") {
		t.Errorf("the events before the cut should have arrived: %d %q", a.status, a.body)
	}
	if got := s.rec.outcomes(); len(got) != 1 || got[0] != "eastus:stream_error" {
		t.Errorf("outcomes %v", got)
	}
	if r := s.tr.Regions()[0]; r.ErrorRate != 1 {
		t.Errorf("the cut was not counted against eastus: %+v", r)
	}
	// A cut before the first event is still transparent: nothing reached the client.
	s.fault("eastus", sim.Fault{Mode: sim.ModeCutStream, AfterEvents: 0})
	s.ok(s.send("gpt-4o", true), true, "westus")
}

// TestScenarioConcurrentChaos drives concurrent traffic, streaming and not, while eastus and
// westus take turns failing in different ways and being disabled, enabled and reloaded by the
// operator; swedencentral stays up (breakers lag behind faults, so a region that recovers may
// still be out for a while). Clients must never see a failure (a stream cut by a region going down mid-stream is reported as a
// *StreamError, never as a clean end), and -race must stay quiet.
func TestScenarioConcurrentChaos(t *testing.T) {
	p := fastPolicy()
	p.Breaker.OpenFor = 100 * time.Millisecond
	p.Breaker.SlowStart = 200 * time.Millisecond
	s := newScenario(t, p, sim.DefaultRegions("eastus", "westus", "swedencentral")...)
	cfg := s.configCopy()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		faults := []sim.Fault{
			{Mode: sim.ModeDown}, {Mode: sim.ModeBlackhole}, {Mode: sim.ModeError, Status: 500},
			{Mode: sim.ModeThrottle, RetryAfter: sim.Duration(50 * time.Millisecond)}, {Mode: sim.ModeSlow, Latency: sim.Duration(time.Second)},
		}
		names := []string{"eastus", "westus"}
		for i := 0; ; i++ {
			r := names[i%2]
			select {
			case <-stop:
				return
			case <-time.After(40 * time.Millisecond):
			}
			if i%4 == 3 {
				s.tr.Disable(r)
				s.tr.Regions()
				s.tr.Reconfigure(cfg)
				time.Sleep(20 * time.Millisecond)
				s.tr.Enable(r)
				continue
			}
			s.sim.Fault(r, faults[i%len(faults)])
			time.Sleep(60 * time.Millisecond)
			s.sim.Fault(r, sim.Fault{Mode: sim.ModeClear})
		}
	}()
	var wg sync.WaitGroup
	var cut atomic.Int64
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				stream := (w+i)%2 == 0
				a := s.send("gpt-4o-mini", stream)
				var se *StreamError
				switch {
				case errors.As(a.err, &se):
					cut.Add(1)
				case a.err != nil || a.status != 200:
					t.Errorf("client saw status %d err %v body %.200s", a.status, a.err, a.body)
				case stream && !strings.HasSuffix(strings.TrimSpace(a.body), "data: [DONE]"):
					t.Errorf("stream ended without [DONE] and without an error")
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-done
	t.Logf("streams cut mid-way (reported as errors): %d; attempts %d", cut.Load(), len(s.rec.outcomes()))
}

func (s *scenario) configCopy() Config {
	var cfg Config
	for _, r := range s.tr.tab.Load().regions {
		cfg.Regions = append(cfg.Regions, r.cfg)
	}
	cfg.Policy = s.tr.tab.Load().policy
	return cfg
}

// TestScenarioBrokenStreamsLeaveRotation: a region that breaks every stream after its headers leaves
// rotation after breaker.failures (issue 12: 204 of 204 streams failed and the region stayed healthy,
// because a success was counted when the headers arrived). Default policy: with answers that are the
// same in every region, each broken stream resumes in westus and the client sees no error.
func TestScenarioBrokenStreamsLeaveRotation(t *testing.T) {
	s := newScenario(t, Policy{})
	s.answers(sim.AnswersDeterministic)
	s.fault("eastus", sim.Fault{Mode: sim.ModeCutStream, AfterEvents: 3})
	for i := range DefaultFailures {
		a := s.send("gpt-4o", true)
		s.ok(a, true, "eastus") // the headers came from eastus; the rest from westus
		if _, _, comments := streamText(a.body); len(comments) != 1 {
			t.Fatalf("stream %d was not resumed: %q", i, comments)
		}
	}
	if got := strings.Join(s.rec.stateChanges("eastus"), ","); got != "open" {
		t.Fatalf("eastus went %q after %d broken streams, want open", got, DefaultFailures)
	}
	st := s.tr.Regions()[0]
	if st.State != Open || st.StateReason != "stream_error" {
		t.Errorf("eastus: %v because %q", st.State, st.StateReason)
	}
	s.ok(s.send("gpt-4o", true), true, "westus")
	s.wantAttempts("eastus", DefaultFailures)
}
