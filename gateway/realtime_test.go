package gateway_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/lifeline-sre/lifeline/config"
	"github.com/lifeline-sre/lifeline/sim"
)

// realtimeHarness is a gateway whose regions also serve a Realtime deployment under the name "realtime".
func realtimeHarness(t *testing.T, mutate func(*config.Config)) *harness {
	return startHarness(t, harnessOpts{
		simCfg: func(c *sim.Config) {
			for i := range c.Regions {
				c.Regions[i].Deployments = append(c.Regions[i].Deployments, sim.Deployment{Name: "rt", Model: "gpt-4o-realtime-preview", Version: "2024-12-17"})
			}
		},
		mutate: func(c *config.Config) {
			for i := range c.Regions {
				c.Regions[i].Deployments["realtime"] = "rt"
			}
			if mutate != nil {
				mutate(c)
			}
		},
	})
}

func wsURL(h *harness, path string) string { return "ws" + strings.TrimPrefix(h.url, "http") + path }

func dialGateway(t *testing.T, ctx context.Context, url string) (*websocket.Conn, *http.Response) {
	t.Helper()
	c, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: http.Header{"api-key": {clientKey}}})
	if err != nil {
		st := 0
		if resp != nil {
			st = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (status %d)", url, err, st)
	}
	return c, resp
}

func nextEvent(t *testing.T, ctx context.Context, c *websocket.Conn) (map[string]any, error) {
	t.Helper()
	_, data, err := c.Read(ctx)
	if err != nil {
		return nil, err
	}
	var ev map[string]any
	json.Unmarshal(data, &ev)
	return ev, nil
}

// talk runs one response in an open session and returns its text.
func talk(t *testing.T, ctx context.Context, c *websocket.Conn, say string) string {
	t.Helper()
	c.Write(ctx, websocket.MessageText, []byte(`{"type":"conversation.item.create","item":{"type":"message","role":"user","content":[{"type":"input_text","text":"`+say+`"}]}}`))
	c.Write(ctx, websocket.MessageText, []byte(`{"type":"response.create","response":{"modalities":["text"],"output_modalities":["text"]}}`))
	var text string
	for {
		ev, err := nextEvent(t, ctx, c)
		if err != nil {
			t.Fatalf("session ended: %v", err)
		}
		if d, ok := ev["delta"].(string); ok && strings.Contains(ev["type"].(string), "text") {
			text += d
		}
		if ev["type"] == "response.done" {
			return text
		}
	}
}

func TestRealtimeProxied(t *testing.T) {
	for _, srv := range []string{"h1srv", config.HTTP1NetHTTP} {
		t.Run(srv, func(t *testing.T) {
			h := realtimeHarness(t, func(c *config.Config) {
				if srv == config.HTTP1NetHTTP {
					c.Server.HTTP1 = srv
				}
			})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			for _, path := range []string{"/openai/realtime?api-version=2024-10-01-preview&deployment=realtime",
				"/openai/v1/realtime?model=realtime", "/v1/realtime?model=realtime"} {
				c, resp := dialGateway(t, ctx, wsURL(h, path))
				if resp.Header.Get("x-lifeline-region") != "eastus" {
					t.Errorf("%s: region %q", path, resp.Header.Get("x-lifeline-region"))
				}
				if ev, err := nextEvent(t, ctx, c); err != nil || ev["type"] != "session.created" {
					t.Fatalf("%s: first event %v %v", path, ev, err)
				}
				if text := talk(t, ctx, c, "Hello there"); !strings.Contains(text, "Hello there") || !strings.Contains(text, "East US") {
					t.Errorf("%s: answer %q", path, text)
				}
				if !strings.Contains(h.metrics(), `lifeline_realtime_sessions{region="eastus"} 1`) {
					t.Errorf("open session not in the metrics")
				}
				_, body := h.admin("GET", "/admin/regions", adminKey)
				var view struct {
					Regions []struct {
						Name             string
						RealtimeSessions int `json:"realtime_sessions"`
					}
				}
				json.Unmarshal([]byte(body), &view)
				if len(view.Regions) == 0 || view.Regions[0].Name != "eastus" || view.Regions[0].RealtimeSessions != 1 {
					t.Errorf("open session not in /admin/regions (the status page): %+v", view)
				}
				c.Close(websocket.StatusNormalClosure, "")
				// Wait for this session to close before the next opens: the gauge must read 1 then, not 2.
				eventually(t, "sessions to close", 5*time.Second, func() bool {
					return strings.Contains(h.metrics(), `lifeline_realtime_sessions{region="eastus"} 0`) && h.sim.Region("eastus").RealtimeSessions() == 0
				})
			}
		})
	}
}

