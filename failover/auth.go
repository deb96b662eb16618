package failover

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/lifeline-sre/lifeline/internal/entra"
)

// EntraScope is the Entra ID scope of Azure OpenAI data-plane tokens.
const EntraScope = entra.Scope

// Token timing. A token is refreshed in the background when a quarter of its life is left (at most
// tokenRefreshMargin before it expires), so a request never waits on the authority while a token is valid.
const (
	tokenRefreshMargin = 5 * time.Minute
	// tokenExpiryMargin: a token is not used in its last 30s (or last eighth of its life, if shorter).
	tokenExpiryMargin = 30 * time.Second
	// tokenFetchTimeout bounds one background fetch (azidentity retries inside it).
	tokenFetchTimeout = 30 * time.Second
	// tokenRetryMin and tokenRetryMax bound the wait between failed fetches.
	tokenRetryMin = time.Second
	tokenRetryMax = 30 * time.Second
)

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

// tokenError is a region's failure to have an Entra token; it counts against the region (auth_error). Its
// message is the diagnosed cause: no secret, no token, no multi-line SDK dump.
type tokenError struct {
	identity string
	diag     entra.Diagnosis
}

func (e *tokenError) Error() string {
	return "entra: no token for " + e.identity + ": " + e.diag.Cause
}

// CredentialState is where a region's Entra credential stands.
type CredentialState int

const (
	// CredentialOK: a valid token is held.
	CredentialOK CredentialState = iota
	// CredentialRefreshFailing: a valid token is held but getting its successor failed; requests are unaffected
	// until the held token expires.
	CredentialRefreshFailing
	// CredentialUnavailable: no valid token; the region's attempts fail as auth_error.
	CredentialUnavailable
)

func (s CredentialState) String() string {
	switch s {
	case CredentialOK:
		return "ok"
	case CredentialRefreshFailing:
		return "refresh_failing"
	}
	return "unavailable"
}

// CredentialEvent reports a change of a region's Entra credential: its first token, a failing streak beginning
// (refresh failing with a token held, or no token at all), and its end. Refreshes that simply work are not
// reported. It never holds a token or a secret.
type CredentialEvent struct {
	Region   string
	Identity string // e.g. "service principal <client id> in tenant <tenant id>", "DefaultAzureCredential"
	Source   string // the credential that answered, when known: "ManagedIdentityCredential (IMDS)", ...
	State    CredentialState
	// ExpiresOn is when the token held expires (zero: none).
	ExpiresOn time.Time
	// Problem, Cause and Fix explain a failure (empty when State is CredentialOK).
	Problem, Cause, Fix string
	// From is the state before; First marks the first result after the region was configured.
	From  CredentialState
	First bool
	At    time.Time
}

// CredentialObserver is an Observer that also hears about Entra credentials. The engine calls it from its
// background token refresh, never on a request's path.
type CredentialObserver interface {
	CredentialChanged(CredentialEvent)
}

// CredentialStatus is a region's Entra credential in Regions(); nil for API-key regions.
type CredentialStatus struct {
	Identity  string
	Source    string
	State     CredentialState
	ExpiresOn time.Time
	Problem   string
	Cause     string
	Fix       string
}

// tokenCache holds one region's Entra token. It fetches the first token when built, refreshes it in the
// background before it expires (on a timer, so an idle backup region keeps a valid token too), and never makes a
// request wait while a valid token is held. Without one, a request waits for a fetch at most `wait`, and after a
// failure fails at once until the next retry (backoff from 1s to 30s), so a region whose identity is broken costs
// its callers nothing but a quick auth_error.
type tokenCache struct {
	cred     azcore.TokenCredential
	region   string
	identity string
	spec     entra.Spec
	source   func() string
	now      func() time.Time
	notify   func(CredentialEvent)

	// fresh is the token while it needs no renewal: the hot path reads it without the lock.
	fresh atomic.Pointer[freshToken]

	mu        sync.Mutex
	wait      time.Duration
	header    []string  // {"Bearer <token>"}
	expires   time.Time // when the token stops being used (a little before tokExp)
	tokExp    time.Time // when the token expires
	refreshAt time.Time
	fetching  chan struct{} // non-nil while a fetch runs; closed when it ends
	lastErr   *tokenError
	retryAt   time.Time
	backoff   time.Duration
	state     CredentialState
	reported  bool   // the current state was reported
	problem   string // the reported failing streak's problem
	timer     *time.Timer
	closed    bool
}

func (c *tokenCache) apply(ctx context.Context, h http.Header) error {
	v, err := c.get(ctx)
	if err != nil {
		return err
	}
	h["Authorization"] = v
	return nil
}

