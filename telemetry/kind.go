package telemetry

import (
	"go.opentelemetry.io/otel/attribute"

	"github.com/lifeline-sre/lifeline/failover"
)

// attemptKind says whether an attempt is a hedge or a resume. The engine tells it in AttemptStart.
func attemptKind(e failover.AttemptStart) []attribute.KeyValue {
	return nil
}
