package sim

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const testKey = "test-key"

func startSim(t *testing.T, cfg Config) *Sim {
	t.Helper()
	if cfg.APIKey == "" {
		cfg.APIKey = testKey
	}
	s, err := Start(cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// post sends a JSON body to a region with the api-key header.
func post(t *testing.T, c *http.Client, url string, body string, hdr ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("api-key", testKey)
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i])
		} else {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	return resp
}

func readBody(t *testing.T, resp *http.Response) []byte {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return b
}

func chatURL(r *Region, dep string) string {
	return r.URL() + "/openai/deployments/" + dep + "/chat/completions?api-version=2024-10-21"
}

const hello = `{"messages":[{"role":"user","content":"Say hello"}]}`

func TestChatNonStreaming(t *testing.T) {
	s := startSim(t, Config{Regions: DefaultRegions("eastus")})
	r := s.Region("eastus")
	resp := post(t, s.Client(), chatURL(r, "gpt-4o"), hello)
	body := readBody(t, resp)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	for _, h := range []string{"apim-request-id", "x-request-id", "x-ratelimit-remaining-requests", "x-ratelimit-remaining-tokens"} {
		if resp.Header.Get(h) == "" {
			t.Errorf("header %s missing", h)
		}
	}
	if got := resp.Header.Get("x-ms-region"); got != "East US" {
		t.Errorf("x-ms-region = %q, want East US", got)
	}
	var cc struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Created int64  `json:"created"`
		Model   string `json:"model"`
		Choices []struct {
			FinishReason string `json:"finish_reason"`
			Message      struct{ Role, Content string }
			CFR          json.RawMessage `json:"content_filter_results"`
		} `json:"choices"`
		PFR   []json.RawMessage `json:"prompt_filter_results"`
		Usage struct {
			PromptTokens     int `json:"prompt_tokens"`
			CompletionTokens int `json:"completion_tokens"`
			TotalTokens      int `json:"total_tokens"`
		} `json:"usage"`
	}
	if err := json.Unmarshal(body, &cc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(cc.ID, "chatcmpl-") || cc.Object != "chat.completion" || cc.Model != "gpt-4o-2024-11-20" || cc.Created == 0 {
		t.Errorf("bad envelope: %s", body)
	}
	if len(cc.Choices) != 1 || cc.Choices[0].Message.Role != "assistant" || cc.Choices[0].Message.Content == "" || cc.Choices[0].FinishReason != "stop" || len(cc.Choices[0].CFR) == 0 {
		t.Errorf("bad choices: %s", body)
	}
	if len(cc.PFR) != 1 || cc.Usage.PromptTokens == 0 || cc.Usage.CompletionTokens == 0 || cc.Usage.TotalTokens != cc.Usage.PromptTokens+cc.Usage.CompletionTokens {
		t.Errorf("bad usage or prompt filter results: %s", body)
	}
	if !bytes.HasPrefix(body, []byte(`{"choices":[{"content_filter_results":`)) {
		t.Errorf("keys are not in Azure's alphabetical order: %.80s", body)
	}
}

// sseEvents reads data: payloads until [DONE] or an error.
func sseEvents(r io.Reader) ([]string, error) {
	var out []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if d, ok := strings.CutPrefix(line, "data: "); ok {
			out = append(out, d)
			if d == "[DONE]" {
				return out, nil
			}
		}
	}
	if err := sc.Err(); err != nil {
		return out, err
	}
	return out, io.ErrUnexpectedEOF
}

