package failover

import (
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
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

// TestEarlyResumeStall: on the default policy, a region that stalls a stream mid-way (connection
// open) costs that stream the quiet bound plus the next region's catch-up, not timeouts.stream_idle
// (60 s): the resume starts while the stream still waits, and goes on from the region that answered.
// The client gets the whole answer, once, with the first region's id, and no error.
func TestEarlyResumeStall(t *testing.T) {
	s := newScenario(t, Policy{})
	s.answers(sim.AnswersDeterministic)
	want := s.send("gpt-4o", true)
	s.ok(want, true, "eastus")
	wantText, _, _ := streamText(want.body)
	s.fault("eastus", sim.Fault{Mode: sim.ModeStall, AfterEvents: 4})
	start := time.Now()
	a := s.send("gpt-4o", true) // the scenario's client gives up after 20 s
	took := time.Since(start)
	s.ok(a, true, "eastus")
	text, ids, comments := streamText(a.body)
	if text != wantText || len(ids) != 1 {
		t.Errorf("content %q (ids %v), want %q under one id", text, ids, wantText)
	}
	if len(comments) != 1 || comments[0] != ": lifeline resumed eastus -> westus" {
		t.Errorf("comments %q", comments)
	}
	if took > 10*time.Second {
		t.Errorf("the stalled stream took %v; want about the quiet bound (2s until learned)", took)
	}
	s.rec.mu.Lock()
	resumes, hedges := slices.Clone(s.rec.resumes), slices.Clone(s.rec.hedges)
	s.rec.mu.Unlock()
	if len(resumes) != 1 || !resumes[0].Early || resumes[0].Outcome != ResumeOK || resumes[0].To != "westus" {
		t.Errorf("resumes %+v; want one early resume to westus, ok", resumes)
	}
	if len(hedges) != 1 || !hedges[0].MidStream || hedges[0].Outcome != HedgeWon || hedges[0].From != "eastus" {
		t.Errorf("hedges %+v; want one mid-stream hedge won against eastus", hedges)
	}
	// eastus's stream counts against it, as a stall; one is not yet enough to mark it stalling.
	eventually(t, "eastus's attempt ended", func() bool {
		return strings.Contains(strings.Join(s.rec.outcomes(), ","), "eastus:stream_error")
	})
	st := s.tr.tab.Load().regions[0].targets["gpt-4o"].state
	if st.stalled(time.Now()) || st.quietLosses.Load() != 1 {
		t.Errorf("after one stream lost by silence: stalled %v, losses %d", st.stalled(time.Now()), st.quietLosses.Load())
	}
}

// TestEarlyResumeSampled: answers that differ between regions cannot be resumed; but when streams
// stall in a region while the next answers, two of them mark the region as seen stalling, and every
// stalled stream then ends with the error event after about the quiet bound, not stream_idle. Each
// counts against the region. Default policy.
func TestEarlyResumeSampled(t *testing.T) {
	s := newScenario(t, Policy{})
	s.answers(sim.AnswersRandom)
	s.fault("eastus", sim.Fault{Mode: sim.ModeStall, AfterEvents: 4})
	start := time.Now()
	var wg sync.WaitGroup
	res := make([]answer, 3)
	for i := range res {
		wg.Go(func() { res[i] = s.send("gpt-4o", true) })
	}
	wg.Wait()
	took := time.Since(start)
	for i, a := range res {
		var se *StreamError
		if !errors.As(a.err, &se) || se.Region != "eastus" || !strings.HasPrefix(se.Resume, "diverged in westus") || !errors.Is(se.Err, ErrStreamQuiet) {
			t.Errorf("stream %d: err %v; want eastus's stall (quiet), diverged in westus", i, a.err)
		}
	}
	if took > 12*time.Second {
		t.Errorf("the stalled streams took %v; want about the quiet bound", took)
	}
	if st := s.tr.tab.Load().regions[0].targets["gpt-4o"].state; !st.stalled(time.Now()) {
		t.Error("eastus is not marked as seen stalling")
	}
	eventually(t, "three stream errors counted against eastus", func() bool {
		return strings.Count(strings.Join(s.rec.outcomes(), ","), "eastus:stream_error") == 3
	})
}

// TestEarlyResumePause: a stream that pauses past the quiet bound in a healthy region and goes on is
// not harmed: the early resume is dropped, the client gets the first region's whole answer, and one
// such pause does not mark the region. Whether the next region answers differently (it answered while
// eastus was silent: one stream lost by silence, not enough to mark it) or more slowly (the early
// resume lost, and is cancelled at once).
func TestEarlyResumePause(t *testing.T) {
	const text = "a long pause in the middle of a healthy answer"
	first := chatChunks("chatcmpl-east", "fp_east", strings.SplitAfter(text, " "))
	for _, tc := range []struct {
		name    string
		west    http.HandlerFunc
		outcome string // of the mid-stream hedge
		losses  int32  // eastus's streams lost by silence before its stream ended complete
	}{
		{"next region differs", events(chatChunks("chatcmpl-west", "fp_west", []string{"another ", "answer"})...), HedgeWon, 1},
		{"next region slower", func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-time.After(10 * time.Second):
			case <-r.Context().Done():
			}
		}, HedgeLost, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			east := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				for i, ev := range first {
					if i == 4 {
						select {
						case <-time.After(5 * time.Second): // past the quiet bound (2 s until learned), with room for the early resume to end first
						case <-r.Context().Done():
							return
						}
					}
					io.WriteString(w, ev+"\n\n")
					w.(http.Flusher).Flush()
				}
			})
			west := newBackend(t, tc.west)
			rec := &recorder{}
			tr := mustNew(t, Config{Regions: []Region{testRegion("eastus", east.URL, 1, "gpt-4o", "gpt-4o"),
				testRegion("westus", west.URL, 2, "gpt-4o", "gpt-4o")}}, WithObserver(rec))
			st := tr.tab.Load().regions[0].targets["gpt-4o"].state
			req, _ := http.NewRequest("POST", "https://lifeline.invalid/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21",
				strings.NewReader(`{"messages":[{"role":"user","content":"hi"}],"stream":true}`))
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			var losses int32
			body, err := io.ReadAll(readerFunc(func(p []byte) (int, error) {
				losses = max(losses, st.quietLosses.Load()) // before the stream's end clears them
				return resp.Body.Read(p)
			}))
			resp.Body.Close()
			if err != nil {
				t.Fatalf("the paused stream failed: %v", err)
			}
			if got, _, comments := streamText(string(body)); got != text || len(comments) != 0 {
				t.Errorf("content %q comments %q; want eastus's answer untouched", got, comments)
			}
			if west.hits.Load() != 1 {
				t.Errorf("westus got %d requests; want the one early resume", west.hits.Load())
			}
			if losses != tc.losses {
				t.Errorf("eastus's streams lost by silence: %d, want %d", losses, tc.losses)
			}
			if st.stalled(time.Now()) || st.quietLosses.Load() != 0 {
				t.Errorf("after a complete stream: stalled %v, losses %d", st.stalled(time.Now()), st.quietLosses.Load())
			}
			eventually(t, "the hedge was decided", func() bool {
				rec.mu.Lock()
				defer rec.mu.Unlock()
				return len(rec.hedges) == 1
			})
			rec.mu.Lock()
			h := rec.hedges[0]
			rec.mu.Unlock()
			if !h.MidStream || h.Outcome != tc.outcome || h.From != "eastus" || h.To != "westus" {
				t.Errorf("hedge %+v; want mid-stream, %s", h, tc.outcome)
			}
			eventually(t, "westus's attempt ended", func() bool { return len(rec.outcomes()) == 2 })
			if got := strings.Join(rec.outcomes(), ","); !strings.Contains(got, "eastus:ok") || strings.Contains(got, "stream_error") || strings.Contains(got, "timeout") {
				t.Errorf("attempts %s: nothing may count against a region", got)
			}
		})
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// TestEarlyAnswerStall: a non-streaming request goes to its region as a stream (upstream streaming);
// when that stream stalls mid-way, the same request starts in the next region at the quiet bound, and
// the first whole answer wins. Nothing of the stalled one reached the client, so any answer does:
// this works with sampled answers too. Default policy.
func TestEarlyAnswerStall(t *testing.T) {
	s := newScenario(t, Policy{})
	s.answers(sim.AnswersRandom)
	s.fault("eastus", sim.Fault{Mode: sim.ModeStall, AfterEvents: 4})
	start := time.Now()
	a := s.send("gpt-4o", false)
	took := time.Since(start)
	s.ok(a, false, "westus")
	if a.header.Get(HeaderHedged) != "true" {
		t.Errorf("the answer does not say it came from a hedge: %v", a.header)
	}
	if took > 10*time.Second {
		t.Errorf("the stalled request took %v; want about the quiet bound (2s until learned)", took)
	}
	s.rec.mu.Lock()
	hedges := slices.Clone(s.rec.hedges)
	s.rec.mu.Unlock()
	if len(hedges) != 1 || !hedges[0].MidStream || hedges[0].Outcome != HedgeWon || hedges[0].To != "westus" {
		t.Errorf("hedges %+v; want one mid-stream hedge won by westus", hedges)
	}
	eventually(t, "eastus's attempt ended", func() bool {
		return strings.Contains(strings.Join(s.rec.outcomes(), ","), "eastus:stream_error")
	})
	if st := s.tr.tab.Load().regions[0].targets["gpt-4o"].state; st.quietLosses.Load() != 1 {
		t.Errorf("eastus's losses by silence: %d, want 1", st.quietLosses.Load())
	}
}

