package failover

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// backend is a fake region: a real HTTP server whose answer a test sets, and that remembers
// what it received.
type backend struct {
	*httptest.Server
	hits    atomic.Int64
	mu      sync.Mutex
	handler http.HandlerFunc
	last    *http.Request
	lastB   []byte
}

func newBackend(t *testing.T, h http.HandlerFunc) *backend {
	t.Helper()
	b := &backend{handler: h}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		body, _ := io.ReadAll(r.Body)
		b.mu.Lock()
		b.last, b.lastB = r, body
		h := b.handler
		b.mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(b.Close)
	return b
}

func (b *backend) set(h http.HandlerFunc) {
	b.mu.Lock()
	b.handler = h
	b.mu.Unlock()
}

func (b *backend) lastRequest() (*http.Request, []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.last, b.lastB
}

func okJSON(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"id":"chatcmpl-1","object":"chat.completion","choices":[]}`)
}

func status(code int, body string, hdr ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(hdr); i += 2 {
			w.Header().Set(hdr[i], hdr[i+1])
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		io.WriteString(w, body)
	}
}

// deadAddr returns an address that refuses connections: listen, then close.
func deadAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// fastPolicy keeps tests quick: short timeouts and open times.
func fastPolicy() Policy {
	return Policy{
		Retry:    RetryPolicy{Backoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond},
		Breaker:  BreakerPolicy{Failures: 3, OpenFor: 300 * time.Millisecond, SlowStart: -1},
		Timeouts: Timeouts{Connect: time.Second, StreamFirstByte: 400 * time.Millisecond, Response: 400 * time.Millisecond, StreamIdle: 400 * time.Millisecond},
	}
}

func testRegion(name, endpoint string, prio int, deps ...string) Region {
	m := map[string]string{}
	for i := 0; i+1 < len(deps); i += 2 {
		m[deps[i]] = deps[i+1]
	}
	return Region{Name: name, Endpoint: endpoint, APIKey: "key-" + name, Priority: prio, Deployments: m}
}

func mustNew(t *testing.T, cfg Config, opts ...Option) *Transport {
	t.Helper()
	tr, err := New(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.Close)
	return tr
}

// chat sends a chat completion for name through tr on the deployment path shape.
func chat(t *testing.T, tr http.RoundTripper, name string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("POST", "https://lifeline.invalid/openai/deployments/"+name+"/chat/completions?api-version=2024-10-21",
		strings.NewReader(`{"messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Api-Key", "caller-secret")
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("RoundTrip: %v", err)
	}
	return resp
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return string(b)
}

// recorder is an Observer that keeps every event.
type recorder struct {
	mu        sync.Mutex
	started   []AttemptStart
	finished  []AttemptResult
	failovers []FailoverEvent
	states    []StateChange
	probes    []ProbeEvent
	hedges    []HedgeEvent
	fallbacks []FallbackEvent
	resumes   []ResumeEvent
}

func (r *recorder) Resume(e ResumeEvent) {
	r.mu.Lock()
	r.resumes = append(r.resumes, e)
	r.mu.Unlock()
}

func (r *recorder) resumeOutcomes() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.resumes {
		out = append(out, e.From+">"+e.To+":"+e.Outcome)
	}
	return out
}

func (r *recorder) NameFallback(e FallbackEvent) {
	r.mu.Lock()
	r.fallbacks = append(r.fallbacks, e)
	r.mu.Unlock()
}

func (r *recorder) Hedge(e HedgeEvent) {
	r.mu.Lock()
	r.hedges = append(r.hedges, e)
	r.mu.Unlock()
}

func (r *recorder) hedgeOutcomes() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, h := range r.hedges {
		out = append(out, h.From+">"+h.To+":"+h.Outcome)
	}
	return out
}

func (r *recorder) Probe(e ProbeEvent) {
	r.mu.Lock()
	r.probes = append(r.probes, e)
	r.mu.Unlock()
}

func (r *recorder) AttemptStarted(e AttemptStart) {
	r.mu.Lock()
	r.started = append(r.started, e)
	r.mu.Unlock()
}

func (r *recorder) AttemptFinished(e AttemptResult) {
	r.mu.Lock()
	r.finished = append(r.finished, e)
	r.mu.Unlock()
}

func (r *recorder) Failover(e FailoverEvent) {
	r.mu.Lock()
	r.failovers = append(r.failovers, e)
	r.mu.Unlock()
}

func (r *recorder) StateChanged(e StateChange) {
	r.mu.Lock()
	r.states = append(r.states, e)
	r.mu.Unlock()
}

func (r *recorder) outcomes() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, f := range r.finished {
		out = append(out, f.Region+":"+f.Outcome.String())
	}
	return out
}

func (r *recorder) stateChanges(region string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, s := range r.states {
		if s.Region == region {
			out = append(out, s.To.String())
		}
	}
	return out
}

// testAttempt is an attempt of a chat/completions stream on a region that is never called, for tests
// that drive a response body by hand.
func testAttempt(t testing.TB) *attempt {
	t.Helper()
	tr, err := New(Config{Regions: []Region{testRegion("eastus", "http://127.0.0.1:9", 1, "gpt-4o", "gpt-4o")}, Policy: fastPolicy()})
	if err != nil {
		t.Fatal(err)
	}
	tab := tr.tab.Load()
	rt := &roundTrip{t: tr, tab: tab, p: &tab.policy, ctx: context.Background(),
		in: inbound{deployment: true, name: "gpt-4o", op: "chat/completions", stream: true}, name: "gpt-4o"}
	r := tab.regions[0]
	tk, _ := r.h.breaker.acquire(time.Now())
	r.h.inflight.Add(1)
	a := &attempt{rt: rt, r: r, tg: r.targets["gpt-4o"], tk: tk, n: 1, start: time.Now()}
	a.ctx, a.cancel = context.WithCancelCause(rt.ctx)
	a.timer = time.AfterFunc(time.Hour, func() {})
	return a
}

// piecesReader returns its pieces one Read at a time (empty pieces are skipped), then io.EOF.
type piecesReader struct{ pieces [][]byte }

func (r *piecesReader) Read(p []byte) (int, error) {
	for len(r.pieces) > 0 && len(r.pieces[0]) == 0 {
		r.pieces = r.pieces[1:]
	}
	if len(r.pieces) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.pieces[0])
	r.pieces[0] = r.pieces[0][n:]
	return n, nil
}

// readWith reads r to its end with reads of size bytes, as a caller with that buffer does.
func readWith(r io.Reader, size int) ([]byte, error) {
	var out []byte
	buf := make([]byte, size)
	for {
		n, err := r.Read(buf)
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

// eventually waits (generously: the machine is shared) for cond.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
