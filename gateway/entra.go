package gateway

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lifeline-sre/lifeline/failover"
)

// CredentialChanged logs a region's Entra credential changes: one line when its first token comes (naming the
// credential that answered), one when a refresh starts failing while a token is still valid, one when the region
// has no valid token (its attempts fail as auth_error and its traffic goes elsewhere), one when it has a token
// again. Never one per request, and never the token or a secret.
func (o gatewayObserver) CredentialChanged(e failover.CredentialEvent) {
	attrs := []slog.Attr{slog.String("region", e.Region), slog.String("identity", e.Identity)}
	if e.Source != "" {
		attrs = append(attrs, slog.String("credential", e.Source))
	}
	if !e.ExpiresOn.IsZero() {
		attrs = append(attrs, slog.String("expires_at", e.ExpiresOn.UTC().Format(time.RFC3339)))
	}
	if e.State != failover.CredentialOK {
		attrs = append(attrs, slog.String("problem", e.Problem), slog.String("cause", e.Cause), slog.String("fix", e.Fix))
	}
	level, msg := slog.LevelInfo, "entra: token obtained"
	switch {
	case e.State == failover.CredentialRefreshFailing:
		level, msg = slog.LevelWarn, "entra: token refresh failed; the current token stays in use until it expires"
	case e.State == failover.CredentialUnavailable:
		level, msg = slog.LevelError, "entra: no token; the region's requests fail over to other regions"
	case !e.First:
		msg = "entra: token obtained again"
	}
	o.g.log.LogAttrs(context.Background(), level, msg, attrs...)
}

// EntraView is a region's Entra credential in GET /admin/regions: which identity, which credential answered, the
// token's expiry, and what is wrong. Never the token.
type EntraView struct {
	Identity   string     `json:"identity"`
	Credential string     `json:"credential,omitempty"`
	State      string     `json:"state"` // ok, refresh_failing, unavailable
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	Problem    string     `json:"problem,omitempty"`
	Cause      string     `json:"cause,omitempty"`
	Fix        string     `json:"fix,omitempty"`
}

func entraView(c *failover.CredentialStatus) *EntraView {
	if c == nil {
		return nil
	}
	return &EntraView{Identity: c.Identity, Credential: c.Source, State: c.State.String(), ExpiresAt: timePtr(c.ExpiresOn),
		Problem: c.Problem, Cause: c.Cause, Fix: c.Fix}
}

// entraCollector exports each Entra region's credential at scrape time.
type entraCollector struct{ g *Gateway }

var (
	entraExpiryDesc = prometheus.NewDesc("lifeline_entra_token_expiry_timestamp_seconds",
		"When the Entra token held for the region expires (Unix seconds; 0: none). An alert on time() > this - 300 catches a refresh that keeps failing.",
		[]string{"region"}, nil)
	entraStateDesc = prometheus.NewDesc("lifeline_entra_credential_state",
		"The region's Entra credential: 0 a valid token, 1 refresh failing (a valid token still held), 2 no valid token (attempts fail as auth_error).",
		[]string{"region"}, nil)
)

func (c entraCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- entraExpiryDesc
	ch <- entraStateDesc
}

func (c entraCollector) Collect(ch chan<- prometheus.Metric) {
	if c.g.transport == nil {
		return
	}
	for _, r := range c.g.transport.Regions() {
		if r.Credential == nil {
			continue
		}
		exp := 0.0
		if !r.Credential.ExpiresOn.IsZero() {
			exp = float64(r.Credential.ExpiresOn.Unix())
		}
		ch <- prometheus.MustNewConstMetric(entraExpiryDesc, prometheus.GaugeValue, exp, r.Name)
		ch <- prometheus.MustNewConstMetric(entraStateDesc, prometheus.GaugeValue, float64(r.Credential.State), r.Name)
	}
}
