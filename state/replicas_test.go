package state_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lifeline-sre/lifeline/config"
	"github.com/lifeline-sre/lifeline/gateway"
	"github.com/lifeline-sre/lifeline/internal/syncbuf"
	"github.com/lifeline-sre/lifeline/sim"
	"github.com/lifeline-sre/lifeline/state"
)

// The multi-replica tests share one simulator and the package's one redis-server (state.SharedRedis); each test has
// its own key prefix, and clears the faults it sets.
var (
	simOnce sync.Once
	theSim  *sim.Sim
	simErr  error
)

const (
	regionKey = "region-key"
	clientKey = "client-key"
	adminKey  = "admin-key"
)

func sharedSim(t *testing.T) *sim.Sim {
	t.Helper()
	simOnce.Do(func() {
		regions := sim.DefaultRegions("eastus", "westus")
		for i := range regions {
			regions[i].TokensPerSecond = 200
		}
		theSim, simErr = sim.Start(sim.Config{Regions: regions, APIKey: regionKey, Seed: 1})
	})
	if simErr != nil {
		t.Fatal(simErr)
	}
	return theSim
}

// gw is one replica: a gateway serving on its own listeners.
type gw struct {
	name, url, adminURL string
	g                   *gateway.Gateway
	reg                 *prometheus.Registry
	logs                *syncbuf.Buffer
	stop                func()
}

type replicaOpts struct {
	listen, admin string        // fixed addresses (a restarted replica keeps its port); "": free ports
	delay         time.Duration // server.shutdown_delay; 0: none
	onEvent       func(state.Event)
}

func startGW(t *testing.T, prefix, name string, o replicaOpts) *gw {
	t.Helper()
	s := sharedSim(t)
	cfg := &config.Config{
		Clients: []config.Client{{Name: "app", Key: clientKey}},
		Admin:   config.Admin{Key: adminKey},
		Policy: config.Policy{
			Retry:   config.Retry{Backoff: config.Duration(5 * time.Millisecond), MaxBackoff: config.Duration(20 * time.Millisecond)},
			Breaker: config.Breaker{Failures: 3, OpenFor: config.Duration(30 * time.Second), SlowStart: -1},
		},
		Server: config.Server{ShutdownDelay: -1, ShutdownTimeout: config.Duration(20 * time.Second)},
		State: config.State{Replica: name, SyncInterval: config.Duration(300 * time.Millisecond),
			Redis: &config.Redis{Addr: state.SharedRedis().Addr, KeyPrefix: prefix}},
	}
	if o.delay > 0 {
		cfg.Server.ShutdownDelay = config.Duration(o.delay)
	}
	for i, r := range []string{"eastus", "westus"} {
		cfg.Regions = append(cfg.Regions, config.Region{Name: r, Endpoint: s.Region(r).URL(), APIKey: regionKey, Priority: i + 1,
			Deployments: map[string]string{"gpt-4o": "gpt-4o"}})
	}
	cfg.ApplyDefaults()
	logs := &syncbuf.Buffer{}
	reg := prometheus.NewRegistry()
	g, err := gateway.New(cfg, gateway.Options{Logger: slog.New(slog.NewJSONHandler(logs, nil)), Registerer: reg,
		OnSharedEvent: o.onEvent})
	if err != nil {
		t.Fatal(err)
	}
	ln, aln := listenOn(t, o.listen), listenOn(t, o.admin)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Serve(ctx, ln, aln) }()
	r := &gw{name: name, url: "http://" + ln.Addr().String(), adminURL: "http://" + aln.Addr().String(), g: g, reg: reg, logs: logs}
	var once sync.Once
	r.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("%s: Serve: %v", name, err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("%s: Serve did not return", name)
			}
		})
	}
	t.Cleanup(r.stop)
	eventually(t, name+" to reach Redis", 15*time.Second, func() bool { return g.Shared().Up() })
	return r
}

