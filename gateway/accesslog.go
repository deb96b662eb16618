package gateway

import (
	"context"
	"log/slog"
	"net/http"
)

// finish records a finished exchange: metrics, then one access log line. Neither carries a key, a header value or
// a body: only the client's configured name, the configured name asked for, the region, counts and times.
func (g *Gateway) finish(r *http.Request, x *exchange) {
	elapsed := g.now().Sub(x.start)
	if x.status == 0 {
		x.status = 499 // the handler ended without answering: the client went away
	}
	if x.region == "" {
		x.region = "none"
	}
	if x.attempts == "" {
		x.attempts = "0"
	}
	s := g.metrics.series(x.name, x.region, x.status)
	s.requests.Inc()
	s.duration.Observe(elapsed.Seconds())
	if x.ttfb > 0 {
		s.ttfb.Observe(x.ttfb.Seconds())
	}
	if x.usage.prompt > 0 {
		s.prompt.Add(float64(x.usage.prompt))
	}
	if x.usage.completion > 0 {
		s.complete.Add(float64(x.usage.completion))
	}
	if x.span != nil {
		g.trace.end(x)
	}
	g.hist.request(x.start.Add(elapsed), x.region, x.status, x.streamErr != "", elapsed)
	cs := g.metrics.client(x.client, x.op, x.status)
	cs.requests.Inc()
	if x.usage.prompt > 0 {
		cs.prompt.Add(float64(x.usage.prompt))
	}
	if x.usage.completion > 0 {
		cs.complete.Add(float64(x.usage.completion))
	}
	ctx := context.Background()
	if !g.log.Enabled(ctx, slog.LevelInfo) {
		return
	}
	attrs := make([]slog.Attr, 0, 16)
	attrs = append(attrs,
		slog.String("request_id", x.id),
		slog.String("client", x.client),
		slog.String("method", r.Method),
		slog.String("api", x.api),
		slog.String("op", x.op),
		slog.String("name", x.name),
		slog.String("region", x.region),
		slog.String("attempts", x.attempts),
		slog.Int("status", x.status),
		slog.Float64("latency_ms", float64(elapsed.Microseconds())/1000),
		slog.Bool("stream", x.stream),
		slog.Int64("bytes", x.bytes),
	)
	if x.ttfb > 0 {
		attrs = append(attrs, slog.Float64("ttfb_ms", float64(x.ttfb.Microseconds())/1000))
	}
	if x.usage.prompt > 0 || x.usage.completion > 0 {
		attrs = append(attrs, slog.Int64("prompt_tokens", x.usage.prompt), slog.Int64("completion_tokens", x.usage.completion))
	}
	level := slog.LevelInfo
	if x.err != "" {
		attrs = append(attrs, slog.String("error", x.err))
		if x.status != 499 {
			level = slog.LevelWarn
		}
	}
	g.log.LogAttrs(ctx, level, "request", attrs...)
}
