package continuity_test

import (
	"strings"
	"testing"
	"time"

	"github.com/lifeline-sre/lifeline/failover"
	"github.com/lifeline-sre/lifeline/sim"
)

// TestGrayFailures is issue 12's end-to-end test: one subtest per fault, each with its own simulated regions
// (eastus primary, westus) and gateway on the default policy, driven by openai-go and the npm openai client with
// their retries off, streaming and not (embeddings too). Wherever westus can serve, no client may see an error; a
// healed primary serves again within 10 s; once a region has been seen silent, no request waits for it more than
// the hedge delay and a little. The subtests run in parallel: the whole test takes about as long as its longest
// fault (the 60 s flap).
func TestGrayFailures(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  func(t *testing.T)
	}{
		{"cut-streams", cutStreams},
		{"cut-streams-diverging", cutStreamsDiverging},
		{"stall-mid-stream", stallMidStream},
		{"stall-mid-stream-diverging", stallDiverging},
		{"blackhole", blackhole},
		{"slow-first-byte-8s", slowFirstByte},
		{"flap-60s", flap},
		{"no-done", noDone},
		{"context-length-fallback", contextLength},
		{"throttled-everywhere-1s", throttledEverywhere},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t)
		})
	}
}

// warmup is the healthy traffic before a fault: enough for the hedge delay to be learned from first bytes.
const warmup = 3 * time.Second

// cutStreams: eastus resets every stream after 5 events. Streams the clients had started resume in westus
// (the answers are deterministic); non-streaming requests, which go to the region as streams, fail over before
// the client saw a byte; eastus leaves rotation after breaker.failures broken streams, and serves again after it
// heals.
func cutStreams(t *testing.T) {
	st := start(t, stackOpts{})
	var faultAt, healedAt time.Time
	samples := st.drive(traffic{}, func() {
		time.Sleep(warmup)
		faultAt = st.fault("eastus", sim.Fault{Mode: sim.ModeCutStream, AfterEvents: 5})
		waitFor(t, "eastus to open", 30*time.Second, func() bool { return !st.rec.opened("eastus", faultAt).IsZero() })
		time.Sleep(5 * time.Second)
		healedAt = st.heal("eastus")
		st.answeredBy("eastus", healedAt, 15*time.Second)
	})
	noClientErrors(t, samples)
	if n := st.rec.resumeOutcomes()[failover.ResumeOK]; n == 0 {
		t.Errorf("no stream was resumed (resumes %v): the fault did not reach a client's stream", st.rec.resumeOutcomes())
	}
	if st.sim.Region("eastus").Stats().StreamsCut == 0 {
		t.Error("eastus cut no stream")
	}
	servedAgain(t, st, samples, "eastus", healedAt)
}

// cutStreamsDiverging: as cut-streams, but every answer is new text (temperature above 0, no seed), so a stream
// eastus cut after the client got events cannot be resumed: it ends with the explicit error event, which both
// clients raise, never a clean end or a spliced answer. Everything else (non-streaming requests, embeddings) is
// answered without an error, and eastus leaves rotation.
func cutStreamsDiverging(t *testing.T) {
	st, _, _ := diverging(t, sim.Fault{Mode: sim.ModeCutStream, AfterEvents: 5})
	if n := st.rec.resumeOutcomes()[failover.ResumeOK]; n != 0 {
		t.Errorf("%d resumes succeeded with answers that differ every time", n)
	}
}

// diverging runs traffic on answers that differ every time while eastus has fault f, until eastus has left
// rotation, and checks that the only errors were eastus's streams ending with the error event of a diverged resume.
func diverging(t *testing.T, f sim.Fault) (*stack, []sample, time.Time) {
	st := start(t, stackOpts{answers: sim.AnswersRandom})
	var faultAt time.Time
	samples := st.drive(traffic{}, func() {
		time.Sleep(warmup)
		faultAt = st.fault("eastus", f)
		waitFor(t, "eastus to open", 30*time.Second, func() bool { return !st.rec.opened("eastus", faultAt).IsZero() })
		time.Sleep(3 * time.Second)
	})
	onlyDivergedResumes(t, st, samples)
	return st, samples, faultAt
}

