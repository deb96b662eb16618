package gateway_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lifeline-sre/lifeline/config"
	"github.com/lifeline-sre/lifeline/gateway"
	"github.com/lifeline-sre/lifeline/sim"
)

func TestClientAuth(t *testing.T) {
	h := startHarness(t, harnessOpts{})
	cases := []struct {
		name    string
		headers []string
		want    int
	}{
		{"api-key", []string{"api-key", clientKey}, 200},
		{"bearer", []string{"api-key", "", "Authorization", "Bearer " + clientKey}, 200},
		{"bearer-lowercase-scheme", []string{"api-key", "", "Authorization", "bearer " + clientKey}, 200},
		{"no-key", []string{"api-key", ""}, 401},
		{"wrong-key", []string{"api-key", "nope"}, 401},
		{"key-prefix", []string{"api-key", clientKey[:10]}, 401},
		{"key-with-suffix", []string{"api-key", clientKey + "x"}, 401},
		{"region-key", []string{"api-key", regionKey}, 401},
		{"admin-key", []string{"api-key", adminKey}, 401},
		{"basic-auth", []string{"api-key", "", "Authorization", "Basic " + clientKey}, 401},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := h.do("POST", "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", chatBody, c.headers...)
			wantStatus(t, resp, body, c.want)
			if c.want == 401 {
				wantOpenAIError(t, body, "invalid_api_key")
				if resp.Header.Get("x-lifeline-region") != "lifeline" || resp.Header.Get("x-lifeline-attempts") != "0" {
					t.Errorf("401 headers: %v", resp.Header)
				}
			}
		})
	}
	// The models list needs a key too.
	resp, body := h.do("GET", "/v1/models", "", "api-key", "")
	wantStatus(t, resp, body, 401)
}

func TestUnauthenticatedNeedsOptIn(t *testing.T) {
	cfg := &config.Config{Regions: []config.Region{{Name: "eastus", Endpoint: "http://127.0.0.1:1", APIKey: "k", Deployments: map[string]string{"a": "a"}}}}
	cfg.ApplyDefaults()
	if _, err := gateway.New(cfg, gateway.Options{}); err == nil || !strings.Contains(err.Error(), "allow_unauthenticated") {
		t.Fatalf("New without clients: err = %v; want a refusal naming allow_unauthenticated", err)
	}
	h := startHarness(t, harnessOpts{mutate: func(c *config.Config) { c.Clients, c.AllowUnauthenticated = nil, true }})
	resp, body := h.do("POST", "/v1/chat/completions", chatBody, "api-key", "")
	wantStatus(t, resp, body, 200)
}

