package failover

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestMultipartModelRewrite(t *testing.T) {
	be := newBackend(t, okJSON)
	tr := mustNew(t, Config{Regions: []Region{testRegion("eastus", be.URL, 1, "whisper", "whisper-eastus-001")}, Policy: fastPolicy()})
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	mw.WriteField("model", "whisper")
	fw, _ := mw.CreateFormFile("file", "a.wav")
	fw.Write([]byte("RIFF....WAVE"))
	mw.Close()
	req, _ := http.NewRequest("POST", "https://x.invalid/openai/v1/audio/transcriptions", &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	got, body := be.lastRequest()
	if got.URL.Path != "/openai/v1/audio/transcriptions" {
		t.Errorf("path %s", got.URL.Path)
	}
	mr := multipart.NewReader(bytes.NewReader(body), mw.Boundary())
	fields := map[string]string{}
	for {
		p, err := mr.NextPart()
		if err != nil {
			break
		}
		b, _ := io.ReadAll(p)
		fields[p.FormName()] = string(b)
	}
	if fields["model"] != "whisper-eastus-001" || fields["file"] != "RIFF....WAVE" {
		t.Errorf("region got form %v", fields)
	}
}

// sse writes events, then optionally [DONE], then stalls for stall.
func sse(events int, done bool, stall time.Duration) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		for i := range events {
			fmt.Fprintf(w, "data: {\"i\":%d}\n\n", i)
			w.(http.Flusher).Flush()
		}
		if done {
			io.WriteString(w, "data: [DONE]\n\n")
		}
		w.(http.Flusher).Flush()
		select {
		case <-time.After(stall):
		case <-r.Context().Done():
		}
	}
}

// events writes the given SSE events (raw, each followed by a blank line) and ends.
func events(evs ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		for _, e := range evs {
			io.WriteString(w, e+"\n\n")
			w.(http.Flusher).Flush()
		}
	}
}

func streamReq(t *testing.T, tr http.RoundTripper) (*http.Response, error) {
	return streamReqTo(t, tr, "chat/completions", `{"stream":true,"messages":[]}`)
}

func streamReqTo(t *testing.T, tr http.RoundTripper, op, body string) (*http.Response, error) {
	url := "https://x.invalid/openai/deployments/gpt-4o/" + op + "?api-version=2024-10-21"
	if op == "responses" {
		url = "https://x.invalid/openai/v1/responses"
	}
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	return tr.RoundTrip(req)
}

func TestStreamGuards(t *testing.T) {
	const (
		role    = `data: {"choices":[{"delta":{"role":"assistant","content":""},"finish_reason":null,"index":0}],"id":"c1"}`
		stop0   = `data: {"choices":[{"delta":{},"finish_reason":"stop","index":0}],"id":"c1"}`
		stop1   = `data: {"choices":[{"delta":{},"finish_reason":"length","index":1}],"id":"c1"}`
		usage   = `data: {"choices":[],"id":"c1","usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}`
		textFin = `data: {"choices":[{"text":"","finish_reason":"stop","index":0}],"id":"cmpl-1"}`
		rCreate = "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0}"
		rDelta  = "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"hi\"}"
		rDone   = "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{}}"
		rInc    = `data: {"type":"response.incomplete","response":{}}`
	)
	chatN2 := `{"stream":true,"n":2,"messages":[]}`
	cases := []struct {
		name    string
		h       http.HandlerFunc
		op      string
		body    string
		wantErr error
	}{
		{"complete", sse(3, true, 0), "", "", nil},
		{"idle gap", sse(2, false, 5*time.Second), "", "", ErrStreamIdle},
		{"ends before any finish_reason, without [DONE]", sse(2, false, 0), "", "", ErrStreamTruncated},
		{"ends after finish_reason and usage, without [DONE]", events(role, stop0, usage), "", "", nil},
		{"ends after finish_reason, without usage or [DONE]", events(role, stop0), "", "", nil},
		{"n=2: one choice finished", events(role, stop0), "", chatN2, ErrStreamTruncated},
		{"n=2: both finished", events(role, stop1, stop0), "", chatN2, nil},
		{"completions: finished without [DONE]", events(textFin), "completions", `{"stream":true,"prompt":"x"}`, nil},
		{"responses: completed", events(rCreate, rDelta, rDone), "responses", `{"stream":true,"model":"gpt-4o"}`, nil},
		{"responses: incomplete (no event line)", events(rCreate, rInc), "responses", `{"stream":true,"model":"gpt-4o"}`, nil},
		{"responses: ends before its terminal event", events(rCreate, rDelta, rDelta), "responses", `{"stream":true,"model":"gpt-4o"}`, ErrStreamTruncated},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			be := newBackend(t, c.h)
			rec := &recorder{}
			tr := mustNew(t, Config{Regions: []Region{testRegion("eastus", be.URL, 1, "gpt-4o", "gpt-4o")}, Policy: fastPolicy()}, WithObserver(rec))
			op, body := c.op, c.body
			if op == "" {
				op = "chat/completions"
			}
			if body == "" {
				body = `{"stream":true,"messages":[]}`
			}
			resp, err := streamReqTo(t, tr, op, body)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !errors.Is(err, c.wantErr) {
				t.Fatalf("read error %v, want %v (body %q)", err, c.wantErr, b)
			}
			if c.wantErr == nil {
				if !strings.HasSuffix(string(b), "\n\n") || resp.StatusCode != 200 {
					t.Errorf("body %q", b)
				}
				if got := rec.outcomes(); len(got) != 1 || got[0] != "eastus:ok" {
					t.Errorf("outcomes %v", got)
				}
				return
			}
			var se *StreamError
			if !errors.As(err, &se) || se.Region != "eastus" {
				t.Errorf("error %T %v, want *StreamError", err, err)
			}
			if el := time.Since(start); el > 3*time.Second {
				t.Errorf("took %v", el)
			}
			if got := rec.outcomes(); len(got) != 1 || got[0] != "eastus:stream_error" {
				t.Errorf("outcomes %v", got)
			}
			if !strings.Contains(string(b), `data: {"`) {
				t.Errorf("events before the failure lost: %q", b)
			}
		})
	}
}

