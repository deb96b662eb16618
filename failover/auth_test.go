package failover

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// fakeCredential hands out numbered tokens that live ttl on its clock. It can be made to fail, or to hold every
// call until released (an authority that accepts and does not answer).
type fakeCredential struct {
	now    func() time.Time
	ttl    time.Duration
	calls  atomic.Int64
	fail   atomic.Bool
	scopes atomic.Value

	mu   sync.Mutex
	gate chan struct{}
}

func (f *fakeCredential) GetToken(ctx context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	n := f.calls.Add(1)
	f.scopes.Store(strings.Join(o.Scopes, ","))
	f.mu.Lock()
	gate := f.gate
	f.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return azcore.AccessToken{}, ctx.Err()
		}
	}
	if f.fail.Load() {
		return azcore.AccessToken{}, errors.New("ClientSecretCredential: AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value")
	}
	return azcore.AccessToken{Token: fmt.Sprintf("tok-%d", n), ExpiresOn: f.now().Add(f.ttl)}, nil
}

func (f *fakeCredential) hold() {
	f.mu.Lock()
	f.gate = make(chan struct{})
	f.mu.Unlock()
}

func (f *fakeCredential) release() {
	f.mu.Lock()
	if f.gate != nil {
		close(f.gate)
		f.gate = nil
	}
	f.mu.Unlock()
}

// credEvents records credential events.
type credEvents struct {
	NopObserver
	mu  sync.Mutex
	evs []CredentialEvent
}

func (c *credEvents) CredentialChanged(e CredentialEvent) {
	c.mu.Lock()
	c.evs = append(c.evs, e)
	c.mu.Unlock()
}

func (c *credEvents) states() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, e := range c.evs {
		out = append(out, e.State.String())
	}
	return out
}

func (c *credEvents) waitFor(t *testing.T, n int) []CredentialEvent {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.mu.Lock()
		got := append([]CredentialEvent(nil), c.evs...)
		c.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d credential events, want %d: %v", len(got), n, c.states())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// entraTransport is one region with a fake credential in front of a backend that records Authorization.
func entraTransport(t *testing.T, cred *fakeCredential, clock Clock, obs Observer, connect time.Duration) (*Transport, *backend) {
	t.Helper()
	be := newBackend(t, okJSON)
	r := testRegion("eastus", be.URL, 1, "gpt-4o", "gpt-4o")
	r.APIKey, r.Credential = "", cred
	p := fastPolicy()
	p.Timeouts.Connect = connect
	p.Timeouts.Response = max(p.Timeouts.Response, 2*connect) // the attempt's own deadline also bounds the wait
	// (a non-streaming chat request goes upstream as a stream: its deadline is the first-byte one)
	p.Timeouts.StreamFirstByte = max(p.Timeouts.StreamFirstByte, 2*connect)
	p.Breaker.Failures, p.Breaker.FailureRate = 1000, 2 // the tests count what reaches the credential
	tr := mustNew(t, Config{Regions: []Region{r}, Policy: p}, WithClock(clock), WithObserver(obs))
	t.Cleanup(tr.Close)
	return tr, be
}

func authOf(t *testing.T, be *backend) string {
	t.Helper()
	req, _ := be.lastRequest()
	return req.Header.Get("Authorization")
}

// TestEntraTokenFetchedOnceAndShared: the first token is fetched when the transport is built; concurrent
// requests share it, with the right scope, and the caller's own credential never reaches the region.
func TestEntraTokenFetchedOnceAndShared(t *testing.T) {
	clock := newManualClock()
	cred := &fakeCredential{now: clock.Now, ttl: time.Hour}
	obs := &credEvents{}
	tr, be := entraTransport(t, cred, clock, obs, time.Second)
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			readAll(t, chat(t, tr, "gpt-4o"))
		}()
	}
	wg.Wait()
	if n := cred.calls.Load(); n != 1 {
		t.Errorf("GetToken called %d times for 20 requests, want 1", n)
	}
	if s := cred.scopes.Load(); s != EntraScope {
		t.Errorf("scope %v", s)
	}
	req, _ := be.lastRequest()
	if req.Header.Get("Authorization") != "Bearer tok-1" || req.Header.Get("Api-Key") != "" {
		t.Errorf("auth %q api-key %q", req.Header.Get("Authorization"), req.Header.Get("Api-Key"))
	}
	evs := obs.waitFor(t, 1)
	if e := evs[0]; e.State != CredentialOK || !e.First || e.Region != "eastus" || !e.ExpiresOn.Equal(clock.Now().Add(time.Hour)) {
		t.Errorf("first event %+v", e)
	}
	st := tr.Regions()[0].Credential
	if st == nil || st.State != CredentialOK || st.Identity == "" {
		t.Errorf("status %+v", st)
	}
}