func TestRoutesAndBadInput(t *testing.T) {
	h := startHarness(t, harnessOpts{mutate: func(c *config.Config) { c.Policy.MaxBodyBytes = 4096 }})
	big := `{"model":"gpt-4o","messages":[{"role":"user","content":"` + strings.Repeat("x", 5000) + `"}]}`
	cases := []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"deployment-path", "POST", "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", chatBody, 200, ""},
		{"azure-v1", "POST", "/openai/v1/chat/completions", chatBody, 200, ""},
		{"openai-v1", "POST", "/v1/chat/completions", chatBody, 200, ""},
		{"embeddings", "POST", "/v1/embeddings", `{"model":"embed","input":"hi"}`, 200, ""},
		{"embeddings-deployment", "POST", "/openai/deployments/embed/embeddings?api-version=2024-10-21", `{"input":"hi"}`, 200, ""},
		{"responses-classic", "POST", "/openai/responses?api-version=2025-04-01-preview", `{"model":"gpt-4o","input":"hi"}`, 200, ""},
		{"responses-v1", "POST", "/openai/v1/responses", `{"model":"gpt-4o","input":"hi"}`, 200, ""},
		{"completions", "POST", "/openai/deployments/gpt-4o-mini/completions?api-version=2024-10-21", `{"prompt":"hi"}`, 200, ""},
		{"unknown-name-path", "POST", "/openai/deployments/gpt-5/chat/completions?api-version=2024-10-21", chatBody, 404, "DeploymentNotFound"},
		{"unknown-name-body", "POST", "/v1/chat/completions", `{"model":"gpt-5","messages":[]}`, 404, "DeploymentNotFound"},
		{"no-model", "POST", "/v1/chat/completions", `{"messages":[]}`, 400, "missing_model"},
		{"model-not-string", "POST", "/v1/chat/completions", `{"model":42}`, 400, "invalid_model"},
		{"broken-json", "POST", "/v1/chat/completions", `{"model":`, 400, "invalid_json"},
		{"duplicate-model", "POST", "/v1/chat/completions", `{"model":"gpt-4o","model":"gpt-5","messages":[]}`, 400, "ambiguous_body"},
		{"case-variant-model", "POST", "/v1/chat/completions", `{"Model":"gpt-5","messages":[]}`, 400, "ambiguous_body"},
		{"empty-body", "POST", "/openai/v1/chat/completions", ``, 400, "missing_model"},
		{"unknown-route", "POST", "/openai/assistants", `{}`, 404, "404"},
		{"unknown-stored-route", "POST", "/openai/v1/files/file-1/nothing", `{}`, 404, "404"},
		{"stored-method", "PUT", "/openai/v1/files/file-1", `{}`, 405, "method_not_allowed"},
		{"unknown-v1-operation", "POST", "/openai/v1/fine_tuning/alpha/graders", `{}`, 404, "404"},
		{"root", "GET", "/", "", 404, "404"},
		{"deployment-without-op", "POST", "/openai/deployments/gpt-4o", chatBody, 404, "404"},
		{"dot-segments", "POST", "/openai/deployments/gpt-4o/../../files?api-version=2024-10-21", chatBody, 404, "404"},
		{"encoded-slash", "POST", "/openai/deployments/gpt-4o%2F..%2Ffiles/chat/completions?api-version=2024-10-21", chatBody, 404, "404"},
		{"get-on-proxied-route", "GET", "/v1/chat/completions", "", 405, "method_not_allowed"},
		{"too-large-v1", "POST", "/v1/chat/completions", big, 413, "request_too_large"},
		{"too-large-deployment", "POST", "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", big, 413, "request_too_large"},
		{"models-azure", "GET", "/openai/models", "", 200, ""},
		{"models-v1", "GET", "/openai/v1/models", "", 200, ""},
		{"models-openai", "GET", "/v1/models", "", 200, ""},
		{"model-one", "GET", "/v1/models/gpt-4o", "", 200, ""},
		{"model-unknown", "GET", "/v1/models/gpt-5", "", 404, "model_not_found"},
		{"models-post", "POST", "/v1/models", "", 405, "method_not_allowed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := h.do(c.method, c.path, c.body)
			wantStatus(t, resp, body, c.status)
			if resp.Header.Get("x-lifeline-region") == "" || resp.Header.Get("x-lifeline-attempts") == "" {
				t.Errorf("missing x-lifeline-* headers: %v", resp.Header)
			}
			if c.status >= 400 {
				wantOpenAIError(t, body, c.code)
			}
		})
	}
	// A chunked body over the limit (no Content-Length) is refused too.
	req, _ := http.NewRequest("POST", h.url+"/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", io.MultiReader(strings.NewReader(big)))
	req.Header.Set("api-key", clientKey)
	req.ContentLength = -1
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	wantStatus(t, resp, string(body), 413)
}

func TestModelsList(t *testing.T) {
	h := startHarness(t, harnessOpts{})
	resp, body := h.do("GET", "/openai/v1/models", "")
	wantStatus(t, resp, body, 200)
	var list struct {
		Object string
		Data   []struct{ ID, Object string }
	}
	if err := json.Unmarshal([]byte(body), &list); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range list.Data {
		ids = append(ids, m.ID)
	}
	if list.Object != "list" || strings.Join(ids, ",") != "embed,gpt-4o,gpt-4o-mini" {
		t.Errorf("models list = %s", body)
	}
}

// recorder is a fake region that records what it received.
type recorder struct {
	mu   sync.Mutex
	reqs []*http.Request
	body [][]byte
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	rec.mu.Lock()
	rec.reqs = append(rec.reqs, r.Clone(r.Context()))
	rec.body = append(rec.body, b)
	rec.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("x-ms-region", "East US")
	w.Header().Set("apim-request-id", "apim-1")
	w.Header().Set("x-request-id", "req-1")
	w.Header().Set("x-ratelimit-remaining-requests", "99")
	w.Header().Set("x-ratelimit-remaining-tokens", "9999")
	io.WriteString(w, `{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}`)
}

