package gateway_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lifeline-sre/lifeline/config"
	"github.com/lifeline-sre/lifeline/sim"
)

// TestNoSecretLeaks drives every kind of answer (success, stream, failover, cut stream, 401, 404, 413, admin
// errors, a refused reload) and then searches every response, every log line and every metric for the client's,
// the admin's and the regions' keys.
func TestNoSecretLeaks(t *testing.T) {
	secrets := []string{clientKey, adminKey, regionKey, "second-secret-key-42"}
	h := startHarness(t, harnessOpts{
		mutate: func(c *config.Config) {
			c.Clients = append(c.Clients, config.Client{Name: "second", Key: "second-secret-key-42"})
			c.Policy.MaxBodyBytes = 2048
		},
		load: func() (*config.Config, error) {
			return config.Parse([]byte("regions: [{name: x, endpoint: 'https://"+regionKey+"@h', api_key: "+regionKey+"}]"), nil)
		},
	})
	var seen strings.Builder
	record := func(resp *http.Response, body string) {
		for k, vv := range resp.Header {
			seen.WriteString(k + ": " + strings.Join(vv, ",") + "\n")
		}
		seen.WriteString(body + "\n")
	}
	record(h.do("POST", "/v1/chat/completions", chatBody))
	record(h.do("POST", "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21&api-key="+clientKey, streamBody))
	record(h.do("POST", "/v1/chat/completions", chatBody, "api-key", "", "Authorization", "Bearer second-secret-key-42"))
	record(h.do("POST", "/v1/chat/completions", chatBody, "api-key", clientKey+"-wrong"))
	record(h.do("POST", "/v1/chat/completions", chatBody, "api-key", regionKey))
	record(h.do("POST", "/v1/chat/completions", `{"model":"`+clientKey+`"}`))
	record(h.do("POST", "/v1/"+clientKey, chatBody))
	record(h.do("POST", "/v1/chat/completions", strings.Repeat("x", 4096)))
	record(h.do("GET", "/v1/models", ""))
	h.fault("eastus", sim.Fault{Mode: sim.ModeDown})
	record(h.do("POST", "/v1/chat/completions", chatBody))
	h.fault("eastus", sim.Fault{Mode: sim.ModeClear})
	h.fault("westus", sim.Fault{Mode: sim.ModeCutStream, AfterEvents: 2})
	h.gw.Transport().Disable("eastus")
	record(h.do("POST", "/v1/chat/completions", streamBody))
	h.fault("westus", sim.Fault{Mode: sim.ModeError, Status: 401})
	record(h.do("POST", "/v1/chat/completions", chatBody))
	for _, p := range []struct{ m, path, key string }{
		{"GET", "/admin/regions", adminKey}, {"GET", "/admin/regions", clientKey}, {"POST", "/admin/reload", adminKey},
		{"GET", "/status", adminKey}, {"GET", "/metrics", ""}, {"GET", "/readyz", ""},
	} {
		record(h.admin(p.m, p.path, p.key))
	}
	resp, err := http.Get(h.adminURL + "/status?key=" + adminKey)
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		record(resp, string(b))
	}
	time.Sleep(100 * time.Millisecond) // the last access log lines are written after the answers
	where := map[string]string{"responses": seen.String(), "logs": h.logs.String(), "metrics": h.metrics()}
	for what, text := range where {
		for _, s := range secrets {
			if strings.Contains(text, s) {
				i := strings.Index(text, s)
				t.Errorf("a secret appears in the %s: ...%s...", what, text[max(0, i-200):min(len(text), i+len(s)+50)])
			}
		}
	}
	if len(h.logs.lines("request")) < 10 {
		t.Errorf("only %d access log lines; the test did not exercise the logs", len(h.logs.lines("request")))
	}
}