func TestStreamStallBeforeFirstEventFailsOver(t *testing.T) {
	east := newBackend(t, sse(0, false, 5*time.Second)) // headers, then nothing
	west := newBackend(t, sse(2, true, 0))
	tr := mustNew(t, Config{Regions: []Region{
		testRegion("eastus", east.URL, 1, "gpt-4o", "gpt-4o"), testRegion("westus", west.URL, 2, "gpt-4o", "gpt-4o"),
	}, Policy: fastPolicy()})
	start := time.Now()
	resp, err := streamReq(t, tr)
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(t, resp)
	if resp.Header.Get(HeaderRegion) != "westus" || !strings.Contains(body, "[DONE]") {
		t.Fatalf("region %s body %q", resp.Header.Get(HeaderRegion), body)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("took %v: want one first-byte timeout", el)
	}
}

func TestCallerDeadline(t *testing.T) {
	east := newBackend(t, status(503, `{"error":{"code":"busy"}}`, "Retry-After-Ms", "1500"))
	west := newBackend(t, okJSON)
	p := fastPolicy()
	p.Retry.MaxBackoff = 5 * time.Second // the hint alone would be waited in place
	tr := mustNew(t, Config{Regions: []Region{
		testRegion("eastus", east.URL, 1, "gpt-4o", "a"), testRegion("westus", west.URL, 2, "gpt-4o", "b"),
	}, Policy: p})
	// A Retry-After longer than the time left moves the request on at once.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", "https://x.invalid/openai/deployments/gpt-4o/chat/completions", strings.NewReader(`{}`))
	start := time.Now()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	if resp.Header.Get(HeaderRegion) != "westus" || east.hits.Load() != 1 || time.Since(start) > 900*time.Millisecond {
		t.Errorf("region %s, east hits %d, took %v", resp.Header.Get(HeaderRegion), east.hits.Load(), time.Since(start))
	}

	// The caller's deadline ends the request with its own error, and is not held against the region.
	east.set(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	ctx, cancel = context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ = http.NewRequestWithContext(ctx, "POST", "https://x.invalid/openai/deployments/gpt-4o/chat/completions", strings.NewReader(`{}`))
	if _, err := tr.RoundTrip(req); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want context.DeadlineExceeded", err)
	}
	if st := tr.Regions()[0]; st.State != Healthy {
		t.Errorf("eastus %v after the caller gave up", st.State)
	}
}

