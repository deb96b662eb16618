package gateway_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lifeline-sre/lifeline/config"
	"github.com/lifeline-sre/lifeline/gateway"
)

const benchAnswer = `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"Hello there, how can I help?"},"finish_reason":"stop"}],"usage":{"prompt_tokens":8,"completion_tokens":7,"total_tokens":15}}`

// benchLarge is a large non-streaming answer (about 256 KB, like a batch of embeddings).
var benchLarge = []byte(`{"object":"list","data":[{"object":"embedding","index":0,"embedding":[` +
	strings.Repeat("0.0123456789,", 20000) + `0]}],"usage":{"prompt_tokens":8,"total_tokens":8}}`)

// benchUpstream answers every request at once with a small chat completion, or a short SSE stream.
func benchUpstream(b *testing.B) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if strings.Contains(r.URL.RawQuery, "stream") {
			w.Header().Set("Content-Type", "text/event-stream")
			for range 5 {
				io.WriteString(w, `data: {"choices":[{"delta":{"content":"hi"},"index":0}]}`+"\n\n")
				w.(http.Flusher).Flush()
			}
			io.WriteString(w, "data: [DONE]\n\n")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if strings.Contains(r.URL.RawQuery, "large") {
			w.Write(benchLarge)
			return
		}
		io.WriteString(w, benchAnswer)
	}))
	b.Cleanup(s.Close)
	return s
}

func benchGateway(b *testing.B, upstream string, logs bool) string {
	cfg := &config.Config{
		Clients: []config.Client{{Name: "bench", Key: clientKey}},
		Regions: []config.Region{{Name: "eastus", Endpoint: upstream, APIKey: regionKey, Deployments: map[string]string{"gpt-4o": "gpt-4o"}}},
	}
	cfg.ApplyDefaults()
	logger := slog.New(slog.DiscardHandler)
	if logs {
		logger = gateway.NewLogger(io.Discard, "json", slog.LevelInfo)
	}
	gw, err := gateway.New(cfg, gateway.Options{Logger: logger, Registerer: prometheus.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	s := httptest.NewServer(gw.Handler())
	b.Cleanup(func() { s.Close(); gw.Close() })
	return s.URL
}

func benchClient() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
}

func runBench(b *testing.B, target, path, body string) {
	client := benchClient()
	b.ReportAllocs()
	b.ResetTimer()
	func() { // one request at a time: ns/op is the latency
		for range b.N {
			req, _ := http.NewRequestWithContext(context.Background(), "POST", target+path, strings.NewReader(body))
			req.Header.Set("api-key", clientKey)
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Fatalf("status %d", resp.StatusCode)
			}
		}
	}()
}

// BenchmarkProxy compares a request through the gateway with the same request straight to the upstream and
// through a bare httputil.ReverseProxy: the difference is what the gateway adds.
func BenchmarkProxy(b *testing.B) {
	up := benchUpstream(b)
	upURL, _ := url.Parse(up.URL)
	rp := httptest.NewServer(&httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(upURL) }})
	b.Cleanup(rp.Close)
	gw := benchGateway(b, up.URL, true)
	gwNoLog := benchGateway(b, up.URL, false)
	const path = "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
	b.Run("direct", func(b *testing.B) { runBench(b, up.URL, path, chatBody) })
	b.Run("httputil.ReverseProxy", func(b *testing.B) { runBench(b, rp.URL, path, chatBody) })
	b.Run("gateway", func(b *testing.B) { runBench(b, gw, path, chatBody) })
	b.Run("gateway-v1-body", func(b *testing.B) { runBench(b, gw, "/v1/chat/completions", chatBody) })
	b.Run("gateway-nolog", func(b *testing.B) { runBench(b, gwNoLog, path, chatBody) })
	b.Run("gateway-stream", func(b *testing.B) { runBench(b, gw, path+"&stream", streamBody) })
	b.Run("httputil.ReverseProxy-stream", func(b *testing.B) { runBench(b, rp.URL, path+"&stream", streamBody) })
	b.Run("gateway-large", func(b *testing.B) { runBench(b, gw, path+"&large", chatBody) })
	b.Run("httputil.ReverseProxy-large", func(b *testing.B) { runBench(b, rp.URL, path+"&large", chatBody) })
}
