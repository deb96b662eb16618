package failover

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/lifeline-sre/lifeline/sim"
)

// streamText reads a chat stream's events: the content of choice 0, the distinct chunk ids, and the
// comments.
func streamText(body string) (text string, ids map[string]bool, comments []string) {
	ids = map[string]bool{}
	for _, ev := range strings.Split(body, "\n\n") {
		for _, line := range strings.Split(ev, "\n") {
			if strings.HasPrefix(line, ":") {
				comments = append(comments, line)
			}
			data, ok := strings.CutPrefix(line, "data: ")
			if !ok || data == "[DONE]" {
				continue
			}
			r := gjson.Parse(data)
			if id := r.Get("id").Str; id != "" {
				ids[id] = true
			}
			r.Get("choices").ForEach(func(_, c gjson.Result) bool {
				if c.Get("index").Int() == 0 {
					text += c.Get("delta.content").Str
				}
				return true
			})
		}
	}
	return text, ids, comments
}

// deterministic sets every region of the scenario to deterministic answers: the same prompt gives the
// same text in every region, so a resume can splice.
func (s *scenario) answers(mode string) {
	s.t.Helper()
	if err := s.sim.SetAnswers("", mode); err != nil {
		s.t.Fatal(err)
	}
}

// TestResumeReplay: a region cuts every stream half-way; the stream resumes in the next region, whose
// answer repeats what the client has: the client gets the whole answer, in one stream with one id,
// marked by the resume comment, and no error. Default policy.
func TestResumeReplay(t *testing.T) {
	s := newScenario(t, Policy{})
	s.answers(sim.AnswersDeterministic)
	want := s.send("gpt-4o", true) // the whole answer, from a healthy eastus
	s.ok(want, true, "eastus")
	wantText, wantIDs, _ := streamText(want.body)
	s.fault("eastus", sim.Fault{Mode: sim.ModeCutStream, AfterEvents: 4})
	a := s.send("gpt-4o", true)
	s.ok(a, true, "eastus")
	text, ids, comments := streamText(a.body)
	if text != wantText {
		t.Errorf("resumed content %q, want %q", text, wantText)
	}
	if len(ids) != 1 || len(wantIDs) != 1 {
		t.Errorf("chunk ids %v: a resumed stream keeps the first region's id", ids)
	}
	if len(comments) != 1 || comments[0] != ": lifeline resumed eastus -> westus" {
		t.Errorf("comments %q", comments)
	}
	if got := strings.Join(s.rec.resumeOutcomes(), ","); got != "eastus>westus:ok" {
		t.Errorf("resumes %s", got)
	}
	if got := strings.Join(s.rec.outcomes(), ","); !strings.HasSuffix(got, "eastus:stream_error,westus:ok") {
		t.Errorf("attempts %s", got)
	}
	s.rec.mu.Lock()
	last := s.rec.started[len(s.rec.started)-1]
	s.rec.mu.Unlock()
	if last.Region != "westus" || last.ResumeFrom != "eastus" {
		t.Errorf("resume attempt %+v", last)
	}
}

// TestResumeDiverges: answers that differ between regions cannot be spliced: the stream ends with the
// error, and what the client has is never followed by another region's text.
func TestResumeDiverges(t *testing.T) {
	s := newScenario(t, Policy{})
	s.answers(sim.AnswersRandom)
	s.fault("eastus", sim.Fault{Mode: sim.ModeCutStream, AfterEvents: 4})
	a := s.send("gpt-4o", true)
	var se *StreamError
	if !errors.As(a.err, &se) || se.Region != "eastus" || !strings.HasPrefix(se.Resume, "diverged in westus") {
		t.Fatalf("err %v (resume %q)", a.err, se.Resume)
	}
	if _, _, comments := streamText(a.body); len(comments) != 0 {
		t.Errorf("a resume that diverged left comments %q", comments)
	}
	if got := strings.Join(s.rec.resumeOutcomes(), ","); got != "eastus>westus:diverged" {
		t.Errorf("resumes %s", got)
	}
	// The region that answered differently is not held responsible: its abandoned stream is canceled.
	eventually(t, "westus's attempt ended", func() bool { return strings.Contains(strings.Join(s.rec.outcomes(), ","), "westus:canceled") })
	if st := s.tr.Regions()[1]; st.ErrorRate != 0 {
		t.Errorf("westus error rate %v", st.ErrorRate)
	}
}