func TestSynthesisedAndBodyErrors(t *testing.T) {
	be := newBackend(t, okJSON)
	p := fastPolicy()
	p.MaxBodyBytes = 64
	tr := mustNew(t, Config{Regions: []Region{testRegion("eastus", be.URL, 1, "gpt-4o", "a", "embed", "b")}, Policy: p})
	resp := chat(t, tr, "nope")
	body := readAll(t, resp)
	if resp.StatusCode != 404 || ErrorCode([]byte(body)) != "DeploymentNotFound" || resp.Header.Get("X-Should-Retry") != "false" ||
		!strings.Contains(body, "embed, gpt-4o") || resp.Header.Get(HeaderAttempts) != "0" {
		t.Errorf("unknown name: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	req, _ := http.NewRequest("POST", "https://x.invalid/openai/v1/embeddings", strings.NewReader(`{"model":"embed","input":"`+strings.Repeat("x", 100)+`"}`))
	var tooLarge *BodyTooLargeError
	if _, err := tr.RoundTrip(req); !errors.As(err, &tooLarge) || tooLarge.Limit != 64 {
		t.Errorf("large body: %v", err)
	}
	req, _ = http.NewRequest("POST", "https://x.invalid/openai/v1/embeddings", io.NopCloser(strings.NewReader(strings.Repeat("x", 100))))
	if _, err := tr.RoundTrip(req); !errors.As(err, &tooLarge) {
		t.Errorf("large body of unknown length: %v", err)
	}
	if be.hits.Load() != 0 {
		t.Errorf("backend hit %d times", be.hits.Load())
	}
	// The models list is answered from the configuration, as the gateway does; no region sees it.
	req, _ = http.NewRequest("GET", "https://x.invalid/openai/models?api-version=2024-10-21", nil)
	resp, err := tr.RoundTrip(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("models: %v %v", resp, err)
	}
	if body := readAll(t, resp); !strings.Contains(body, `"id":"embed"`) || !strings.Contains(body, `"id":"gpt-4o"`) {
		t.Errorf("models list %s", body)
	}
	if be.hits.Load() != 0 {
		t.Errorf("backend hit %d times", be.hits.Load())
	}
	if got := strings.Join(tr.Names(), ","); got != "embed,gpt-4o" {
		t.Errorf("Names %s", got)
	}
}

func TestRetryReplaysBody(t *testing.T) {
	var calls atomic.Int64
	var bodies []string
	var mu sync.Mutex
	be := newBackend(t, nil)
	be.set(func(w http.ResponseWriter, r *http.Request) {
		_, body := be.lastRequest()
		mu.Lock()
		bodies = append(bodies, string(body))
		mu.Unlock()
		if calls.Add(1) == 1 {
			w.WriteHeader(502)
			return
		}
		okJSON(w, r)
	})
	tr := mustNew(t, Config{Regions: []Region{testRegion("eastus", be.URL, 1, "gpt-4o", "a")}, Policy: fastPolicy()})
	resp := chat(t, tr, "gpt-4o")
	readAll(t, resp)
	if resp.StatusCode != 200 || resp.Header.Get(HeaderAttempts) != "2" || len(bodies) != 2 || bodies[0] != bodies[1] || bodies[0] == "" {
		t.Errorf("status %d attempts %s bodies %q", resp.StatusCode, resp.Header.Get(HeaderAttempts), bodies)
	}
}

func TestReconfigureKeepsHealthByName(t *testing.T) {
	east := newBackend(t, okJSON)
	west := newBackend(t, okJSON)
	rec := &recorder{}
	cfg := Config{Regions: []Region{
		testRegion("eastus", "http://"+deadAddr(t), 1, "gpt-4o", "a"), testRegion("westus", west.URL, 2, "gpt-4o", "b"),
	}, Policy: scenarioPolicy()}
	tr := mustNew(t, cfg, WithObserver(rec))
	for range 3 {
		readAll(t, chat(t, tr, "gpt-4o"))
	}
	tr.Disable("westus")
	// New weights, a new region, eastus now pointing at a live server: eastus stays open, westus disabled.
	cfg.Regions[0].Endpoint = east.URL
	cfg.Regions[1].Weight = 5
	cfg.Regions = append(cfg.Regions, testRegion("swedencentral", west.URL, 3, "gpt-4o", "c"))
	if err := tr.Reconfigure(cfg); err != nil {
		t.Fatal(err)
	}
	st := tr.Regions()
	if st[0].State != Open || st[1].State != Disabled || st[1].Weight != 5 || st[2].State != Healthy {
		t.Fatalf("after reconfigure: %v %v %v", st[0].State, st[1].State, st[2].State)
	}
	resp := chat(t, tr, "gpt-4o")
	readAll(t, resp)
	if resp.Header.Get(HeaderRegion) != "swedencentral" {
		t.Errorf("served by %s", resp.Header.Get(HeaderRegion))
	}
	// A bad config is refused and the old one keeps serving.
	bad := cfg
	bad.Regions = append([]Region(nil), cfg.Regions...)
	bad.Regions[2].Deployments = nil
	if err := tr.Reconfigure(bad); err == nil || !strings.Contains(err.Error(), "regions[2].deployments") {
		t.Errorf("bad config: %v", err)
	}
	if len(tr.Regions()) != 3 {
		t.Error("bad config replaced the good one")
	}
}

func TestWeightedRouting(t *testing.T) {
	east := newBackend(t, okJSON)
	west := newBackend(t, okJSON)
	a, b := testRegion("eastus", east.URL, 1, "gpt-4o", "a"), testRegion("westus", west.URL, 9, "gpt-4o", "b")
	a.Weight, b.Weight = 3, 1
	p := fastPolicy()
	p.Routing = RoutingWeighted
	tr := mustNew(t, Config{Regions: []Region{a, b}, Policy: p}, WithRand(rand.NewPCG(1, 2)))
	for range 400 {
		readAll(t, chat(t, tr, "gpt-4o"))
	}
	share := float64(east.hits.Load()) / 400
	if share < 0.65 || share > 0.85 {
		t.Errorf("eastus share %.2f, want about 0.75 (hits %d/%d)", share, east.hits.Load(), west.hits.Load())
	}
	if s := tr.Regions(); s[0].Share < 0.65 {
		t.Errorf("Regions share %+v", s[0].Share)
	}
}

func TestLatencyRouting(t *testing.T) {
	slow := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(40 * time.Millisecond)
		okJSON(w, r)
	})
	fast := newBackend(t, okJSON)
	p := fastPolicy()
	p.Routing = RoutingLatency
	tr := mustNew(t, Config{Regions: []Region{
		testRegion("slow", slow.URL, 1, "gpt-4o", "a"), testRegion("fast", fast.URL, 1, "gpt-4o", "b"),
	}, Policy: p}, WithRand(rand.NewPCG(3, 4)))
	for range 60 {
		readAll(t, chat(t, tr, "gpt-4o"))
	}
	if s, f := slow.hits.Load(), fast.hits.Load(); s > 10 || f < 50 {
		t.Errorf("slow %d fast %d: latency routing should prefer the fast region", s, f)
	}
	if st := tr.Regions(); st[0].Latency < 30*time.Millisecond || st[1].Latency > 30*time.Millisecond {
		t.Errorf("latency EWMA slow %v fast %v", st[0].Latency, st[1].Latency)
	}
}

