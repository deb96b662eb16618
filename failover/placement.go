package failover

import "context"

// Placement limits where the engine sends one request. Stored objects (SPEC.md section 10) live in the region that
// created them, so a request that names one must go there and nowhere else; the gateway's affinity layer decides
// the region and says so with WithPlacement.
type Placement struct {
	// Region, when set, is the only region the request may go to: it is retried there by the usual rules, and
	// when that region cannot serve the answer is the engine's 503, never another region. "": any region.
	Region string
	// Unnamed says that the body's `model` is not a client-visible name (a fine-tuning job names a base model):
	// the request goes to any region (or Region) with its body as it is.
	Unnamed bool
}

type placementKey struct{}

// WithPlacement returns a context that places the requests made with it.
func WithPlacement(ctx context.Context, p Placement) context.Context {
	return context.WithValue(ctx, placementKey{}, p)
}

// PlacementFrom returns the placement of ctx, if any.
func PlacementFrom(ctx context.Context) (Placement, bool) {
	p, ok := ctx.Value(placementKey{}).(Placement)
	return p, ok
}

// place applies a request's placement to its candidate regions: only the pinned region, when there is one.
func place(cands []*region, p Placement) []*region {
	if p.Region == "" {
		return cands
	}
	for _, r := range cands {
		if r.cfg.Name == p.Region {
			return []*region{r}
		}
	}
	return nil
}
