package config

import (
	"maps"
	"time"

	"github.com/lifeline-sre/lifeline/failover"
)

// Failover returns the `regions` and `policy` parts of c as the engine's config. Zero values stay zero: the engine
// applies the same defaults.
func (c *Config) Failover() failover.Config {
	out := failover.Config{Regions: make([]failover.Region, len(c.Regions))}
	if len(c.Fallbacks) > 0 {
		out.Fallbacks = make(map[string][]string, len(c.Fallbacks))
		for name, fbs := range c.Fallbacks {
			out.Fallbacks[name] = append([]string(nil), fbs...)
		}
	}
	for i, r := range c.Regions {
		fr := failover.Region{
			Name:        r.Name,
			Endpoint:    r.Endpoint,
			APIKey:      r.APIKey,
			Priority:    r.Priority,
			Weight:      r.Weight,
			Deployments: maps.Clone(r.Deployments),
			Protocol:    r.Protocol,
			Prefill:     maps.Clone(r.Prefill),
		}
		if r.Entra != nil {
			fr.Entra = &failover.Entra{TenantID: r.Entra.TenantID, ClientID: r.Entra.ClientID, ClientSecret: r.Entra.ClientSecret,
				ManagedIdentityClientID: r.Entra.ManagedIdentityClientID}
		}
		out.Regions[i] = fr
	}
	p := c.Policy
	out.Policy = failover.Policy{
		Routing: p.Routing,
		Retry: failover.RetryPolicy{
			AttemptsPerRegion: p.Retry.AttemptsPerRegion,
			Backoff:           p.Retry.Backoff.D(),
			MaxBackoff:        p.Retry.MaxBackoff.D(),
		},
		Breaker: failover.BreakerPolicy{
			Failures:       p.Breaker.Failures,
			OpenFor:        p.Breaker.OpenFor.D(),
			MaxOpenFor:     p.Breaker.MaxOpenFor.D(),
			FailureRate:    p.Breaker.FailureRate,
			Window:         p.Breaker.Window.D(),
			MinRequests:    p.Breaker.MinRequests,
			SlowStart:      p.Breaker.SlowStart.D(),
			AbandonedAfter: p.Breaker.AbandonedAfter.D(),
			ProbeInterval:  p.Breaker.ProbeInterval.D(),
		},
		Timeouts: failover.Timeouts{
			Connect:         p.Timeouts.Connect.D(),
			StreamFirstByte: p.Timeouts.StreamFirstByte.D(),
			Response:        p.Timeouts.Response.D(),
			StreamIdle:      p.Timeouts.StreamIdle.D(),
		},
		Streams: failover.StreamsPolicy{
			Resume:        p.Streams.Resume,
			ResumeTimeout: p.Streams.ResumeTimeout.D(),
		},
		Hedge: failover.HedgePolicy{
			Delay:    p.Hedge.delay(),
			MinDelay: p.Hedge.MinDelay.D(),
			MaxDelay: p.Hedge.MaxDelay.D(),
			Budget:   p.Hedge.Budget,
		},
		MaxBodyBytes:   p.MaxBodyBytes,
		StreamUpstream: p.StreamUpstream,
	}
	return out
}

// delay is Delay as the engine takes it: 0 for auto, negative for off.
func (h Hedge) delay() time.Duration {
	switch h.Delay {
	case "", HedgeAuto:
		return 0
	case HedgeOff:
		return -1
	}
	d, _ := time.ParseDuration(h.Delay)
	return d
}
