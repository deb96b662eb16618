package gateway_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lifeline-sre/lifeline/config"
	"github.com/lifeline-sre/lifeline/failover"
	"github.com/lifeline-sre/lifeline/gateway"
	"github.com/lifeline-sre/lifeline/internal/syncbuf"
	"github.com/lifeline-sre/lifeline/sim"
)

const (
	clientKey = "client-key-0123456789abcdef"
	adminKey  = "admin-key-fedcba9876543210"
	regionKey = "region-key-5f5f5f5f5f5f5f5f"
)

// syncBuffer is a log sink that tests read while the gateway writes.
type syncBuffer struct{ syncbuf.Buffer }

// lines returns the JSON log lines with msg.
func (b *syncBuffer) lines(msg string) []map[string]any {
	var out []map[string]any
	for _, l := range strings.Split(b.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// harness is a gateway in front of simulated regions, on real sockets.
type harness struct {
	t        *testing.T
	sim      *sim.Sim
	gw       *gateway.Gateway
	cfg      *config.Config
	url      string // client side, http://127.0.0.1:PORT
	adminURL string
	logs     *syncBuffer
	reg      *prometheus.Registry
	stop     func() // graceful shutdown; waits for Serve to return
	load     func() (*config.Config, error)
}

type harnessOpts struct {
	regions []string                       // default eastus, westus
	mutate  func(*config.Config)           // adjust the config before the gateway starts
	load    func() (*config.Config, error) // Options.Load
	simCfg  func(*sim.Config)
}

func testConfig(s *sim.Sim, names []string) *config.Config {
	cfg := &config.Config{
		// test-app may use every operation (the stored-object ones are not in the defaults); the least-privilege
		// tests add keys of their own.
		Clients: []config.Client{{Name: "test-app", Key: clientKey, Operations: allOperations()}},
		Admin:   config.Admin{Key: adminKey, StatusRefresh: config.Duration(200 * time.Millisecond)},
		Policy: config.Policy{
			Retry:    config.Retry{Backoff: config.Duration(5 * time.Millisecond), MaxBackoff: config.Duration(20 * time.Millisecond)},
			Breaker:  config.Breaker{Failures: 3, OpenFor: config.Duration(300 * time.Millisecond), SlowStart: -1},
			Timeouts: config.Timeouts{Connect: config.Duration(500 * time.Millisecond), Response: config.Duration(time.Second), StreamFirstByte: config.Duration(time.Second), StreamIdle: config.Duration(500 * time.Millisecond)},
		},
		Server: config.Server{ShutdownTimeout: config.Duration(2 * time.Second), ShutdownDelay: -1}, // drain_test.go sets a delay
	}
	for i, n := range names {
		cfg.Regions = append(cfg.Regions, config.Region{
			Name: n, Endpoint: s.Region(n).URL(), APIKey: regionKey, Priority: i + 1,
			Deployments: map[string]string{"gpt-4o": "gpt-4o", "gpt-4o-mini": "gpt-4o-mini", "embed": "text-embedding-3-small"},
		})
	}
	cfg.ApplyDefaults()
	return cfg
}

func allOperations() []string {
	var ops []string
	for _, o := range failover.Operations() {
		ops = append(ops, string(o))
	}
	return ops
}

func startHarness(t *testing.T, o harnessOpts) *harness {
	t.Helper()
	if o.regions == nil {
		o.regions = []string{"eastus", "westus"}
	}
	sc := sim.Config{Regions: sim.DefaultRegions(o.regions...), APIKey: regionKey, Seed: 1}
	if o.simCfg != nil {
		o.simCfg(&sc)
	}
	s, err := sim.Start(sc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	cfg := testConfig(s, o.regions)
	if o.mutate != nil {
		o.mutate(cfg)
	}
	logs := &syncBuffer{}
	reg := prometheus.NewRegistry()
	gw, err := gateway.New(cfg, gateway.Options{
		Logger:     gateway.NewLogger(logs, "json", slog.LevelDebug),
		Registerer: reg,
		Load:       o.load,
		RegionTLS:  s.TLSConfig(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ln := listen(t)
	aln := listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- gw.Serve(ctx, ln, aln) }()
	h := &harness{t: t, sim: s, gw: gw, cfg: cfg, logs: logs, reg: reg, load: o.load,
		url: "http://" + ln.Addr().String(), adminURL: "http://" + aln.Addr().String()}
	if cfg.TLS != nil {
		h.url = "https://" + ln.Addr().String()
	}
	var once sync.Once
	h.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Serve: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Error("Serve did not return 10s after its context ended")
			}
		})
	}
	t.Cleanup(h.stop)
	return h
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func (h *harness) fault(region string, f sim.Fault) {
	h.t.Helper()
	if err := h.sim.Fault(region, f); err != nil {
		h.t.Fatal(err)
	}
}

// do sends a request to the gateway's client side with the client key in api-key (unless headers set auth).
func (h *harness) do(method, path, body string, headers ...string) (*http.Response, string) {
	h.t.Helper()
	req, err := http.NewRequest(method, h.url+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("api-key", clientKey)
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
			continue
		}
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// admin sends a request to the admin listener with the admin key (key "" sends none).
func (h *harness) admin(method, path, key string) (*http.Response, string) {
	h.t.Helper()
	req, _ := http.NewRequest(method, h.adminURL+path, nil)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func (h *harness) metrics() string {
	h.t.Helper()
	_, body := h.admin("GET", "/metrics", "")
	return body
}

const chatBody = `{"model":"gpt-4o","messages":[{"role":"user","content":"hello"}]}`
const streamBody = `{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hello"}]}`

func wantStatus(t *testing.T, resp *http.Response, body string, status int) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d; body: %s", resp.StatusCode, status, body)
	}
}

// wantOpenAIError checks the OpenAI error shape with the given code.
func wantOpenAIError(t *testing.T, body, code string) {
	t.Helper()
	var e struct {
		Error struct{ Code, Message, Type string }
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error.Message == "" || e.Error.Type == "" {
		t.Fatalf("not an OpenAI error body: %s", body)
	}
	if code != "" && e.Error.Code != code {
		t.Errorf("error code %q, want %q (body %s)", e.Error.Code, code, body)
	}
}

func eventually(t *testing.T, what string, timeout time.Duration, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