func (rec *recorder) last(t *testing.T) (*http.Request, []byte) {
	t.Helper()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.reqs) == 0 {
		t.Fatal("the region received nothing")
	}
	return rec.reqs[len(rec.reqs)-1], rec.body[len(rec.body)-1]
}

// TestRewriteAndCredentials checks what a region receives and what the client gets back: the region's key, not
// the client's; the deployment name for the region; the region's own headers passed through.
func TestRewriteAndCredentials(t *testing.T) {
	rec := &recorder{}
	region := httptest.NewServer(rec)
	t.Cleanup(region.Close)
	h := startHarness(t, harnessOpts{regions: []string{"eastus"}, mutate: func(c *config.Config) {
		c.Regions[0].Endpoint = region.URL
		c.Regions[0].Deployments = map[string]string{"gpt-4o": "gpt-4o-prod-eastus"}
	}})
	paths := []struct{ client, region string }{
		{"/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", "/openai/deployments/gpt-4o-prod-eastus/chat/completions"},
		{"/openai/v1/chat/completions", "/openai/v1/chat/completions"},
		{"/v1/chat/completions", "/openai/v1/chat/completions"},
	}
	for _, auth := range [][]string{{"api-key", clientKey}, {"api-key", "", "Authorization", "Bearer " + clientKey}} {
		for _, p := range paths {
			resp, body := h.do("POST", p.client, chatBody, append(auth, "Cookie", "session=abc")...)
			wantStatus(t, resp, body, 200)
			got, gotBody := rec.last(t)
			if got.URL.Path != p.region {
				t.Errorf("%s reached the region as %s, want %s", p.client, got.URL.Path, p.region)
			}
			if got.Header.Get("api-key") != regionKey {
				t.Errorf("region got api-key %q, want the region's key", got.Header.Get("api-key"))
			}
			for k, vv := range got.Header {
				for _, v := range vv {
					if strings.Contains(v, clientKey) || strings.Contains(v, "session=abc") {
						t.Errorf("the client's credential reached the region in %s: %q", k, v)
					}
				}
			}
			if strings.HasPrefix(p.client, "/v") || strings.HasPrefix(p.client, "/openai/v1") {
				if !bytes.Contains(gotBody, []byte(`"model":"gpt-4o-prod-eastus"`)) {
					t.Errorf("v1 body model not rewritten: %s", gotBody)
				}
			}
			for _, hdr := range []string{"x-ms-region", "apim-request-id", "x-request-id", "x-ratelimit-remaining-requests", "x-ratelimit-remaining-tokens"} {
				if resp.Header.Get(hdr) == "" {
					t.Errorf("region header %s did not pass through", hdr)
				}
			}
			if resp.Header.Get("x-lifeline-region") != "eastus" || resp.Header.Get("x-lifeline-attempts") != "1" {
				t.Errorf("x-lifeline-region %q attempts %q", resp.Header.Get("x-lifeline-region"), resp.Header.Get("x-lifeline-attempts"))
			}
			for k, vv := range resp.Header {
				if strings.Contains(strings.Join(vv, " "), regionKey) {
					t.Errorf("the region's key came back to the client in %s", k)
				}
			}
		}
	}
	// Tokens are counted from the usage the region returned.
	eventually(t, "token metrics", 2*time.Second, func() bool {
		return strings.Contains(h.metrics(), `lifeline_tokens_total{kind="prompt",region="eastus"} 42`)
	})
}

func TestMultipartAudio(t *testing.T) {
	rec := &recorder{}
	region := httptest.NewServer(rec)
	t.Cleanup(region.Close)
	h := startHarness(t, harnessOpts{regions: []string{"eastus"}, mutate: func(c *config.Config) {
		c.Regions[0].Endpoint = region.URL
		c.Regions[0].Deployments = map[string]string{"whisper": "whisper-eastus"}
	}})
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	mw.WriteField("model", "whisper")
	fw, _ := mw.CreateFormFile("file", "a.wav")
	fw.Write(bytes.Repeat([]byte{1, 2, 3}, 1000))
	mw.Close()
	for _, p := range []string{"/v1/audio/transcriptions", "/openai/deployments/whisper/audio/transcriptions?api-version=2024-10-21"} {
		resp, body := h.do("POST", p, buf.String(), "Content-Type", mw.FormDataContentType())
		wantStatus(t, resp, body, 200)
		got, gotBody := rec.last(t)
		if !strings.Contains(got.URL.Path, "audio/transcriptions") || !bytes.Contains(gotBody, bytes.Repeat([]byte{1, 2, 3}, 1000)) {
			t.Errorf("%s: region got %s with %d bytes", p, got.URL.Path, len(gotBody))
		}
		if strings.HasPrefix(p, "/v1") && !bytes.Contains(gotBody, []byte("whisper-eastus")) {
			t.Errorf("multipart model field not rewritten")
		}
	}
}