// start begins fetching the first token in the background.
func (c *tokenCache) start() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fetching == nil && !c.closed {
		c.fetch()
	}
}

// close stops the background refresh (the region left the config, or the transport closed).
func (c *tokenCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if c.timer != nil {
		c.timer.Stop()
	}
}

func (c *tokenCache) setWait(d time.Duration) {
	c.mu.Lock()
	c.wait = d
	c.mu.Unlock()
}

// freshToken is a token and when it is due for renewal.
type freshToken struct {
	header    []string
	refreshAt time.Time
}

func (c *tokenCache) get(ctx context.Context) ([]string, error) {
	now := c.now()
	if f := c.fresh.Load(); f != nil && now.Before(f.refreshAt) {
		return f.header, nil
	}
	c.mu.Lock()
	if c.header != nil && now.Before(c.expires) {
		if !now.Before(c.refreshAt) && c.fetching == nil && !now.Before(c.retryAt) && !c.closed {
			c.fetch()
		}
		v := c.header
		c.mu.Unlock()
		return v, nil
	}
	// No valid token. In a failing streak, fail at once: the retry runs in the background.
	if c.lastErr != nil && (c.fetching != nil || now.Before(c.retryAt)) {
		err := c.lastErr
		c.mu.Unlock()
		return nil, err
	}
	if c.fetching == nil {
		c.fetch()
	}
	done, wait := c.fetching, c.wait
	c.mu.Unlock()

	tm := time.NewTimer(wait)
	defer tm.Stop()
	select {
	case <-done:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-tm.C:
		return nil, c.slow(done, wait)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.header != nil && c.now().Before(c.expires) {
		return c.header, nil
	}
	if c.lastErr != nil {
		return nil, c.lastErr
	}
	return nil, &tokenError{identity: c.identity, diag: entra.Diagnosis{Problem: entra.ProblemAuthentication, Cause: "the token obtained has already expired"}}
}

// slow records that a fetch did not end within a request's wait: until it ends, requests fail at once with this
// error instead of waiting too, and the streak is reported once.
func (c *tokenCache) slow(done chan struct{}, wait time.Duration) error {
	err := &tokenError{identity: c.identity, diag: entra.Diagnosis{Problem: entra.ProblemUnreachable,
		Cause: fmt.Sprintf("no token within %s: the authority or the managed-identity endpoint is slow or not answering", wait),
		Fix:   "check that this host reaches the authority (login.microsoftonline.com, or AZURE_AUTHORITY_HOST) or its managed-identity endpoint; Lifeline keeps trying in the background"}}
	c.mu.Lock()
	if c.fetching != done || c.lastErr != nil {
		c.mu.Unlock()
		return err
	}
	c.lastErr = err
	ev, report := c.transition(CredentialUnavailable)
	c.mu.Unlock()
	if report && c.notify != nil {
		c.notify(ev)
	}
	return err
}

// fetch starts a fetch in the background; c.mu is held.
func (c *tokenCache) fetch() {
	done := make(chan struct{})
	c.fetching = done
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), tokenFetchTimeout)
		tok, err := c.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{EntraScope}})
		cancel()
		c.mu.Lock()
		ev, report := c.settle(tok, err)
		c.fetching = nil
		close(done)
		c.mu.Unlock()
		if report && c.notify != nil {
			c.notify(ev)
		}
	}()
}

// settle records a fetch's result and schedules the next fetch; c.mu is held. It returns the event to report,
// if the state changed (or this is the first result).
func (c *tokenCache) settle(tok azcore.AccessToken, err error) (CredentialEvent, bool) {
	now := c.now()
	var st CredentialState
	var next time.Time
	if life := tok.ExpiresOn.Sub(now); err == nil && tok.Token != "" && life > 0 {
		c.header = []string{"Bearer " + tok.Token}
		// Stop using a token a little before it expires: the expiry is reckoned from when the answer arrived, the
		// token's own exp is in whole seconds, and a request must not reach the region with a token that just
		// ran out.
		c.expires, c.tokExp = tok.ExpiresOn.Add(-min(tokenExpiryMargin, life/8)), tok.ExpiresOn
		c.refreshAt = tok.ExpiresOn.Add(-min(tokenRefreshMargin, life/4))
		if !tok.RefreshOn.IsZero() && tok.RefreshOn.Before(c.refreshAt) && tok.RefreshOn.After(now) {
			c.refreshAt = tok.RefreshOn
		}
		c.lastErr, c.backoff, c.retryAt = nil, 0, time.Time{}
		c.fresh.Store(&freshToken{header: c.header, refreshAt: c.refreshAt})
		st, next = CredentialOK, c.refreshAt
	} else {
		if err == nil {
			err = errors.New("the credential returned an empty or expired token")
		}
		c.lastErr = &tokenError{identity: c.identity, diag: entra.Diagnose(c.spec, err)}
		c.backoff = min(max(2*c.backoff, tokenRetryMin), tokenRetryMax)
		c.retryAt = now.Add(c.backoff)
		st, next = CredentialUnavailable, c.retryAt
		if c.header != nil && now.Before(c.expires) {
			st = CredentialRefreshFailing
			if c.expires.Before(next) {
				next = c.expires // be there when the held token runs out
			}
		}
	}
	c.schedule(next.Sub(now))
	return c.transition(st)
}