// TestEntraRefreshNeverMakesARequestWait: within the refresh margin the token is renewed in the background;
// while the authority holds the refresh, requests go on with the valid token, and take the new one once it
// comes. A refresh that fails leaves the valid token in use and is reported once.
func TestEntraRefreshNeverMakesARequestWait(t *testing.T) {
	clock := newManualClock()
	cred := &fakeCredential{now: clock.Now, ttl: time.Hour}
	obs := &credEvents{}
	tr, be := entraTransport(t, cred, clock, obs, time.Second)
	readAll(t, chat(t, tr, "gpt-4o"))

	cred.hold() // the authority accepts and never answers
	clock.Add(56 * time.Minute)
	// A request that waited on the held authority would end in auth_error after timeouts.connect: every one
	// is answered by the region, with the held token.
	for range 5 {
		resp := chat(t, tr, "gpt-4o")
		readAll(t, resp)
		if resp.StatusCode != 200 {
			t.Errorf("status %d while a valid token was held", resp.StatusCode)
		}
		if got := authOf(t, be); got != "Bearer tok-1" {
			t.Errorf("auth %q, want the held token", got)
		}
	}
	if n := cred.calls.Load(); n != 2 {
		t.Errorf("GetToken called %d times, want 2 (the first token and one refresh)", n)
	}
	cred.release()
	deadline := time.Now().Add(5 * time.Second)
	for authOf(t, be) != "Bearer tok-2" {
		if time.Now().After(deadline) {
			t.Fatalf("the refreshed token never came: %q", authOf(t, be))
		}
		time.Sleep(10 * time.Millisecond)
		readAll(t, chat(t, tr, "gpt-4o"))
	}

	// A refresh that fails: the valid token stays in use; one event, not one per request.
	cred.fail.Store(true)
	clock.Add(56 * time.Minute)
	for range 10 {
		if resp := chat(t, tr, "gpt-4o"); resp.StatusCode != 200 {
			t.Fatalf("status %d with a valid token held", resp.StatusCode)
		} else {
			readAll(t, resp)
		}
	}
	evs := obs.waitFor(t, 2)
	time.Sleep(50 * time.Millisecond)
	if got := obs.states(); len(got) != 2 || got[1] != "refresh_failing" {
		t.Fatalf("events %v, want [ok refresh_failing]", got)
	}
	if e := evs[1]; e.Problem != "bad_secret" || !strings.Contains(e.Cause, "AADSTS7000215") || e.ExpiresOn.IsZero() || e.Fix == "" {
		t.Errorf("refresh failing event %+v", e)
	}

	// The token expires with the authority still refusing: the region's attempts fail as auth_error, reported
	// once however many requests come.
	clock.Add(5 * time.Minute)
	for range 10 {
		resp := chat(t, tr, "gpt-4o")
		body := readAll(t, resp)
		if resp.StatusCode != 503 || !strings.Contains(body, "auth_error") {
			t.Fatalf("status %d body %s", resp.StatusCode, body)
		}
	}
	obs.waitFor(t, 3)
	time.Sleep(50 * time.Millisecond)
	if got := obs.states(); len(got) != 3 || got[2] != "unavailable" {
		t.Errorf("events %v, want [ok refresh_failing unavailable]", got)
	}
}

// TestEntraNoTokenFailsFast: without a valid token a request waits for a fetch at most timeouts.connect; while
// the fetch hangs, the requests after it fail at once, and the streak is reported once. When the authority
// answers again, the region gets its token back without a request asking.
func TestEntraNoTokenFailsFast(t *testing.T) {
	const wait = 3 * time.Second
	cred := &fakeCredential{now: time.Now, ttl: time.Hour}
	cred.hold()
	obs := &credEvents{}
	tr, _ := entraTransport(t, cred, systemClock{}, obs, wait)
	start := time.Now()
	resp := chat(t, tr, "gpt-4o")
	body := readAll(t, resp)
	if resp.StatusCode != 503 || !strings.Contains(body, "auth_error") {
		t.Fatalf("status %d body %s", resp.StatusCode, body)
	}
	if d := time.Since(start); d < wait {
		t.Errorf("the first request gave up after %s, before timeouts.connect (%s)", d, wait)
	}
	// The fetch still hangs: a request that waited for it would take the whole wait again.
	for range 10 {
		start := time.Now()
		readAll(t, chat(t, tr, "gpt-4o"))
		if d := time.Since(start); d >= wait*3/4 {
			t.Errorf("a request took %s in a failing streak: it waited for the hanging fetch", d)
		}
	}
	evs := obs.waitFor(t, 1)
	if e := evs[0]; e.State != CredentialUnavailable || e.Problem != "unreachable" || !strings.Contains(e.Cause, "no token within 3s") {
		t.Errorf("event %+v", e)
	}
	// The fetch ends with a refusal: a new problem in the same streak is reported, once.
	cred.fail.Store(true)
	cred.release()
	evs = obs.waitFor(t, 2)
	if e := evs[1]; e.State != CredentialUnavailable || e.Problem != "bad_secret" {
		t.Errorf("event %+v", e)
	}
	for range 5 {
		readAll(t, chat(t, tr, "gpt-4o"))
	}
	cred.fail.Store(false)
	evs = obs.waitFor(t, 3) // after the first backoff (1s), without a request
	if e := evs[2]; e.State != CredentialOK || e.From != CredentialUnavailable || e.First || len(evs) != 3 {
		t.Errorf("recovery event %+v of %v", e, obs.states())
	}
	if resp := chat(t, tr, "gpt-4o"); resp.StatusCode != 200 {
		t.Errorf("after recovery: %d", resp.StatusCode)
	}
}

