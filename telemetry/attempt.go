package telemetry

import (
	"net"
	"net/http"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/lifeline-sre/lifeline/failover"
)

// AttemptTracer makes a client span for every upstream attempt of the failover engine, as a child of the span in
// the request's context, and passes its trace context to the region (traceparent). Plug it in with
// failover.WithTracer(telemetry.NewAttemptTracer(tp)). It records the region, the attempt's number, whether it
// is a probe, a hedge or a resume, its outcome and status, and never a header value or a body.
type AttemptTracer struct {
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
}

var _ failover.Tracer = (*AttemptTracer)(nil)

// NewAttemptTracer returns an AttemptTracer on tp.
func NewAttemptTracer(tp trace.TracerProvider) *AttemptTracer {
	return &AttemptTracer{tracer: tp.Tracer(ScopeName), prop: Propagator()}
}

// StartAttempt implements failover.Tracer.
func (t *AttemptTracer) StartAttempt(out *http.Request, e failover.AttemptStart) func(failover.AttemptResult) {
	op := Operation(operationOfPath(out.URL.Path))
	attrs := make([]attribute.KeyValue, 0, 12)
	attrs = append(attrs,
		semconv.GenAIOperationNameKey.String(op),
		provider(out.URL.Path),
		AttrRegion.String(e.Region),
		AttrAttempt.Int(e.Attempt),
		semconv.HTTPRequestMethodKey.String(out.Method),
	)
	if e.Name != "" {
		attrs = append(attrs, semconv.GenAIRequestModel(e.Name), AttrName.String(e.Name))
	}
	if host, port, err := net.SplitHostPort(out.URL.Host); err == nil {
		attrs = append(attrs, semconv.ServerAddress(host))
		if p, err := strconv.Atoi(port); err == nil {
			attrs = append(attrs, semconv.ServerPort(p))
		}
	} else {
		attrs = append(attrs, semconv.ServerAddress(out.URL.Host))
	}
	if e.Probe {
		attrs = append(attrs, AttrProbe.Bool(true))
	}
	if e.Hedge {
		attrs = append(attrs, AttrHedge.Bool(true))
	}
	if e.ResumeFrom != "" {
		attrs = append(attrs, AttrResumeFrom.String(e.ResumeFrom))
	}
	ctx, span := t.tracer.Start(out.Context(), SpanName(op, e.Name)+" ("+e.Region+")",
		trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	t.prop.Inject(ctx, propagation.HeaderCarrier(out.Header))
	return func(r failover.AttemptResult) {
		end := []attribute.KeyValue{AttrOutcome.String(r.Outcome.String()), AttrLatencyMs.Float64(ms(r.Latency))}
		if r.Status != 0 {
			end = append(end, semconv.HTTPResponseStatusCode(r.Status))
		}
		if r.RetryAfter > 0 {
			end = append(end, AttrRetryAfterMs.Float64(ms(r.RetryAfter)))
		}
		if r.Outcome != failover.OutcomeOK {
			end = append(end, semconv.ErrorTypeKey.String(r.Outcome.String()))
			msg := r.Outcome.String()
			if r.Err != nil {
				msg += ": " + truncate(r.Err.Error(), 256)
			}
			span.SetStatus(codes.Error, msg)
		}
		span.SetAttributes(end...)
		span.End()
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
