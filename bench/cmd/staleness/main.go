// Command staleness measures how long a change on one Lifeline replica takes to act on the others through Redis
// (SPEC.md section 11: under 100 ms at p99 on loopback, and at most one state.sync_interval when a message is
// lost). It runs a real redis-server, simulated regions and three gateways in this process, all on loopback:
//
//   - switch: POST /admin/regions/eastus/disable (and enable) on replica 1, until replicas 2 and 3 have applied it;
//     default policy.
//   - trip: eastus answers 503; replica 1's clients trip its breaker, until replicas 2 and 3 hold it open; the
//     breaker is tuned (open_for and max_open_for 300ms) only so that trips repeat often enough to sample.
//   - lost: a switch written to Redis without its pub/sub message (as if the message were lost), until replicas 2
//     and 3 have read it; default state.sync_interval (2s).
//
// Times are taken in this process (one clock): from the request, the breaker's decision, or the write, to the
// moment a replica applied the event.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lifeline-sre/lifeline/config"
	"github.com/lifeline-sre/lifeline/gateway"
	"github.com/lifeline-sre/lifeline/internal/redistest"
	"github.com/lifeline-sre/lifeline/sim"
	"github.com/lifeline-sre/lifeline/state"
)

func main() { os.Exit(run()) }

// lags collects, per kind, the time from a change to its application on another replica.
type lags struct {
	mu    sync.Mutex
	start map[string]time.Time // event key -> when it happened (switches, lost writes)
	by    map[string][]time.Duration
}

func (l *lags) add(kind string, d time.Duration) {
	l.mu.Lock()
	l.by[kind] = append(l.by[kind], d)
	l.mu.Unlock()
}

func (l *lags) count(kind string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.by[kind])
}

