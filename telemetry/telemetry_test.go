package telemetry_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"

	"github.com/lifeline-sre/lifeline/failover"
	"github.com/lifeline-sre/lifeline/internal/otlptest"
	"github.com/lifeline-sre/lifeline/telemetry"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestEnabled(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    telemetry.Settings
		env  map[string]string
		want bool
	}{
		{"nothing set", telemetry.Settings{}, nil, false},
		{"config endpoint", telemetry.Settings{Endpoint: "http://c:4318"}, nil, true},
		{"OTEL_EXPORTER_OTLP_ENDPOINT", telemetry.Settings{}, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, true},
		{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", telemetry.Settings{}, map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, true},
		{"OTEL_SDK_DISABLED wins", telemetry.Settings{Endpoint: "http://c:4318"}, map[string]string{"OTEL_SDK_DISABLED": "true"}, false},
		{"OTEL_TRACES_EXPORTER=none wins", telemetry.Settings{}, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.s.Getenv = env(tc.env)
			if got := tc.s.Enabled(); got != tc.want {
				t.Errorf("Enabled() = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestNewTracerProviderOffAndBad(t *testing.T) {
	tp, err := telemetry.NewTracerProvider(context.Background(), telemetry.Settings{Getenv: env(nil)})
	if tp != nil || err != nil {
		t.Fatalf("with nothing configured: %v, %v; want nil, nil", tp, err)
	}
	_, err = telemetry.NewTracerProvider(context.Background(), telemetry.Settings{Endpoint: "http://c:4318", Protocol: "carrier-pigeon", Getenv: env(nil)})
	if err == nil || !strings.Contains(err.Error(), "carrier-pigeon") {
		t.Errorf("unknown protocol: %v", err)
	}
	_, err = telemetry.NewTracerProvider(context.Background(), telemetry.Settings{Endpoint: "collector:4318", Getenv: env(nil)})
	if err == nil {
		t.Error("an endpoint without a scheme was accepted")
	}
}

// export makes one span with tp and flushes it.
func export(t *testing.T, tp interface {
	trace.TracerProvider
	Shutdown(context.Context) error
}) {
	t.Helper()
	_, span := tp.Tracer("test").Start(context.Background(), "one")
	span.End()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tp.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

// TestExportByEnvironment: the standard variables alone send spans, with their headers, service name and
// resource attributes.
func TestExportByEnvironment(t *testing.T) {
	rcv := otlptest.Start(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rcv.URL)
	t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20t0k")
	t.Setenv("OTEL_SERVICE_NAME", "from-env")
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=test")
	tp, err := telemetry.NewTracerProvider(context.Background(), telemetry.Settings{ServiceVersion: "v9.9.9"})
	if err != nil || tp == nil {
		t.Fatalf("NewTracerProvider: %v, %v", tp, err)
	}
	export(t, tp)
	spans := rcv.Spans()
	if len(spans) != 1 || spans[0].Name != "one" {
		t.Fatalf("spans: %+v", spans)
	}
	r := spans[0].Resource
	if r["service.name"] != "from-env" || r["deployment.environment.name"] != "test" || r["service.version"] != "v9.9.9" {
		t.Errorf("resource: %v", r)
	}
	if h := rcv.Headers(); h[0].Get("Authorization") != "Bearer t0k" {
		t.Errorf("OTEL_EXPORTER_OTLP_HEADERS not sent: %v", h[0])
	}
}

// TestExportHTTPJSONAndPath: http/json, and an endpoint with a path prefix gets /v1/traces added to it.
func TestExportHTTPJSONAndPath(t *testing.T) {
	rcv := otlptest.Start(t)
	var mu sync.Mutex
	var paths []string
	prefix := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.Path+" "+r.Header.Get("Content-Type"))
		mu.Unlock()
		req, _ := http.NewRequest(r.Method, rcv.URL+strings.TrimPrefix(r.URL.Path, "/otlp"), r.Body)
		req.Header = r.Header
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), 502)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	}))
	t.Cleanup(prefix.Close)
	tp, err := telemetry.NewTracerProvider(context.Background(), telemetry.Settings{Endpoint: prefix.URL + "/otlp", Protocol: "http/json", Getenv: env(nil)})
	if err != nil {
		t.Fatal(err)
	}
	export(t, tp)
	mu.Lock()
	defer mu.Unlock()
	if len(paths) != 1 || paths[0] != "/otlp/v1/traces application/json" || len(rcv.Spans()) != 1 {
		t.Errorf("requests %v, spans %d", paths, len(rcv.Spans()))
	}
}

