package config

import "time"

// Responses configures what the gateway does for stored responses (SPEC.md section 10; docs/gateway.md).
type Responses struct {
	// Rebuild keeps the items (input and output) of every stored response created through the gateway, so that a
	// follow-up (previous_response_id) whose region cannot serve is rebuilt in another region from its full history.
	// It keeps conversation content in the gateway (in Redis with state.redis), so it is off unless set.
	Rebuild bool `yaml:"rebuild"`
	// RebuildTTL is how long the items of a response are kept. Default 24h.
	RebuildTTL Duration `yaml:"rebuild_ttl"`
	// RebuildMaxBytes bounds the items kept in memory for all responses together (the oldest are dropped first).
	// Default 256 MiB.
	RebuildMaxBytes int64 `yaml:"rebuild_max_bytes"`
}

// Defaults of the responses section.
const (
	DefaultRebuildTTL      = 24 * time.Hour
	DefaultRebuildMaxBytes = 256 << 20
)

func (r *Responses) applyDefaults() {
	if r.RebuildTTL == 0 {
		r.RebuildTTL = Duration(DefaultRebuildTTL)
	}
	if r.RebuildMaxBytes == 0 {
		r.RebuildMaxBytes = DefaultRebuildMaxBytes
	}
}

func (r Responses) validate(e *Errors) {
	nonNegative(e, "responses.rebuild_ttl", r.RebuildTTL)
	if r.RebuildMaxBytes < 0 {
		e.add("responses.rebuild_max_bytes", "must not be negative, not %d", r.RebuildMaxBytes)
	}
}
