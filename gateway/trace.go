package gateway

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/lifeline-sre/lifeline/config"
	"github.com/lifeline-sre/lifeline/failover"
	"github.com/lifeline-sre/lifeline/internal/version"
	"github.com/lifeline-sre/lifeline/telemetry"
)

// tracing is the gateway's side of OpenTelemetry: a server span per client request, continued from the client's
// traceparent. The engine's attempts get their spans from telemetry.AttemptTracer.
type tracing struct {
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
	owned  *sdktrace.TracerProvider // built from the config: flushed and shut down with the gateway
	tp     trace.TracerProvider
}

// newTracing returns nil when there is nothing to trace to: no Options.TracerProvider, and the config and the
// OTEL_* variables name no collector.
func newTracing(cfg *config.Config, opts Options) (*tracing, error) {
	tp := opts.TracerProvider
	var owned *sdktrace.TracerProvider
	if tp == nil {
		t := cfg.Telemetry
		var err error
		owned, err = telemetry.NewTracerProvider(context.Background(), telemetry.Settings{
			Endpoint: t.OTLP.Endpoint, Protocol: t.OTLP.Protocol, Headers: t.OTLP.Headers, Timeout: t.OTLP.Timeout.D(),
			ServiceName: t.ServiceName, ServiceVersion: version.Get().Version, SampleRatio: t.SampleRatio,
		})
		if err != nil || owned == nil {
			return nil, err
		}
		tp = owned
	}
	return &tracing{tracer: tp.Tracer(telemetry.ScopeName), prop: telemetry.Propagator(), owned: owned, tp: tp}, nil
}

func (t *tracing) failoverOption() failover.Option {
	return failover.WithTracer(telemetry.NewAttemptTracer(t.tp))
}

// shutdown flushes the spans still buffered, for at most a few seconds.
func (t *tracing) shutdown() {
	if t == nil || t.owned == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	t.owned.Shutdown(ctx)
}

// start begins the server span of a client request, as a child of the client's traceparent if it sent one.
func (t *tracing) start(r *http.Request, x *exchange) *http.Request {
	ctx := t.prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	ctx, x.span = t.tracer.Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(
		semconv.HTTPRequestMethodKey.String(r.Method),
		semconv.URLPath(r.URL.Path),
		telemetry.AttrRequestID.String(x.id),
	))
	return r.WithContext(ctx)
}

// end finishes the span of x with what the request became: the GenAI operation, model and token usage, the
// region that answered and how. No prompt, completion, header value or key goes on it.
func (t *tracing) end(x *exchange) {
	span := x.span
	op := telemetry.Operation(x.op)
	span.SetName(telemetry.SpanName(op, x.name))
	attrs := make([]attribute.KeyValue, 0, 16)
	attrs = append(attrs,
		semconv.GenAIOperationNameKey.String(op),
		semconv.HTTPResponseStatusCode(x.status),
		telemetry.AttrRegion.String(x.region),
		telemetry.AttrStream.Bool(x.stream),
	)
	if x.api != "" && x.api != "models" {
		p := semconv.GenAIProviderNameAzureAIOpenAI
		if x.api == "openai-v1" {
			p = semconv.GenAIProviderNameOpenAI
		}
		attrs = append(attrs, p)
	}
	if x.name != "" {
		attrs = append(attrs, semconv.GenAIRequestModel(x.name))
	}
	if x.client != "" {
		attrs = append(attrs, telemetry.AttrClient.String(x.client))
	}
	if n, err := strconv.Atoi(x.attempts); err == nil {
		attrs = append(attrs, telemetry.AttrAttempts.Int(n))
	}
	if x.model != "" {
		attrs = append(attrs, semconv.GenAIResponseModel(x.model))
	}
	if x.usage.prompt > 0 || x.usage.completion > 0 {
		attrs = append(attrs, semconv.GenAIUsageInputTokens(int(x.usage.prompt)), semconv.GenAIUsageOutputTokens(int(x.usage.completion)))
	}
	if x.ttfb > 0 {
		attrs = append(attrs, telemetry.AttrFirstByteMs.Float64(float64(x.ttfb.Microseconds())/1000))
	}
	if x.hedged {
		attrs = append(attrs, telemetry.AttrHedged.Bool(true))
	}
	switch {
	case x.streamErr != "":
		attrs = append(attrs, semconv.ErrorTypeKey.String(x.streamErr), telemetry.AttrStreamFailure.String(x.streamErr))
		span.SetStatus(codes.Error, "the stream broke after it started: "+x.streamErr)
	case x.status >= 500:
		attrs = append(attrs, semconv.ErrorTypeKey.String(strconv.Itoa(x.status)))
		span.SetStatus(codes.Error, "HTTP "+strconv.Itoa(x.status))
	}
	span.SetAttributes(attrs...)
	span.End()
}