// The primary is down before connect: the session opens in the secondary. The region fails mid-session: the
// client's socket closes with 1011 and a reason naming the region, never silently.
func TestRealtimeFailover(t *testing.T) {
	h := realtimeHarness(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	url := wsURL(h, "/openai/v1/realtime?model=realtime")

	h.fault("eastus", sim.Fault{Mode: "down"})
	c, resp := dialGateway(t, ctx, url)
	if resp.Header.Get("x-lifeline-region") != "westus" {
		t.Fatalf("session opened in %q, want westus", resp.Header.Get("x-lifeline-region"))
	}
	nextEvent(t, ctx, c)
	if text := talk(t, ctx, c, "hi"); !strings.Contains(text, "West US") {
		t.Errorf("answer %q", text)
	}
	// westus fails during the session.
	h.fault("westus", sim.Fault{Mode: "down"})
	var err error
	for err == nil {
		_, err = nextEvent(t, ctx, c)
	}
	if websocket.CloseStatus(err) != websocket.StatusInternalError || !strings.Contains(err.Error(), "westus") {
		t.Fatalf("mid-session failure ended the socket with %v (status %d)", err, websocket.CloseStatus(err))
	}

	// Both down: 503 at connect, with Retry-After.
	_, resp, err = websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: http.Header{"api-key": {clientKey}}})
	if err == nil || resp == nil || resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("both regions down: %v %v", err, resp)
	}
	h.fault("eastus", sim.Fault{Mode: "clear"})
	h.fault("westus", sim.Fault{Mode: "clear"})

	// cut after a few events: the same 1011 naming the region that served.
	eventually(t, "eastus back", 5*time.Second, func() bool {
		c, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: http.Header{"api-key": {clientKey}}})
		if err != nil {
			return false
		}
		c.CloseNow()
		return resp.Header.Get("x-lifeline-region") == "eastus"
	})
	h.fault("eastus", sim.Fault{Mode: "cut_stream", AfterEvents: 4})
	c, _ = dialGateway(t, ctx, url)
	c.Write(ctx, websocket.MessageText, []byte(`{"type":"response.create"}`))
	for err = nil; err == nil; {
		_, err = nextEvent(t, ctx, c)
	}
	if websocket.CloseStatus(err) != websocket.StatusInternalError || !strings.Contains(err.Error(), "eastus") {
		t.Errorf("cut session ended with %v", err)
	}
}

func TestRealtimeBadRequests(t *testing.T) {
	h := realtimeHarness(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if resp, body := h.do("GET", "/openai/v1/realtime?model=realtime", ""); resp.StatusCode != 400 {
		t.Errorf("no upgrade: %d %s", resp.StatusCode, body)
	}
	for url, want := range map[string]int{
		wsURL(h, "/openai/v1/realtime?model=nope"):                                    404,
		wsURL(h, "/openai/v1/realtime"):                                               400, // no name: missing_model
		wsURL(h, "/openai/realtime?api-version=2024-10-01-preview&deployment=gpt-4o"): 400, // not a realtime model: the region's 400
	} {
		_, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: http.Header{"api-key": {clientKey}}})
		if err == nil || resp == nil || resp.StatusCode != want {
			st := 0
			if resp != nil {
				st = resp.StatusCode
			}
			t.Errorf("%s: %v status %d, want %d", url, err, st, want)
		}
	}
	_, resp, err := websocket.Dial(ctx, wsURL(h, "/openai/v1/realtime?model=realtime"), nil)
	if err == nil || resp == nil || resp.StatusCode != 401 {
		t.Errorf("no client key: %v", err)
	}
}