func run() int {
	n := flag.Int("n", 100, "samples per kind and replica (switch, trip); lost uses n/10")
	out := flag.String("out", "", "also write the Markdown report to this file")
	flag.Parse()
	rdb, err := redistest.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer rdb.Close()
	s, err := sim.Start(sim.Config{Regions: sim.DefaultRegions("eastus", "westus"), APIKey: "k", Seed: 1})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer s.Close()
	l := &lags{start: map[string]time.Time{}, by: map[string][]time.Duration{}}
	onApply := func() func(state.Event) {
		return func(e state.Event) {
			now := time.Now()
			switch {
			case e.Kind == state.KindSwitch && e.Origin == "lost":
				l.add("lost", now.Sub(e.At))
			case e.Kind == state.KindSwitch && e.Origin == "r1":
				l.mu.Lock()
				t0, ok := l.start[fmt.Sprint(e.Disabled)]
				l.mu.Unlock()
				if ok {
					l.add("switch", now.Sub(t0))
				}
			case e.Kind == state.KindTrip && e.Origin == "r1" && e.State == state.TripOpen:
				l.add("trip", now.Sub(e.At))
			}
		}
	}
	prefix := fmt.Sprintf("staleness:%d:", time.Now().UnixNano())
	var gws []*replica
	for i := range 3 {
		tuned := i == 0 // only replica 1's breaker is tuned, so that it trips again and again
		g, err := startReplica(s, rdb.Addr, prefix, fmt.Sprintf("r%d", i+1), tuned, onApply())
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer g.stop()
		gws = append(gws, g)
	}
	for _, g := range gws {
		if !waitFor(10*time.Second, func() bool { return g.g.Shared().Up() }) {
			fmt.Fprintln(os.Stderr, "replicas did not reach Redis")
			return 1
		}
	}
	ctx := context.Background()

	// switch: disable and enable on r1, waiting each time until both others applied it.
	for i := range *n {
		disable := i%2 == 0
		path := "/admin/regions/eastus/enable"
		if disable {
			path = "/admin/regions/eastus/disable"
		}
		before := l.count("switch")
		l.mu.Lock()
		l.start[fmt.Sprint(disable)] = time.Now()
		l.mu.Unlock()
		if err := gws[0].admin(path); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if !waitFor(5*time.Second, func() bool { return l.count("switch") >= before+2 }) {
			fmt.Fprintln(os.Stderr, "a switch did not reach both replicas within 5s")
			return 1
		}
	}
	gws[0].admin("/admin/regions/eastus/enable")
	time.Sleep(100 * time.Millisecond)

	// trip: eastus fails; traffic on r1 only.
	s.Fault("eastus", sim.Fault{Mode: sim.ModeError, Status: 503})
	deadline := time.Now().Add(time.Duration(*n) * 2 * time.Second)
	for l.count("trip") < 2**n && time.Now().Before(deadline) {
		gws[0].chat()
		time.Sleep(20 * time.Millisecond)
	}
	s.Fault("eastus", sim.Fault{Mode: sim.ModeClear})

	// lost: events written straight into the hash, with no pub/sub message.
	c := redis.NewClient(&redis.Options{Addr: rdb.Addr})
	defer c.Close()
	lost := max(*n/10, 5)
	for i := range lost {
		e := state.Event{Kind: state.KindSwitch, Region: "westus", Disabled: i%2 == 0, By: "bench", At: time.Now(), Origin: "lost"}
		e.Rank = e.At.UnixMicro()
		b, _ := json.Marshal(e)
		before := l.count("lost")
		c.HSet(ctx, prefix+"events", e.Key(), b)
		if !waitFor(10*time.Second, func() bool { return l.count("lost") >= before+2 }) {
			fmt.Fprintln(os.Stderr, "a lost message was not read within 10s")
			return 1
		}
	}
	report := l.markdown(config.DefaultSyncInterval)
	fmt.Print(report)
	if *out != "" {
		if err := os.WriteFile(*out, []byte(report), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return 0
}

func (l *lags) markdown(interval time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| change on replica 1 | samples (applications on other replicas) | p50 | p99 | max | target |\n|---|---|---|---|---|---|\n")
	for _, k := range []struct{ kind, what, target string }{
		{"switch", "manual disable / enable (admin API), default policy", "p99 < 100 ms"},
		{"trip", "breaker trip (open_for 300ms to repeat; lag from the breaker's decision)", "p99 < 100 ms"},
		{"lost", "pub/sub message lost: found by the full read", fmt.Sprintf("at most one sync_interval (%s), read included", interval)},
	} {
		d := slices.Clone(l.by[k.kind])
		slices.Sort(d)
		if len(d) == 0 {
			fmt.Fprintf(&b, "| %s | 0 | | | | %s |\n", k.what, k.target)
			continue
		}
		pct := func(p float64) time.Duration { return d[min(len(d)-1, int(p*float64(len(d))))] }
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s |\n", k.what, len(d), ms(pct(0.5)), ms(pct(0.99)), ms(d[len(d)-1]), k.target)
	}
	return b.String()
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

func waitFor(timeout time.Duration, f func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !f() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(200 * time.Microsecond)
	}
	return true
}

type replica struct {
	g                   *gateway.Gateway
	url, adminURL, name string
	stop                func()
}

func startReplica(s *sim.Sim, redisAddr, prefix, name string, tuned bool, onApply func(state.Event)) (*replica, error) {
	cfg := &config.Config{
		Clients: []config.Client{{Name: "bench", Key: "client"}},
		Admin:   config.Admin{Key: "admin"},
		Server:  config.Server{ShutdownDelay: -1},
		State:   config.State{Replica: name, Redis: &config.Redis{Addr: redisAddr, KeyPrefix: prefix}},
	}
	if tuned {
		cfg.Policy.Breaker = config.Breaker{Failures: 1, OpenFor: config.Duration(300 * time.Millisecond), MaxOpenFor: config.Duration(300 * time.Millisecond)}
	}
	for i, r := range []string{"eastus", "westus"} {
		cfg.Regions = append(cfg.Regions, config.Region{Name: r, Endpoint: s.Region(r).URL(), APIKey: "k", Priority: i + 1,
			Deployments: map[string]string{"gpt-4o": "gpt-4o"}})
	}
	cfg.ApplyDefaults()
	g, err := gateway.New(cfg, gateway.Options{Logger: slog.New(slog.DiscardHandler), OnSharedEvent: onApply})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	aln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { g.Serve(ctx, ln, aln); close(done) }()
	return &replica{g: g, name: name, url: "http://" + ln.Addr().String(), adminURL: "http://" + aln.Addr().String(),
		stop: func() { cancel(); <-done }}, nil
}

func (r *replica) admin(path string) error {
	req, _ := http.NewRequest("POST", r.adminURL+path, strings.NewReader(`{"by":"bench","reason":"staleness"}`))
	req.Header.Set("Authorization", "Bearer admin")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s: %d", path, resp.StatusCode)
	}
	return nil
}

func (r *replica) chat() {
	req, _ := http.NewRequest("POST", r.url+"/v1/chat/completions", strings.NewReader(`{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("api-key", "client")
	req.Header.Set("Content-Type", "application/json")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}