// onlyDivergedResumes checks that the only errors clients saw were eastus's streams ending with the error event of a
// diverged resume, and that there was at least one.
func onlyDivergedResumes(t *testing.T, st *stack, samples []sample) {
	t.Helper()
	errs := 0
	for _, s := range samples {
		if s.Err == "" {
			continue
		}
		errs++
		t.Logf("error event: %s", s)
		if s.Kind != "stream" || s.Region != "eastus" || !strings.Contains(s.Err, "resume: diverged") {
			t.Errorf("a client error other than a broken stream's error event after a diverged resume:\n%s", s)
		}
	}
	if errs == 0 {
		t.Errorf("no stream ended with the error event (resumes %v): the fault did not reach a client's stream", st.rec.resumeOutcomes())
	}
	t.Logf("%d of %d requests ended with the error event of a diverged resume", errs, len(samples))
}

// stallMidStream: eastus stops sending after 5 events and holds the connection open. On the default policy a
// stream that waits the quiet bound starts its resume in westus while it still waits (an early resume): the
// answers are deterministic, so westus catches up and the stream goes on from there. So no stream waits on eastus
// for more than the quiet bound (which hedge events report as their delay) and a little, from the very first
// stall, not only once eastus has been seen stalling; eastus leaves rotation, and serves again after it heals.
func stallMidStream(t *testing.T) {
	st := start(t, stackOpts{})
	var faultAt, silentAt, healedAt time.Time
	samples := st.drive(traffic{}, func() {
		time.Sleep(warmup)
		faultAt = st.fault("eastus", sim.Fault{Mode: sim.ModeStall, AfterEvents: 5})
		waitFor(t, "eastus to be seen silent", 30*time.Second, func() bool {
			silentAt = st.rec.firstFailure("eastus", faultAt, func(f failure) bool { return f.outcome == failover.OutcomeStreamError })
			return !silentAt.IsZero()
		})
		waitFor(t, "eastus to open", 30*time.Second, func() bool { return !st.rec.opened("eastus", faultAt).IsZero() })
		time.Sleep(10 * time.Second) // long enough for a probe to let a trial request through
		healedAt = st.heal("eastus")
		st.answeredBy("eastus", healedAt, 15*time.Second)
	})
	noClientErrors(t, samples)
	if n := st.rec.earlyResumes(); n == 0 {
		t.Errorf("no stream was resumed early (resumes %v)", st.rec.resumeOutcomes())
	}
	waitedAtMost(t, "from the first stall on", startedIn(samples, faultAt, healedAt), st.rec.hedgeBound()+slack)
	if d := silentAt.Sub(faultAt); d > st.rec.hedgeBound()+slack {
		t.Errorf("eastus's first stall was counted %v after the fault; want about the quiet bound", d)
	}
	servedAgain(t, st, samples, "eastus", healedAt)
}

// stallDiverging: as stall-mid-stream, but every answer is new text, so a stalled stream cannot be resumed. The
// early resumes show westus answering while eastus stays silent; after two such streams eastus counts as seen
// stalling, and every stalled stream ends with the explicit error event after about the quiet bound, never
// timeouts.stream_idle (60 s). Everything else is answered without an error, and eastus leaves rotation.
func stallDiverging(t *testing.T) {
	st, samples, faultAt := diverging(t, sim.Fault{Mode: sim.ModeStall, AfterEvents: 5})
	waitedAtMost(t, "from the first stall on", startedIn(samples, faultAt, time.Now()), st.rec.hedgeBound()+slack)
}