func TestResumeOff(t *testing.T) {
	p := Policy{Streams: StreamsPolicy{Resume: ResumeOff}}
	s := newScenario(t, p)
	s.answers(sim.AnswersDeterministic)
	s.fault("eastus", sim.Fault{Mode: sim.ModeCutStream, AfterEvents: 4})
	a := s.send("gpt-4o", true)
	var se *StreamError
	if !errors.As(a.err, &se) || se.Resume != "" {
		t.Fatalf("err %v", a.err)
	}
	s.wantAttempts("westus", 0)
}

// TestResumeTimeout: the resume waits at most streams.resume_timeout for the splice.
func TestResumeTimeout(t *testing.T) {
	p := Policy{Streams: StreamsPolicy{ResumeTimeout: 300 * time.Millisecond}}
	s := newScenario(t, p)
	s.answers(sim.AnswersDeterministic)
	s.fault("eastus", sim.Fault{Mode: sim.ModeCutStream, AfterEvents: 4})
	s.fault("westus", sim.Fault{Mode: sim.ModeSlowFirstByte, Latency: sim.Duration(5 * time.Second)})
	start := time.Now()
	a := s.send("gpt-4o", true)
	var se *StreamError
	if !errors.As(a.err, &se) || !strings.HasPrefix(se.Resume, "timeout") {
		t.Fatalf("err %v", a.err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("the client waited %v for a resume bounded at 300ms", el)
	}
	eventually(t, "westus's attempt ended", func() bool { return strings.Contains(strings.Join(s.rec.outcomes(), ","), "westus:canceled") })
}

// TestResumeStall: a region that stalls mid-stream (connection open) is left after stream_idle, and the
// stream resumes.
func TestResumeStall(t *testing.T) {
	p := Policy{Timeouts: Timeouts{StreamIdle: 300 * time.Millisecond}}
	s := newScenario(t, p)
	s.answers(sim.AnswersDeterministic)
	want, _, _ := streamText(s.send("gpt-4o", true).body)
	s.fault("eastus", sim.Fault{Mode: sim.ModeStall, AfterEvents: 5})
	a := s.send("gpt-4o", true)
	s.ok(a, true, "eastus")
	if text, _, comments := streamText(a.body); text != want || len(comments) != 1 {
		t.Errorf("content %q comments %q", text, comments)
	}
}

// TestResumePrefill: a deployment marked prefill gets the partial answer as an assistant message and
// answers the rest; one that refuses it never hides the first region's error.
func TestResumePrefill(t *testing.T) {
	deps := []sim.Deployment{{Name: "gpt-4o", Model: "gpt-4o", Version: "2024-11-20", Prefill: true}}
	simRegions := []sim.RegionConfig{{Name: "eastus", Deployments: deps}, {Name: "westus", Deployments: deps}}
	sm, err := sim.Start(sim.Config{Regions: simRegions, APIKey: "k", Seed: 1, Answers: sim.AnswersDeterministic})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sm.Close)
	rec := &recorder{}
	var regions []Region
	for i, n := range []string{"eastus", "westus"} {
		regions = append(regions, Region{Name: n, Endpoint: sm.Region(n).URL(), APIKey: "k", Priority: i + 1,
			Deployments: map[string]string{"gpt-4o": "gpt-4o"}, Prefill: map[string]bool{"gpt-4o": true}})
	}
	tr := mustNew(t, Config{Regions: regions, Policy: Policy{Streams: StreamsPolicy{Resume: ResumePrefill}}}, WithObserver(rec))
	s := &scenario{t: t, sim: sm, tr: tr, rec: rec}
	want, _, _ := streamText(s.send("gpt-4o", true).body)
	s.fault("eastus", sim.Fault{Mode: sim.ModeCutStream, AfterEvents: 4})
	a := s.send("gpt-4o", true)
	s.ok(a, true, "eastus")
	if text, ids, comments := streamText(a.body); text != want || len(ids) != 1 || len(comments) != 1 {
		t.Errorf("content %q (want %q) ids %v comments %q", text, want, ids, comments)
	}
	rec.mu.Lock()
	ev := rec.resumes[len(rec.resumes)-1]
	rec.mu.Unlock()
	if ev.Mode != ResumePrefill || ev.Outcome != ResumeOK {
		t.Errorf("resume %+v", ev)
	}
	// westus refuses the request (a 400, as a deployment that takes no prefill might): the client gets
	// eastus's error, not westus's 400.
	s.fault("westus", sim.Fault{Mode: sim.ModeError, Status: 400})
	a = s.send("gpt-4o", true)
	var se *StreamError
	if !errors.As(a.err, &se) || se.Region != "eastus" || !strings.Contains(se.Resume, "failed in westus") {
		t.Fatalf("err %v", a.err)
	}
}
