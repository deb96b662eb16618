package gateway_test

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/lifeline-sre/lifeline/config"
	"github.com/lifeline-sre/lifeline/internal/otlptest"
	"github.com/lifeline-sre/lifeline/sim"
)

// traceparentSpy stands in front of a simulated region and keeps the traceparent of every request it passes on.
type traceparentSpy struct {
	mu   sync.Mutex
	seen []string
}

func (s *traceparentSpy) wrap(t *testing.T, target string) string {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.FlushInterval = -1
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.seen = append(s.seen, r.Header.Get("Traceparent"))
		s.mu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func (s *traceparentSpy) all() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.seen...)
}

const (
	clientTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	clientSpanID  = "00f067aa0ba902b7"
	prompt        = "the secret prompt words"
)

// TestTracesFailoverToOTLP sends one request with the client's traceparent through a region that answers 503 and
// one that serves it, with telemetry.otlp pointed at an in-process OTLP receiver, and checks the spans: the
// request's server span continues the client's trace and carries the GenAI attributes and token usage; one client
// span per attempt, with region, outcome and status; each region received the traceparent of its own attempt;
// nothing of the prompt or the completion is on any span.
func TestTracesFailoverToOTLP(t *testing.T) {
	rcv := otlptest.Start(t)
	east, west := &traceparentSpy{}, &traceparentSpy{}
	h := startHarness(t, harnessOpts{mutate: func(c *config.Config) {
		c.Telemetry.OTLP.Endpoint = rcv.URL
		c.Telemetry.OTLP.Headers = map[string]string{"x-collector-key": "k1"}
		c.Telemetry.ServiceName = "lifeline-test"
		c.Regions[0].Endpoint = east.wrap(t, c.Regions[0].Endpoint)
		c.Regions[1].Endpoint = west.wrap(t, c.Regions[1].Endpoint)
	}})
	h.fault("eastus", sim.Fault{Mode: sim.ModeError, Status: 503})
	body := `{"model":"gpt-4o","messages":[{"role":"user","content":"` + prompt + `"}]}`
	resp, out := h.do("POST", "/openai/v1/chat/completions", body, "traceparent", "00-"+clientTraceID+"-"+clientSpanID+"-01")
	wantStatus(t, resp, out, 200)
	if resp.Header.Get("x-lifeline-region") != "westus" {
		t.Fatalf("answered by %q, want westus", resp.Header.Get("x-lifeline-region"))
	}
	h.stop() // flushes the spans

	spans := rcv.Spans()
	var server *otlptest.Span
	var attempts []otlptest.Span
	for i, s := range spans {
		switch s.Kind {
		case tracepb.Span_SPAN_KIND_SERVER:
			server = &spans[i]
		case tracepb.Span_SPAN_KIND_CLIENT:
			attempts = append(attempts, s)
		}
	}
	if server == nil {
		t.Fatalf("no server span among %d spans: %+v", len(spans), spans)
	}
	if server.TraceID != clientTraceID || server.ParentSpanID != clientSpanID {
		t.Errorf("server span trace %s parent %s: does not continue the client's traceparent", server.TraceID, server.ParentSpanID)
	}
	if server.Name != "chat gpt-4o" {
		t.Errorf("server span name %q, want %q", server.Name, "chat gpt-4o")
	}
	for k, want := range map[string]any{
		"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o", "gen_ai.provider.name": "azure.ai.openai",
		"http.response.status_code": int64(200), "lifeline.region": "westus", "lifeline.attempts": int64(3),
		"lifeline.client": "test-app",
	} {
		if got := server.Attrs[k]; got != want {
			t.Errorf("server span %s = %v (%T), want %v", k, got, got, want)
		}
	}
	for _, k := range []string{"gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens"} {
		if n, _ := server.Attrs[k].(int64); n <= 0 {
			t.Errorf("server span %s = %v, want the region's token usage", k, server.Attrs[k])
		}
	}
	if m, _ := server.Attrs["gen_ai.response.model"].(string); !strings.HasPrefix(m, "gpt-4o") {
		t.Errorf("gen_ai.response.model = %q", m)
	}
	if server.Resource["service.name"] != "lifeline-test" {
		t.Errorf("service.name = %v", server.Resource["service.name"])
	}

	// Two attempts in eastus (503, retried once in place), then westus.
	if len(attempts) != 3 {
		t.Fatalf("%d attempt spans, want 3: %+v", len(attempts), attempts)
	}
	byRegion := map[string][]otlptest.Span{}
	for _, a := range attempts {
		if a.TraceID != clientTraceID || a.ParentSpanID != server.SpanID {
			t.Errorf("attempt span %q is not a child of the request span", a.Name)
		}
		byRegion[a.Attrs["lifeline.region"].(string)] = append(byRegion[a.Attrs["lifeline.region"].(string)], a)
	}
	for _, a := range byRegion["eastus"] {
		if a.Attrs["lifeline.attempt.outcome"] != "server_error" || a.Attrs["http.response.status_code"] != int64(503) ||
			a.StatusCode != tracepb.Status_STATUS_CODE_ERROR || a.Attrs["error.type"] != "server_error" {
			t.Errorf("eastus attempt: %+v", a)
		}
	}
	if len(byRegion["eastus"]) != 2 || len(byRegion["westus"]) != 1 {
		t.Fatalf("attempts by region: %v", byRegion)
	}
	w := byRegion["westus"][0]
	if w.Attrs["lifeline.attempt.outcome"] != "ok" || w.Attrs["http.response.status_code"] != int64(200) || w.Attrs["lifeline.attempt"] != int64(3) ||
		w.Name != "chat gpt-4o (westus)" || w.Attrs["server.address"] != "127.0.0.1" {
		t.Errorf("westus attempt: %+v", w)
	}

	// Each region got the trace context of its own attempt.
	wantParents := func(spy *traceparentSpy, spans []otlptest.Span) {
		t.Helper()
		seen := spy.all()
		if len(seen) != len(spans) {
			t.Fatalf("region saw %d requests, %d attempt spans", len(seen), len(spans))
		}
		for _, s := range spans {
			want := "00-" + clientTraceID + "-" + s.SpanID + "-01"
			found := false
			for _, tp := range seen {
				found = found || tp == want
			}
			if !found {
				t.Errorf("no request to the region carried %s; it saw %v", want, seen)
			}
		}
	}
	wantParents(east, byRegion["eastus"])
	wantParents(west, byRegion["westus"])

	// No content: neither the prompt nor the answer is on any span.
	for _, s := range spans {
		for k, v := range s.Attrs {
			if str, ok := v.(string); ok && (strings.Contains(str, "secret prompt") || len(str) > 200) {
				t.Errorf("span %q attribute %s carries content: %q", s.Name, k, str)
			}
		}
	}
	if hs := rcv.Headers(); len(hs) == 0 || hs[0].Get("X-Collector-Key") != "k1" {
		t.Errorf("telemetry.otlp.headers were not sent to the collector: %v", hs)
	}
}

