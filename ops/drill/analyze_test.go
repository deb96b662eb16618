package drill

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

const ms = time.Millisecond

// steady makes one request every 100ms from 0 to end, answered by region(start) in 20ms.
func steady(end time.Duration, region func(time.Duration) (string, string)) []Sample {
	var out []Sample
	for at := time.Duration(0); at < end; at += 100 * ms {
		reg, err := region(at)
		s := Sample{Start: at, Latency: 20 * ms, Region: reg, Err: err}
		if err == "" {
			s.Status = 200
		}
		out = append(out, s)
	}
	return out
}

var timing = Timing{Disable: 1000 * ms, Enable: 2000 * ms, End: 3000 * ms}

func TestAnalyzePassingDrill(t *testing.T) {
	s := steady(3000*ms, func(at time.Duration) (string, string) {
		if at >= 1000*ms && at < 2300*ms { // back 300ms after the enable
			return "westus", ""
		}
		return "eastus", ""
	})
	a := Analyze(s, "eastus", timing, 30)
	if !a.Passed || a.Errors != 0 {
		t.Fatalf("want pass, got %+v", a)
	}
	if a.FailoverMs == nil || *a.FailoverMs != 20 {
		t.Errorf("failover = %v, want 20ms (the first answer from westus)", a.FailoverMs)
	}
	if a.FailbackMs == nil || *a.FailbackMs != 320 {
		t.Errorf("failback = %v, want 320ms", a.FailbackMs)
	}
	if p := a.Phases[1]; p.ByRegion["westus"] != 10 || p.ByRegion["eastus"] != 0 || p.P50Ms != 20 || p.P99Ms != 20 {
		t.Errorf("during = %+v", p)
	}
	if len(a.Timeline) != 30 || a.BucketMs != 100 {
		t.Errorf("timeline %d buckets of %vms", len(a.Timeline), a.BucketMs)
	}
}

func TestAnalyzeFailingDrill(t *testing.T) {
	s := steady(3000*ms, func(at time.Duration) (string, string) {
		switch {
		case at >= 1000*ms && at < 1300*ms: // three errors while the gateway noticed
			return "", "503 Service Unavailable"
		case at >= 1000*ms && at < 2000*ms:
			return "westus", ""
		}
		return "eastus", ""
	})
	s[10].Status = 503
	a := Analyze(s, "eastus", timing, 0)
	if a.Passed || a.Errors != 3 || a.Phases[1].Errors != 3 {
		t.Fatalf("want 3 errors and a failure, got %+v", a)
	}
	if a.ErrorKinds["HTTP 503"] != 1 {
		t.Errorf("error kinds %v", a.ErrorKinds)
	}
	if a.FailoverMs == nil || *a.FailoverMs != 320 {
		t.Errorf("failover = %v, want 320ms", a.FailoverMs)
	}
}

func TestAnalyzeTrafficNeverLeft(t *testing.T) {
	s := steady(3000*ms, func(time.Duration) (string, string) { return "eastus", "" })
	a := Analyze(s, "eastus", timing, 0)
	if a.Passed || a.FailoverMs != nil {
		t.Fatalf("traffic stayed in eastus, want a failure: %+v", a)
	}
	if !strings.Contains(strings.Join(a.Problems, ";"), "did not settle in another region while eastus was out") {
		t.Errorf("problems %v", a.Problems)
	}
}

// A request that the client started just before the switch back, but that reached the gateway after it, is
// answered by the region it left: that is failback beginning, not traffic that never left.
func TestAnalyzeAnswerAtTheSwitchBack(t *testing.T) {
	s := steady(3000*ms, func(at time.Duration) (string, string) {
		if at >= 1000*ms && at < 2000*ms {
			return "westus", ""
		}
		return "eastus", ""
	})
	late := append(append([]Sample{}, s...), Sample{Start: 1995 * ms, Latency: 20 * ms, Region: "eastus", Status: 200})
	a := Analyze(late, "eastus", timing, 0)
	if !a.Passed || a.FailoverMs == nil || *a.FailoverMs != 20 {
		t.Fatalf("want a pass with failover in 20ms: %+v", a)
	}
	// The same answer before the switch back is traffic that did not leave.
	early := append(append([]Sample{}, s...), Sample{Start: 1995 * ms, Latency: 2 * ms, Region: "eastus", Status: 200})
	if a := Analyze(early, "eastus", timing, 0); a.Passed || a.FailoverMs != nil {
		t.Fatalf("an answer from eastus within the outage passed: %+v", a)
	}
}

