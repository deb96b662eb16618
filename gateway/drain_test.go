package gateway_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lifeline-sre/lifeline/config"
	"github.com/lifeline-sre/lifeline/sim"
)

// TestDrain: when Serve's context ends (SIGTERM for `lifeline serve`), /readyz fails at once, the listener keeps
// accepting and serving for server.shutdown_delay (answers asking HTTP/1 clients to close), then it stops
// accepting, and a stream that was in flight all along finishes whole.
func TestDrain(t *testing.T) {
	const delay = 1500 * time.Millisecond
	h := startHarness(t, harnessOpts{
		simCfg: func(sc *sim.Config) {
			for i := range sc.Regions {
				sc.Regions[i].TokensPerSecond = 20
			}
		},
		mutate: func(cfg *config.Config) {
			cfg.Server.ShutdownDelay = config.Duration(delay)
			cfg.Server.ShutdownTimeout = config.Duration(10 * time.Second)
		},
	})
	if resp, body := h.admin("GET", "/readyz", ""); resp.StatusCode != 200 {
		t.Fatalf("readyz before the drain: %d %s", resp.StatusCode, body)
	}
	// A stream of ~2.5s that outlives the delay.
	body := strings.Replace(streamBody, "hello", "sim:tokens=50", 1)
	req, _ := http.NewRequest("POST", h.url+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("api-key", clientKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	stream := bufio.NewReader(resp.Body)
	if first, _ := stream.ReadString('\n'); !strings.HasPrefix(first, "data: ") {
		t.Fatalf("first line %q", first)
	}
	streamDone := make(chan string, 1)
	go func() {
		rest, _ := io.ReadAll(stream)
		streamDone <- string(rest)
	}()

	stopped := make(chan struct{})
	start := time.Now()
	go func() { h.stop(); close(stopped) }()
	eventually(t, "/readyz to fail", 5*time.Second, func() bool {
		r, err := http.Get(h.adminURL + "/readyz")
		if err != nil {
			t.Fatalf("admin listener gone during the drain: %v", err)
		}
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		return r.StatusCode == http.StatusServiceUnavailable && strings.Contains(string(b), `"draining": true`)
	})
	t.Logf("/readyz failed %s after the stop began", time.Since(start).Round(time.Millisecond))

	// Still accepting and serving: each request on a fresh connection succeeds and asks the client to close.
	served := 0
	var refusedAt time.Duration
	for refusedAt == 0 {
		c := &http.Client{Transport: &http.Transport{DisableKeepAlives: false}}
		req, _ := http.NewRequest("POST", h.url+"/v1/chat/completions", strings.NewReader(chatBody))
		req.Header.Set("api-key", clientKey)
		req.Header.Set("Content-Type", "application/json")
		r, err := c.Do(req)
		switch {
		case err != nil:
			// Only a refused connection may end the loop: nothing accepted may be dropped.
			if _, derr := net.DialTimeout("tcp", strings.TrimPrefix(h.url, "http://"), time.Second); derr == nil {
				t.Fatalf("a request during the drain failed while the listener still accepts: %v", err)
			}
			refusedAt = time.Since(start)
		default:
			io.Copy(io.Discard, r.Body)
			r.Body.Close()
			if r.StatusCode != 200 {
				t.Fatalf("request during the drain: status %d", r.StatusCode)
			}
			if !r.Close {
				t.Error("an answer during the drain did not carry Connection: close")
			}
			served++
		}
		if time.Since(start) > 15*time.Second {
			t.Fatal("the listener still accepts 15s after the stop began")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if served == 0 {
		t.Error("no request was served during server.shutdown_delay")
	}
	if refusedAt < delay {
		t.Errorf("the listener stopped accepting %s after the stop began, before server.shutdown_delay (%s)", refusedAt, delay)
	}
	t.Logf("served %d requests during the drain; refused from %s", served, refusedAt.Round(time.Millisecond))
	select {
	case rest := <-streamDone:
		if strings.Contains(rest, `"error"`) || !strings.Contains(rest, "data: [DONE]") {
			t.Errorf("the stream in flight did not finish whole: %q", tail(rest))
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the stream in flight did not end")
	}
	<-stopped
}