func TestChatStreaming(t *testing.T) {
	s := startSim(t, Config{Regions: DefaultRegions("eastus")})
	resp := post(t, s.Client(), chatURL(s.Region("eastus"), "gpt-4o-mini"),
		`{"messages":[{"role":"user","content":"sim:tokens=5"}],"stream":true,"stream_options":{"include_usage":true}}`)
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	evs, err := sseEvents(resp.Body)
	if err != nil {
		t.Fatalf("stream: %v (events %v)", err, evs)
	}
	// prompt filter event, role chunk, 5 content chunks, finish chunk, usage chunk, [DONE]
	if len(evs) != 10 {
		t.Fatalf("got %d events, want 10:\n%s", len(evs), strings.Join(evs, "\n"))
	}
	if !strings.HasPrefix(evs[0], `{"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":[`) {
		t.Errorf("first event: %s", evs[0])
	}
	if !strings.Contains(evs[1], `"delta":{"content":"","refusal":null,"role":"assistant"}`) {
		t.Errorf("role chunk: %s", evs[1])
	}
	if !strings.Contains(evs[7], `"finish_reason":"stop"`) {
		t.Errorf("finish chunk: %s", evs[7])
	}
	if !strings.Contains(evs[8], `"choices":[]`) || !strings.Contains(evs[8], `"completion_tokens":5`) {
		t.Errorf("usage chunk: %s", evs[8])
	}
	if !strings.Contains(evs[2], `"usage":null`) {
		t.Errorf("content chunks must carry usage:null when include_usage is set: %s", evs[2])
	}
}

func TestFaultDownRefusesAndClearReopens(t *testing.T) {
	s := startSim(t, Config{Regions: DefaultRegions("eastus", "westus")})
	r := s.Region("eastus")
	addr := r.Addr()
	c := s.Client()
	readBody(t, post(t, c, chatURL(r, "gpt-4o"), hello))
	if err := s.Fault("eastus", Fault{Mode: ModeDown}); err != nil {
		t.Fatal(err)
	}
	// A pooled connection sees EOF (the region closed it); a new connection is refused.
	req, _ := http.NewRequest(http.MethodPost, chatURL(r, "gpt-4o"), strings.NewReader(hello))
	req.Header.Set("api-key", testKey)
	req.Header.Set("Content-Type", "application/json")
	_, err := s.Client().Do(req)
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("down region: err = %v, want connection refused", err)
	}
	if err := s.Fault("eastus", Fault{Mode: ModeClear}); err != nil {
		t.Fatal(err)
	}
	if r.Addr() != addr {
		t.Fatalf("reopened on %s, want %s", r.Addr(), addr)
	}
	resp := post(t, s.Client(), chatURL(r, "gpt-4o"), hello)
	readBody(t, resp)
	if resp.StatusCode != 200 {
		t.Fatalf("after clear: status %d", resp.StatusCode)
	}
}

func TestFaultError(t *testing.T) {
	s := startSim(t, Config{Regions: DefaultRegions("eastus")})
	r := s.Region("eastus")
	for _, status := range []int{500, 503, 408} {
		if err := s.Fault("eastus", Fault{Mode: ModeError, Status: status}); err != nil {
			t.Fatal(err)
		}
		resp := post(t, s.Client(), chatURL(r, "gpt-4o"), hello)
		body := readBody(t, resp)
		if resp.StatusCode != status || !bytes.Contains(body, []byte(`"error":`)) {
			t.Errorf("status %d body %s, want %d", resp.StatusCode, body, status)
		}
	}
	if got := r.Stats().ByStatus[503]; got != 1 {
		t.Errorf("by_status[503] = %d, want 1", got)
	}
}

