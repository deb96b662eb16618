package gateway_test

import (
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lifeline-sre/lifeline/config"
	"github.com/lifeline-sre/lifeline/gateway"
	"github.com/lifeline-sre/lifeline/sim"
)

func TestAdminAuth(t *testing.T) {
	h := startHarness(t, harnessOpts{})
	open := []string{"/healthz", "/readyz", "/metrics"}
	for _, p := range open {
		if resp, body := h.admin("GET", p, ""); resp.StatusCode != 200 {
			t.Errorf("GET %s without key: %d %s", p, resp.StatusCode, body)
		}
	}
	guarded := []struct{ method, path string }{
		{"GET", "/admin/regions"}, {"GET", "/admin/regions/eastus"}, {"POST", "/admin/regions/eastus/disable"}, {"POST", "/admin/regions/eastus/enable"},
		{"POST", "/admin/reload"}, {"GET", "/status"},
	}
	for _, g := range guarded {
		for _, key := range []string{"", "wrong", clientKey} {
			if resp, _ := h.admin(g.method, g.path, key); resp.StatusCode != 401 {
				t.Errorf("%s %s with key %q: %d, want 401", g.method, g.path, key, resp.StatusCode)
			}
		}
	}
	// x-admin-key works as well as Bearer.
	req, _ := http.NewRequest("GET", h.adminURL+"/admin/regions", nil)
	req.Header.Set("x-admin-key", adminKey)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Errorf("x-admin-key: %v %v", resp, err)
	}
	// The client key is not an admin key, and the admin key is not a client key.
	resp, _ := h.do("POST", "/v1/chat/completions", chatBody, "api-key", adminKey)
	wantStatus(t, resp, "", 401)
}

// GET /admin/regions/{name} is one region's entry of GET /admin/regions; an unknown name is 404.
func TestAdminOneRegion(t *testing.T) {
	h := startHarness(t, harnessOpts{})
	h.admin("POST", "/admin/regions/westus/disable?by=alice&reason=INC-42", adminKey)
	resp, body := h.admin("GET", "/admin/regions/westus", adminKey)
	wantStatus(t, resp, body, 200)
	var one gateway.RegionView
	if err := json.Unmarshal([]byte(body), &one); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	if one.Name != "westus" || one.State != "disabled" || one.Priority != 2 || len(one.Deployments) != 3 || resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("GET /admin/regions/westus: %+v", one)
	}
	// Who disabled it and why stay with the region (without state.redis too) and are what its card says.
	if sw := one.Switch; sw == nil || !sw.Disabled || sw.By != "alice" || sw.Reason != "INC-42" || sw.Replica != "" ||
		!strings.HasPrefix(one.Reason, "disabled by hand: by alice at ") || !strings.Contains(one.Reason, ", because: INC-42 (POST /admin/regions/westus/enable") {
		t.Errorf("the switch of westus: %+v, reason %q", one.Switch, one.Reason)
	}
	resp, body = h.admin("GET", "/admin/regions/mars", adminKey)
	wantStatus(t, resp, body, 404)
	wantOpenAIError(t, body, "unknown_region")
	resp, body = h.admin("GET", "/admin/regions/%3Cscript%3E", adminKey)
	wantStatus(t, resp, body, 404)
	if strings.Contains(body, "<script>") {
		t.Errorf("the name is echoed unescaped: %s", body)
	}
}

func TestAdminWithoutKeyIsOff(t *testing.T) {
	h := startHarness(t, harnessOpts{mutate: func(c *config.Config) { c.Admin.Key = "" }})
	for _, p := range []string{"/admin/regions", "/status"} {
		if resp, body := h.admin("GET", p, "anything"); resp.StatusCode != 403 {
			t.Errorf("GET %s with no admin.key configured: %d %s", p, resp.StatusCode, body)
		}
	}
	if resp, _ := h.admin("GET", "/metrics", ""); resp.StatusCode != 200 {
		t.Error("metrics must stay open")
	}
}

