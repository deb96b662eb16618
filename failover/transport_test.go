package failover

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestPriorityRoutingAndRewrite(t *testing.T) {
	east := newBackend(t, okJSON)
	west := newBackend(t, okJSON)
	tr := mustNew(t, Config{
		Regions: []Region{
			testRegion("westus", west.URL, 2, "gpt-4o", "gpt-4o-west"),
			testRegion("eastus", east.URL, 1, "gpt-4o", "gpt-4o-prod"),
		},
		Policy: fastPolicy(),
	})
	for range 5 {
		resp := chat(t, tr, "gpt-4o")
		readAll(t, resp)
		if resp.StatusCode != 200 || resp.Header.Get("x-lifeline-region") != "eastus" || resp.Header.Get("x-lifeline-attempts") != "1" {
			t.Fatalf("status %d region %q attempts %q", resp.StatusCode, resp.Header.Get("x-lifeline-region"), resp.Header.Get("x-lifeline-attempts"))
		}
	}
	if east.hits.Load() != 5 || west.hits.Load() != 0 {
		t.Fatalf("hits east=%d west=%d, want 5/0", east.hits.Load(), west.hits.Load())
	}
	r, body := east.lastRequest()
	if r.URL.Path != "/openai/deployments/gpt-4o-prod/chat/completions" || r.URL.Query().Get("api-version") != "2024-10-21" {
		t.Errorf("region got %s", r.URL)
	}
	if got := r.Header.Get("Api-Key"); got != "key-eastus" {
		t.Errorf("api-key = %q, want the region's own", got)
	}
	if strings.Contains(r.Header.Get("Authorization"), "caller") {
		t.Errorf("caller credential leaked")
	}
	if !strings.Contains(string(body), `"hi"`) {
		t.Errorf("body not forwarded: %s", body)
	}
}

func TestV1ModelRewrite(t *testing.T) {
	east := newBackend(t, okJSON)
	tr := mustNew(t, Config{Regions: []Region{testRegion("eastus", east.URL, 1, "gpt-4o", "gpt-4o-prod")}, Policy: fastPolicy()})
	for _, path := range []string{"/openai/v1/chat/completions", "/v1/chat/completions"} {
		req, _ := http.NewRequest("POST", "https://lifeline.invalid"+path, strings.NewReader(`{"model":"gpt-4o","messages":[]}`))
		req.Header.Set("Authorization", "Bearer caller-secret")
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, resp)
		r, body := east.lastRequest()
		if r.URL.Path != "/openai/v1/chat/completions" {
			t.Errorf("%s: region got path %s", path, r.URL.Path)
		}
		// The model is rewritten in place; the non-streaming request goes as a stream (policy.stream_upstream).
		if string(body) != `{"model":"gpt-4o-prod","messages":[],"stream":true,"stream_options":{"include_usage":true}}` {
			t.Errorf("%s: region got body %s", path, body)
		}
		if r.Header.Get("Authorization") != "" || r.Header.Get("Api-Key") != "key-eastus" {
			t.Errorf("%s: credentials: auth=%q api-key=%q", path, r.Header.Get("Authorization"), r.Header.Get("Api-Key"))
		}
	}
}

// Without upstream streaming the body is sent byte for byte, but for the model.
func TestV1ModelRewriteAsItCame(t *testing.T) {
	east := newBackend(t, okJSON)
	p := fastPolicy()
	p.StreamUpstream = new(bool)
	tr := mustNew(t, Config{Regions: []Region{testRegion("eastus", east.URL, 1, "gpt-4o", "gpt-4o-prod")}, Policy: p})
	req, _ := http.NewRequest("POST", "https://lifeline.invalid/openai/v1/chat/completions", strings.NewReader(`{"model":"gpt-4o", "messages":[]}`))
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	if _, body := east.lastRequest(); string(body) != `{"model":"gpt-4o-prod", "messages":[]}` {
		t.Errorf("region got body %s", body)
	}
}

func TestFailoverOn503(t *testing.T) {
	east := newBackend(t, status(503, `{"error":{"code":"ServiceUnavailable","message":"busy"}}`))
	west := newBackend(t, okJSON)
	rec := &recorder{}
	tr := mustNew(t, Config{
		Regions: []Region{testRegion("eastus", east.URL, 1, "gpt-4o", "a"), testRegion("westus", west.URL, 2, "gpt-4o", "b")},
		Policy:  fastPolicy(),
	}, WithObserver(rec))
	resp := chat(t, tr, "gpt-4o")
	readAll(t, resp)
	if resp.StatusCode != 200 || resp.Header.Get("x-lifeline-region") != "westus" || resp.Header.Get("x-lifeline-attempts") != "3" {
		t.Fatalf("got %d from %s after %s attempts", resp.StatusCode, resp.Header.Get("x-lifeline-region"), resp.Header.Get("x-lifeline-attempts"))
	}
	if east.hits.Load() != 2 || west.hits.Load() != 1 {
		t.Fatalf("hits east=%d west=%d, want 2/1", east.hits.Load(), west.hits.Load())
	}
	if got := strings.Join(rec.outcomes(), ","); got != "eastus:server_error,eastus:server_error,westus:ok" {
		t.Errorf("outcomes %s", got)
	}
	if len(rec.failovers) != 1 || rec.failovers[0].From != "eastus" || rec.failovers[0].To != "westus" || rec.failovers[0].Reason != OutcomeServerError {
		t.Errorf("failovers %+v", rec.failovers)
	}
}

