package failover

import "net/http"

// Tracer is told about each attempt together with the request that goes to the region, so that it can start a
// span for the attempt, pass its trace context to the region (a traceparent header) and end the span with the
// attempt's result. The telemetry package has one for OpenTelemetry. WithTracer sets it; without one the engine
// does no tracing work at all.
type Tracer interface {
	// StartAttempt is called on the attempt's goroutine just before out is sent to the region. out's context
	// derives from the caller's request (a span there is the parent), and the tracer may set headers on out.
	// The returned end, if not nil, is called exactly once when the attempt ends, with what observers get in
	// AttemptFinished (for a delivered response, when its body ends).
	StartAttempt(out *http.Request, e AttemptStart) (end func(AttemptResult))
}

// WithTracer sets the tracer of attempts; nil means none.
func WithTracer(tr Tracer) Option { return func(t *Transport) { t.tracer = tr } }