func TestManualFailoverAndReadiness(t *testing.T) {
	h := startHarness(t, harnessOpts{})
	resp, body := h.admin("POST", "/admin/regions/eastus/disable", adminKey)
	wantStatus(t, resp, body, 200)
	if !strings.Contains(body, `"state": "disabled"`) {
		t.Errorf("disable answer: %s", body)
	}
	for range 5 {
		resp, body := h.do("POST", "/v1/chat/completions", chatBody)
		wantStatus(t, resp, body, 200)
		if r := resp.Header.Get("x-lifeline-region"); r != "westus" {
			t.Fatalf("a disabled region answered: %s", r)
		}
	}
	if !strings.Contains(h.metrics(), `lifeline_region_state{region="eastus"} 3`) {
		t.Error("lifeline_region_state of a disabled region is not 3")
	}
	resp, body = h.admin("POST", "/admin/regions/westus/disable", adminKey)
	wantStatus(t, resp, body, 200)
	resp, body = h.admin("GET", "/readyz", "")
	wantStatus(t, resp, body, 503)
	resp, body = h.do("POST", "/v1/chat/completions", chatBody)
	wantStatus(t, resp, body, 503)
	wantOpenAIError(t, body, "")
	if resp.Header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	h.admin("POST", "/admin/regions/westus/enable", adminKey)
	resp, body = h.admin("POST", "/admin/regions/eastus/enable", adminKey)
	wantStatus(t, resp, body, 200)
	resp, body = h.admin("GET", "/readyz", "")
	wantStatus(t, resp, body, 200)
	resp, body = h.admin("POST", "/admin/regions/nowhere/disable", adminKey)
	wantStatus(t, resp, body, 404)

	resp, body = h.admin("GET", "/admin/regions", adminKey)
	wantStatus(t, resp, body, 200)
	var v gateway.RegionsView
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Regions) != 2 || v.Regions[0].Name != "eastus" || v.Regions[0].Priority != 1 || !v.Ready || len(v.Names) != 3 {
		t.Errorf("/admin/regions = %s", body)
	}
	var states int
	for _, e := range v.Events {
		if e.Kind == "state" {
			states++
		}
	}
	if states < 4 {
		t.Errorf("recent events hold %d state changes, want the 4 disables/enables: %+v", states, v.Events)
	}
}

func TestMetricsNames(t *testing.T) {
	h := startHarness(t, harnessOpts{})
	h.fault("eastus", sim.Fault{Mode: sim.ModeDown})
	for range 3 {
		resp, body := h.do("POST", "/v1/chat/completions", chatBody)
		wantStatus(t, resp, body, 200)
	}
	resp, body := h.do("POST", "/v1/chat/completions", streamBody)
	wantStatus(t, resp, body, 200)
	want := []string{
		`lifeline_requests_total{code="200",name="gpt-4o",region="westus"}`,
		`lifeline_upstream_attempts_total{outcome="connect_error",region="eastus"}`,
		`lifeline_upstream_attempts_total{outcome="ok",region="westus"}`,
		`lifeline_failovers_total{from="eastus",reason="connect_error",to="westus"}`,
		`lifeline_region_state{region="eastus"}`,
		`lifeline_request_duration_seconds_bucket{region="westus"`,
		`lifeline_time_to_first_byte_seconds_bucket{region="westus"`,
		`lifeline_tokens_total{kind="prompt",region="westus"}`,
		`lifeline_tokens_total{kind="completion",region="westus"}`,
	}
	eventually(t, "every metric", 2*time.Second, func() bool {
		m := h.metrics()
		for _, w := range want {
			if !strings.Contains(m, w) {
				return false
			}
		}
		return true
	})
}

// TestStatusPage opens the status page as a browser would: the key once in the URL, then a cookie.
func TestStatusPage(t *testing.T) {
	h := startHarness(t, harnessOpts{})
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	resp, err := browser.Get(h.adminURL + "/status")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("status page without key: %d", resp.StatusCode)
	}
	resp, err = browser.Get(h.adminURL + "/status?key=" + adminKey)
	if err != nil {
		t.Fatal(err)
	}
	page := readAll(t, resp)
	if resp.StatusCode != 200 || resp.Request.URL.RawQuery != "" {
		t.Fatalf("after ?key=: status %d at %s", resp.StatusCode, resp.Request.URL)
	}
	if !strings.Contains(page, "Lifeline status") || strings.Contains(page, adminKey) {
		t.Errorf("status page: %.300s", page)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("CSP = %q", csp)
	}
	for _, c := range jar.Cookies(resp.Request.URL) {
		if strings.Contains(c.Value, adminKey) {
			t.Error("the cookie holds the admin key itself")
		}
	}
	// The page's script polls /admin/regions with the cookie.
	resp, err = browser.Get(h.adminURL + "/admin/regions")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/admin/regions with the status cookie: %v %v", resp, err)
	}
	resp.Body.Close()
	// The cookie never allows a change.
	resp, err = browser.Post(h.adminURL+"/admin/regions/eastus/disable", "", nil)
	if err != nil || resp.StatusCode != 401 {
		t.Fatalf("POST with only the status cookie: %v %v", resp.StatusCode, err)
	}
	resp, err = browser.Get(h.adminURL + "/status?key=wrong")
	if err == nil && resp.StatusCode != 401 {
		t.Errorf("wrong key: %d", resp.StatusCode)
	}
	resp, _ = browser.Get(h.adminURL + "/status.js")
	if js := readAll(t, resp); !strings.Contains(js, "textContent") || strings.Contains(js, "innerHTML") {
		t.Error("status.js must render with textContent only")
	}
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String()
		}
	}
}