// TestEntraFailedFetchRetriedInBackground: a failed fetch is retried on a timer (1s, 2s, ... up to 30s), so
// a region with no traffic (a backup) has its token back as soon as the authority does.
func TestEntraFailedFetchRetriedInBackground(t *testing.T) {
	cred := &fakeCredential{now: time.Now, ttl: time.Hour}
	cred.fail.Store(true)
	obs := &credEvents{}
	tr, _ := entraTransport(t, cred, systemClock{}, obs, 200*time.Millisecond)
	obs.waitFor(t, 1)
	cred.fail.Store(false)
	evs := obs.waitFor(t, 2) // within the first backoff (1s), without any request
	if evs[1].State != CredentialOK {
		t.Errorf("events %v", obs.states())
	}
	if st := tr.Regions()[0].Credential; st.State != CredentialOK || st.Cause != "" {
		t.Errorf("status %+v", st)
	}
}

// TestEntraCredentialStopsWithTheRegion: a region removed by Reconfigure, and every region on Close, stops
// refreshing; a region whose credential is unchanged keeps its token.
func TestEntraCredentialStopsWithTheRegion(t *testing.T) {
	cred := &fakeCredential{now: time.Now, ttl: 40 * time.Millisecond} // refreshed every 30ms
	obs := &credEvents{}
	be := newBackend(t, okJSON)
	r := testRegion("eastus", be.URL, 1, "gpt-4o", "gpt-4o")
	r.APIKey, r.Credential = "", cred
	keyRegion := testRegion("westus", be.URL, 2, "gpt-4o", "gpt-4o")
	tr := mustNew(t, Config{Regions: []Region{r, keyRegion}, Policy: fastPolicy()}, WithObserver(obs))
	waitCalls := func(atLeast int64) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for cred.calls.Load() < atLeast {
			if time.Now().After(deadline) {
				t.Fatalf("%d fetches of 40ms tokens, want %d: no background refresh", cred.calls.Load(), atLeast)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitCalls(3)
	// Same credential, new policy: kept.
	p := fastPolicy()
	p.Retry.AttemptsPerRegion = 3
	if err := tr.Reconfigure(Config{Regions: []Region{r, keyRegion}, Policy: p}); err != nil {
		t.Fatal(err)
	}
	waitCalls(cred.calls.Load() + 2) // the kept credential goes on refreshing
	old := tr.tab.Load().regions[0].cred.(*tokenCache)
	if err := tr.Reconfigure(Config{Regions: []Region{keyRegion}, Policy: p}); err != nil {
		t.Fatal(err)
	}
	for { // a fetch in flight may still end
		old.mu.Lock()
		busy := old.fetching != nil
		old.mu.Unlock()
		if !busy {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	n := cred.calls.Load()
	time.Sleep(300 * time.Millisecond)
	if m := cred.calls.Load(); m != n {
		t.Errorf("%d fetches after the region left the config", m-n)
	}
	tr.Close()
}

// TestEntraValidate: the entra block's combinations.
func TestEntraValidate(t *testing.T) {
	for _, c := range []struct {
		e    Entra
		want string
	}{
		{Entra{}, ""},
		{Entra{TenantID: "t", ClientID: "c", ClientSecret: "s"}, ""},
		{Entra{ManagedIdentityClientID: "m"}, ""},
		{Entra{TenantID: "t"}, "set all of tenant_id, client_id and client_secret"},
		{Entra{ClientID: "c", ManagedIdentityClientID: "m"}, "managed_identity_client_id excludes"},
	} {
		r := testRegion("eastus", "https://eastus.example", 1, "gpt-4o", "gpt-4o")
		e := c.e
		r.APIKey, r.Entra = "", &e
		err := Config{Regions: []Region{r}}.Validate()
		if (c.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), "regions[0].entra: "+c.want) {
			t.Errorf("%+v: %v, want %q", c.e, err, c.want)
		}
	}
}

var _ http.RoundTripper = (*Transport)(nil)

// BenchmarkCredentialApply compares what a region's credential costs a request: an API key against an Entra
// token held in the cache (the common case: no fetch, no wait).
func BenchmarkCredentialApply(b *testing.B) {
	key := apiKey{v: []string{"k"}}
	cred := &fakeCredential{now: time.Now, ttl: time.Hour}
	tc := &tokenCache{cred: cred, region: "eastus", now: time.Now, wait: time.Second}
	tc.start()
	b.Cleanup(tc.close)
	if _, err := tc.get(context.Background()); err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		cred credential
	}{{"api-key", key}, {"entra", tc}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				h := http.Header{}
				for pb.Next() {
					if err := c.cred.apply(context.Background(), h); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