func TestFaultThrottle(t *testing.T) {
	s := startSim(t, Config{Regions: DefaultRegions("eastus")})
	if err := s.Fault("eastus", Fault{Mode: ModeThrottle, RetryAfter: Duration(7 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	resp := post(t, s.Client(), chatURL(s.Region("eastus"), "gpt-4o"), hello)
	body := readBody(t, resp)
	if resp.StatusCode != 429 || resp.Header.Get("retry-after") != "7" || resp.Header.Get("retry-after-ms") != "7000" {
		t.Fatalf("status %d retry-after %q retry-after-ms %q", resp.StatusCode, resp.Header.Get("retry-after"), resp.Header.Get("retry-after-ms"))
	}
	if !bytes.Contains(body, []byte("Please retry after 7 seconds")) {
		t.Errorf("body: %s", body)
	}
}

func TestFaultSlow(t *testing.T) {
	s := startSim(t, Config{Regions: DefaultRegions("eastus")})
	if err := s.Fault("eastus", Fault{Mode: ModeSlow, Latency: Duration(300 * time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	resp := post(t, s.Client(), chatURL(s.Region("eastus"), "gpt-4o"), hello)
	readBody(t, resp)
	if el := time.Since(start); el < 300*time.Millisecond || resp.StatusCode != 200 {
		t.Fatalf("slow: status %d after %v, want 200 after >= 300ms", resp.StatusCode, el)
	}
}

func TestFaultBlackhole(t *testing.T) {
	s := startSim(t, Config{Regions: DefaultRegions("eastus")})
	if err := s.Fault("eastus", Fault{Mode: ModeBlackhole}); err != nil {
		t.Fatal(err)
	}
	c := s.Client()
	c.Timeout = 300 * time.Millisecond
	req, _ := http.NewRequest(http.MethodPost, chatURL(s.Region("eastus"), "gpt-4o"), strings.NewReader(hello))
	req.Header.Set("api-key", testKey)
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	_, err := c.Do(req)
	var ne interface{ Timeout() bool }
	if err == nil || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("blackhole: err = %v, want a timeout", err)
	}
	if time.Since(start) < 250*time.Millisecond {
		t.Fatalf("blackhole answered too early")
	}
	if s.Region("eastus").Stats().Blackholed != 1 {
		t.Errorf("blackholed counter = %d", s.Region("eastus").Stats().Blackholed)
	}
	// Close must not hang on the held connection (the test's Cleanup runs it).
}

func TestFaultCutStream(t *testing.T) {
	s := startSim(t, Config{Regions: DefaultRegions("eastus")})
	if err := s.Fault("eastus", Fault{Mode: ModeCutStream, AfterEvents: 3}); err != nil {
		t.Fatal(err)
	}
	resp := post(t, s.Client(), chatURL(s.Region("eastus"), "gpt-4o"), `{"messages":[{"role":"user","content":"sim:tokens=20"}],"stream":true}`)
	defer resp.Body.Close()
	evs, err := sseEvents(resp.Body)
	if err == nil {
		t.Fatalf("cut stream ended cleanly with %d events", len(evs))
	}
	if len(evs) != 3 {
		t.Errorf("got %d events before the cut, want 3 (err %v)", len(evs), err)
	}
	if got := s.Region("eastus").Stats().StreamsCut; got != 1 {
		t.Errorf("streams_cut = %d", got)
	}
	// Non-streaming requests are not affected by cut_stream.
	resp2 := post(t, s.Client(), chatURL(s.Region("eastus"), "gpt-4o"), hello)
	readBody(t, resp2)
	if resp2.StatusCode != 200 {
		t.Errorf("non-streaming under cut_stream: %d", resp2.StatusCode)
	}
}

// Close ends held (blackholed) connections and streams in flight instead of waiting for them.
func TestCloseEndsHeldConnections(t *testing.T) {
	s, err := Start(Config{APIKey: testKey, Regions: []RegionConfig{{Name: "eastus", TokensPerSecond: 2}}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Fault("eastus", Fault{Mode: ModeBlackhole, Deployment: "gpt-4o"}); err != nil {
		t.Fatal(err)
	}
	r := s.Region("eastus")
	done := make(chan error, 2)
	go func() {
		resp, err := s.Client().Post(chatURL(r, "gpt-4o")+"&x=held", "application/json", strings.NewReader(hello))
		if err == nil {
			resp.Body.Close()
			err = errors.New("answered")
		}
		done <- err
	}()
	go func() {
		req, _ := http.NewRequest(http.MethodPost, chatURL(r, "gpt-4o-mini"), strings.NewReader(`{"messages":[{"role":"user","content":"sim:tokens=100"}],"stream":true}`))
		req.Header.Set("api-key", testKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := s.Client().Do(req)
		if err != nil {
			done <- err
			return
		}
		defer resp.Body.Close()
		_, err = sseEvents(resp.Body)
		done <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for (r.Stats().Blackholed < 1 || r.Stats().Streams < 1) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	start := time.Now()
	s.Close()
	for i := 0; i < 2; i++ {
		select {
		case err := <-done:
			if err == nil {
				t.Error("a request in flight ended cleanly after Close")
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Close left a request hanging")
		}
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("Close took %v", el)
	}
}

// down refuses new connections and closes idle ones, while requests in flight finish.
func TestFaultDownLetsRequestsInFlightFinish(t *testing.T) {
	s := startSim(t, Config{Regions: []RegionConfig{{Name: "eastus", TokensPerSecond: 100}}})
	r := s.Region("eastus")
	pooled := s.Client()
	readBody(t, post(t, pooled, chatURL(r, "gpt-4o"), hello)) // leaves an idle keep-alive connection
	resp := post(t, s.Client(), chatURL(r, "gpt-4o"), `{"messages":[{"role":"user","content":"sim:tokens=30"}],"stream":true}`)
	defer resp.Body.Close()
	if err := s.Fault("eastus", Fault{Mode: ModeDown}); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, chatURL(r, "gpt-4o"), strings.NewReader(hello))
	req.Header.Set("api-key", testKey)
	req.Header.Set("Content-Type", "application/json")
	if _, err := pooled.Do(req); err == nil {
		t.Error("a pooled connection still reached the down region")
	}
	if _, err := s.Client().Post(chatURL(r, "gpt-4o"), "application/json", strings.NewReader(hello)); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("new connection: %v, want refused", err)
	}
	evs, err := sseEvents(resp.Body)
	if err != nil || len(evs) != 34 {
		t.Fatalf("stream in flight: %d events, %v", len(evs), err)
	}
}

func TestFaultStallStream(t *testing.T) {
	s := startSim(t, Config{Regions: DefaultRegions("eastus")})
	if err := s.Fault("eastus", Fault{Mode: ModeStall, AfterEvents: 2}); err != nil {
		t.Fatal(err)
	}
	c := s.Client()
	c.Timeout = 400 * time.Millisecond
	resp := post(t, c, chatURL(s.Region("eastus"), "gpt-4o"), `{"messages":[{"role":"user","content":"sim:tokens=20"}],"stream":true}`)
	defer resp.Body.Close()
	start := time.Now()
	evs, err := sseEvents(resp.Body)
	if err == nil || len(evs) != 2 {
		t.Fatalf("stalled stream: %d events, err %v", len(evs), err)
	}
	if time.Since(start) < 200*time.Millisecond {
		t.Errorf("the stream ended after %v instead of stalling", time.Since(start))
	}
	if got := s.Region("eastus").Stats().StreamsStalled; got != 1 {
		t.Errorf("streams_stalled = %d", got)
	}
}

func TestClearReopensOnEveryInterface(t *testing.T) {
	s := startSim(t, Config{Regions: []RegionConfig{{Name: "eastus", Addr: "0.0.0.0:0"}}})
	r := s.Region("eastus")
	if !strings.HasPrefix(r.URL(), "http://127.0.0.1:") {
		t.Fatalf("URL %s", r.URL())
	}
	url := r.URL()
	s.Fault("eastus", Fault{Mode: ModeDown})
	if err := s.Fault("eastus", Fault{Mode: ModeClear}); err != nil {
		t.Fatal(err)
	}
	if r.URL() != url || r.listen[:8] != "0.0.0.0:" {
		t.Fatalf("reopened as %s listening on %s", r.URL(), r.listen)
	}
	resp := post(t, s.Client(), chatURL(r, "gpt-4o"), hello)
	readBody(t, resp)
	if resp.StatusCode != 200 {
		t.Fatal(resp.StatusCode)
	}
}

// Faults switched rapidly under concurrent load: no panic, no race, no hang, and Close returns promptly.
func TestFaultChurnUnderLoad(t *testing.T) {
	s, err := Start(Config{APIKey: testKey, Seed: 3, Regions: []RegionConfig{{Name: "eastus", TokensPerSecond: 500}}})
	if err != nil {
		t.Fatal(err)
	}
	r := s.Region("eastus")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			c := s.Client()
			c.Timeout = 300 * time.Millisecond
			for {
				select {
				case <-stop:
					return
				default:
				}
				body := `{"messages":[{"role":"user","content":"sim:tokens=10"}],"stream":` + map[bool]string{true: "true", false: "false"}[w%2 == 0] + `}`
				req, _ := http.NewRequest(http.MethodPost, chatURL(r, "gpt-4o"), strings.NewReader(body))
				req.Header.Set("api-key", testKey)
				req.Header.Set("Content-Type", "application/json")
				if resp, err := c.Do(req); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		}(w)
	}
	modes := []Fault{{Mode: ModeDown}, {Mode: ModeClear}, {Mode: ModeBlackhole, Rate: 0.3}, {Mode: ModeCutStream, AfterEvents: 3},
		{Mode: ModeError, Status: 503, Rate: 0.5}, {Mode: ModeThrottle}, {Mode: ModeStall, AfterEvents: 1}, {Mode: ModeSlow, Latency: Duration(time.Millisecond)}, {Mode: ModeClear}}
	for i := 0; i < 40; i++ {
		if err := s.Fault("eastus", modes[i%len(modes)]); err != nil {
			t.Fatalf("fault %d: %v", i, err)
		}
		time.Sleep(15 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	start := time.Now()
	s.Close()
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("Close took %v", el)
	}
	if p := r.stats.panics.Load(); p != 0 {
		t.Fatalf("%d handler panics", p)
	}
	if st := r.Stats(); st.Requests == 0 || st.ByStatus[200] == 0 {
		t.Fatalf("no traffic got through: %+v", st)
	}
}

// A region-wide blackhole holds new connections before the TLS handshake: the client times out connecting.
func TestFaultBlackholeHoldsTLSHandshake(t *testing.T) {
	s := startSim(t, Config{TLS: true, Regions: DefaultRegions("eastus")})
	if err := s.Fault("eastus", Fault{Mode: ModeBlackhole}); err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: s.TLSConfig(), TLSHandshakeTimeout: 300 * time.Millisecond}}
	req, _ := http.NewRequest(http.MethodPost, chatURL(s.Region("eastus"), "gpt-4o"), strings.NewReader(hello))
	req.Header.Set("api-key", testKey)
	_, err := c.Do(req)
	if err == nil || !strings.Contains(err.Error(), "TLS handshake timeout") {
		t.Fatalf("err = %v, want a TLS handshake timeout", err)
	}
	if err := s.Fault("eastus", Fault{Mode: ModeClear}); err != nil {
		t.Fatal(err)
	}
	resp := post(t, s.Client(), chatURL(s.Region("eastus"), "gpt-4o"), hello)
	readBody(t, resp)
	if resp.StatusCode != 200 {
		t.Fatalf("after clear: %d", resp.StatusCode)
	}
}

func TestCertificateHosts(t *testing.T) {
	s := startSim(t, Config{TLS: true, TLSHosts: []string{"sim.internal", "10.1.2.3"}, Regions: DefaultRegions("eastus")})
	leaf := s.cert.cert.Leaf
	for _, h := range []string{"localhost", "sim.internal", "127.0.0.1", "::1", "10.1.2.3"} {
		if err := leaf.VerifyHostname(h); err != nil {
			t.Errorf("certificate does not cover %s: %v", h, err)
		}
	}
	// A client that reaches the region by the name localhost verifies the certificate.
	url := strings.Replace(s.Region("eastus").URL(), "127.0.0.1", "localhost", 1)
	resp := post(t, s.Client(), url+"/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", hello)
	readBody(t, resp)
	if resp.StatusCode != 200 || !bytes.HasPrefix(s.CertPEM(), []byte("-----BEGIN CERTIFICATE-----")) {
		t.Fatalf("status %d", resp.StatusCode)
	}
}