func TestClientDeadline(t *testing.T) {
	h := startHarness(t, harnessOpts{regions: []string{"eastus"}})
	h.fault("eastus", simBlackhole)
	start := time.Now()
	resp, body := h.do("POST", "/v1/chat/completions", chatBody, "x-lifeline-timeout", "300ms")
	wantStatus(t, resp, body, 504)
	wantOpenAIError(t, body, "timeout")
	if el := time.Since(start); el > 900*time.Millisecond {
		t.Errorf("504 after %s; the client's 300ms deadline should bound it", el)
	}
}

func TestClientGoneCancelsUpstream(t *testing.T) {
	release := make(chan struct{})
	canceled := make(chan struct{}, 1)
	region := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: {\"choices\":[]}\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
			canceled <- struct{}{}
		case <-release:
		}
	}))
	t.Cleanup(func() { close(release); region.Close() })
	h := startHarness(t, harnessOpts{regions: []string{"eastus"}, mutate: func(c *config.Config) {
		c.Regions[0].Endpoint = region.URL
		c.Policy.Timeouts.StreamIdle = config.Duration(time.Minute)
	}})
	req, _ := http.NewRequest("POST", h.url+"/v1/chat/completions", strings.NewReader(streamBody))
	req.Header.Set("api-key", clientKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	line := make([]byte, 10)
	io.ReadFull(resp.Body, line)
	resp.Body.Close() // the client goes away mid-stream
	select {
	case <-canceled:
	case <-time.After(3 * time.Second):
		t.Fatal("the region's request was not canceled within 3s of the client going away")
	}
}

var simBlackhole = sim.Fault{Mode: sim.ModeBlackhole}

// TestEveryRegionThrottled: when every region that serves the name is cooling down after 429, the client gets 429
// with the shortest Retry-After, not a hard failure, and SDKs may retry after it (x-should-retry: true).
func TestEveryRegionThrottled(t *testing.T) {
	h := startHarness(t, harnessOpts{})
	h.fault("eastus", sim.Fault{Mode: sim.ModeThrottle, RetryAfter: sim.Duration(20 * time.Second)})
	h.fault("westus", sim.Fault{Mode: sim.ModeThrottle, RetryAfter: sim.Duration(7 * time.Second)})
	resp, body := h.do("POST", "/v1/chat/completions", chatBody)
	wantStatus(t, resp, body, 429)
	wantOpenAIError(t, body, "")
	if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < 1 || ra > 7 {
		t.Errorf("Retry-After = %d, want the shortest (about 7s)", ra)
	}
	if resp.Header.Get("x-should-retry") != "true" {
		t.Errorf("x-should-retry = %q", resp.Header.Get("x-should-retry"))
	}
}

func TestAccessLog(t *testing.T) {
	h := startHarness(t, harnessOpts{})
	h.fault("eastus", sim.Fault{Mode: sim.ModeDown})
	resp, body := h.do("POST", "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", streamBody)
	wantStatus(t, resp, body, 200)
	id := resp.Header.Get("x-lifeline-request-id")
	var line map[string]any
	eventually(t, "the access log line", 2*time.Second, func() bool {
		for _, l := range h.logs.lines("request") {
			if l["request_id"] == id {
				line = l
				return true
			}
		}
		return false
	})
	want := map[string]any{"client": "test-app", "name": "gpt-4o", "region": "westus", "attempts": "2", "status": float64(200),
		"api": "azure", "op": "chat/completions", "stream": true, "level": "INFO"}
	for k, v := range want {
		if line[k] != v {
			t.Errorf("access log %s = %v, want %v (line %v)", k, line[k], v, line)
		}
	}
	for _, k := range []string{"latency_ms", "ttfb_ms", "prompt_tokens", "completion_tokens", "bytes"} {
		if n, ok := line[k].(float64); !ok || n <= 0 {
			t.Errorf("access log %s = %v", k, line[k])
		}
	}
	// Text format works too.
	var buf bytes.Buffer
	gateway.NewLogger(&buf, "text", nil).Info("request", "client", "x")
	if !strings.Contains(buf.String(), "msg=request client=x") {
		t.Errorf("text log: %q", buf.String())
	}
}

