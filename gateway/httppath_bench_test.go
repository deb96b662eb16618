package gateway_test

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lifeline-sre/lifeline/config"
)

// BenchmarkHTTPSPath measures the production path, an HTTPS region, with each client-facing server
// (server.http1: lifeline, Lifeline's own, or net/http) and each region protocol (auto: HTTP/2 where the region
// offers it; http1). The load generator and the region run in the same process, so CPU per request (cpu-µs/op, from getrusage)
// includes theirs: compare the variants with each other, within one run.
//
//	go test ./gateway -run '^$' -bench HTTPSPath -benchtime 20000x -count 5
func BenchmarkHTTPSPath(b *testing.B) {
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if strings.Contains(r.URL.RawQuery, "stream") {
			w.Header().Set("Content-Type", "text/event-stream")
			for range 5 {
				io.WriteString(w, `data: {"choices":[{"delta":{"content":"hi"},"index":0,"finish_reason":null}]}`+"\n\n")
				w.(http.Flusher).Flush()
			}
			io.WriteString(w, `data: {"choices":[{"delta":{},"index":0,"finish_reason":"stop"}]}`+"\n\ndata: [DONE]\n\n")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, benchAnswer)
	}))
	// The same region without HTTP/2: net/http's client then speaks HTTP/1.1 too, as the own client does.
	up1 := httptest.NewUnstartedServer(up.Config.Handler)
	up.EnableHTTP2 = true
	up.StartTLS()
	b.Cleanup(up.Close)
	up1.TLS = &tls.Config{Certificates: up.TLS.Certificates}
	up1.StartTLS()
	b.Cleanup(up1.Close)
	roots := up.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	for _, c := range []struct {
		name, server, protocol string
		region                 *httptest.Server
	}{
		{"server=net-http/region=h2", config.HTTP1NetHTTP, "auto", up},
		{"server=lifeline/region=h2", config.HTTP1Lifeline, "auto", up},
		{"server=net-http/region=h1", config.HTTP1NetHTTP, "http1", up1},
		{"server=lifeline/region=h1", config.HTTP1Lifeline, "http1", up1},
	} {
		url := prodGateway(b, c.region.URL, roots, func(cfg *config.Config) {
			cfg.Server.HTTP1, cfg.Regions[0].Protocol = c.server, c.protocol
		})
		for _, k := range []struct{ name, query, body string }{{"json", "", chatBody}, {"stream", "&stream", streamBody}} {
			b.Run(c.name+"/"+k.name, func(b *testing.B) {
				runParallelCPU(b, url+"/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"+k.query, k.body)
			})
		}
	}
}

// runParallelCPU runs b.N requests from 16 goroutines and reports the process's CPU time per request.
func runParallelCPU(b *testing.B, url, body string) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}}
	defer client.CloseIdleConnections()
	var failed atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(8)
	before := cpuTime()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest("POST", url, strings.NewReader(body))
			req.Header.Set("api-key", clientKey)
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				failed.Add(1)
				continue
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				failed.Add(1)
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64((cpuTime()-before).Microseconds())/float64(b.N), "cpu-µs/op")
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d requests failed", n)
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
