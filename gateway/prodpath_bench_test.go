package gateway_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lifeline-sre/lifeline/config"
	"github.com/lifeline-sre/lifeline/gateway"
)

// The production path in one process: a client on plain HTTP/1.1, the gateway as `lifeline serve` runs it
// (Serve: Lifeline's HTTP/1.x server for clients), a region on HTTPS that offers HTTP/2 (the default
// `protocol: auto` speaks HTTP/2 to it). Everything shares the process, so every figure is read against a
// baseline measured in the same run: `direct` (the client calls the region itself) and `goproxy` (a bare
// httputil.ReverseProxy on net/http's server with net/http's HTTP/2 client: the plain Go proxy of bench/).
// What the gateway adds is gateway minus direct; the ratio that bench/ reports is gateway / goproxy.
//
//	go test ./gateway -run '^$' -bench 'ProdPath|OpenStreams' -count 5
//
// bench/ab.sh measures the same path across two builds with the servers in their own processes.

// prodRegion is an HTTPS region offering HTTP/2: a small chat completion at once, or, for a body asking
// to stream, one event and then nothing until release is closed (the request's end also ends it).
type prodRegion struct {
	srv     *httptest.Server
	roots   *x509.CertPool
	release chan struct{}
	opened  sync.WaitGroup
}

func newProdRegion(b *testing.B) *prodRegion {
	p := &prodRegion{release: make(chan struct{})}
	p.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if !strings.Contains(string(body), `"stream":true`) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, benchAnswer)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		if !strings.Contains(string(body), `"user":"hold"`) {
			// A request streamed without asking to be held (policy.stream_upstream sends non-streaming chat
			// as a stream): the answer at once, as bench/cmd/mockupstream sends it.
			io.WriteString(w, prodStream)
			return
		}
		io.WriteString(w, `data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}`+"\n\n")
		w.(http.Flusher).Flush()
		p.opened.Done()
		select {
		case <-p.release:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, `data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`+"\n\n")
		io.WriteString(w, `data: {"id":"c","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`+"\n\ndata: [DONE]\n\n")
	}))
	p.srv.EnableHTTP2 = true
	// Every stream on one connection: how many the client opens in a burst varies from run to run.
	p.srv.Config.HTTP2 = &http.HTTP2Config{MaxConcurrentStreams: 4096}
	p.srv.StartTLS()
	b.Cleanup(p.srv.Close)
	p.roots = p.srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	return p
}

