package gateway_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lifeline-sre/lifeline/config"
	"github.com/lifeline-sre/lifeline/failover"
	"github.com/lifeline-sre/lifeline/sim"
)

// The regression tests of issue 11 (the trust boundary), on real sockets. Each of them failed on the code before
// it: the finding is quoted above each.

// forEachServer runs f against the gateway on each HTTP/1.x server it can run (server.http1).
func forEachServer(t *testing.T, f func(t *testing.T, server string)) {
	for _, s := range []string{config.HTTP1Lifeline, config.HTTP1NetHTTP} {
		t.Run("server="+strings.ReplaceAll(s, "/", "-"), func(t *testing.T) { f(t, s) })
	}
}

// recordingRegion is a region that records every request it gets and answers 200.
func recordingRegion(t *testing.T) (*recorder, string) {
	rec := &recorder{}
	region := httptest.NewServer(rec)
	t.Cleanup(region.Close)
	return rec, region.URL
}

func (rec *recorder) count() int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return len(rec.reqs)
}

// "{"model":"gpt-4o","model":"X"} and {"Model":"X"}: the gateway maps the first model, the region may read another,
// and the simulated region served an unmapped deployment. A multipart body with a decoy name="model" inside the
// file part and the real field spelt NAME="model" passes the gateway's scan [...] and the region ran a deployment
// the client chose."
func TestAmbiguousModelNeverReachesRegion(t *testing.T) {
	rec, url := recordingRegion(t)
	h := startHarness(t, harnessOpts{regions: []string{"eastus"}, mutate: func(c *config.Config) {
		c.Regions[0].Endpoint = url
		c.Regions[0].Deployments = map[string]string{"gpt-4o": "gpt-4o-prod", "whisper": "whisper-prod"}
	}})
	var decoy bytes.Buffer
	decoy.WriteString("--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\nContent-Type: audio/wav\r\n\r\n")
	decoy.WriteString("RIFF; name=\"model\"\r\n\r\nwhisper\r\n-- still the file\r\n")
	decoy.WriteString("--B\r\nContent-Disposition: form-data; NAME=\"model\"\r\n\r\nexpensive-unmapped\r\n--B--\r\n")
	for _, c := range []struct{ name, path, ct, body string }{
		{"duplicate key", "/v1/chat/completions", "application/json", `{"model":"gpt-4o","model":"expensive-unmapped","messages":[]}`},
		{"case variant", "/v1/chat/completions", "application/json", `{"Model":"expensive-unmapped","messages":[]}`},
		{"case variant beside model", "/openai/v1/chat/completions", "application/json", `{"model":"gpt-4o","MODEL":"expensive-unmapped"}`},
		{"escaped duplicate", "/openai/v1/responses", "application/json", `{"model":"gpt-4o","mod\u0065l":"expensive-unmapped"}`},
		{"two multipart models", "/v1/audio/transcriptions", "multipart/form-data; boundary=B",
			"--B\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper\r\n--B\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nexpensive-unmapped\r\n--B--\r\n"},
		{"unparsable multipart", "/v1/audio/transcriptions", "multipart/form-data; boundary=B",
			"--B\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper"},
	} {
		resp, body := h.do("POST", c.path, c.body, "Content-Type", c.ct)
		if resp.StatusCode != 400 {
			t.Errorf("%s: status %d, want 400: %s", c.name, resp.StatusCode, body)
		}
		wantOpenAIError(t, body, "")
	}
	if n := rec.count(); n != 0 {
		t.Fatalf("the region received %d ambiguous requests", n)
	}
	// The decoy body is not ambiguous to a standard parser: the model is NAME="model", an unmapped name. It is
	// refused as unknown, and the name logged is the one the region would have read, not the decoy.
	resp, body := h.do("POST", "/v1/audio/transcriptions", decoy.String(), "Content-Type", "multipart/form-data; boundary=B")
	wantStatus(t, resp, body, 404)
	if n := rec.count(); n != 0 {
		t.Fatalf("the region received the decoy request")
	}
	// With the real field naming a mapped name, the region gets exactly one model field: the mapped deployment.
	ok := strings.Replace(decoy.String(), "expensive-unmapped", "whisper", 1)
	resp, body = h.do("POST", "/v1/audio/transcriptions", ok, "Content-Type", "multipart/form-data; boundary=B")
	wantStatus(t, resp, body, 200)
	got, gotBody := rec.last(t)
	form, err := multipart.NewReader(bytes.NewReader(gotBody), "B").ReadForm(1 << 20)
	if err != nil {
		t.Fatalf("region body: %v", err)
	}
	if m := form.Value["model"]; len(m) != 1 || m[0] != "whisper-prod" || got.Header.Get("Api-Key") != regionKey {
		t.Errorf("region got model fields %q", m)
	}
	for _, l := range h.logs.lines("request") {
		if l["op"] == "audio" && l["status"] == float64(404) && l["name"] != "unknown" {
			t.Errorf("access log names %v for the decoy request", l["name"])
		}
	}
}

