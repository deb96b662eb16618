package config

import (
	"net/url"
	"strings"
)

// Telemetry configures tracing (docs/telemetry.md). The zero value traces only when the standard OTEL_* variables
// ask for it (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT); the keys here win over them.
// Changes take effect on restart.
type Telemetry struct {
	// OTLP sends traces to an OpenTelemetry collector.
	OTLP OTLP `yaml:"otlp"`
	// ServiceName is the service.name of the traces. Default: OTEL_SERVICE_NAME, else "lifeline".
	ServiceName string `yaml:"service_name"`
	// SampleRatio is the share of new traces recorded (a client's sampled traceparent is always followed).
	// Default: OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG, else 1 (every trace).
	SampleRatio *float64 `yaml:"sample_ratio"`
}

// OTLP is where and how traces are exported.
type OTLP struct {
	// Endpoint is the collector's base URL, e.g. http://otel-collector:4318 (http/protobuf; /v1/traces is added)
	// or http://otel-collector:4317 (grpc). "" means OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or
	// OTEL_EXPORTER_OTLP_ENDPOINT; with neither, tracing is off.
	Endpoint string `yaml:"endpoint"`
	// Protocol is http/protobuf (default; OTEL_EXPORTER_OTLP_PROTOCOL), http/json or grpc.
	Protocol string `yaml:"protocol"`
	// Headers are sent with every export (e.g. an API key of a tracing service). Never logged.
	Headers map[string]string `yaml:"headers"`
	// Timeout bounds each export. Default 10s (OTEL_EXPORTER_OTLP_TIMEOUT).
	Timeout Duration `yaml:"timeout"`
}

func (t Telemetry) validate(e *Errors) {
	if ep := t.OTLP.Endpoint; ep != "" {
		u, err := url.Parse(ep)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			e.add("telemetry.otlp.endpoint", "must be an http:// or https:// URL such as http://otel-collector:4318, not %q", ep)
		}
	}
	switch t.OTLP.Protocol {
	case "", "http/protobuf", "http/json", "grpc":
	default:
		e.add("telemetry.otlp.protocol", "must be http/protobuf, http/json or grpc, not %q", t.OTLP.Protocol)
	}
	for k := range t.OTLP.Headers {
		if k == "" || strings.ContainsAny(k, " \t\r\n:") {
			e.add("telemetry.otlp.headers", "%q is not a header name", k)
		}
	}
	nonNegative(e, "telemetry.otlp.timeout", t.OTLP.Timeout)
	if r := t.SampleRatio; r != nil && (*r < 0 || *r > 1) {
		e.add("telemetry.sample_ratio", "must be between 0 and 1, not %g", *r)
	}
}