func TestResponseDoesNotExposeRegionRequest(t *testing.T) {
	be := newBackend(t, okJSON)
	tr := mustNew(t, Config{Regions: []Region{testRegion("eastus", be.URL, 1, "gpt-4o", "a")}, Policy: fastPolicy()})
	resp := chat(t, tr, "gpt-4o")
	readAll(t, resp)
	if resp.Request == nil || resp.Request.URL.Host != "lifeline.invalid" || resp.Request.Header.Get("Api-Key") != "caller-secret" {
		t.Errorf("resp.Request is not the caller's request: %v", resp.Request.URL)
	}
}

// writeCounter counts the writes on the connections it dials.
type writeCounter struct{ writes atomic.Int64 }

func (c *writeCounter) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: conn, c: c}, nil
}

type countingConn struct {
	net.Conn
	c *writeCounter
}

func (cc *countingConn) Write(p []byte) (int, error) {
	cc.c.writes.Add(1)
	return cc.Conn.Write(p)
}

// TestRequestIsOneWrite: the request line, headers and a small body reach the region in one write. net/http
// flushes the headers alone first unless it knows the body is in memory (see replayBody).
func TestRequestIsOneWrite(t *testing.T) {
	east := newBackend(t, okJSON)
	var wc writeCounter
	tr := mustNew(t, Config{Regions: []Region{testRegion("eastus", east.URL, 1, "gpt-4o", "gpt-4o-prod")}, Policy: fastPolicy()},
		WithBaseTransport(func(Region) http.RoundTripper { return &http.Transport{DialContext: wc.dial} }))
	for _, path := range []string{"/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", "/openai/v1/chat/completions"} {
		before := wc.writes.Load()
		req, _ := http.NewRequest("POST", "https://lifeline.invalid"+path, strings.NewReader(`{"model":"gpt-4o","messages":[]}`))
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, resp)
		if n := wc.writes.Load() - before; n != 1 {
			t.Errorf("%s: request sent in %d writes, want 1", path, n)
		}
	}
}

func TestApplyRegionEvent(t *testing.T) {
	east := newBackend(t, okJSON)
	west := newBackend(t, okJSON)
	rec := &recorder{}
	p := fastPolicy()
	p.Breaker.SlowStart = time.Minute
	tr := mustNew(t, Config{Regions: []Region{testRegion("eastus", east.URL, 1, "gpt-4o", "gpt-4o"),
		testRegion("westus", west.URL, 2, "gpt-4o", "gpt-4o")}, Policy: p}, WithObserver(rec))
	until := time.Now().Add(time.Hour)
	if err := tr.ApplyRegionEvent("eastus", RegionEvent{State: Open, Until: until, Reason: "replica b: timeout"}); err != nil {
		t.Fatal(err)
	}
	if resp := chat(t, tr, "gpt-4o"); resp.Header.Get(HeaderRegion) != "westus" {
		t.Fatalf("a shared trip did not take eastus out: %s", resp.Header.Get(HeaderRegion))
	}
	rec.mu.Lock()
	sc := rec.states[0]
	rec.mu.Unlock()
	if !sc.Shared || sc.To != Open || !sc.Until.Equal(until) || sc.Reason != "replica b: timeout" {
		t.Errorf("state change %+v", sc)
	}
	if st := tr.Regions()[0]; st.State != Open || !st.OpenUntil.Equal(until) || st.StateReason != "replica b: timeout" {
		t.Errorf("status %+v", st)
	}
	if err := tr.ApplyRegionEvent("eastus", RegionEvent{State: Healthy}); err != nil {
		t.Fatal(err)
	}
	if st := tr.Regions()[0]; st.State != Healthy || st.Ramp >= 1 {
		t.Errorf("shared recovery: %+v (want slow start)", st)
	}
	if err := tr.ApplyRegionEvent("nowhere", RegionEvent{State: Open}); !errors.Is(err, ErrUnknownRegion) {
		t.Errorf("unknown region: %v", err)
	}
	if err := tr.ApplyRegionEvent("eastus", RegionEvent{State: Disabled}); err == nil {
		t.Error("Disabled applied as an event")
	}
}
