package gateway_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/lifeline-sre/lifeline/config"
	"github.com/lifeline-sre/lifeline/gateway"
	"github.com/lifeline-sre/lifeline/sim"
)

func (h *harness) regionsView() gateway.RegionsView {
	h.t.Helper()
	_, body := h.admin("GET", "/admin/regions", adminKey)
	var v gateway.RegionsView
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		h.t.Fatalf("%v: %s", err, body)
	}
	return v
}

// TestStatusViewDuringIncident: what the status page reads during a black hole and stream cuts. The black-holed
// region is open with its reason, the time it entered the state and the next probe; its failed attempts are
// counted in the last 15 minutes and in the history; streams cut by another region are counted as stream and
// client errors there.
func TestStatusViewDuringIncident(t *testing.T) {
	h := startHarness(t, harnessOpts{regions: []string{"eastus", "westus", "swedencentral"}, mutate: func(c *config.Config) {
		c.Policy.Breaker.OpenFor = config.Duration(time.Minute)
		c.Policy.Breaker.MaxOpenFor = config.Duration(time.Minute)
		c.Policy.Timeouts.Response = config.Duration(300 * time.Millisecond)
		c.Policy.Streams.Resume = "off" // the cut stream must reach the client as one, not be resumed elsewhere
	}})
	h.fault("eastus", sim.Fault{Mode: sim.ModeBlackhole})
	for i := 0; i < 4; i++ {
		resp, out := h.do("POST", "/openai/v1/chat/completions", chatBody)
		wantStatus(t, resp, out, 200)
	}
	v := h.regionsView()
	east := v.Regions[0]
	// The next active probe (every probe_interval, 5s by default) comes long before open_for (a minute) ends.
	if east.Display != "open" || !strings.Contains(east.Reason, "timeout") || east.StateReason != "timeout" || east.StateSince == nil ||
		east.OpenUntil == nil || time.Until(*east.OpenUntil) < 30*time.Second || east.NextProbe == nil || !east.NextProbe.Before(*east.OpenUntil) {
		t.Errorf("eastus during a black hole: %+v", east)
	}
	if east.Last15m.FailedAttempts < 3 || east.Last15m.Requests != 0 || v.Regions[1].Last15m.Requests != 4 || v.Regions[1].Display != "healthy" {
		t.Errorf("last 15 minutes: eastus %+v, westus %+v", east.Last15m, v.Regions[1].Last15m)
	}

	h.fault("westus", sim.Fault{Mode: sim.ModeCutStream, AfterEvents: 3})
	resp, out := h.do("POST", "/openai/v1/chat/completions", streamBody)
	wantStatus(t, resp, out, 200)
	west := h.regionsView().Regions[1]
	if west.Last15m.StreamErrors != 1 || west.Last15m.ClientErrors != 1 || west.Last15m.FailedAttempts != 1 {
		t.Errorf("westus after a cut stream: %+v", west.Last15m)
	}

	_, body := h.admin("GET", "/admin/history", adminKey)
	var hv gateway.HistoryView
	if err := json.Unmarshal([]byte(body), &hv); err != nil {
		t.Fatal(err)
	}
	sum := func(a []int64) (n int64) {
		for _, x := range a {
			n += x
		}
		return n
	}
	if hv.StepSeconds != 5 || len(hv.Regions) != 3 || len(hv.Regions[0].Requests) != 180 ||
		sum(hv.Regions[0].FailedAttempts) < 3 || sum(hv.Regions[1].Requests) != 5 || sum(hv.Regions[1].StreamErrors) != 1 {
		t.Errorf("history: step %v, %d regions, eastus failed %d, westus requests %d streams %d", hv.StepSeconds, len(hv.Regions),
			sum(hv.Regions[0].FailedAttempts), sum(hv.Regions[1].Requests), sum(hv.Regions[1].StreamErrors))
	}
	if resp, _ := h.admin("GET", "/admin/history", ""); resp.StatusCode != 401 {
		t.Errorf("/admin/history without the key: %d", resp.StatusCode)
	}
}

