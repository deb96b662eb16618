package failover

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// cannedTransport answers every request at once without a network, so that benchmarks
// measure the engine alone.
type cannedTransport struct{ body []byte }

func (c cannedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		io.Copy(io.Discard, req.Body)
		req.Body.Close()
	}
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(bytes.NewReader(c.body)), ContentLength: int64(len(c.body)), Request: req}, nil
}

func benchTransport(b *testing.B, routing string) *Transport {
	regions := []Region{
		{Name: "eastus", Endpoint: "https://eastus.example", APIKey: "k1", Priority: 1, Deployments: map[string]string{"gpt-4o": "gpt-4o-prod", "mini": "mini-1"}},
		{Name: "westus", Endpoint: "https://westus.example", APIKey: "k2", Priority: 1, Weight: 2, Deployments: map[string]string{"gpt-4o": "gpt-4o", "mini": "mini-2"}},
		{Name: "swedencentral", Endpoint: "https://se.example", APIKey: "k3", Priority: 2, Deployments: map[string]string{"gpt-4o": "gpt-4o-se"}},
	}
	tr, err := New(Config{Regions: regions, Policy: Policy{Routing: routing}},
		WithBaseTransport(func(Region) http.RoundTripper { return cannedTransport{body: []byte(`{"id":"x","choices":[]}`)} }))
	if err != nil {
		b.Fatal(err)
	}
	return tr
}

var benchBody = []byte(`{"model":"gpt-4o","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"` +
	strings.Repeat("Tell me about failover. ", 40) + `"}],"max_tokens":256,"temperature":0.2}`)

// BenchmarkSelectAndRewrite is the per-request hot path without I/O: read the name, order the
// regions, rewrite the request for the chosen one (path, deployment, model, credential).
func BenchmarkSelectAndRewrite(b *testing.B) {
	for _, c := range []struct{ name, path, routing string }{
		{"deployment-path/priority", "/openai/deployments/gpt-4o/chat/completions", RoutingPriority},
		{"v1-model/priority", "/openai/v1/chat/completions", RoutingPriority},
		{"v1-model/weighted", "/openai/v1/chat/completions", RoutingWeighted},
		{"v1-model/latency", "/openai/v1/chat/completions", RoutingLatency},
	} {
		b.Run(c.name, func(b *testing.B) {
			tr := benchTransport(b, c.routing)
			req, _ := http.NewRequest("POST", "https://lifeline.invalid"+c.path+"?api-version=2024-10-21", nil)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Api-Key", "caller")
			req.Header.Set("User-Agent", "OpenAI/Go 3.95.0")
			tab := tr.tab.Load()
			ctx := context.Background()
			b.ReportAllocs()
			b.SetBytes(int64(len(benchBody)))
			for b.Loop() {
				req.Body, req.ContentLength = io.NopCloser(bytes.NewReader(benchBody)), int64(len(benchBody))
				pr, err := ParseRequest(req, 0)
				if err != nil {
					b.Fatal(err)
				}
				rt := roundTrip{t: tr, tab: tab, p: &tab.policy, req: req, ctx: ctx, in: pr.in}
				cands := tab.candidates(rt.in.name, true)
				var buf [maxCandidates]*region
				plan := tr.order(buf[:0], cands, rt.p, rt.in.name, tr.clock.Now())
				r := plan[0]
				if _, err := rt.build(ctx, r, r.targets[rt.in.name], false); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRoundTrip is a whole RoundTrip through the engine against a transport that answers
// at once: the overhead the engine adds to every call.
func BenchmarkRoundTrip(b *testing.B) {
	tr := benchTransport(b, RoutingPriority)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest("POST", "https://lifeline.invalid/openai/v1/chat/completions", bytes.NewReader(benchBody))
			resp, err := tr.RoundTrip(req)
			if err != nil || resp.StatusCode != 200 {
				b.Fatal(resp, err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}

func BenchmarkClassify(b *testing.B) {
	h := http.Header{"Retry-After-Ms": {"1500"}, "Retry-After": {"2"}}
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if v := Classify(Signal{Status: 429, Header: h, Now: now}); v.RetryAfter != 1500*time.Millisecond {
			b.Fatal(v)
		}
	}
}