type grpcReceiver struct {
	collectorpb.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans int
}

func (g *grpcReceiver) Export(_ context.Context, req *collectorpb.ExportTraceServiceRequest) (*collectorpb.ExportTraceServiceResponse, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			g.spans += len(ss.Spans)
		}
	}
	return &collectorpb.ExportTraceServiceResponse{}, nil
}

// TestExportGRPC: protocol grpc sends to an OTLP/gRPC receiver.
func TestExportGRPC(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	rcv := &grpcReceiver{}
	collectorpb.RegisterTraceServiceServer(srv, rcv)
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	tp, err := telemetry.NewTracerProvider(context.Background(), telemetry.Settings{Endpoint: "http://" + ln.Addr().String(), Protocol: "grpc", Getenv: env(nil)})
	if err != nil {
		t.Fatal(err)
	}
	export(t, tp)
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if rcv.spans != 1 {
		t.Errorf("grpc receiver got %d spans, want 1", rcv.spans)
	}
}

// TestAttemptTracerLibrary: the engine used as a library, with the tracer plugged in, makes a span per attempt
// under the caller's span and sends each region its attempt's traceparent.
func TestAttemptTracerLibrary(t *testing.T) {
	var mu sync.Mutex
	var got []string
	region := func(status int) *httptest.Server {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			got = append(got, r.Header.Get("Traceparent"))
			mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			io.WriteString(w, `{"id":"x","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1}}`)
		}))
		t.Cleanup(s.Close)
		return s
	}
	down, up := region(503), region(200)
	rcv := otlptest.Start(t)
	tp, err := telemetry.NewTracerProvider(context.Background(), telemetry.Settings{Endpoint: rcv.URL, Getenv: env(nil)})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := failover.New(failover.Config{
		Regions: []failover.Region{
			{Name: "eastus", Endpoint: down.URL, APIKey: "k", Priority: 1, Deployments: map[string]string{"gpt-4o": "gpt-4o"}},
			{Name: "westus", Endpoint: up.URL, APIKey: "k", Priority: 2, Deployments: map[string]string{"gpt-4o": "gpt-4o"}},
		},
		Policy: failover.Policy{Retry: failover.RetryPolicy{AttemptsPerRegion: 1}},
	}, failover.WithTracer(telemetry.NewAttemptTracer(tp)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, parent := tp.Tracer("app").Start(context.Background(), "handler")
	req, _ := http.NewRequestWithContext(ctx, "POST", "https://lifeline.invalid/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21",
		strings.NewReader(`{"messages":[{"role":"user","content":"hi"}]}`))
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	parent.End()
	export(t, tp)
	var attempts []otlptest.Span
	for _, s := range rcv.Spans() {
		if s.Attrs["lifeline.region"] != nil {
			attempts = append(attempts, s)
		}
	}
	if len(attempts) != 2 {
		t.Fatalf("attempt spans: %+v", attempts)
	}
	for i, a := range attempts {
		if a.ParentSpanID != parent.SpanContext().SpanID().String() {
			t.Errorf("attempt %d is not under the caller's span", i)
		}
		if want := "00-" + a.TraceID + "-" + a.SpanID + "-01"; got[i] != want {
			t.Errorf("region %d got traceparent %q, want %q", i, got[i], want)
		}
	}
	if attempts[0].Attrs["lifeline.attempt.outcome"] != "server_error" || attempts[1].Attrs["lifeline.attempt.outcome"] != "ok" {
		t.Errorf("outcomes: %v, %v", attempts[0].Attrs, attempts[1].Attrs)
	}
	if attempts[1].Attrs["gen_ai.operation.name"] != "chat" || attempts[1].Attrs["gen_ai.provider.name"] != "azure.ai.openai" {
		t.Errorf("GenAI attributes: %v", attempts[1].Attrs)
	}
}
