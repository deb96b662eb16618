// Package telemetry traces Lifeline with OpenTelemetry: the gateway's span per client request and a span per
// upstream attempt (AttemptTracer, which plugs into the failover engine), with the GenAI semantic conventions and
// never a prompt or a completion. NewTracerProvider exports them over OTLP, configured by `telemetry` in the config
// and the standard OTEL_* environment variables (docs/telemetry.md).
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
)

// ScopeName is the instrumentation scope of Lifeline's spans.
const ScopeName = "github.com/lifeline-sre/lifeline"

// Settings say where traces go. Every field may be zero: the OTEL_* variables then decide, and without an endpoint
// there or here tracing is off.
type Settings struct {
	// Endpoint is the collector's base URL (http://collector:4318 for http/protobuf, http://collector:4317 for
	// grpc). "": OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT.
	Endpoint string
	// Protocol is "http/protobuf", "http/json" or "grpc". "": OTEL_EXPORTER_OTLP_TRACES_PROTOCOL,
	// OTEL_EXPORTER_OTLP_PROTOCOL, else http/protobuf.
	Protocol string
	// Headers go with every export. Nil: OTEL_EXPORTER_OTLP_HEADERS.
	Headers map[string]string
	// Timeout bounds one export. 0: OTEL_EXPORTER_OTLP_TIMEOUT, else 10s.
	Timeout time.Duration
	// ServiceName is service.name. "": OTEL_SERVICE_NAME, else "lifeline".
	ServiceName string
	// ServiceVersion is service.version ("": not set).
	ServiceVersion string
	// SampleRatio is the share of new traces that are recorded; a sampled parent is always followed. Nil:
	// OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG, else every trace.
	SampleRatio *float64
	// Getenv reads the environment. Nil: os.LookupEnv.
	Getenv func(string) (string, bool)
}

func (s *Settings) env(k string) string {
	get := s.Getenv
	if get == nil {
		get = os.LookupEnv
	}
	v, _ := get(k)
	return strings.TrimSpace(v)
}

// Enabled reports whether the settings and the environment ask for traces: an endpoint is set (here or in
// OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT) and neither OTEL_SDK_DISABLED=true nor OTEL_TRACES_EXPORTER=none.
func (s Settings) Enabled() bool {
	if strings.EqualFold(s.env("OTEL_SDK_DISABLED"), "true") || strings.EqualFold(s.env("OTEL_TRACES_EXPORTER"), "none") {
		return false
	}
	return s.Endpoint != "" || s.env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "" || s.env("OTEL_EXPORTER_OTLP_ENDPOINT") != ""
}

func (s Settings) protocol() string {
	for _, p := range []string{s.Protocol, s.env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"), s.env("OTEL_EXPORTER_OTLP_PROTOCOL")} {
		if p != "" {
			return p
		}
	}
	return "http/protobuf"
}

// NewTracerProvider builds a tracer provider that batches spans and exports them over OTLP, or returns nil, nil
// when tracing is off (see Enabled). It does not connect: a collector that is down costs dropped spans, never a
// request. Shut it down to flush what is left.
func NewTracerProvider(ctx context.Context, s Settings) (*sdktrace.TracerProvider, error) {
	if !s.Enabled() {
		return nil, nil
	}
	exp, err := s.exporter(ctx)
	if err != nil {
		return nil, err
	}
	name := s.ServiceName
	if name == "" {
		name = s.env("OTEL_SERVICE_NAME")
	}
	if name == "" {
		name = "lifeline"
	}
	attrs := resource.WithAttributes(semconv.ServiceName(name))
	opts := []resource.Option{resource.WithFromEnv(), resource.WithTelemetrySDK(), resource.WithHost(), attrs}
	if s.ServiceVersion != "" {
		opts = append(opts, resource.WithAttributes(semconv.ServiceVersion(s.ServiceVersion)))
	}
	res, err := resource.New(ctx, opts...)
	if err != nil && res == nil {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}
	popts := []sdktrace.TracerProviderOption{sdktrace.WithBatcher(exp), sdktrace.WithResource(res)}
	if s.SampleRatio != nil {
		popts = append(popts, sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(*s.SampleRatio))))
	}
	return sdktrace.NewTracerProvider(popts...), nil
}

func (s Settings) exporter(ctx context.Context) (sdktrace.SpanExporter, error) {
	var u *url.URL
	if s.Endpoint != "" {
		var err error
		if u, err = url.Parse(s.Endpoint); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return nil, fmt.Errorf("telemetry: endpoint %q: want http://host:port or https://host:port", s.Endpoint)
		}
	}
	switch p := s.protocol(); p {
	case "grpc":
		var opts []otlptracegrpc.Option
		if u != nil {
			opts = append(opts, otlptracegrpc.WithEndpointURL(u.Scheme+"://"+u.Host))
		}
		if len(s.Headers) > 0 {
			opts = append(opts, otlptracegrpc.WithHeaders(s.Headers))
		}
		if s.Timeout > 0 {
			opts = append(opts, otlptracegrpc.WithTimeout(s.Timeout))
		}
		return otlptracegrpc.New(ctx, opts...)
	case "http/protobuf", "http/json":
		var opts []otlptracehttp.Option
		if u != nil {
			// Like OTEL_EXPORTER_OTLP_ENDPOINT: a base URL, to which the traces path is added.
			v := *u
			v.Path = strings.TrimRight(v.Path, "/") + "/v1/traces"
			opts = append(opts, otlptracehttp.WithEndpointURL(v.String()))
		}
		if s.Protocol == "http/json" {
			opts = append(opts, otlptracehttp.WithEncoding(otlptracehttp.EncodingJSON))
		}
		if len(s.Headers) > 0 {
			opts = append(opts, otlptracehttp.WithHeaders(s.Headers))
		}
		if s.Timeout > 0 {
			opts = append(opts, otlptracehttp.WithTimeout(s.Timeout))
		}
		return otlptracehttp.New(ctx, opts...)
	default:
		return nil, errors.New("telemetry: protocol " + p + ": want http/protobuf, http/json or grpc")
	}
}

// Propagator is how trace context crosses the wire: W3C traceparent/tracestate and baggage.
func Propagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