// transition moves to state st and returns the event to report, if it is a change (or the first result), or if
// a failing streak's problem changed (a slow endpoint that turns out to refuse the secret); c.mu is held.
func (c *tokenCache) transition(st CredentialState) (CredentialEvent, bool) {
	prev, first := c.state, !c.reported
	problem := ""
	if st != CredentialOK && c.lastErr != nil {
		problem = c.lastErr.diag.Problem
	}
	prevProblem := c.problem
	c.state, c.reported, c.problem = st, true, problem
	if !first && prev == st && prevProblem == problem {
		return CredentialEvent{}, false
	}
	ev := c.eventLocked(c.now())
	ev.From, ev.First = prev, first
	return ev, true
}

// schedule arms the timer for the next background fetch; c.mu is held.
func (c *tokenCache) schedule(d time.Duration) {
	if c.closed {
		return
	}
	if c.timer != nil {
		c.timer.Stop()
	}
	c.timer = time.AfterFunc(max(d, 0), func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if !c.closed && c.fetching == nil {
			c.fetch()
		}
	})
}

func (c *tokenCache) eventLocked(now time.Time) CredentialEvent {
	ev := CredentialEvent{Region: c.region, Identity: c.identity, State: c.state, At: now}
	if c.source != nil {
		ev.Source = c.source()
	}
	if c.header != nil && now.Before(c.expires) {
		ev.ExpiresOn = c.tokExp
	}
	if c.state != CredentialOK && c.lastErr != nil {
		ev.Problem, ev.Cause, ev.Fix = c.lastErr.diag.Problem, c.lastErr.diag.Cause, c.lastErr.diag.Fix
	}
	return ev
}

// status is the credential's part of RegionStatus.
func (c *tokenCache) status() *CredentialStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	ev := c.eventLocked(c.now())
	st := &CredentialStatus{Identity: ev.Identity, Source: ev.Source, State: ev.State, ExpiresOn: ev.ExpiresOn,
		Problem: ev.Problem, Cause: ev.Cause, Fix: ev.Fix}
	if !c.reported {
		st.State = CredentialUnavailable
		st.Cause = "the first token is being fetched"
	}
	return st
}

// newCredential builds a region's credential from its config. An Entra credential starts fetching its first
// token at once.
func (t *Transport) newCredential(r Region, wait time.Duration) (credential, error) {
	if r.APIKey != "" {
		return apiKey{v: []string{r.APIKey}}, nil
	}
	c := &tokenCache{region: r.Name, now: t.clock.Now, wait: wait, notify: t.credentialEvent}
	if r.Credential != nil {
		c.cred, c.identity = r.Credential, "the credential given in failover.Region.Credential"
		if r.Entra != nil {
			c.spec = r.Entra.spec()
		}
	} else {
		spec := entra.Spec{}
		if r.Entra != nil {
			spec = r.Entra.spec()
		}
		cred, err := entra.New(spec, entra.Options{})
		if err != nil {
			return nil, fmt.Errorf("region %s: entra: %s", r.Name, entra.Redact(err.Error(), spec))
		}
		c.cred, c.spec, c.identity, c.source = cred, spec, spec.Identity(), cred.Source
	}
	c.start()
	return c, nil
}

func (e *Entra) spec() entra.Spec {
	return entra.Spec{TenantID: e.TenantID, ClientID: e.ClientID, ClientSecret: e.ClientSecret,
		ManagedIdentityClientID: e.ManagedIdentityClientID}
}

// credentialEvent hands an event to the observer if it wants credential events.
func (t *Transport) credentialEvent(ev CredentialEvent) {
	if o, ok := t.obs.(CredentialObserver); ok {
		o.CredentialChanged(ev)
	}
}

// CredentialChanged passes the event to the observers that implement CredentialObserver.
func (os Observers) CredentialChanged(e CredentialEvent) {
	for _, o := range os {
		if co, ok := o.(CredentialObserver); ok {
			co.CredentialChanged(e)
		}
	}
}