func TestHTTP2AndConnectionReuse(t *testing.T) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Proto", r.Proto)
		okJSON(w, r)
	}))
	srv.EnableHTTP2 = true
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.StartTLS()
	defer srv.Close()
	pool := srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	tr := mustNew(t, Config{Regions: []Region{testRegion("eastus", srv.URL, 1, "gpt-4o", "a")}, Policy: fastPolicy()},
		WithTLSConfig(&tls.Config{RootCAs: pool}))
	readAll(t, chat(t, tr, "gpt-4o")) // one connection, then every request shares it
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp := chat(t, tr, "gpt-4o")
			readAll(t, resp)
			if resp.Header.Get("X-Proto") != "HTTP/2.0" {
				t.Errorf("proto %s", resp.Header.Get("X-Proto"))
			}
		}()
	}
	wg.Wait()
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for 50 concurrent requests over HTTP/2", n)
	}
}

func TestConfigValidate(t *testing.T) {
	err := Config{Regions: []Region{
		{Name: "a", Endpoint: "ftp://x", Deployments: map[string]string{"x": "y"}},
		{Name: "a", Endpoint: "https://x", APIKey: "k", Entra: &Entra{}},
	}, Policy: Policy{Routing: "random"}}.Validate()
	for _, want := range []string{"regions[0].endpoint", "regions[0].api_key", "regions[1].name", "regions[1].api_key", "regions[1].deployments", "policy.routing"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: %v; want %s", err, want)
		}
	}
	if _, err := New(Config{}); err == nil {
		t.Error("New with no regions")
	}
	p := Policy{}.WithDefaults()
	if p.Retry.AttemptsPerRegion != 2 || p.Breaker.Failures != 5 || p.Breaker.OpenFor != 30*time.Second || p.Timeouts.Connect != 3*time.Second ||
		p.Timeouts.StreamFirstByte != 30*time.Second || p.Timeouts.Response != 300*time.Second || p.Timeouts.StreamIdle != 60*time.Second ||
		p.MaxBodyBytes != 32<<20 || p.Routing != RoutingPriority || p.Retry.Backoff != 100*time.Millisecond || p.Retry.MaxBackoff != 2*time.Second {
		t.Errorf("defaults %+v", p)
	}
}

// stallAfterHeaders answers code, flushes the headers, and never sends the body.
func stallAfterHeaders(code int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}
}

