package failover

import "context"

type clientKey struct{}

// WithClient returns ctx carrying the name of the client a request comes from; the gateway
// sets its client key's name. The engine uses it to bound what one client can spend of a
// region's health: a caller that gives up on slow requests counts against the region only up to
// a share of the evidence (see BreakerPolicy.AbandonedAfter). A request without a client name
// comes from the process itself (the library's caller), which the engine trusts.
func WithClient(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, clientKey{}, name)
}

// ClientFromContext returns the client name WithClient put in ctx.
func ClientFromContext(ctx context.Context) (name string, ok bool) {
	name, ok = ctx.Value(clientKey{}).(string)
	return name, ok
}