// One answer from westus followed by timeouts is not a failover: clients were not served elsewhere.
func TestAnalyzeOneStrayAnswerIsNotAFailover(t *testing.T) {
	s := steady(3000*ms, func(at time.Duration) (string, string) {
		switch {
		case at == 1000*ms:
			return "westus", ""
		case at > 1000*ms && at < 2000*ms:
			return "", "context deadline exceeded"
		}
		return "eastus", ""
	})
	a := Analyze(s, "eastus", timing, 0)
	if a.Passed || a.FailoverMs != nil || a.ErrorKinds["client timeout"] != 9 || len(a.Notes) != 1 {
		t.Fatalf("got %+v", a)
	}
}

// A region that does not take its traffic back fails the drill, and says so plainly.
func TestAnalyzeNoFailbackFails(t *testing.T) {
	s := steady(3000*ms, func(at time.Duration) (string, string) {
		if at >= 1000*ms {
			return "westus", ""
		}
		return "eastus", ""
	})
	a := Analyze(s, "eastus", timing, 0)
	if a.Passed || a.FailbackMs != nil || a.FirstAnswerMs != nil || len(a.Problems) != 1 ||
		!strings.Contains(a.Problems[0], "failback did not finish: eastus did not take its traffic back") {
		t.Fatalf("want a failure that names the failback, got %+v", a)
	}
	// A running drill that waited says how long, and where the region was.
	w := timing
	w.FailbackWait, w.FailbackState = 3*time.Minute, "open, next probe in 12s"
	a = Analyze(s, "eastus", w, 0)
	if a.Passed || len(a.Problems) != 1 || a.Problems[0] != "failback did not finish within 3m0s (eastus was open, next probe in 12s); "+
		"raise --failback-timeout, or look at policy.breaker.open_for and slow_start" {
		t.Fatalf("problems %q", a.Problems)
	}
}

// The first answer is not the end of failback: a drill that saw failback finish later (slow start) reports both,
// and the requests in between are their own phase.
func TestAnalyzeFirstAnswerAndFailback(t *testing.T) {
	s := steady(4000*ms, func(at time.Duration) (string, string) {
		switch {
		case at >= 1000*ms && at < 2000*ms, at >= 2000*ms && at < 3000*ms && at%(300*ms) != 0:
			return "westus", "" // after the enable only one request in three goes back to eastus at first
		}
		return "eastus", ""
	})
	w := Timing{Disable: 1000 * ms, Enable: 2000 * ms, Recovered: 3000 * ms, FailbackWait: time.Minute, End: 4000 * ms}
	a := Analyze(s, "eastus", w, 0)
	if !a.Passed || a.FirstAnswerMs == nil || *a.FirstAnswerMs != 120 || a.FailbackMs == nil || *a.FailbackMs != 1000 {
		t.Fatalf("first answer %v, failback %v: %+v", a.FirstAnswerMs, a.FailbackMs, a)
	}
	if p := a.Phases[2]; p.Name != "failback" || p.Requests != 10 || p.ByRegion["eastus"] == 0 || p.ByRegion["westus"] == 0 {
		t.Errorf("failback phase %+v", p)
	}
	if p := a.Phases[3]; p.Name != "after" || p.Requests != 10 || p.ByRegion["eastus"] != 10 {
		t.Errorf("after phase %+v", p)
	}
}

func TestReportRendering(t *testing.T) {
	s := steady(3000*ms, func(at time.Duration) (string, string) {
		if at >= 1000*ms && at < 2000*ms {
			return "westus", ""
		}
		return "eastus", ""
	})
	r := &Report{Region: "eastus", Name: "gpt-4o", Samples: s, Analysis: Analyze(s, "eastus", timing, 30)}
	r.Timing.DisableMs, r.Timing.EnableMs, r.Timing.EndMs = 1000, 2000, 3000
	var md, js, svg bytes.Buffer
	if err := r.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteSVG(&svg); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"PASSED", "| during | 10 | 0 |", "eastus        |██████████          ██████████|", "timeline.svg"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("markdown lacks %q:\n%s", want, md.String())
		}
	}
	if !strings.Contains(js.String(), `"failover_ms": 20`) || !strings.Contains(js.String(), `"start_ms": 2900`) {
		t.Errorf("json: %s", js.String()[:400])
	}
	if !strings.HasPrefix(svg.String(), "<svg") || strings.Count(svg.String(), "stroke-dasharray") != 2 /* no failback line: Timing.RecoveredMs is nil */ {
		t.Errorf("svg: %s", svg.String())
	}
}