// blackhole: eastus accepts connections and requests and never answers, for streams, non-streaming chat (which
// goes to the region as a stream) and embeddings (which hedge on their whole answer). Every request is answered by
// westus after at most the hedge delay, and eastus leaves rotation.
func blackhole(t *testing.T) {
	st := start(t, stackOpts{})
	var faultAt, healedAt time.Time
	samples := st.drive(traffic{}, func() {
		time.Sleep(warmup)
		faultAt = st.fault("eastus", sim.Fault{Mode: sim.ModeBlackhole})
		time.Sleep(12 * time.Second)
		healedAt = st.heal("eastus")
		st.answeredBy("eastus", healedAt, 15*time.Second)
	})
	noClientErrors(t, samples)
	during := startedIn(samples, faultAt, healedAt)
	if k := kinds(during); k["chat"] == 0 || k["stream"] == 0 || k["embed"] == 0 {
		t.Errorf("requests during the fault by kind: %v; want each kind", k)
	}
	if st.rec.opened("eastus", faultAt).IsZero() {
		t.Errorf("eastus never left rotation\n%s", st.rec.summary(st))
	}
	waitedAtMost(t, "while eastus was black-holed", during, st.rec.hedgeBound()+slack)
	servedAgain(t, st, samples, "eastus", healedAt)
}

// slowFirstByte: eastus sends its headers at once and its first byte after 8 s. Requests hedge to westus after
// the hedge delay instead of waiting 8 s.
func slowFirstByte(t *testing.T) {
	st := start(t, stackOpts{})
	var faultAt, healedAt time.Time
	samples := st.drive(traffic{}, func() {
		time.Sleep(warmup)
		faultAt = st.fault("eastus", sim.Fault{Mode: sim.ModeSlowFirstByte, Latency: sim.Duration(8 * time.Second)})
		time.Sleep(15 * time.Second)
		healedAt = st.heal("eastus")
		st.answeredBy("eastus", healedAt, 15*time.Second)
	})
	noClientErrors(t, samples)
	during := startedIn(samples, faultAt, healedAt)
	waitedAtMost(t, "while eastus took 8s to its first byte", during, st.rec.hedgeBound()+slack)
	servedAgain(t, st, samples, "eastus", healedAt)
}

// flap: for 60 s eastus is black-holed for 10 s, then healthy for 5 s (four times, then healthy). No client sees
// an error, no request waits on eastus for more than the hedge delay and a little, and after its last outage
// eastus serves again within 10 s.
func flap(t *testing.T) {
	st := start(t, stackOpts{})
	var faultAt, lastOutageEnd time.Time
	samples := st.drive(traffic{}, func() {
		time.Sleep(warmup)
		faultAt = st.fault("eastus", sim.Fault{Mode: sim.ModeFlap, Outage: sim.ModeBlackhole,
			DownFor: sim.Duration(10 * time.Second), UpFor: sim.Duration(5 * time.Second), Repeat: 4})
		lastOutageEnd = faultAt.Add(55 * time.Second)
		time.Sleep(time.Until(faultAt.Add(60 * time.Second)))
		if f, ok := st.sim.Region("eastus").Flap(); !ok || f.Phase == "out" || f.Outages != 4 {
			t.Errorf("the flap's outages are not over after 60s: %+v", f)
		}
		st.answeredBy("eastus", lastOutageEnd, 10*time.Second)
	})
	noClientErrors(t, samples)
	waitedAtMost(t, "while eastus flapped", startedIn(samples, faultAt, faultAt.Add(60*time.Second)), st.rec.hedgeBound()+slack)
	servedAgain(t, st, samples, "eastus", lastOutageEnd)
}