// TestEarlyAnswerPause: a non-streaming request whose region pauses past the quiet bound and then
// completes keeps that region's answer when the early answer is slower; the early answer is cancelled
// and counts against nobody.
func TestEarlyAnswerPause(t *testing.T) {
	const text = "a pause in the middle of a healthy answer"
	first := chatChunks("chatcmpl-east", "fp_east", strings.SplitAfter(text, " "))
	east := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i, ev := range first {
			if i == 4 {
				select {
				case <-time.After(3 * time.Second):
				case <-r.Context().Done():
					return
				}
			}
			io.WriteString(w, ev+"\n\n")
			w.(http.Flusher).Flush()
		}
	})
	west := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(10 * time.Second):
		case <-r.Context().Done():
		}
	})
	rec := &recorder{}
	tr := mustNew(t, Config{Regions: []Region{testRegion("eastus", east.URL, 1, "gpt-4o", "gpt-4o"),
		testRegion("westus", west.URL, 2, "gpt-4o", "gpt-4o")}}, WithObserver(rec))
	resp := chat(t, tr, "gpt-4o")
	body := readAll(t, resp)
	if resp.StatusCode != 200 || resp.Header.Get(HeaderRegion) != "eastus" || !strings.Contains(body, text) {
		t.Fatalf("status %d from %s: %s", resp.StatusCode, resp.Header.Get(HeaderRegion), body)
	}
	if west.hits.Load() != 1 {
		t.Errorf("westus got %d requests; want the one early answer", west.hits.Load())
	}
	eventually(t, "westus's attempt ended", func() bool {
		return strings.Contains(strings.Join(rec.outcomes(), ","), "westus:canceled")
	})
	if got := strings.Join(rec.outcomes(), ","); strings.Contains(got, "stream_error") || strings.Contains(got, "timeout") {
		t.Errorf("attempts %s: nothing may count against a region", got)
	}
	eventually(t, "the early answer was reported", func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return len(rec.hedges) == 1
	})
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if h := rec.hedges[0]; !h.MidStream || h.Outcome != HedgeLost || h.To != "westus" {
		t.Errorf("hedge %+v; want a mid-stream hedge to westus, lost", h)
	}
}