// TestStreamEventsArriveAsSent: each event reaches the client before the region sends the next one (the region
// waits for the client to have it), over HTTP/1.1 and h2c.
func TestStreamEventsArriveAsSent(t *testing.T) {
	got := make(chan struct{})
	region := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 3 {
			fmt.Fprintf(w, "data: {\"choices\":[{\"delta\":{\"content\":\"%d\"}}]}\n\n", i)
			w.(http.Flusher).Flush()
			select {
			case <-got: // the client has event i
			case <-time.After(3 * time.Second):
				return // the gateway held the event back: the client side reports it
			}
		}
		io.WriteString(w, "data: [DONE]\n\n")
	}))
	t.Cleanup(region.Close)
	h := startHarness(t, harnessOpts{regions: []string{"eastus"}, mutate: func(c *config.Config) { c.Regions[0].Endpoint = region.URL }})
	p := new(http.Protocols)
	p.SetHTTP1(true)
	h2c := new(http.Protocols)
	h2c.SetUnencryptedHTTP2(true)
	for _, protos := range []*http.Protocols{p, h2c} {
		c := &http.Client{Transport: &http.Transport{Protocols: protos}}
		req, _ := http.NewRequest("POST", h.url+"/v1/chat/completions", strings.NewReader(streamBody))
		req.Header.Set("api-key", clientKey)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(resp.Body)
		for i := range 3 {
			line, err := r.ReadString('\n')
			if err != nil || !strings.Contains(line, fmt.Sprintf(`"content":"%d"`, i)) {
				t.Fatalf("%s: event %d: %q %v", resp.Proto, i, line, err)
			}
			r.ReadString('\n') // the blank line
			got <- struct{}{}
		}
		rest, _ := io.ReadAll(r)
		resp.Body.Close()
		if string(rest) != "data: [DONE]\n\n" {
			t.Errorf("%s: end of stream %q", resp.Proto, rest)
		}
	}
}

// TestImpatientClientsOpenBlackholedRegion: the primary black-holes and clients give up (close their connection)
// long before timeouts.response. The gateway sees each client leave and counts the abandoned attempt against the
// region (policy.breaker.abandoned_after), each client up to its share; once two clients agree the breaker opens and
// the next client is answered by westus.
func TestImpatientClientsOpenBlackholedRegion(t *testing.T) {
	h := startHarness(t, harnessOpts{mutate: func(c *config.Config) {
		// Deadlines far away (the non-streaming request goes upstream as a stream: stream_first_byte applies).
		c.Policy.Timeouts.Response = config.Duration(time.Minute)
		c.Policy.Timeouts.StreamFirstByte = config.Duration(time.Minute)
		c.Policy.Breaker.AbandonedAfter = config.Duration(100 * time.Millisecond)
		c.Clients = append(c.Clients, config.Client{Name: "other-app", Key: "other-key-0123456789"})
	}})
	h.fault("eastus", simBlackhole)
	client := &http.Client{Timeout: 300 * time.Millisecond}
	// failures is 3: each client's share is 2, so the first client alone cannot open the region.
	for i, key := range []string{clientKey, clientKey, "other-key-0123456789"} {
		req, _ := http.NewRequest("POST", h.url+"/v1/chat/completions", strings.NewReader(chatBody))
		req.Header.Set("api-key", key)
		req.Header.Set("Content-Type", "application/json")
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			t.Fatalf("request %d answered %d by %q through a black hole", i, resp.StatusCode, resp.Header.Get("x-lifeline-region"))
		}
	}
	eventually(t, "eastus to open", 3*time.Second, func() bool {
		return strings.Contains(h.metrics(), `lifeline_region_state{region="eastus"} 2`)
	})
	resp, body := h.do("POST", "/v1/chat/completions", chatBody)
	wantStatus(t, resp, body, 200)
	if r := resp.Header.Get("x-lifeline-region"); r != "westus" {
		t.Errorf("answered by %q, want westus", r)
	}
	if m := h.metrics(); !strings.Contains(m, `lifeline_upstream_attempts_total{outcome="abandoned",region="eastus"} 3`) {
		t.Errorf("abandoned attempts not counted:\n%s", grepLines(m, "upstream_attempts"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