// TestStatusViewHedgesAndProbes: hedges and active probes as the engine reports them. A region slow to its first
// byte is hedged away from, and the region that answered the hedges says it won them; a black-holed region is
// probed in the background, and its card shows the last probe and how many failed.
func TestStatusViewHedgesAndProbes(t *testing.T) {
	h := startHarness(t, harnessOpts{mutate: func(c *config.Config) {
		c.Policy.Hedge.Delay = "100ms"
		c.Policy.Hedge.Budget = 1
		c.Policy.Timeouts.StreamFirstByte = config.Duration(10 * time.Second)
		c.Policy.Timeouts.Response = config.Duration(10 * time.Second)
		c.Policy.Breaker.ProbeInterval = config.Duration(200 * time.Millisecond)
		c.Policy.Breaker.OpenFor = config.Duration(time.Minute)
		c.Policy.Breaker.MaxOpenFor = config.Duration(time.Minute)
	}})
	h.fault("eastus", sim.Fault{Mode: sim.ModeSlowFirstByte, Latency: sim.Duration(2 * time.Second)})
	for i := 0; i < 2; i++ {
		resp, out := h.do("POST", "/openai/v1/chat/completions", streamBody)
		wantStatus(t, resp, out, 200)
		if resp.Header.Get("x-lifeline-region") != "westus" {
			t.Fatalf("request %d: answered by %q, want the hedge in westus", i, resp.Header.Get("x-lifeline-region"))
		}
	}
	v := h.regionsView()
	if east, west := v.Regions[0].Last15m, v.Regions[1].Last15m; east.Hedges != 2 || east.HedgesWon != 0 || west.HedgesWon != 2 || west.Hedges != 0 {
		t.Errorf("hedges: eastus %+v, westus %+v", east, west)
	}

	h.fault("eastus", sim.Fault{Mode: sim.ModeBlackhole})
	deadline := time.Now().Add(20 * time.Second)
	for {
		east := h.regionsView().Regions[0]
		if east.LastProbe != nil && east.LastProbe.Outcome != "ok" && east.Last15m.ProbesFailed > 0 {
			if east.Display != "open" || east.NextProbe == nil || east.Last15m.Probes < east.Last15m.ProbesFailed {
				t.Errorf("eastus probed: %+v", east)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no failed probe of the black-holed eastus on the status view: %+v", east)
		}
		if east.Display != "open" {
			resp, out := h.do("POST", "/openai/v1/chat/completions", chatBody) // time out in eastus until it opens
			wantStatus(t, resp, out, 200)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestStatusViewResumes: stream resumes as the engine reports them, on the default policy. Streams that eastus cuts
// after the client got events go on from westus: eastus's card counts them as stream errors resumed away (no
// client error), westus's as resumed here. When westus refuses connections too, the resume fails: eastus counts a
// failed resume and a client error.
func TestStatusViewResumes(t *testing.T) {
	h := startHarness(t, harnessOpts{})
	h.fault("eastus", sim.Fault{Mode: sim.ModeCutStream, AfterEvents: 3})
	for i := 0; i < 2; i++ {
		resp, out := h.do("POST", "/openai/v1/chat/completions", streamBody)
		wantStatus(t, resp, out, 200)
		if !strings.Contains(out, ": lifeline resumed eastus -> westus") || strings.Contains(out, "stream_error") {
			t.Fatalf("stream %d was not resumed:\n%s", i, out)
		}
	}
	v := h.regionsView()
	east, west := v.Regions[0].Last15m, v.Regions[1].Last15m
	if east.StreamErrors != 2 || east.Resumes != 2 || east.ResumesFailed != 0 || east.ClientErrors != 0 || west.Resumed != 2 || west.Resumes != 0 {
		t.Errorf("after two resumed streams: eastus %+v, westus %+v", east, west)
	}

	h.fault("westus", sim.Fault{Mode: sim.ModeDown})
	resp, out := h.do("POST", "/openai/v1/chat/completions", streamBody)
	wantStatus(t, resp, out, 200)
	if !strings.Contains(out, "(resume: failed in westus") {
		t.Fatalf("want the error event with the failed resume:\n%s", out)
	}
	v = h.regionsView()
	east = v.Regions[0].Last15m
	if east.StreamErrors != 3 || east.Resumes != 2 || east.ResumesFailed != 1 || east.ClientErrors != 1 || v.Regions[1].Last15m.Resumed != 2 {
		t.Errorf("after a failed resume: eastus %+v, westus %+v", east, v.Regions[1].Last15m)
	}
	// The recent events list the resumes, with what they came to.
	resumed, failedIn := 0, 0
	for _, e := range v.Events {
		switch {
		case e.Kind == "resume" && e.From == "eastus" && e.To == "westus" && e.Reason == "ok":
			resumed += e.Count
		case e.Kind == "resume" && e.From == "eastus" && e.To == "westus" && e.Reason == "failed":
			failedIn += e.Count
		}
	}
	if resumed != 2 || failedIn != 1 {
		t.Errorf("resume events: %d resumed, %d failed; events %+v", resumed, failedIn, v.Events)
	}
	_, body := h.admin("GET", "/admin/history", adminKey)
	var hv gateway.HistoryView
	if err := json.Unmarshal([]byte(body), &hv); err != nil {
		t.Fatal(err)
	}
	var ok, failed int64
	for i := range hv.Regions[0].Resumes {
		ok, failed = ok+hv.Regions[0].Resumes[i], failed+hv.Regions[0].ResumesFailed[i]
	}
	if ok != 2 || failed != 1 {
		t.Errorf("eastus's history: %d resumes, %d failed", ok, failed)
	}
}