// TestTracesStreamCut checks that a stream that a region breaks after it started is an error on the request's
// span and a stream_error on the attempt's, so that one trace shows where a truncated answer came from.
func TestTracesStreamCut(t *testing.T) {
	rcv := otlptest.Start(t)
	h := startHarness(t, harnessOpts{regions: []string{"eastus"}, mutate: func(c *config.Config) {
		c.Telemetry.OTLP.Endpoint = rcv.URL
	}})
	h.fault("eastus", sim.Fault{Mode: sim.ModeCutStream, AfterEvents: 3})
	resp, out := h.do("POST", "/openai/v1/chat/completions", streamBody)
	wantStatus(t, resp, out, 200)
	if !strings.Contains(out, `"error"`) {
		t.Fatalf("the cut stream did not end with an error event: %s", out)
	}
	h.stop()
	var server, attempt *otlptest.Span
	spans := rcv.Spans()
	for i := range spans {
		switch spans[i].Kind {
		case tracepb.Span_SPAN_KIND_SERVER:
			server = &spans[i]
		case tracepb.Span_SPAN_KIND_CLIENT:
			attempt = &spans[i]
		}
	}
	if server == nil || attempt == nil {
		t.Fatalf("spans: %+v", spans)
	}
	if server.StatusCode != tracepb.Status_STATUS_CODE_ERROR || server.Attrs["error.type"] == nil || server.Attrs["lifeline.stream"] != true {
		t.Errorf("request span of a cut stream: %+v", server)
	}
	if attempt.Attrs["lifeline.attempt.outcome"] != "stream_error" || attempt.StatusCode != tracepb.Status_STATUS_CODE_ERROR {
		t.Errorf("attempt span of a cut stream: %+v", attempt)
	}
	if server.TraceID != attempt.TraceID || attempt.ParentSpanID != server.SpanID || server.ParentSpanID != "" {
		t.Errorf("without a client traceparent the request span should be a root with the attempt under it: %+v / %+v", server, attempt)
	}
}

// TestNoTracingWithoutCollector checks that without telemetry config or OTEL_* variables nothing is traced and the
// client's traceparent still reaches the region as it was sent.
func TestNoTracingWithoutCollector(t *testing.T) {
	spy := &traceparentSpy{}
	h := startHarness(t, harnessOpts{regions: []string{"eastus"}, mutate: func(c *config.Config) {
		c.Regions[0].Endpoint = spy.wrap(t, c.Regions[0].Endpoint)
	}})
	tp := "00-" + clientTraceID + "-" + clientSpanID + "-01"
	resp, out := h.do("POST", "/openai/v1/chat/completions", chatBody, "traceparent", tp)
	wantStatus(t, resp, out, 200)
	if seen := spy.all(); len(seen) != 1 || seen[0] != tp {
		t.Errorf("region saw traceparent %v, want the client's %s", seen, tp)
	}
	_ = time.Second
}