// noDone: eastus ends its streams after the finish chunk and the usage chunk without data: [DONE]. The answers are
// complete: clients get them whole, and eastus stays in rotation and answers everything.
func noDone(t *testing.T) {
	st := start(t, stackOpts{})
	var faultAt time.Time
	samples := st.drive(traffic{}, func() {
		time.Sleep(time.Second)
		faultAt = st.fault("eastus", sim.Fault{Mode: sim.ModeNoDone})
		time.Sleep(8 * time.Second)
	})
	noClientErrors(t, samples)
	during := startedIn(samples, faultAt, time.Now())
	for _, s := range during {
		if s.Region != "eastus" {
			t.Errorf("answered by %q, want eastus: a stream without [DONE] is complete\n%s", s.Region, s)
		}
	}
	if k := kinds(during); k["stream"] == 0 || k["chat"] == 0 {
		t.Errorf("requests during the fault by kind: %v", k)
	}
	if st.sim.Region("eastus").Stats().StreamsNoDone == 0 {
		t.Error("eastus sent no stream without [DONE]")
	}
	if !st.rec.opened("eastus", faultAt).IsZero() {
		t.Errorf("eastus left rotation\n%s", st.rec.summary(st))
	}
}

// contextLength: gpt-4o has a context window of 300 tokens in both regions, and `fallbacks: {gpt-4o:
// [gpt-4o-128k]}`. A long prompt gets context_length_exceeded from gpt-4o and is answered by gpt-4o-128k
// (x-lifeline-name), streaming or not; a short one by gpt-4o.
func contextLength(t *testing.T) {
	st := start(t, stackOpts{
		deployments: []sim.Deployment{{Name: "gpt-4o-128k", Model: "gpt-4o", Version: "2024-11-20"}},
		names:       map[string]string{"gpt-4o-128k": "gpt-4o-128k"},
		extraYAML:   "fallbacks:\n  gpt-4o: [gpt-4o-128k]\n",
	})
	for _, r := range []string{"eastus", "westus"} {
		if err := st.sim.AddDeployment(r, sim.Deployment{Name: "gpt-4o", Model: "gpt-4o", Version: "2024-11-20", ContextWindow: 300}); err != nil {
			t.Fatal(err)
		}
	}
	long := strings.Repeat("The river runs to the sea. ", 100)
	samples := st.drive(traffic{kinds: []string{"chat", "stream"}, prompts: []string{"Tell me about rivers", long}}, func() {
		time.Sleep(6 * time.Second)
	})
	noClientErrors(t, samples)
	n := map[int]int{}
	for _, s := range samples {
		want := ""
		if s.Prompt == 1 {
			want = "gpt-4o-128k"
		}
		if s.Name != want {
			t.Errorf("x-lifeline-name %q, want %q\n%s", s.Name, want, s)
		}
		n[s.Prompt]++
	}
	if n[0] == 0 || n[1] == 0 {
		t.Errorf("requests per prompt %v; want both", n)
	}
}

// throttledEverywhere: both regions answer 429 (Retry-After: 1) for one second. The gateway waits the throttle out
// (it is shorter than retry.max_backoff), so clients without retries see no error.
func throttledEverywhere(t *testing.T) {
	st := start(t, stackOpts{})
	var faultAt time.Time
	samples := st.drive(traffic{}, func() {
		time.Sleep(2 * time.Second)
		faultAt = time.Now()
		for _, r := range []string{"eastus", "westus"} {
			st.fault(r, sim.Fault{Mode: sim.ModeThrottle, RetryAfter: sim.Duration(time.Second)})
		}
		time.Sleep(time.Second)
		st.heal("eastus")
		st.heal("westus")
		time.Sleep(4 * time.Second)
	})
	noClientErrors(t, samples)
	throttled := st.sim.Region("eastus").Stats().Throttled + st.sim.Region("westus").Stats().Throttled
	if throttled == 0 {
		t.Error("no request was throttled: the fault did not act")
	}
	t.Logf("%d requests started during the throttle, %d answers 429 from the regions", len(startedIn(samples, faultAt, faultAt.Add(time.Second))), throttled)
}

func waitFor(t *testing.T, what string, limit time.Duration, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
