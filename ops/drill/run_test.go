package drill

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lifeline-sre/lifeline/config"
	"github.com/lifeline-sre/lifeline/gateway"
	"github.com/lifeline-sre/lifeline/ops/internal/simtest"
	"github.com/lifeline-sre/lifeline/sim"
)

// stack is simulated regions, a real gateway in front of them and the simulator's control API, each on a
// loopback socket.
type stack struct {
	sim           *sim.Sim
	client, admin string
	control       string
}

func startStack(t *testing.T, policy string, deployments map[string]string) *stack {
	s := simtest.Start(t, sim.Config{Regions: []sim.RegionConfig{
		{Name: "eastus", Deployments: sim.DefaultDeployments()},
		{Name: "westus", Deployments: sim.DefaultDeployments()},
	}})
	yaml := "clients: [{name: drill, key: client-key}]\nadmin: {key: admin-key}\nregions:\n"
	for i, n := range []string{"eastus", "westus"} {
		yaml += "  - name: " + n + "\n    endpoint: " + s.Region(n).URL() + "\n    api_key: " + simtest.Key +
			"\n    priority: " + string(rune('1'+i)) + "\n    deployments: {" + deployments[n] + "}\n"
	}
	if policy == "" {
		policy = "policy: {}\n"
	}
	// Failback within the tests' patience: a short slow start and open time (the defaults take a minute).
	if !strings.Contains(policy, "breaker") {
		policy = strings.Replace(policy, "policy: {", "policy: {breaker: {slow_start: 400ms, open_for: 300ms}, ", 1)
	}
	yaml += policy
	cfg, err := config.Parse([]byte(yaml), nil)
	if err != nil {
		t.Fatalf("config: %v\n%s", err, yaml)
	}
	g, err := gateway.New(cfg, gateway.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	client, admin, control := httptest.NewServer(g.Handler()), httptest.NewServer(g.AdminHandler()), httptest.NewServer(s.ControlHandler())
	t.Cleanup(client.Close)
	t.Cleanup(admin.Close)
	t.Cleanup(control.Close)
	return &stack{sim: s, client: client.URL, admin: admin.URL, control: control.URL}
}

func (st *stack) options() Options {
	return Options{URL: st.client, Key: "client-key", Admin: st.admin, AdminKey: "admin-key", Region: "eastus",
		Rate: 25, Before: 500 * time.Millisecond, Hold: 1200 * time.Millisecond, After: 1200 * time.Millisecond,
		FailbackTimeout: 20 * time.Second, MaxTokens: 1, Timeout: 10 * time.Second, SimControl: st.control}
}

var both = map[string]string{"eastus": "gpt-4o: gpt-4o", "westus": "gpt-4o: gpt-4o"}

func TestDrillPassesWithTheAdminSwitch(t *testing.T) {
	st := startStack(t, "", both)
	var progress strings.Builder
	o := st.options()
	o.Progress = &progress
	rep, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	a := rep.Analysis
	if !a.Passed || a.Errors != 0 || !a.CarriedFirst {
		t.Fatalf("want a passing drill: %+v", a)
	}
	if rep.Name != "gpt-4o" { // picked from the gateway's models list
		t.Errorf("name %q", rep.Name)
	}
	if a.Phases[1].ByRegion["eastus"] != 0 || a.Phases[1].ByRegion["westus"] == 0 || a.Phases[0].ByRegion["eastus"] == 0 {
		t.Errorf("traffic by phase: %+v", a.Phases)
	}
	if a.FailoverMs == nil || *a.FailoverMs > 1000 {
		t.Errorf("failover %v", a.FailoverMs)
	}
	// Failback is waited for: the slow start (400ms) ends after the first answer, and the report has both.
	if a.FirstAnswerMs == nil || a.FailbackMs == nil || *a.FailbackMs < 300 || *a.FailbackMs < *a.FirstAnswerMs || rep.Timing.RecoveredMs == nil {
		t.Errorf("first answer %v, failback %v", a.FirstAnswerMs, a.FailbackMs)
	}
	if a.Requests < 20 { // 25/s for 2.9s; generous for a busy machine
		t.Errorf("only %d requests", a.Requests)
	}
	if !strings.Contains(progress.String(), "eastus out") || !strings.Contains(progress.String(), "eastus back") {
		t.Errorf("progress: %s", progress.String())
	}
	// The drill left the region enabled.
	if st.sim.Region("eastus").Stats().Requests == 0 {
		t.Error("eastus got no traffic")
	}
}

// A name that only eastus serves has no backup: the drill shows the outage clients would see.
func TestDrillFailsWhenClientsSeeErrors(t *testing.T) {
	st := startStack(t, "", map[string]string{"eastus": "gpt-4o: gpt-4o", "westus": "gpt-4o-mini: gpt-4o-mini"})
	o := st.options()
	o.Name = "gpt-4o"
	rep, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	a := rep.Analysis
	if a.Passed || a.Errors == 0 || a.Phases[1].Errors != a.Phases[1].Requests || a.ErrorKinds["HTTP 503"] == 0 {
		t.Fatalf("want a failing drill with 503s while eastus was out: %+v", a)
	}
	// No error before the switch: a request the client started just before it may reach the gateway after it
	// (and get its 503), so only requests answered before the switch are sure to be of the "before" phase.
	for _, s := range rep.Samples {
		if s.Err != "" && msf(s.End()) < rep.Timing.DisableMs {
			t.Errorf("an error before eastus went out: %+v", s)
		}
	}
	if a.Phases[2].Errors > 2 {
		t.Errorf("errors after the outage: %+v", a.Phases)
	}
	var md strings.Builder
	rep.WriteMarkdown(&md)
	if !strings.Contains(md.String(), "FAILED: clients saw") {
		t.Errorf("markdown:\n%s", md.String())
	}
}

// --fault rehearses the automatic path: the region really goes down and the engine moves traffic by itself.
func TestDrillWithSimulatorFaults(t *testing.T) {
	for _, mode := range []string{"down", "throttle", "blackhole"} {
		t.Run(mode, func(t *testing.T) {
			// A black hole is noticed by the first-byte deadline (non-streaming requests go upstream as streams), kept
			// short here.
			st := startStack(t, "policy: {timeouts: {response: 300ms, stream_first_byte: 300ms}}\n", both)
			o := st.options()
			o.Fault, o.AdminKey = mode, ""
			rep, err := Run(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			a := rep.Analysis
			if !a.Passed || a.Phases[1].ByRegion["westus"] == 0 {
				t.Fatalf("%s: want a passing drill: %+v", mode, a)
			}
			if rep.Method != "fault:"+mode {
				t.Errorf("method %q", rep.Method)
			}
			if !st.sim.Region("eastus").Up() {
				t.Error("the drill left eastus down")
			}
		})
	}
}

func TestDrillRefusesBadSetups(t *testing.T) {
	st := startStack(t, "", both)
	o := st.options()
	o.Region = "mars"
	if _, err := Run(context.Background(), o); err == nil || !strings.Contains(err.Error(), `no region "mars"`) {
		t.Errorf("unknown region: %v", err)
	}
	o = st.options()
	o.AdminKey = "wrong"
	if _, err := Run(context.Background(), o); err == nil || !strings.Contains(err.Error(), "admin key was refused") {
		t.Errorf("bad admin key: %v", err)
	}
}

func TestParseFault(t *testing.T) {
	hold := 20 * time.Second
	for spec, want := range map[string]sim.Fault{
		"down":                                 {Mode: "down"},
		"throttle":                             {Mode: "throttle", RetryAfter: sim.Duration(hold)},
		"throttle,retry_after=3s":              {Mode: "throttle", RetryAfter: sim.Duration(3 * time.Second)},
		"stall_stream, after_events=3":         {Mode: "stall_stream", AfterEvents: 3},
		"cut_stream,after_events=2,clean=true": {Mode: "cut_stream", AfterEvents: 2, Clean: true},
		"error,status=500,rate=0.5":            {Mode: "error", Status: 500, Rate: 0.5},
		"flap,down_for=5s,up_for=2s,repeat=3,outage=blackhole": {Mode: "flap", DownFor: sim.Duration(5 * time.Second),
			UpFor: sim.Duration(2 * time.Second), Repeat: 3, Outage: "blackhole"},
		`{"mode":"slow_first_byte","latency":"8s","deployment":"gpt-4o"}`: {Mode: "slow_first_byte", Latency: sim.Duration(8 * time.Second), Deployment: "gpt-4o"},
	} {
		got, err := ParseFault(spec, hold)
		if err != nil || got != want {
			t.Errorf("%s: %+v %v, want %+v", spec, got, err, want)
		}
	}
	for _, bad := range []string{"", "melt", "clear", "slow", "stall_stream,after_events", "flap,down_for=1s", `{"mode":"down"`, "down,rate=2"} {
		if f, err := ParseFault(bad, hold); err == nil {
			t.Errorf("%q accepted: %+v", bad, f)
		}
	}
}

// The new faults run through the drill: streamed traffic meets the fault in the region, and --answers is put
// back when the drill ends.
func TestDrillStreamFaultsAndAnswers(t *testing.T) {
	st := startStack(t, "policy: {timeouts: {stream_idle: 300ms}}\n", both)
	o := st.options()
	o.Fault, o.AdminKey, o.Stream, o.Answers = "stall_stream,after_events=3", "", true, "deterministic"
	rep, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Method != "fault:stall_stream" || rep.Analysis.Requests == 0 {
		t.Fatalf("method %q, %d requests", rep.Method, rep.Analysis.Requests)
	}
	if n := st.sim.Region("eastus").Stats().StreamsStalled; n == 0 {
		t.Error("no stream was stalled in eastus")
	}
	for _, r := range st.sim.Regions() {
		if r.Answers() != sim.AnswersRegion {
			t.Errorf("%s answers %q after the drill", r.Name(), r.Answers())
		}
		if _, ok := r.Fault(); ok {
			t.Errorf("%s keeps its fault after the drill", r.Name())
		}
	}
}

// A flap lets the region serve between outages: traffic need not settle elsewhere, and refused connections fail
// over at once, so clients see nothing.
func TestDrillFlap(t *testing.T) {
	st := startStack(t, "", both)
	o := st.options()
	o.Fault, o.AdminKey = "flap,down_for=300ms,up_for=300ms", ""
	rep, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	a := rep.Analysis
	if !a.Passed || a.Errors != 0 || a.Phases[1].ByRegion["westus"] == 0 {
		t.Fatalf("flap drill: %+v", a)
	}
	if !st.sim.Region("eastus").Up() {
		t.Error("the drill left eastus down")
	}
}

// The issue this guards against: a drill that reported PASSED while failback had not finished. Here the breaker
// keeps eastus out for 30s after the fault is cleared; the drill waits 1.5s for failback, then fails and says
// where eastus was.
func TestDrillFailsWhenFailbackDoesNotFinish(t *testing.T) {
	st := startStack(t, "policy: {breaker: {open_for: 30s, failures: 2}, timeouts: {response: 300ms}}\n", both)
	o := st.options()
	o.Fault, o.FailbackTimeout = "down", 1500*time.Millisecond
	var progress strings.Builder
	o.Progress = &progress
	rep, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	a := rep.Analysis
	if a.Passed || a.FailbackMs != nil || rep.Timing.RecoveredMs != nil {
		t.Fatalf("want a failed drill without failback: %+v", a)
	}
	if len(a.Problems) == 0 || !strings.Contains(a.Problems[len(a.Problems)-1], "failback did not finish within 1.5s (eastus was open, next probe in") {
		t.Errorf("problems %q", a.Problems)
	}
	if !strings.Contains(progress.String(), "failback did not finish within 1.5s") {
		t.Errorf("progress:\n%s", progress.String())
	}
	var md strings.Builder
	rep.WriteMarkdown(&md)
	if !strings.Contains(md.String(), "| time until failback finished (healthy, full share) | did not finish within 1.5s |") ||
		!strings.Contains(md.String(), "FAILED: ") {
		t.Errorf("markdown:\n%s", md.String())
	}
}
