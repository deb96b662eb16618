package failover

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lifeline-sre/lifeline/sim"
)

// probePolicy: a time out far longer than the test, so that only an active probe can bring a region back.
func probePolicy() Policy {
	p := fastPolicy()
	p.Breaker.OpenFor = time.Hour
	p.Breaker.ProbeInterval = 50 * time.Millisecond
	return p
}

func (r *recorder) probeOutcomes(region string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, p := range r.probes {
		if p.Region == region {
			out = append(out, p.Outcome.String())
		}
	}
	return out
}

// TestProbeBringsRegionBack: with open_for at an hour and no client traffic, the active probe finds the
// region back; the next request is the trial, and the region serves again.
func TestProbeBringsRegionBack(t *testing.T) {
	s := newScenario(t, probePolicy())
	s.fault("eastus", sim.Fault{Mode: sim.ModeDown})
	for range 3 {
		s.ok(s.send("gpt-4o", false), false, "westus")
	}
	if st := s.tr.Regions()[0]; st.State != Open || st.NextProbe.IsZero() {
		t.Fatalf("eastus after 3 failures: %v, next probe %v", st.State, st.NextProbe)
	}
	eventually(t, "a failed probe of eastus", func() bool { return len(s.rec.probeOutcomes("eastus")) > 0 })
	if got := s.rec.probeOutcomes("eastus")[0]; got != "connect_error" {
		t.Errorf("probe of a down region: %s", got)
	}
	if st := s.tr.Regions()[0]; st.State != Open || st.LastProbe == nil || st.LastProbe.Outcome != "connect_error" {
		t.Fatalf("after a failed probe: %v %+v", st.State, st.LastProbe)
	}
	s.fault("eastus", sim.Fault{Mode: sim.ModeClear})
	eventually(t, "eastus half-open after a probe", func() bool { return s.tr.Regions()[0].State == HalfOpen })
	if st := s.tr.Regions()[0]; st.StateReason != ReasonProbeOK || st.LastProbe.Outcome != "ok" {
		t.Errorf("half-open because %q, last probe %+v", st.StateReason, st.LastProbe)
	}
	s.ok(s.send("gpt-4o", true), true, "eastus")
	if got := strings.Join(s.rec.stateChanges("eastus"), ","); got != "open,half_open,healthy" {
		t.Errorf("eastus went %s", got)
	}
	// Healthy regions are not probed.
	n := len(s.rec.probeOutcomes("eastus"))
	time.Sleep(200 * time.Millisecond)
	if m := len(s.rec.probeOutcomes("eastus")); m != n {
		t.Errorf("%d probes of a healthy region", m-n)
	}
	if len(s.rec.probeOutcomes("westus")) != 0 {
		t.Error("westus was probed")
	}
}

// TestProbeCostsNoTokens: a probe is a GET of the models list with the region's credential, nothing else.
func TestProbeCostsNoTokens(t *testing.T) {
	var mu sync.Mutex
	var got []string
	var down = true
	east := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery+" key="+r.Header.Get("Api-Key"))
		d := down
		mu.Unlock()
		if d && r.Method == "POST" {
			status(503, `{}`)(w, r)
			return
		}
		okJSON(w, r)
	})
	west := newBackend(t, okJSON)
	rec := &recorder{}
	tr := mustNew(t, Config{Regions: []Region{testRegion("eastus", east.URL+"/pfx", 1, "gpt-4o", "d"),
		testRegion("westus", west.URL, 2, "gpt-4o", "d")}, Policy: probePolicy()}, WithObserver(rec))
	for range 2 {
		readAll(t, chat(t, tr, "gpt-4o")) // 2 attempts each: 503, 503
	}
	eventually(t, "a probe", func() bool { return len(rec.probeOutcomes("eastus")) > 0 })
	mu.Lock()
	last := got[len(got)-1]
	mu.Unlock()
	if last != "GET /pfx/openai/models?api-version=2024-10-21 key=key-eastus" {
		t.Errorf("probe request: %s", last)
	}
	if o := rec.probeOutcomes("eastus")[0]; o != "ok" {
		t.Errorf("a region that answers the probe: %s", o)
	}
}

// TestProbeNotForDisabledAndStopsOnClose: a disabled region is never probed, and Close stops the probes.
func TestProbeNotForDisabledAndStopsOnClose(t *testing.T) {
	s := newScenario(t, probePolicy())
	s.fault("eastus", sim.Fault{Mode: sim.ModeDown})
	for range 3 {
		s.send("gpt-4o", false)
	}
	s.tr.Disable("eastus")
	time.Sleep(300 * time.Millisecond)
	if n := len(s.rec.probeOutcomes("eastus")); n > 1 { // one may have been in flight when Disable came
		t.Errorf("%d probes of a disabled region", n)
	}
	s.tr.Enable("eastus")
	eventually(t, "probes after Enable", func() bool { return len(s.rec.probeOutcomes("eastus")) >= 2 })
	s.tr.Close()
	n := len(s.rec.probeOutcomes("eastus"))
	time.Sleep(300 * time.Millisecond)
	if m := len(s.rec.probeOutcomes("eastus")); m != n {
		t.Errorf("%d probes after Close", m-n)
	}
	// The transport still serves after Close.
	s.ok(s.send("gpt-4o", false), false, "westus")
}