// prodStream is a short chat answer as a stream: nine chunks, the usage chunk, [DONE].
var prodStream = func() string {
	var sb strings.Builder
	chunk := func(delta, finish string) {
		sb.WriteString(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":` +
			delta + `,"finish_reason":` + finish + `}]}` + "\n\n")
	}
	chunk(`{"role":"assistant","content":""}`, "null")
	for _, w := range []string{"Hello", " there,", " how", " can", " I", " help", "?"} {
		chunk(`{"content":"`+w+`"}`, "null")
	}
	chunk(`{}`, `"stop"`)
	sb.WriteString(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[],"usage":{"prompt_tokens":8,"completion_tokens":7,"total_tokens":15}}` + "\n\ndata: [DONE]\n\n")
	return sb.String()
}()

// holdBody asks the region to send one event and then wait.
const holdBody = `{"model":"gpt-4o","stream":true,"user":"hold","messages":[{"role":"user","content":"hello"}]}`

// prodGateway serves the default gateway (one region, default policy and server) on a listener; change, if
// not nil, changes the config before its defaults are applied.
func prodGateway(b *testing.B, region string, roots *x509.CertPool, change ...func(*config.Config)) string {
	cfg := &config.Config{
		Clients: []config.Client{{Name: "bench", Key: clientKey}},
		Regions: []config.Region{{Name: "eastus", Endpoint: region, APIKey: regionKey,
			Deployments: map[string]string{"gpt-4o": "gpt-4o"}}},
	}
	for _, c := range change {
		c(cfg)
	}
	cfg.ApplyDefaults()
	gw, err := gateway.New(cfg, gateway.Options{Logger: slog.New(slog.DiscardHandler),
		Registerer: prometheus.NewRegistry(), RegionTLS: &tls.Config{RootCAs: roots}})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { gw.Serve(ctx, ln, nil); close(done) }()
	b.Cleanup(func() { cancel(); <-done; gw.Close() })
	return "http://" + ln.Addr().String()
}

// prodGoProxy is the plain Go proxy: httputil.ReverseProxy with an HTTP/2 client to the region.
func prodGoProxy(b *testing.B, region string, roots *x509.CertPool) string {
	u, _ := url.Parse(region)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 1024}
	s := httptest.NewServer(&httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(u) },
		Transport: tr, FlushInterval: -1})
	b.Cleanup(func() { s.Close(); tr.CloseIdleConnections() })
	return s.URL
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkProdPath: one connection, one request at a time (the sequential scenario of bench/): ns/op is
// the latency; cpu-µs/op is the whole process's CPU time per request, from getrusage (client, gateway and
// region alike: compare the targets, not the absolute values); allocs/op and B/op count the process too.
func BenchmarkProdPath(b *testing.B) {
	reg := newProdRegion(b)
	// What each recent piece of per-request work costs, in the same run: the default against the default
	// with one thing off. A second region (the same server, priority 2) gives a hedge somewhere to go.
	secondRegion := func(c *config.Config) {
		c.Regions = append(c.Regions, config.Region{Name: "westus", Endpoint: reg.srv.URL, APIKey: regionKey,
			Priority: 2, Deployments: map[string]string{"gpt-4o": "gpt-4o"}})
	}
	noUpstream := func(c *config.Config) { c.Policy.StreamUpstream = new(bool) }
	noHedge := func(c *config.Config) { c.Policy.Hedge.Delay = config.HedgeOff }
	targets := []struct{ name, base string }{
		{"direct", reg.srv.URL},
		{"goproxy", prodGoProxy(b, reg.srv.URL, reg.roots)},
		{"gateway", prodGateway(b, reg.srv.URL, reg.roots)},
		{"gateway/stream_upstream=false", prodGateway(b, reg.srv.URL, reg.roots, noUpstream)},
		{"gateway/two-regions", prodGateway(b, reg.srv.URL, reg.roots, secondRegion)},
		{"gateway/two-regions/hedge=off", prodGateway(b, reg.srv.URL, reg.roots, secondRegion, noHedge)},
	}
	const path = "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
	for _, t := range targets {
		b.Run(t.name, func(b *testing.B) {
			client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: reg.roots},
				MaxIdleConnsPerHost: 1, DisableCompression: true}}
			defer client.CloseIdleConnections()
			do := func() {
				req, _ := http.NewRequest("POST", t.base+path, strings.NewReader(chatBody))
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
			for range 50 {
				do() // connections open, pools and the hedge delay's samples warm
			}
			b.ReportAllocs()
			before := processCPU()
			b.ResetTimer()
			for b.Loop() {
				do()
			}
			b.StopTimer()
			b.ReportMetric(float64((processCPU()-before).Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
}

// BenchmarkOpenStreams holds n streams open through each target at once (the region has sent one event
// and waits) and reports what the whole process holds per open stream: Go heap in use, goroutine stacks in
// use, and goroutines, after a GC, against the moment before the streams opened (the second of two holds:
// the first warms connections and pools). The client and the region are in the process too and cost the
// same through both targets, so what the gateway holds beyond the plain Go proxy is vs-goproxy-B/stream.
func BenchmarkOpenStreams(b *testing.B) {
	const n = 500
	if os.Getenv("HOLD_PROFILE") != "" {
		runtime.MemProfileRate = 64
	}
	reg := newProdRegion(b)
	targets := []struct{ name, base string }{
		{"goproxy", prodGoProxy(b, reg.srv.URL, reg.roots)},
		{"gateway", prodGateway(b, reg.srv.URL, reg.roots)},
	}
	const path = "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
	var floor float64
	for _, t := range targets {
		b.Run(t.name, func(b *testing.B) {
			var c streamCost
			for range b.N {
				holdStreams(b, reg, t.base+path, n)
				c = holdStreams(b, reg, t.base+path, n)
			}
			b.ReportMetric(c.heap, "heap-B/stream")
			b.ReportMetric(c.stack, "stack-B/stream")
			b.ReportMetric(c.gs, "goroutines/stream")
			if t.name == "goproxy" {
				floor = c.heap + c.stack
			} else if floor != 0 {
				b.ReportMetric(c.heap+c.stack-floor, "vs-goproxy-B/stream")
			}
		})
	}
}

type streamCost struct{ heap, stack, gs float64 }

func holdStreams(b *testing.B, reg *prodRegion, url string, n int) (c streamCost) {
	reg.release = make(chan struct{})
	reg.opened.Add(n)
	var ms0, ms1 runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms0)
	g0 := runtime.NumGoroutine()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n, DisableCompression: true}}
	bodies := make([]io.ReadCloser, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			req, _ := http.NewRequest("POST", url, strings.NewReader(holdBody))
			req.Header.Set("api-key", clientKey)
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				errs <- err
				return
			}
			if resp.StatusCode != 200 {
				resp.Body.Close()
				errs <- io.ErrUnexpectedEOF
				return
			}
			line, err := bufio.NewReader(resp.Body).ReadString('\n') // the first event has arrived
			if err != nil || !strings.HasPrefix(line, "data:") {
				errs <- io.ErrUnexpectedEOF
			}
			bodies[i] = resp.Body
		})
	}
	wg.Wait()
	reg.opened.Wait()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms1)
	g1 := runtime.NumGoroutine()
	if f := os.Getenv("HOLD_PROFILE"); f != "" {
		runtime.GC() // the heap profile lags a cycle behind
		w, _ := os.Create(f)
		pprof.Lookup("heap").WriteTo(w, 0)
		w.Close()
		w, _ = os.Create(f + ".goroutine")
		pprof.Lookup("goroutine").WriteTo(w, 1)
		w.Close()
	}
	close(reg.release)
	for _, body := range bodies {
		io.Copy(io.Discard, body)
		body.Close()
	}
	client.CloseIdleConnections()
	c.heap = float64(int64(ms1.HeapAlloc)-int64(ms0.HeapAlloc)) / float64(n)
	c.stack = float64(int64(ms1.StackInuse)-int64(ms0.StackInuse)) / float64(n)
	c.gs = float64(g1-g0) / float64(n)
	return c
}
