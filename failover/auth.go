package failover

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// EntraScope is the Entra ID scope of Azure OpenAI data-plane tokens.
const EntraScope = "https://cognitiveservices.azure.com/.default"

// tokenRefreshMargin: a cached token is refreshed when it has less than this left.
const tokenRefreshMargin = 5 * time.Minute

// credential sets a region's own credential on an outgoing request.
type credential interface {
	apply(ctx context.Context, h http.Header) error
}

// apiKey holds the header value ready to share: nothing downstream writes to it.
type apiKey struct{ v []string }

func (k apiKey) apply(_ context.Context, h http.Header) error {
	h["Api-Key"] = k.v
	return nil
}

// tokenError marks a failure to obtain an Entra token; it counts against the region.
type tokenError struct{ err error }

func (e *tokenError) Error() string { return "entra token: " + e.err.Error() }
func (e *tokenError) Unwrap() error { return e.err }

// tokenCache holds one region's Entra token and refreshes it before it expires. Only one
// refresh runs at a time; while it runs, callers keep using the old token if it is still valid.
type tokenCache struct {
	cred azcore.TokenCredential
	now  func() time.Time

	mu         sync.Mutex
	header     []string // {"Bearer <token>"}
	expires    time.Time
	refreshAt  time.Time
	refreshing chan struct{} // closed when the running refresh ends
}

func newTokenCache(cred azcore.TokenCredential, now func() time.Time) *tokenCache {
	return &tokenCache{cred: cred, now: now}
}

func (c *tokenCache) apply(ctx context.Context, h http.Header) error {
	v, err := c.get(ctx)
	if err != nil {
		return err
	}
	h["Authorization"] = v
	return nil
}

func (c *tokenCache) get(ctx context.Context) ([]string, error) {
	for {
		now := c.now()
		c.mu.Lock()
		valid := c.header != nil && now.Before(c.expires)
		if valid && now.Before(c.refreshAt) {
			v := c.header
			c.mu.Unlock()
			return v, nil
		}
		if wait := c.refreshing; wait != nil {
			v := c.header
			c.mu.Unlock()
			if valid {
				return v, nil
			}
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		done := make(chan struct{})
		c.refreshing = done
		c.mu.Unlock()
		v, err := c.refresh(ctx)
		close(done)
		if err != nil && valid {
			return c.cached()
		}
		return v, err
	}
}

func (c *tokenCache) cached() ([]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.header, nil
}

func (c *tokenCache) refresh(ctx context.Context) ([]string, error) {
	tok, err := c.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{EntraScope}})
	c.mu.Lock()
	defer c.mu.Unlock()
	c.refreshing = nil
	if err != nil {
		return nil, &tokenError{err}
	}
	c.header = []string{"Bearer " + tok.Token}
	c.expires = tok.ExpiresOn
	c.refreshAt = tok.ExpiresOn.Add(-tokenRefreshMargin)
	if !tok.RefreshOn.IsZero() && tok.RefreshOn.Before(c.refreshAt) {
		c.refreshAt = tok.RefreshOn
	}
	return c.header, nil
}

// newCredential builds a region's credential from its config.
func newCredential(r Region, now func() time.Time) (credential, error) {
	if r.APIKey != "" {
		return apiKey{v: []string{r.APIKey}}, nil
	}
	cred := r.Credential
	if cred == nil {
		var err error
		e := r.Entra
		if e.TenantID == "" && e.ClientID == "" && e.ClientSecret == "" {
			cred, err = azidentity.NewDefaultAzureCredential(nil)
		} else {
			cred, err = azidentity.NewClientSecretCredential(e.TenantID, e.ClientID, e.ClientSecret, nil)
		}
		if err != nil {
			return nil, fmt.Errorf("region %s: entra: %w", r.Name, err)
		}
	}
	return newTokenCache(cred, now), nil
}
