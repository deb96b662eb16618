package telemetry

import (
	"strings"

	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
)

// Lifeline's own span attributes, next to the semantic conventions' ones.
const (
	AttrRegion        = attribute.Key("lifeline.region")              // the region of an attempt, or the one that answered
	AttrName          = attribute.Key("lifeline.name")                // the client-visible name asked for
	AttrAttempt       = attribute.Key("lifeline.attempt")             // 1-based number of the attempt within its request
	AttrAttempts      = attribute.Key("lifeline.attempts")            // attempts a request took
	AttrOutcome       = attribute.Key("lifeline.attempt.outcome")     // ok, timeout, server_error, throttled, stream_error...
	AttrProbe         = attribute.Key("lifeline.attempt.probe")       // the attempt decides whether an open region comes back
	AttrHedge         = attribute.Key("lifeline.attempt.hedge")       // the attempt is a hedge: the request waited for another region
	AttrResumeFrom    = attribute.Key("lifeline.attempt.resume_from") // the attempt resumes a stream that this region broke
	AttrLatencyMs     = attribute.Key("lifeline.attempt.headers_ms")  // until the region's response headers (or the failure)
	AttrRetryAfterMs  = attribute.Key("lifeline.retry_after_ms")      // the region's Retry-After hint
	AttrRequestID     = attribute.Key("lifeline.request_id")
	AttrClient        = attribute.Key("lifeline.client") // the configured name of the client key (never the key)
	AttrStream        = attribute.Key("lifeline.stream")
	AttrHedged        = attribute.Key("lifeline.hedged") // the answer came from a hedge
	AttrFirstByteMs   = attribute.Key("lifeline.time_to_first_byte_ms")
	AttrStreamFailure = attribute.Key("lifeline.stream_error") // how a stream that had started ended badly
)

// Operation is gen_ai.operation.name for a Lifeline operation ("chat/completions", "embeddings", ...): the
// semantic conventions' value where one exists, else the operation itself.
func Operation(op string) string {
	switch op {
	case "chat/completions", "responses":
		return semconv.GenAIOperationNameChat.Value.AsString()
	case "completions":
		return semconv.GenAIOperationNameTextCompletion.Value.AsString()
	case "embeddings":
		return semconv.GenAIOperationNameEmbeddings.Value.AsString()
	}
	return op
}

// operationOfPath reads the operation from the path of a request to a region: what follows the deployment
// (/openai/deployments/{d}/OP) or the version prefix (/openai/v1/OP, /v1/OP).
func operationOfPath(path string) string {
	if i := strings.Index(path, "/openai/deployments/"); i >= 0 {
		rest := path[i+len("/openai/deployments/"):]
		if _, op, ok := strings.Cut(rest, "/"); ok {
			return op
		}
		return ""
	}
	for _, p := range [...]string{"/openai/v1/", "/v1/"} {
		if i := strings.Index(path, p); i >= 0 {
			return path[i+len(p):]
		}
	}
	return ""
}

// SpanName is the span name the GenAI conventions ask for: "{operation} {model}", or the operation alone.
func SpanName(operation, model string) string {
	if operation == "" {
		operation = "request"
	}
	if model == "" {
		return operation
	}
	return operation + " " + model
}

// provider is gen_ai.provider.name: Azure OpenAI for its path shapes, OpenAI for the rest.
func provider(path string) attribute.KeyValue {
	if strings.Contains(path, "/openai/") {
		return semconv.GenAIProviderNameAzureAIOpenAI
	}
	return semconv.GenAIProviderNameOpenAI
}