// TestTracesHedge: a request that eastus is slow to start is hedged in westus; the trace shows both attempts under
// the request span, the hedge marked lifeline.attempt.hedge, the one waited for ending as a timeout (it lost the
// race by staying silent), and the request span saying that the answer came from a hedge.
func TestTracesHedge(t *testing.T) {
	rcv := otlptest.Start(t)
	h := startHarness(t, harnessOpts{mutate: func(c *config.Config) {
		c.Telemetry.OTLP.Endpoint = rcv.URL
		c.Policy.Hedge.Delay = "100ms"
		c.Policy.Timeouts.StreamFirstByte = config.Duration(10 * time.Second)
	}})
	h.fault("eastus", sim.Fault{Mode: sim.ModeSlowFirstByte, Latency: sim.Duration(2 * time.Second)})
	resp, out := h.do("POST", "/openai/v1/chat/completions", streamBody)
	wantStatus(t, resp, out, 200)
	if resp.Header.Get("x-lifeline-hedged") != "true" {
		t.Fatalf("not answered by a hedge: %v", resp.Header)
	}
	h.stop()
	var server *otlptest.Span
	attempts := map[string]*otlptest.Span{}
	spans := rcv.Spans()
	for i := range spans {
		switch spans[i].Kind {
		case tracepb.Span_SPAN_KIND_SERVER:
			server = &spans[i]
		case tracepb.Span_SPAN_KIND_CLIENT:
			attempts[spans[i].Attrs["lifeline.region"].(string)] = &spans[i]
		}
	}
	east, west := attempts["eastus"], attempts["westus"]
	if server == nil || east == nil || west == nil {
		t.Fatalf("spans: %+v", spans)
	}
	if west.Attrs["lifeline.attempt.hedge"] != true || west.Attrs["lifeline.attempt.outcome"] != "ok" || west.ParentSpanID != server.SpanID {
		t.Errorf("the hedge's span: %+v", west)
	}
	if _, marked := east.Attrs["lifeline.attempt.hedge"]; marked || east.Attrs["lifeline.attempt.outcome"] != "timeout" || east.ParentSpanID != server.SpanID {
		t.Errorf("the span of the attempt waited for: %+v", east)
	}
	if server.Attrs["lifeline.hedged"] != true || server.Attrs["lifeline.region"] != "westus" {
		t.Errorf("request span: %+v", server)
	}
}

// TestTracesResume: a stream that eastus cuts after the client got events goes on from westus (policy.streams.resume
// on its default, replay); the trace shows the broken attempt as a stream_error and the one that took the stream
// over marked lifeline.attempt.resume_from, both under the request span, which ends without an error.
func TestTracesResume(t *testing.T) {
	rcv := otlptest.Start(t)
	h := startHarness(t, harnessOpts{mutate: func(c *config.Config) {
		c.Telemetry.OTLP.Endpoint = rcv.URL
	}})
	h.fault("eastus", sim.Fault{Mode: sim.ModeCutStream, AfterEvents: 3})
	resp, out := h.do("POST", "/openai/v1/chat/completions", streamBody)
	wantStatus(t, resp, out, 200)
	if !strings.Contains(out, ": lifeline resumed eastus -> westus") || !strings.Contains(out, "data: [DONE]") ||
		strings.Contains(out, "stream_error") {
		t.Fatalf("the stream was not resumed:\n%s", out)
	}
	h.stop()
	var server *otlptest.Span
	attempts := map[string]*otlptest.Span{}
	spans := rcv.Spans()
	for i := range spans {
		switch spans[i].Kind {
		case tracepb.Span_SPAN_KIND_SERVER:
			server = &spans[i]
		case tracepb.Span_SPAN_KIND_CLIENT:
			attempts[spans[i].Attrs["lifeline.region"].(string)] = &spans[i]
		}
	}
	east, west := attempts["eastus"], attempts["westus"]
	if server == nil || east == nil || west == nil {
		t.Fatalf("spans: %+v", spans)
	}
	if east.Attrs["lifeline.attempt.outcome"] != "stream_error" || east.ParentSpanID != server.SpanID {
		t.Errorf("the broken attempt's span: %+v", east)
	}
	if _, marked := east.Attrs["lifeline.attempt.resume_from"]; marked {
		t.Errorf("the first attempt is marked as a resume: %+v", east)
	}
	if west.Attrs["lifeline.attempt.resume_from"] != "eastus" || west.Attrs["lifeline.attempt.outcome"] != "ok" ||
		west.ParentSpanID != server.SpanID || west.TraceID != server.TraceID {
		t.Errorf("the resume's span: %+v", west)
	}
	if server.StatusCode == tracepb.Status_STATUS_CODE_ERROR || server.Attrs["lifeline.stream_error"] != nil {
		t.Errorf("the request span of a resumed stream: %+v", server)
	}
}