// TestReloadUnderTraffic reloads the config from a file again and again while clients send requests: no request
// may fail. A bad file is refused with the problems named, and the old config keeps serving.
func TestReloadUnderTraffic(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lifeline.yaml")
	var h *harness
	h = startHarness(t, harnessOpts{load: func() (*config.Config, error) { return config.Load(path) }})
	write := func(extraName string) {
		var b strings.Builder
		b.WriteString("clients: [{name: test-app, key: " + clientKey + "}, {name: second, key: second-key-0123456789}]\n")
		b.WriteString("admin: {key: " + adminKey + "}\nregions:\n")
		for i, r := range []string{"eastus", "westus"} {
			b.WriteString("  - name: " + r + "\n    endpoint: " + h.sim.Region(r).URL() + "\n    api_key: " + regionKey + "\n")
			b.WriteString("    priority: " + string(rune('1'+i)) + "\n    deployments: {gpt-4o: gpt-4o, " + extraName + ": gpt-4o-mini}\n")
		}
		if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("alias-0")
	var failures atomic.Int64
	var sent atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				body := streamBody
				if sent.Add(1)%2 == 0 {
					body = chatBody
				}
				resp, b := h.do("POST", "/v1/chat/completions", body)
				if resp.StatusCode != 200 || strings.Contains(b, `"error"`) {
					failures.Add(1)
					t.Errorf("request during reload: %d %s", resp.StatusCode, b)
				}
			}
		})
	}
	for i := range 10 {
		write("alias-" + string(rune('0'+i)))
		resp, body := h.admin("POST", "/admin/reload", adminKey)
		wantStatus(t, resp, body, 200)
		time.Sleep(20 * time.Millisecond)
	}
	// A bad file: refused, problems named, the old config keeps serving.
	os.WriteFile(path, []byte("regions:\n  - name: eastus\n    endpont: x\n"), 0o600)
	resp, body := h.admin("POST", "/admin/reload", adminKey)
	wantStatus(t, resp, body, 400)
	if !strings.Contains(body, "regions[0].endpont: unknown key") {
		t.Errorf("bad reload answer does not name the problem: %s", body)
	}
	time.Sleep(50 * time.Millisecond)
	close(stop)
	wg.Wait()
	if failures.Load() > 0 || sent.Load() < 10 {
		t.Fatalf("%d of %d requests failed during reloads", failures.Load(), sent.Load())
	}
	// The last good config is in effect: its alias and its second client work.
	resp, body = h.do("POST", "/v1/chat/completions", `{"model":"alias-9","messages":[{"role":"user","content":"hi"}]}`, "api-key", "second-key-0123456789")
	wantStatus(t, resp, body, 200)
	if !strings.Contains(h.metrics(), `lifeline_config_reloads_total{result="error"} 1`) {
		t.Error("the refused reload is not counted")
	}
	if len(h.logs.lines("config reload refused; the old config keeps serving")) != 1 {
		t.Error("the refused reload is not logged")
	}
}

func TestReloadWithoutSource(t *testing.T) {
	h := startHarness(t, harnessOpts{})
	resp, body := h.admin("POST", "/admin/reload", adminKey)
	wantStatus(t, resp, body, 501)
	// Reload with a config value: a region renamed keeps serving, an invalid config is refused.
	cfg := testConfig(h.sim, []string{"westus"})
	if err := h.gw.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	resp, body = h.do("POST", "/v1/chat/completions", chatBody)
	wantStatus(t, resp, body, 200)
	if resp.Header.Get("x-lifeline-region") != "westus" {
		t.Errorf("after reload answered by %s", resp.Header.Get("x-lifeline-region"))
	}
	bad := testConfig(h.sim, []string{"westus"})
	bad.Regions[0].Deployments = nil
	if err := h.gw.Reload(bad); err == nil || !strings.Contains(err.Error(), "regions[0].deployments") {
		t.Errorf("Reload(invalid) = %v", err)
	}
	resp, body = h.do("POST", "/v1/chat/completions", chatBody)
	wantStatus(t, resp, body, 200)
}