// "Every POST under /openai/v1/ reaches a region with the region's key, for example fine_tuning/jobs: an ordinary
// application key can start fine-tuning jobs."
func TestOperationsLeastPrivilege(t *testing.T) {
	rec, url := recordingRegion(t)
	h := startHarness(t, harnessOpts{regions: []string{"eastus"}, mutate: func(c *config.Config) {
		c.Regions[0].Endpoint = url
		c.Clients = append(c.Clients,
			config.Client{Name: "app", Key: "app-key-0123456789"}, // the default operations
			config.Client{Name: "ops", Key: "ops-key-0123456789", Operations: []string{"chat/completions", "fine_tuning", "files"}},
			config.Client{Name: "narrow", Key: "narrow-key-0123456789", Names: []string{"gpt-4o"}})
	}})
	ft := `{"model":"gpt-4o","training_file":"file-abc"}`
	// A key with the default operations may not touch fine-tuning: 403, and the region never sees it.
	resp, body := h.do("POST", "/openai/v1/fine_tuning/jobs", ft, "api-key", "app-key-0123456789")
	wantStatus(t, resp, body, 403)
	wantOpenAIError(t, body, "operation_not_allowed")
	resp, body = h.do("POST", "/openai/fine_tuning/jobs?api-version=2024-10-21", ft, "api-key", "app-key-0123456789")
	wantStatus(t, resp, body, 403)
	resp, body = h.do("GET", "/openai/v1/files", "", "api-key", "app-key-0123456789")
	wantStatus(t, resp, body, 403)
	// An operation Lifeline does not know is 404 for every key, the most privileged too.
	for _, p := range []string{"/openai/v1/evals", "/openai/v1/assistants", "/openai/v1/fine_tuning/alpha/graders/run", "/v1/uploads"} {
		resp, body = h.do("POST", p, ft, "api-key", "ops-key-0123456789")
		wantStatus(t, resp, body, 404)
	}
	// A key granted fine_tuning but not embeddings.
	resp, body = h.do("POST", "/v1/embeddings", `{"model":"embed","input":"x"}`, "api-key", "ops-key-0123456789")
	wantStatus(t, resp, body, 403)
	if n := rec.count(); n != 0 {
		t.Fatalf("the region received %d requests it should never have seen", n)
	}
	// Names: a key limited to gpt-4o gets 403 for another name, configured or not, and sees only its names.
	for _, name := range []string{"gpt-4o-mini", "gpt-5"} {
		resp, body = h.do("POST", "/v1/chat/completions", `{"model":"`+name+`","messages":[]}`, "api-key", "narrow-key-0123456789")
		wantStatus(t, resp, body, 403)
		wantOpenAIError(t, body, "model_not_allowed")
		if strings.Contains(body, "gpt-4o-mini") || strings.Contains(body, "embed") {
			t.Errorf("403 for a restricted key leaks other names: %s", body)
		}
	}
	resp, body = h.do("GET", "/v1/models", "", "api-key", "narrow-key-0123456789")
	wantStatus(t, resp, body, 200)
	if strings.Contains(body, "gpt-4o-mini") || !strings.Contains(body, `"gpt-4o"`) {
		t.Errorf("models list of a restricted key: %s", body)
	}
	resp, body = h.do("POST", "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", chatBody, "api-key", "narrow-key-0123456789")
	wantStatus(t, resp, body, 200)
	// Requests and tokens are counted per client key.
	eventually(t, "per-client metrics", 2*time.Second, func() bool {
		m := h.metrics()
		return strings.Contains(m, `lifeline_client_requests_total{client="narrow",code="200",operation="chat/completions"} 1`) &&
			strings.Contains(m, `lifeline_client_requests_total{client="app",code="403",operation="fine_tuning"} 2`) &&
			strings.Contains(m, `lifeline_client_tokens_total{client="narrow",kind="prompt"} 7`)
	})
}

