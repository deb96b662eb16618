package cli

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/lifeline-sre/lifeline/sim"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startServe runs `lifeline serve ARGS` until the test ends and returns its output buffers.
func startServe(t *testing.T, env map[string]string, args ...string) (stdout, stderr *lockedBuffer) {
	t.Helper()
	stdout, stderr = &lockedBuffer{}, &lockedBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- Run(append([]string{"serve"}, args...), &Env{Stdout: stdout, Stderr: stderr, Context: ctx,
			Getenv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("serve exited %d: %s", code, stderr.String())
			}
		case <-time.After(10 * time.Second):
			t.Error("serve did not stop within 10s of its context ending")
		}
	})
	return stdout, stderr
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func post(t *testing.T, url, key, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("api-key", key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestServeFlags(t *testing.T) {
	if code, out, _ := run("serve", "--help"); code != 0 || !strings.Contains(out, "--config FILE") || !strings.Contains(out, "-dev") {
		t.Errorf("serve --help: exit %d\n%s", code, out)
	}
	if code, _, errs := run("serve"); code != 2 || !strings.Contains(errs, "--config FILE is required") {
		t.Errorf("serve without --config: exit %d %q", code, errs)
	}
	if code, _, errs := run("serve", "--dev", "--config", "x.yaml"); code != 2 || !strings.Contains(errs, "not both") {
		t.Errorf("serve --dev --config: exit %d %q", code, errs)
	}
	path := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(path, []byte("regions:\n  - name: eastus\n    endpoint: https://a.openai.azure.com\n    api_key: k\n"), 0o600)
	code, _, errs := run("serve", "--config", path)
	if code != 2 || !strings.Contains(errs, "config: clients: at least one client is required") ||
		!strings.Contains(errs, "config: regions[0].deployments: at least one name is required") {
		t.Errorf("serve with a bad config: exit %d\n%s", code, errs)
	}
	if code, _, errs := run("serve", "--config", filepath.Join(t.TempDir(), "missing.yaml")); code != 2 || !strings.Contains(errs, "missing.yaml") {
		t.Errorf("serve with a missing file: exit %d %q", code, errs)
	}
}

// TestServeConfigAndSIGHUP runs `lifeline serve --config` on simulated regions, with ${ENV} keys, then changes the
// file and sends SIGHUP: the new name serves. A broken file on the next SIGHUP is refused and the old one serves.
func TestServeConfigAndSIGHUP(t *testing.T) {
	s, err := sim.Start(sim.Config{Regions: sim.DefaultRegions("eastus", "westus"), APIKey: "region-key"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	listen, admin := freeAddr(t), freeAddr(t)
	path := filepath.Join(t.TempDir(), "lifeline.yaml")
	write := func(alias string) {
		cfg := "listen: " + listen + "\nadmin: {listen: " + admin + ", key: admin}\nclients: [{name: app, key: \"${APP_KEY}\"}]\nregions:\n"
		for i, r := range []string{"eastus", "westus"} {
			cfg += "  - {name: " + r + ", endpoint: " + s.Region(r).URL() + ", api_key: \"${REGION_KEY}\", priority: " + string(rune('1'+i)) +
				", deployments: {gpt-4o: gpt-4o, " + alias + ": gpt-4o-mini}}\n"
		}
		os.WriteFile(path, []byte(cfg), 0o600)
	}
	write("first")
	_, stderr := startServe(t, map[string]string{"APP_KEY": "app-key", "REGION_KEY": "region-key"}, "--config", path, "--log-format", "json")
	chat := func(model string) (int, string) {
		return post(t, "http://"+listen+"/v1/chat/completions", "app-key", `{"model":"`+model+`","messages":[{"role":"user","content":"hi"}]}`)
	}
	waitFor(t, "the gateway to answer", func() bool { code, _ := chat("first"); return code == 200 })
	write("second")
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	waitFor(t, "the reloaded name to serve", func() bool { code, _ := chat("second"); return code == 200 })
	os.WriteFile(path, []byte("listen: [\n"), 0o600)
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	waitFor(t, "the refused reload to be logged", func() bool {
		return strings.Contains(stderr.String(), "config reload refused; the old config keeps serving")
	})
	if code, body := chat("second"); code != 200 {
		t.Errorf("after a refused reload: %d %s", code, body)
	}
	if strings.Contains(stderr.String(), "app-key") || strings.Contains(stderr.String(), "region-key") {
		t.Error("a key appears in the logs")
	}
}

// TestServeDev runs `lifeline serve --dev` and follows its printed instructions.
func TestServeDev(t *testing.T) {
	stdout, _ := startServe(t, nil, "--dev", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0")
	var endpoint, key string
	waitFor(t, "the dev banner", func() bool {
		out := stdout.String()
		e := regexp.MustCompile(`endpoint\s+(http://\S+)`).FindStringSubmatch(out)
		k := regexp.MustCompile(`client key\s+(\S+)`).FindStringSubmatch(out)
		if e == nil || k == nil {
			return false
		}
		endpoint, key = e[1], k[1]
		return true
	})
	out := stdout.String()
	for _, want := range []string{"curl ", "openai.NewClient(", "from openai import AzureOpenAI", `import { AzureOpenAI } from "openai"`, "/status?key=", "swedencentral",
		"export LIFELINE_URL=" + endpoint + " LIFELINE_KEY=" + key, "export AOAI_EASTUS_ENDPOINT=http://", "export OPENAI_BASE_URL=" + endpoint + "/v1",
		"dall-e-3", "whisper", "tts", "text-embedding-3-small", "gpt-4o-realtime-preview"} {
		if !strings.Contains(out, want) {
			t.Errorf("dev banner lacks %q", want)
		}
	}
	for path, body := range map[string]string{
		"/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21":           `{"messages":[{"role":"user","content":"Hello"}]}`,
		"/openai/deployments/dall-e-3/images/generations?api-version=2024-10-21":       `{"prompt":"a lighthouse"}`,
		"/openai/deployments/tts/audio/speech?api-version=2024-10-21":                  `{"input":"hi","voice":"alloy"}`,
		"/openai/deployments/text-embedding-3-small/embeddings?api-version=2024-10-21": `{"input":"hi"}`,
		"/v1/responses": `{"model":"gpt-4o","input":"hi"}`,
	} {
		if code, got := post(t, endpoint+path, key, body); code != 200 {
			t.Errorf("dev gateway %s: %d %s", path, code, got)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(endpoint, "http")+"/openai/v1/realtime?model=gpt-4o-realtime-preview",
		&websocket.DialOptions{HTTPHeader: http.Header{"api-key": {key}}})
	if err != nil {
		t.Fatalf("dev realtime: %v", err)
	}
	if _, msg, err := ws.Read(ctx); err != nil || !strings.Contains(string(msg), "session.created") {
		t.Errorf("dev realtime: %s %v", msg, err)
	}
	ws.Close(websocket.StatusNormalClosure, "")
}

func waitFor(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