func listenOn(t *testing.T, addr string) net.Listener {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var ln net.Listener
	var err error
	for range 100 { // a restarted replica's old listener may still be closing
		if ln, err = net.Listen("tcp", addr); err == nil {
			return ln
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal(err)
	return nil
}

func startThree(t *testing.T) []*gw {
	t.Helper()
	p := "test:" + t.Name() + ":"
	return []*gw{startGW(t, p, "r1", replicaOpts{}), startGW(t, p, "r2", replicaOpts{}), startGW(t, p, "r3", replicaOpts{})}
}

func eventually(t *testing.T, what string, timeout time.Duration, f func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !f() {
		if time.Since(start) > timeout {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return time.Since(start)
}

func fault(t *testing.T, region string, f sim.Fault) {
	t.Helper()
	if err := sharedSim(t).Fault(region, f); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sharedSim(t).Fault(region, sim.Fault{Mode: sim.ModeClear}) })
}

const chatBody = `{"model":"gpt-4o","messages":[{"role":"user","content":"hello"}]}`

// chat sends one non-streaming request; it returns the status, the region that answered and the attempts.
func chat(t *testing.T, base string) (int, string, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/v1/chat/completions", strings.NewReader(chatBody))
	req.Header.Set("api-key", clientKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("x-lifeline-region"), resp.Header.Get("x-lifeline-attempts")
}

func (r *gw) regions(t *testing.T) gateway.RegionsView {
	t.Helper()
	req, _ := http.NewRequest("GET", r.adminURL+"/admin/regions", nil)
	req.Header.Set("Authorization", "Bearer "+adminKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v gateway.RegionsView
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func (r *gw) regionState(t *testing.T, region string) string {
	t.Helper()
	for _, rv := range r.regions(t).Regions {
		if rv.Name == region {
			return rv.State
		}
	}
	t.Fatalf("%s: no region %s", r.name, region)
	return ""
}

func (r *gw) admin(t *testing.T, path, body string) int {
	t.Helper()
	req, _ := http.NewRequest("POST", r.adminURL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+adminKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestDisableOnOneReplicaReachesAll: three replicas; POST /admin/regions/eastus/disable on one reaches the two
// others within a second, with who and why; their clients go to westus; enable on another replica brings it back.
func TestDisableOnOneReplicaReachesAll(t *testing.T) {
	rs := startThree(t)
	if code, region, _ := chat(t, rs[1].url); code != 200 || region != "eastus" {
		t.Fatalf("before: %d from %q", code, region)
	}
	start := time.Now()
	if code := rs[0].admin(t, "/admin/regions/eastus/disable", `{"by":"alice","reason":"INC-7 drill"}`); code != 200 {
		t.Fatalf("disable: %d", code)
	}
	for _, r := range rs[1:] {
		eventually(t, "the disable on "+r.name, time.Second, func() bool { return r.regionState(t, "eastus") == "disabled" })
		t.Logf("%s saw the disable %s after the request", r.name, time.Since(start).Round(time.Microsecond))
		if code, region, _ := chat(t, r.url); code != 200 || region != "westus" {
			t.Errorf("%s after the disable: %d from %q", r.name, code, region)
		}
	}
	v := rs[2].regions(t).Shared
	if v == nil || !v.Up || len(v.Switches) != 1 || v.Switches[0].By != "alice" || v.Switches[0].Reason != "INC-7 drill" || v.Switches[0].Origin != "r1" {
		t.Errorf("r3's shared view: %+v", v)
	}
	eventually(t, "three replicas in the shared view", 3*time.Second, func() bool {
		return len(rs[2].regions(t).Shared.Replicas) == 3
	})
	if code := rs[1].admin(t, "/admin/regions/eastus/enable", `{"by":"bob","reason":"over"}`); code != 200 {
		t.Fatalf("enable: %d", code)
	}
	for _, r := range []*gw{rs[0], rs[2]} {
		eventually(t, "the enable on "+r.name, time.Second, func() bool { return r.regionState(t, "eastus") == "healthy" })
	}
	if code := rs[0].admin(t, "/admin/regions/atlantis/disable", ""); code != 404 {
		t.Errorf("disable of an unknown region: %d", code)
	}
}

// TestTripOnOneReplicaSparesTheOthers: eastus fails; one replica's clients trip its breaker; the other replicas
// take eastus out at once, so their clients go straight to westus (one attempt, no failure on the way).
func TestTripOnOneReplicaSparesTheOthers(t *testing.T) {
	rs := startThree(t)
	fault(t, "eastus", sim.Fault{Mode: sim.ModeError, Status: 503})
	for i := 0; rs[0].regionState(t, "eastus") != "open"; i++ {
		if code, _, _ := chat(t, rs[0].url); code != 200 {
			t.Fatalf("r1's client got %d", code)
		}
		if i > 20 {
			t.Fatal("r1's breaker did not open")
		}
	}
	for _, r := range rs[1:] {
		eventually(t, "the trip on "+r.name, time.Second, func() bool { return r.regionState(t, "eastus") == "open" })
		for range 3 {
			if code, region, attempts := chat(t, r.url); code != 200 || region != "westus" || attempts != "1" {
				t.Errorf("%s's client: %d from %q after %s attempts; want westus at the first attempt", r.name, code, region, attempts)
			}
		}
	}
}

// TestSharedCoolDown: a 429 with Retry-After on one replica cools the deployment down on all of them.
func TestSharedCoolDown(t *testing.T) {
	rs := startThree(t)
	fault(t, "eastus", sim.Fault{Mode: sim.ModeThrottle, RetryAfter: sim.Duration(20 * time.Second)})
	if code, region, _ := chat(t, rs[0].url); code != 200 || region != "westus" {
		t.Fatalf("r1: %d from %q", code, region)
	}
	for _, r := range rs[1:] {
		eventually(t, "the cool-down on "+r.name, time.Second, func() bool {
			for _, rv := range r.regions(t).Regions {
				if rv.Name == "eastus" && len(rv.Deployments) == 1 && rv.Deployments[0].CoolingUntil != nil {
					return rv.Deployments[0].CoolingUntil.After(time.Now().Add(15 * time.Second))
				}
			}
			return false
		})
		if code, region, attempts := chat(t, r.url); code != 200 || region != "westus" || attempts != "1" {
			t.Errorf("%s: %d from %q after %s attempts; want westus at once", r.name, code, region, attempts)
		}
	}
}

// TestRedisKilledUnderLoad: steady traffic through three replicas while Redis is killed: no client sees an
// error; every replica reports lifeline_state_backend_up 0 and logs it once; a disable taken during the outage
// applies at once where it was taken and reaches the others when an empty Redis returns, without a restart.
func TestRedisKilledUnderLoad(t *testing.T) {
	rs := startThree(t)
	rdb := state.SharedRedis()
	var sent, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest("POST", rs[(w+i)%3].url+"/v1/chat/completions", strings.NewReader(chatBody))
				req.Header.Set("api-key", clientKey)
				req.Header.Set("Content-Type", "application/json")
				resp, err := http.DefaultClient.Do(req)
				sent.Add(1)
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
				}
			}
		}()
	}
	time.Sleep(500 * time.Millisecond)
	rdb.Kill()
	for _, r := range rs {
		eventually(t, r.name+" to report the backend down", 5*time.Second, func() bool {
			return gauge(t, r.reg, "lifeline_state_backend_up") == 0
		})
	}
	if code := rs[0].admin(t, "/admin/regions/westus/disable", `{"by":"carol","reason":"during the outage"}`); code != 200 {
		t.Fatalf("disable during the outage: %d", code)
	}
	if s := rs[0].regionState(t, "westus"); s != "disabled" {
		t.Errorf("r1 did not apply its own disable during the outage: %s", s)
	}
	if v := rs[1].regions(t).Shared; v == nil || v.Up {
		t.Errorf("r2's shared view during the outage: %+v", v)
	}
	time.Sleep(time.Second)
	if err := rdb.Restart(); err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		eventually(t, r.name+" to report the backend up", 5*time.Second, func() bool {
			return gauge(t, r.reg, "lifeline_state_backend_up") == 1
		})
	}
	for _, r := range rs[1:] {
		eventually(t, "the outage's disable on "+r.name, 3*time.Second, func() bool { return r.regionState(t, "westus") == "disabled" })
	}
	close(stop)
	wg.Wait()
	if failed.Load() != 0 {
		t.Errorf("%d of %d requests failed while Redis was killed", failed.Load(), sent.Load())
	}
	for _, r := range rs {
		if n := strings.Count(r.logs.String(), "unreachable"); n != 1 {
			t.Errorf("%s logged the outage %d times", r.name, n)
		}
	}
	t.Logf("%d requests, none failed", sent.Load())
}

func gauge(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// readStream reads an SSE stream to its end and reports whether it finished whole.
func readStream(r io.Reader) (complete bool, tail string) {
	br := bufio.NewReader(r)
	var last string
	for {
		line, err := br.ReadString('\n')
		if strings.TrimSpace(line) != "" {
			last = line
		}
		if strings.Contains(line, `"error"`) {
			return false, line
		}
		if err != nil {
			return strings.HasPrefix(last, "data: [DONE]"), last
		}
	}
}