// Per-client concurrency and rate limits answer 429 in the OpenAI shape, naming the client's limit.
func TestClientLimits(t *testing.T) {
	h := startHarness(t, harnessOpts{regions: []string{"eastus"}, mutate: func(c *config.Config) {
		c.Clients = append(c.Clients,
			config.Client{Name: "one-at-a-time", Key: "conc-key-0123456789", MaxConcurrent: 1},
			config.Client{Name: "slow-rate", Key: "rate-key-0123456789", RequestsPerMinute: 6})
	}})
	h.fault("eastus", sim.Fault{Mode: sim.ModeSlow, Latency: sim.Duration(400 * time.Millisecond)})
	first := make(chan int, 1)
	go func() {
		resp, _ := h.do("POST", "/v1/chat/completions", chatBody, "api-key", "conc-key-0123456789")
		first <- resp.StatusCode
	}()
	eventually(t, "the first request in flight", 2*time.Second, func() bool {
		return strings.Contains(h.metrics(), "lifeline_requests_in_flight 1")
	})
	resp, body := h.do("POST", "/v1/chat/completions", chatBody, "api-key", "conc-key-0123456789")
	wantStatus(t, resp, body, 429)
	wantOpenAIError(t, body, "client_concurrency_limit_exceeded")
	if !strings.Contains(body, "one-at-a-time") || !strings.Contains(body, "max_concurrent") || resp.Header.Get("Retry-After") == "" ||
		resp.Header.Get("X-Lifeline-Region") != "lifeline" {
		t.Errorf("429 does not name the client limit: %v %s", resp.Header, body)
	}
	// Another client is not affected.
	resp, body = h.do("POST", "/v1/chat/completions", chatBody)
	wantStatus(t, resp, body, 200)
	if s := <-first; s != 200 {
		t.Errorf("first request: %d", s)
	}
	h.fault("eastus", sim.Fault{Mode: sim.ModeClear})
	// 6 per minute: a burst of one, then a wait of about ten seconds.
	resp, body = h.do("POST", "/v1/chat/completions", chatBody, "api-key", "rate-key-0123456789")
	wantStatus(t, resp, body, 200)
	resp, body = h.do("POST", "/v1/chat/completions", chatBody, "api-key", "rate-key-0123456789")
	wantStatus(t, resp, body, 429)
	wantOpenAIError(t, body, "client_rate_limit_exceeded")
	ra, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
	if ra < 5 || ra > 10 || !strings.Contains(body, "requests_per_minute") || resp.Header.Get("Retry-After-Ms") == "" {
		t.Errorf("rate 429: Retry-After %q, %s", resp.Header.Get("Retry-After"), body)
	}
	eventually(t, "limit metrics", 2*time.Second, func() bool {
		m := h.metrics()
		return strings.Contains(m, `lifeline_client_limited_total{client="one-at-a-time",limit="concurrency"} 1`) &&
			strings.Contains(m, `lifeline_client_limited_total{client="slow-rate",limit="rate"} 1`)
	})
}