func TestStalledErrorBodies(t *testing.T) {
	east := newBackend(t, stallAfterHeaders(503))
	west := newBackend(t, okJSON)
	p := fastPolicy()
	p.Retry.AttemptsPerRegion = 1
	tr := mustNew(t, Config{Regions: []Region{
		testRegion("eastus", east.URL, 1, "gpt-4o", "a"), testRegion("westus", west.URL, 2, "gpt-4o", "b"),
	}, Policy: p})
	start := time.Now()
	resp := chat(t, tr, "gpt-4o")
	readAll(t, resp)
	if resp.Header.Get(HeaderRegion) != "westus" || time.Since(start) > 2*time.Second {
		t.Errorf("503 with a stalled body: region %s after %v", resp.Header.Get(HeaderRegion), time.Since(start))
	}
	// A 400 whose body stalls is handed over, and reading it ends within the attempt's timeout.
	east.set(stallAfterHeaders(400))
	resp = chat(t, tr, "gpt-4o")
	start = time.Now()
	_, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || err == nil || time.Since(start) > 2*time.Second {
		t.Errorf("400 with a stalled body: status %d err %v after %v", resp.StatusCode, err, time.Since(start))
	}
}

func TestAuthErrorMarksPairBroken(t *testing.T) {
	east := newBackend(t, status(401, `{"error":{"code":"401","message":"Access denied due to invalid subscription key"}}`))
	west := newBackend(t, okJSON)
	rec := &recorder{}
	tr := mustNew(t, Config{Regions: []Region{
		testRegion("eastus", east.URL, 1, "gpt-4o", "a"), testRegion("westus", west.URL, 2, "gpt-4o", "b"),
	}, Policy: scenarioPolicy()}, WithObserver(rec))
	for range 3 {
		resp := chat(t, tr, "gpt-4o")
		readAll(t, resp)
		if resp.StatusCode != 200 || resp.Header.Get(HeaderRegion) != "westus" {
			t.Fatalf("status %d from %s", resp.StatusCode, resp.Header.Get(HeaderRegion))
		}
	}
	if east.hits.Load() != 1 {
		t.Errorf("eastus hit %d times; a 401 should mark the pair broken", east.hits.Load())
	}
	st := tr.Regions()[0]
	if st.State != Healthy || st.Deployments[0].BrokenBy != "auth_error" {
		t.Errorf("eastus %+v", st)
	}
	if len(rec.failovers) != 1 || rec.failovers[0].Reason != OutcomeAuthError {
		t.Errorf("failovers %+v", rec.failovers)
	}
	// Every region refusing: a 503 from the transport, not the region's 401 (the caller's key is not at fault).
	west.set(status(403, `{"error":{"code":"AuthenticationTypeDisabled"}}`))
	tr2 := mustNew(t, Config{Regions: []Region{testRegion("westus", west.URL, 1, "gpt-4o", "b")}, Policy: scenarioPolicy()})
	resp := chat(t, tr2, "gpt-4o")
	body := readAll(t, resp)
	if resp.StatusCode != 503 || !strings.Contains(body, "auth_error") {
		t.Errorf("status %d body %s", resp.StatusCode, body)
	}
	if !tr2.Ready() {
		t.Error("a broken deployment does not make the region unready")
	}
}

func TestShouldRetryHeader(t *testing.T) {
	var n atomic.Int64
	be := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			status(409, `{"error":{"code":"conflict"}}`, "X-Should-Retry", "true")(w, r)
			return
		}
		okJSON(w, r)
	})
	tr := mustNew(t, Config{Regions: []Region{testRegion("eastus", be.URL, 1, "gpt-4o", "a")}, Policy: fastPolicy()})
	resp := chat(t, tr, "gpt-4o")
	readAll(t, resp)
	if resp.StatusCode != 200 || resp.Header.Get(HeaderAttempts) != "2" {
		t.Errorf("x-should-retry: true on 409: status %d after %s attempts", resp.StatusCode, resp.Header.Get(HeaderAttempts))
	}
	be.set(status(503, `{}`, "X-Should-Retry", "false"))
	resp = chat(t, tr, "gpt-4o")
	readAll(t, resp)
	if resp.StatusCode != 503 || resp.Header.Get(HeaderAttempts) != "1" || resp.Header.Get(HeaderRegion) != "eastus" {
		t.Errorf("x-should-retry: false on 503: status %d after %s attempts from %s", resp.StatusCode, resp.Header.Get(HeaderAttempts), resp.Header.Get(HeaderRegion))
	}
}
