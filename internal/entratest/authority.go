package entratest

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Audience is the audience of Azure OpenAI data-plane tokens (scope https://cognitiveservices.azure.com/.default).
const Audience = "https://cognitiveservices.azure.com"

// FederatedAudience is the audience Entra requires of a federated (workload identity) assertion.
const FederatedAudience = "api://AzureADTokenExchange"

// App is an application (service principal) registered in a tenant of the authority.
type App struct {
	TenantID string
	ClientID string
	// Secret is the client secret it accepts; empty: none.
	Secret string
	// ObjectID is the service principal's object id, the token's oid. Empty: derived from ClientID.
	ObjectID string
	// Federated lists the federated identity credentials: a Kubernetes issuer and service-account subject whose
	// tokens the app accepts as client assertions.
	Federated []Federation
}

// Federation is one federated identity credential of an App.
type Federation struct{ Issuer, Subject string }

// Issued records one token the stand-ins handed out.
type Issued struct {
	Via       string // "secret", "assertion", "appservice", "imds"
	TenantID  string
	ClientID  string
	ObjectID  string
	Token     string
	ExpiresOn time.Time
}

// Authority is a running stand-in of the Entra authority (login.microsoftonline.com) on https://127.0.0.1:PORT.
// Point azidentity at it with AZURE_AUTHORITY_HOST (or cloud.Configuration) = Host(), instance discovery off, and
// trust CA().
type Authority struct {
	ca  *CA
	key *rsa.PrivateKey
	kid string

	mu       sync.Mutex
	apps     map[string]map[string]*App // tenant -> client id -> app
	issuers  map[string]crypto.PublicKey
	lifetime time.Duration
	issued   []Issued
	hits     map[string]int // "token", "openid", "discovery"
	hold     chan struct{}  // non-nil: token requests wait for it to close
	srv      *http.Server
	addr     string
	down     bool
}

// StartAuthority starts an authority with a new test CA. Close it when done.
func StartAuthority() (*Authority, error) {
	ca, err := NewCA()
	if err != nil {
		return nil, err
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	a := &Authority{ca: ca, key: key, kid: randomHex(8), apps: map[string]map[string]*App{},
		issuers: map[string]crypto.PublicKey{}, lifetime: time.Hour, hits: map[string]int{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	a.addr = ln.Addr().String()
	a.serve(ln)
	return a, nil
}

func (a *Authority) serve(ln net.Listener) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{tenant}/v2.0/.well-known/openid-configuration", a.openID)
	mux.HandleFunc("GET /{tenant}/discovery/v2.0/keys", a.jwks)
	mux.HandleFunc("POST /{tenant}/oauth2/v2.0/token", a.token)
	mux.HandleFunc("GET /common/discovery/instance", func(w http.ResponseWriter, r *http.Request) {
		a.count("discovery") // instance discovery must be off: tests assert this stays 0
		http.Error(w, "instance discovery is not served here", http.StatusNotFound)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: quietLog()}
	a.mu.Lock()
	a.srv = srv
	a.mu.Unlock()
	go srv.Serve(tls.NewListener(ln, a.ca.ServerConfig()))
}

// Host is the authority host, e.g. https://127.0.0.1:PORT/ (the value of AZURE_AUTHORITY_HOST).
func (a *Authority) Host() string { return "https://" + a.addr + "/" }

// CA is the authority's certificate authority.
func (a *Authority) CA() *CA { return a.ca }

// Close stops the authority.
func (a *Authority) Close() {
	a.mu.Lock()
	srv := a.srv
	a.down = true
	if a.hold != nil {
		close(a.hold)
		a.hold = nil
	}
	a.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

// Down closes the listener and every connection (requests held by Hold are cut): token requests get connection
// refused until Up.
func (a *Authority) Down() {
	a.mu.Lock()
	srv := a.srv
	a.srv, a.down = nil, true
	a.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
	a.Release() // the held handlers find the authority down and answer nothing
}

// Up listens again on the same address after Down.
func (a *Authority) Up() error {
	a.mu.Lock()
	if !a.down {
		a.mu.Unlock()
		return nil
	}
	ln, err := net.Listen("tcp", a.addr)
	if err == nil {
		a.down = false
	}
	a.mu.Unlock()
	if err != nil {
		return err
	}
	a.serve(ln)
	return nil
}

func (a *Authority) isDown() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.down
}

// Hold makes token requests wait (the authority accepts them and does not answer) until Release.
func (a *Authority) Hold() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.hold == nil {
		a.hold = make(chan struct{})
	}
}

// Release ends Hold: waiting token requests are answered.
func (a *Authority) Release() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.hold != nil {
		close(a.hold)
		a.hold = nil
	}
}

// SetLifetime sets the lifetime of the tokens issued from now on (default one hour).
func (a *Authority) SetLifetime(d time.Duration) {
	a.mu.Lock()
	a.lifetime = d
	a.mu.Unlock()
}

// AddApp registers an application in its tenant (the tenant exists from then on).
func (a *Authority) AddApp(app App) {
	if app.ObjectID == "" {
		app.ObjectID = ObjectIDFor(app.ClientID)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.tenant(app.TenantID)[app.ClientID] = &app
}

// AddTenant makes a tenant exist without any application.
func (a *Authority) AddTenant(id string) {
	a.mu.Lock()
	a.tenant(id)
	a.mu.Unlock()
}

func (a *Authority) tenant(id string) map[string]*App {
	t := a.apps[strings.ToLower(id)]
	if t == nil {
		t = map[string]*App{}
		a.apps[strings.ToLower(id)] = t
	}
	return t
}

// Issued returns every token handed out so far, by this authority and the managed-identity endpoints on it.
func (a *Authority) Issued() []Issued {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]Issued(nil), a.issued...)
}

// Hits counts requests by kind: "token", "openid", "discovery" (instance discovery, which must stay 0).
func (a *Authority) Hits(kind string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.hits[kind]
}

func (a *Authority) count(kind string) {
	a.mu.Lock()
	a.hits[kind]++
	a.mu.Unlock()
}

// PublicKey returns the key that signs the authority's tokens, by key id (what a resource reads from the JWKS).
func (a *Authority) PublicKey(kid string) (crypto.PublicKey, bool) {
	if kid != a.kid {
		return nil, false
	}
	return &a.key.PublicKey, true
}

// ObjectIDFor derives a stable object id (a GUID) for a client id, so tests can name principals.
func ObjectIDFor(clientID string) string {
	h := fnv64(clientID)
	return fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", uint32(h>>32), uint16(h>>16), uint16(h)&0xfff, uint16(h>>4)&0xfff, h&0xffffffffffff)
}

func fnv64(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// Claims are what a minted token says.
type Claims struct {
	Audience  string
	TenantID  string
	ObjectID  string
	ClientID  string
	IssuedAt  time.Time
	NotBefore time.Time
	ExpiresOn time.Time
}

// Mint signs a token with the authority's key (or, with foreign, with a key nobody trusts), for tests that need
// tokens Entra would never issue: expired, for another audience, not yet valid.
func (a *Authority) Mint(c Claims, foreign bool) string {
	if c.Audience == "" {
		c.Audience = Audience
	}
	claims := jwt.MapClaims{
		"aud": c.Audience, "iss": "https://sts.windows.net/" + c.TenantID + "/", "iat": c.IssuedAt.Unix(),
		"nbf": c.NotBefore.Unix(), "exp": c.ExpiresOn.Unix(), "tid": c.TenantID, "oid": c.ObjectID, "sub": c.ObjectID,
		"appid": c.ClientID, "idtyp": "app", "ver": "1.0",
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	tok.Header["kid"] = a.kid
	key := a.key
	if foreign {
		key, _ = rsa.GenerateKey(rand.Reader, 2048)
	}
	s, err := tok.SignedString(key)
	if err != nil {
		panic("entratest: signing a token: " + err.Error())
	}
	return s
}

// issue mints a token for an identity and records it.
func (a *Authority) issue(via, tenant, clientID, objectID, audience string) (string, time.Time) {
	now := time.Now()
	a.mu.Lock()
	life := a.lifetime
	a.mu.Unlock()
	exp := now.Add(life)
	// Entra backdates iat and nbf by five minutes; keep them at now so tests can read the skew.
	tok := a.Mint(Claims{Audience: audience, TenantID: tenant, ObjectID: objectID, ClientID: clientID,
		IssuedAt: now, NotBefore: now, ExpiresOn: exp}, false)
	a.mu.Lock()
	a.issued = append(a.issued, Issued{Via: via, TenantID: tenant, ClientID: clientID, ObjectID: objectID, Token: tok, ExpiresOn: exp})
	a.mu.Unlock()
	return tok, exp
}

func (a *Authority) openID(w http.ResponseWriter, r *http.Request) {
	a.count("openid")
	tenant := r.PathValue("tenant")
	a.mu.Lock()
	_, ok := a.apps[strings.ToLower(tenant)]
	a.mu.Unlock()
	if !ok {
		aadError(w, http.StatusBadRequest, "invalid_tenant", 90002, fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.", tenant))
		return
	}
	base := "https://" + a.addr + "/" + tenant
	writeJSON(w, http.StatusOK, map[string]any{
		"token_endpoint":                        base + "/oauth2/v2.0/token",
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		"jwks_uri":                              base + "/discovery/v2.0/keys",
		"issuer":                                base + "/v2.0",
		"authorization_endpoint":                base + "/oauth2/v2.0/authorize",
		"response_modes_supported":              []string{"query", "fragment", "form_post"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"tenant_region_scope":                   "NA",
	})
}

func (a *Authority) jwks(w http.ResponseWriter, r *http.Request) {
	pub := a.key.PublicKey
	writeJSON(w, http.StatusOK, map[string]any{"keys": []map[string]any{{
		"kty": "RSA", "use": "sig", "kid": a.kid,
		"n": base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
	}}})
}

// wait blocks while the authority is held; false when the request gave up.
func (a *Authority) wait(ctx context.Context) bool {
	a.mu.Lock()
	hold := a.hold
	a.mu.Unlock()
	if hold == nil {
		return true
	}
	select {
	case <-hold:
		return true
	case <-ctx.Done():
		return false
	}
}

func (a *Authority) token(w http.ResponseWriter, r *http.Request) {
	a.count("token")
	if !a.wait(r.Context()) || a.isDown() {
		return
	}
	tenant := r.PathValue("tenant")
	if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "client_credentials" {
		aadError(w, http.StatusBadRequest, "unsupported_grant_type", 70003, "The app requested an unsupported grant type ''.")
		return
	}
	f := r.PostForm
	audience, ok := strings.CutSuffix(firstScope(f.Get("scope")), "/.default")
	if !ok {
		aadError(w, http.StatusBadRequest, "invalid_scope", 1002012, "The provided value for scope "+f.Get("scope")+" is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).")
		return
	}
	a.mu.Lock()
	apps, tenantOK := a.apps[strings.ToLower(tenant)]
	app := apps[f.Get("client_id")]
	a.mu.Unlock()
	switch {
	case !tenantOK:
		aadError(w, http.StatusBadRequest, "invalid_tenant", 90002, fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.", tenant))
		return
	case app == nil:
		aadError(w, http.StatusBadRequest, "unauthorized_client", 700016, fmt.Sprintf("Application with identifier '%s' was not found in the directory '%s'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.", f.Get("client_id"), tenant))
		return
	}
	via := "secret"
	if assertion := f.Get("client_assertion"); assertion != "" {
		via = "assertion"
		if !a.checkAssertion(w, app, assertion) {
			return
		}
	} else if app.Secret == "" || f.Get("client_secret") != app.Secret {
		aadError(w, http.StatusUnauthorized, "invalid_client", 7000215, fmt.Sprintf("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'.", app.ClientID))
		return
	}
	tok, exp := a.issue(via, app.TenantID, app.ClientID, app.ObjectID, audience)
	life := int(time.Until(exp).Round(time.Second).Seconds())
	writeJSON(w, http.StatusOK, map[string]any{"token_type": "Bearer", "expires_in": life, "ext_expires_in": life, "access_token": tok})
}

func firstScope(s string) string {
	for f := range strings.FieldsSeq(s) {
		if strings.HasSuffix(f, "/.default") {
			return f
		}
	}
	return s
}

// checkAssertion verifies a federated client assertion (a Kubernetes service-account token) as Entra does.
func (a *Authority) checkAssertion(w http.ResponseWriter, app *App, assertion string) bool {
	var claims jwt.RegisteredClaims
	_, err := jwt.ParseWithClaims(assertion, &claims, func(t *jwt.Token) (any, error) {
		iss, _ := t.Claims.GetIssuer()
		a.mu.Lock()
		key := a.issuers[iss]
		a.mu.Unlock()
		if key == nil {
			return nil, errors.New("unknown issuer")
		}
		return key, nil
	}, jwt.WithoutClaimsValidation())
	if err != nil {
		aadError(w, http.StatusUnauthorized, "invalid_client", 70021, fmt.Sprintf("No matching federated identity record found for presented assertion. Assertion Issuer: '%s'. Assertion Subject: '%s'. Assertion Audience: '%s'. https://docs.microsoft.com/en-us/azure/active-directory/develop/workload-identity-federation", claims.Issuer, claims.Subject, strings.Join(claims.Audience, ",")))
		return false
	}
	now := time.Now()
	if claims.ExpiresAt == nil || !now.Before(claims.ExpiresAt.Time) {
		exp := time.Time{}
		if claims.ExpiresAt != nil {
			exp = claims.ExpiresAt.Time
		}
		aadError(w, http.StatusUnauthorized, "invalid_client", 700024, fmt.Sprintf("Client assertion is not within its valid time range. Current time: %s, assertion valid from %s, expiry time of assertion %s. Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials .",
			now.UTC().Format("2006-01-02T15:04:05.0000000Z"), issuedAt(claims).UTC().Format("2006-01-02T15:04:05.0000000Z"), exp.UTC().Format("2006-01-02T15:04:05.0000000Z")))
		return false
	}
	aud := ""
	if len(claims.Audience) > 0 {
		aud = claims.Audience[0]
	}
	for _, fed := range app.Federated {
		if fed.Issuer == claims.Issuer && fed.Subject == claims.Subject && aud == FederatedAudience {
			return true
		}
	}
	aadError(w, http.StatusUnauthorized, "invalid_client", 70021, fmt.Sprintf("No matching federated identity record found for presented assertion. Assertion Issuer: '%s'. Assertion Subject: '%s'. Assertion Audience: '%s'. https://docs.microsoft.com/en-us/azure/active-directory/develop/workload-identity-federation", claims.Issuer, claims.Subject, aud))
	return false
}

func issuedAt(c jwt.RegisteredClaims) time.Time {
	if c.IssuedAt != nil {
		return c.IssuedAt.Time
	}
	return time.Unix(0, 0)
}

// aadError writes an error the way Entra's token service does: the AADSTS code and text, then trace and correlation
// ids and a timestamp, both inside error_description and as fields of their own.
func aadError(w http.ResponseWriter, status int, code string, aadsts int, text string) {
	trace, corr := newGUID(), newGUID()
	ts := time.Now().UTC().Format("2006-01-02 15:04:05Z")
	writeJSON(w, status, map[string]any{
		"error":             code,
		"error_description": fmt.Sprintf("AADSTS%d: %s\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: %s", aadsts, text, trace, corr, ts),
		"error_codes":       []int{aadsts},
		"timestamp":         ts,
		"trace_id":          trace,
		"correlation_id":    corr,
		"error_uri":         "https://login.microsoftonline.com/error?code=" + strconv.Itoa(aadsts),
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func newGUID() string {
	b := make([]byte, 16)
	rand.Read(b)
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
