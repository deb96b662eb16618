package continuity_test

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/lifeline-sre/lifeline/bench/continuity"
	"github.com/lifeline-sre/lifeline/config"
	"github.com/lifeline-sre/lifeline/gateway"
	"github.com/lifeline-sre/lifeline/sim"
)

const azPath = "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"

// The scenario's whole code path in a tiny configuration, through real sockets: two simulators (control APIs on
// loopback), Lifeline on its default policy in front of one, and the other's primary called directly (a client
// without a gateway, so every fault reaches it). It asserts what the faults must do to the figures, never speed.
func TestScenarioTiny(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a few seconds of traffic per fault")
	}
	newSim := func() *sim.Sim {
		s, err := sim.Start(sim.Config{Regions: sim.DefaultRegions("eastus", "westus"), APIKey: "k", ControlAddr: "127.0.0.1:0"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		return s
	}
	ls, ds := newSim(), newSim()
	cfg := &config.Config{
		Clients:   []config.Client{{Name: "bench", Key: "client"}},
		Server:    config.Server{ShutdownDelay: -1},
		Fallbacks: map[string][]string{"gpt-4o": {"gpt-4o-128k"}},
	}
	for i, r := range []string{"eastus", "westus"} {
		cfg.Regions = append(cfg.Regions, config.Region{Name: r, Endpoint: ls.Region(r).URL(), APIKey: "k", Priority: i + 1,
			Deployments: map[string]string{"gpt-4o": "gpt-4o", "gpt-4o-128k": "gpt-4o-128k"}})
	}
	cfg.ApplyDefaults()
	g, err := gateway.New(cfg, gateway.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	aln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { g.Serve(ctx, ln, aln); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	ms := func(n int) continuity.Duration { return continuity.Duration(time.Duration(n) * time.Millisecond) }
	plan := continuity.Plan{
		Faults:   []string{"cut_stream", "context_length", "throttle_all"},
		Baseline: ms(1500), Fault: ms(1500), Throttle: ms(500), Recover: ms(2000), Timeout: ms(20000),
		Back: 3, Rate: 10, Tokens: 4, Retries: 2, ContextWindow: 100,
		Peers: []continuity.Peer{
			{Name: "lifeline", URL: "http://" + ln.Addr().String() + azPath, Headers: map[string]string{"api-key": "client"},
				Control: ls.ControlURL(), Primary: "eastus", Secondary: "westus", RegionHeader: "x-lifeline-region", PrimaryValue: "eastus",
				Config: "default policy"},
			{Name: "direct", URL: ds.Region("eastus").URL() + azPath, Headers: map[string]string{"api-key": "k"},
				Control: ds.ControlURL(), Primary: "eastus", Secondary: "westus", RegionHeader: "x-ms-region", PrimaryValue: "East US",
				Cannot: map[string]string{"cut_stream": "no gateway", "context_length": "no gateway"}, Config: "no gateway"},
			{Name: "absent", Skip: "not installed here"},
		},
	}
	res, err := continuity.Run(context.Background(), plan, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Faults) != 3 || len(res.Skipped) != 1 {
		t.Fatalf("faults %d, skipped %v", len(res.Faults), res.Skipped)
	}
	get := func(fault, peer string) continuity.PeerRun {
		for _, f := range res.Faults {
			for _, r := range f.Runs {
				if f.Name == fault && r.Peer == peer {
					return r
				}
			}
		}
		t.Fatalf("no run of %s for %s", fault, peer)
		return continuity.PeerRun{}
	}
	for _, f := range res.Faults {
		for _, r := range f.Runs {
			s := r.Stats
			if r.Error != "" || s.Baseline == 0 || s.Requests == 0 {
				t.Errorf("%s %s: error %q, baseline %d requests, fault %d", f.Name, r.Peer, r.Error, s.Baseline, s.Requests)
			}
			for _, smp := range r.Samples {
				if smp.Phase == "baseline" && !smp.OK {
					t.Errorf("%s %s: a healthy baseline request failed: %+v", f.Name, r.Peer, smp)
				}
			}
		}
	}
	// Without a gateway every stream the primary cuts is an error the client sees, and a prompt too long for
	// the deployment is a 400; the primary is the only region, so it answers again as soon as it heals.
	if s := get("cut_stream", "direct").Stats; s.Errors != s.Requests || s.FirstErrors != s.Requests || s.OnPrimary != 0 || s.FirstPrimary < 0 {
		t.Errorf("cut_stream direct: %+v", s)
	}
	if s := get("context_length", "direct").Stats; s.Errors != s.Requests || !strings.Contains(strings.Join(s.ErrorKinds, ""), "context_length_exceeded") {
		t.Errorf("context_length direct: %+v", s)
	}
	// Lifeline falls back to gpt-4o-128k: no client sees the 400.
	if s := get("context_length", "lifeline").Stats; s.Errors != 0 {
		t.Errorf("context_length lifeline: %+v", s)
	}
	// Every region throttled for half a second, Retry-After 1 s: the client's retries (openai-go's) wait it out.
	if s := get("throttle_all", "direct").Stats; s.Errors != 0 || s.FirstErrors == 0 {
		t.Errorf("throttle_all direct: want 429s on first attempts and none after the retries: %+v", s)
	}
	var md bytes.Buffer
	res.Markdown(&md, continuity.Meta{Commit: "test", Quick: true, LoadAverage: "1 1 1"})
	for _, want := range []string{"| fault | lifeline | direct |", "| `cut_stream` | lifeline |", "| `context_length` | direct ¹ |", "absent**: not run: not installed here"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, md.String())
		}
	}
}