// "60 connections that declare Content-Length: 32 MiB and send 1 byte made the gateway allocate about 2 GB of
// heap." Memory for a body follows the bytes that arrived.
func TestDeclaredLengthBuysNoMemory(t *testing.T) {
	forEachServer(t, func(t *testing.T, server string) {
		h := startHarness(t, harnessOpts{regions: []string{"eastus"}, mutate: func(c *config.Config) { c.Server.HTTP1 = server }})
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		const conns = 20
		var open []net.Conn
		for range conns {
			c, err := net.Dial("tcp", strings.TrimPrefix(h.url, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			open = append(open, c)
			fmt.Fprintf(c, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\napi-key: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{", clientKey, 32<<20)
		}
		defer func() {
			for _, c := range open {
				c.Close()
			}
		}()
		eventually(t, "every request reading its body", 5*time.Second, func() bool {
			return strings.Contains(h.metrics(), "lifeline_requests_in_flight "+strconv.Itoa(conns))
		})
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > 32<<20 {
			t.Errorf("heap grew by %d MiB for %d one-byte bodies that claimed 32 MiB each", grown>>20, conns)
		}
	})
}

// "No body-read or write-stall deadline exists on either server." A client that stops sending its body gets 408
// when server.body_read_timeout runs out.
func TestBodyReadTimeout(t *testing.T) {
	forEachServer(t, func(t *testing.T, server string) {
		h := startHarness(t, harnessOpts{regions: []string{"eastus"}, mutate: func(c *config.Config) {
			c.Server.HTTP1 = server
			c.Server.BodyReadTimeout = config.Duration(300 * time.Millisecond)
		}})
		c, err := net.Dial("tcp", strings.TrimPrefix(h.url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\napi-key: %s\r\nContent-Length: 100\r\n\r\n{\"model\":", clientKey)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		start := time.Now()
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("no answer after %s: %v", time.Since(start), err)
		}
		if resp.StatusCode != 408 {
			t.Errorf("status %d, want 408", resp.StatusCode)
		}
	})
}

// A client that stops reading a stream loses its connection after server.write_stall_timeout, and the region's
// stream is released; before, the handler (and the region's stream) waited for it forever.
func TestWriteStallReleasesStream(t *testing.T) {
	forEachServer(t, func(t *testing.T, server string) {
		var canceled atomic.Bool
		chunk := "data: {\"choices\":[{\"delta\":{\"content\":\"" + strings.Repeat("x", 4000) + "\"},\"index\":0}]}\n\n"
		region := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			for r.Context().Err() == nil {
				if _, err := io.WriteString(w, chunk); err != nil {
					break
				}
				w.(http.Flusher).Flush()
			}
			canceled.Store(true)
		}))
		t.Cleanup(region.Close)
		h := startHarness(t, harnessOpts{regions: []string{"eastus"}, mutate: func(c *config.Config) {
			c.Server.HTTP1 = server
			c.Server.WriteStallTimeout = config.Duration(300 * time.Millisecond)
			c.Regions[0].Endpoint = region.URL
			c.Policy.Timeouts.StreamIdle = config.Duration(time.Minute)
		}})
		d := net.Dialer{Control: nil}
		nc, err := d.Dial("tcp", strings.TrimPrefix(h.url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		nc.(*net.TCPConn).SetReadBuffer(4096)
		fmt.Fprintf(nc, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\napi-key: %s\r\nContent-Length: %d\r\n\r\n%s", clientKey, len(streamBody), streamBody)
		// Read nothing: the gateway's writes fill both socket buffers and stall.
		eventually(t, "the region's stream to be released", 10*time.Second, canceled.Load)
		eventually(t, "the handler to end", 5*time.Second, func() bool {
			return strings.Contains(h.metrics(), "lifeline_requests_in_flight 0")
		})
	})
}

// "A connection with both Content-Length and Transfer-Encoding stays open (RFC 9112 says close)."
func TestContentLengthAndTransferEncodingClose(t *testing.T) {
	forEachServer(t, func(t *testing.T, server string) {
		h := startHarness(t, harnessOpts{regions: []string{"eastus"}, mutate: func(c *config.Config) { c.Server.HTTP1 = server }})
		c, err := net.Dial("tcp", strings.TrimPrefix(h.url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		body := fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(chatBody), chatBody)
		fmt.Fprintf(c, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\napi-key: %s\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n%s", clientKey, body)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		if _, err := br.ReadByte(); err != io.EOF {
			t.Errorf("the connection stayed open after a request with Content-Length and Transfer-Encoding (read: %v)", err)
		}
	})
}

// "On the own HTTP/1.x server the header timeout restarts at the first byte (a silent 9 s then one byte a second
// was closed after 20 s, net/http 11 s)." The first request's head must arrive within server.read_header_timeout
// of the connection's start.
func TestHeaderTimeoutFromConnectionStart(t *testing.T) {
	forEachServer(t, func(t *testing.T, server string) {
		h := startHarness(t, harnessOpts{regions: []string{"eastus"}, mutate: func(c *config.Config) {
			c.Server.HTTP1 = server
			c.Server.ReadHeaderTimeout = config.Duration(2 * time.Second)
		}})
		c, err := net.Dial("tcp", strings.TrimPrefix(h.url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		start := time.Now()
		time.Sleep(1700 * time.Millisecond) // silent, then one byte every 100ms
		closed := make(chan time.Duration, 1)
		go func() {
			io.Copy(io.Discard, c)
			closed <- time.Since(start)
		}()
		head := "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Padding: " + strings.Repeat("a", 100)
		for i := 0; i < len(head); i++ {
			if _, err := c.Write([]byte{head[i]}); err != nil {
				break
			}
			select {
			case d := <-closed:
				if d > 3200*time.Millisecond {
					t.Errorf("closed %s after the connection opened; the header timeout is 2s from the start", d)
				}
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
		select {
		case d := <-closed:
			if d > 3200*time.Millisecond {
				t.Errorf("closed %s after the connection opened; the header timeout is 2s from the start", d)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the connection stayed open")
		}
	})
}

// "Hanging up slow requests after about 6 s counts as abandoned against the region: 6 hang-ups opened eastus, 12
// opened both regions, and then every client got 503." One client's hang-ups count only up to its share: it cannot
// open a region, let alone all of them, and a patient client is still served.
func TestOneClientCannotSpendRegionHealth(t *testing.T) {
	h := startHarness(t, harnessOpts{mutate: func(c *config.Config) {
		c.Policy.Breaker.AbandonedAfter = config.Duration(100 * time.Millisecond)
		// Deadlines far away (the non-streaming request goes upstream as a stream: stream_first_byte applies).
		c.Policy.Timeouts.Response = config.Duration(time.Minute)
		c.Policy.Timeouts.StreamFirstByte = config.Duration(time.Minute)
		c.Clients = append(c.Clients, config.Client{Name: "patient", Key: "patient-key-0123456789"})
	}})
	for _, r := range []string{"eastus", "westus"} {
		h.fault(r, sim.Fault{Mode: sim.ModeSlow, Latency: sim.Duration(4 * time.Second)})
	}
	// The client gives up after 1.2s: the gateway notices at once or (h1srv) within a second, long before the
	// region answers. Eight hang-ups opened both regions before (failures is 3 here).
	impatient := &http.Client{Timeout: 1200 * time.Millisecond}
	for i := range 8 {
		req, _ := http.NewRequest("POST", h.url+"/v1/chat/completions", strings.NewReader(chatBody))
		req.Header.Set("api-key", clientKey)
		req.Header.Set("Content-Type", "application/json")
		if resp, err := impatient.Do(req); err == nil {
			resp.Body.Close()
			t.Fatalf("request %d answered within 1.2s through a 4s region: %d %s\n%s", i, resp.StatusCode, resp.Header.Get("x-lifeline-region"), grepLines(h.metrics(), "lifeline_upstream_attempts"))
		}
	}
	eventually(t, "the hang-ups to be seen", 5*time.Second, func() bool {
		return strings.Contains(h.metrics(), "lifeline_requests_in_flight 0")
	})
	m := h.metrics()
	for _, r := range []string{"eastus", "westus"} {
		if !strings.Contains(m, `lifeline_region_state{region="`+r+`"} 0`) {
			t.Errorf("one client's hang-ups changed %s's state:\n%s", r, grepLines(m, "region_state"))
		}
	}
	if !strings.Contains(m, `outcome="abandoned"`) {
		t.Errorf("no attempt was counted as abandoned:\n%s", grepLines(m, "upstream_attempts"))
	}
	resp, body := h.do("POST", "/v1/chat/completions", chatBody, "api-key", "patient-key-0123456789")
	wantStatus(t, resp, body, 200)
}

// "The in-process library and the gateway accept and refuse exactly the same requests." The same requests, sent
// through the gateway (with a key granted every operation) and through the Go library's transport built from the
// same config, get the same status and error code, and the region sees the same requests.
func TestLibraryAndGatewayAgree(t *testing.T) {
	rec, url := recordingRegion(t)
	var ops []string
	for _, o := range failover.Operations() {
		ops = append(ops, string(o))
	}
	h := startHarness(t, harnessOpts{regions: []string{"eastus"}, mutate: func(c *config.Config) {
		c.Regions[0].Endpoint = url
		c.Clients[0].Operations = ops
	}})
	lib, err := failover.New(h.cfg.Failover())
	if err != nil {
		t.Fatal(err)
	}
	defer lib.Close()
	mp := "--B\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\ngpt-4o\r\n--B\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nx\r\n--B--\r\n"
	for _, c := range []struct {
		method, path, ct, body string
		refused                int // a stored-object route: the status both must refuse it with
	}{
		{"POST", "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", "application/json", chatBody, 0},
		{"POST", "/v1/chat/completions", "application/json", chatBody, 0},
		{"POST", "/openai/v1/embeddings", "application/json", `{"model":"embed","input":"x"}`, 0},
		{"POST", "/v1/chat/completions", "application/json", `{"model":"gpt-5","messages":[]}`, 0},
		{"POST", "/v1/chat/completions", "application/json", `{"messages":[]}`, 0},
		{"POST", "/v1/chat/completions", "application/json", `{"model":"gpt-4o","model":"x"}`, 0},
		{"POST", "/v1/chat/completions", "application/json", `{"Model":"x"}`, 0},
		{"POST", "/v1/chat/completions", "application/json", `{"model":"gpt-4o","stream":"yes"}`, 0},
		{"POST", "/v1/chat/completions", "application/json", `{"model":"gpt-4o"`, 0},
		{"POST", "/v1/audio/transcriptions", "multipart/form-data; boundary=B", mp, 0},
		{"GET", "/v1/chat/completions", "", "", 0},
		{"POST", "/openai/v1/evals", "application/json", chatBody, 0},
		{"POST", "/openai/deployments/gpt-4o/../../files", "application/json", chatBody, 0},
		{"GET", "/openai/v1/models", "", "", 0},
		{"GET", "/openai/v1/models/gpt-5", "", "", 0},
		// Stored-object routes: the gateway places them by its object index (stored.go), so only their refusals
		// are compared here; the parser that refuses is the same.
		{"GET", "/openai/v1/files", "application/json", `{}`, 400},
		{"DELETE", "/openai/v1/responses/resp_1", "application/json", `{}`, 400},
		{"GET", "/openai/v1/responses/" + strings.Repeat("r", 200), "", "", 404},
		{"POST", "/openai/v1/fine_tuning/jobs", "application/json", `{"model":"gpt-4o","training_file":"file-1","training_file":"file-2"}`, 400},
		{"POST", "/openai/v1/files/file-1/content", "application/json", `{}`, 405},
	} {
		gwResp, gwBody := h.do(c.method, c.path, c.body, "Content-Type", c.ct)
		req, _ := http.NewRequest(c.method, "https://lifeline.invalid"+c.path, strings.NewReader(c.body))
		if c.ct != "" {
			req.Header.Set("Content-Type", c.ct)
		}
		libResp, err := lib.RoundTrip(req)
		if err != nil {
			t.Fatalf("%s %s: library: %v", c.method, c.path, err)
		}
		libBody, _ := io.ReadAll(libResp.Body)
		libResp.Body.Close()
		if gwResp.StatusCode != libResp.StatusCode || failover.ErrorCode([]byte(gwBody)) != failover.ErrorCode(libBody) {
			t.Errorf("%s %s: gateway %d %s, library %d %s", c.method, c.path, gwResp.StatusCode, gwBody, libResp.StatusCode, libBody)
		}
		if c.refused != 0 && gwResp.StatusCode != c.refused {
			t.Errorf("%s %s: %d %s, want %d", c.method, c.path, gwResp.StatusCode, gwBody, c.refused)
		}
	}
	if n := rec.count(); n != 6 { // 3 successes, each sent by both
		t.Errorf("the region got %d requests, want 6", n)
	}
}
