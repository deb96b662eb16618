package entratest

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Identity is a managed identity: the principal a token is issued for.
type Identity struct {
	TenantID string
	ClientID string
	ObjectID string // empty: derived from ClientID
}

// imdsHost is where azidentity sends every IMDS request; it cannot be configured.
const imdsHost = "169.254.169.254"

// ManagedIdentity serves the two managed-identity APIs azidentity can use on loopback:
//
//   - App Service / Container Apps: GET IDENTITY_ENDPOINT?api-version=2019-08-01&resource=R[&client_id=C] with the
//     X-IDENTITY-HEADER secret (AppServiceEnv sets both variables);
//   - IMDS (VMs, scale sets, AKS node identity): GET http://169.254.169.254/metadata/identity/oauth2/token with
//     Metadata: true. azidentity hard-codes that address, so it is reached through an HTTP proxy on loopback
//     (ProxyEnv sets HTTP_PROXY; azcore's transport honours it). The proxy answers nothing else: any other
//     destination (a CONNECT to login.microsoftonline.com, say) is refused and recorded in Leaks.
//
// Tokens are signed by the authority, as Entra signs managed-identity tokens.
type ManagedIdentity struct {
	a      *Authority
	secret string

	mu     sync.Mutex
	system *Identity
	users  map[string]Identity
	hold   chan struct{}
	leaks  []string
	hits   int

	app, proxy         *http.Server
	appAddr, proxyAddr string
}

// StartManagedIdentity starts the App Service endpoint and the IMDS proxy. With no identity set, every request is
// answered as on a resource without one.
func (a *Authority) StartManagedIdentity() (*ManagedIdentity, error) {
	m := &ManagedIdentity{a: a, secret: randomHex(16), users: map[string]Identity{}}
	appLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	proxyLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		appLn.Close()
		return nil, err
	}
	m.appAddr, m.proxyAddr = appLn.Addr().String(), proxyLn.Addr().String()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /msi/token", m.appService)
	m.app = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: quietLog()}
	m.proxy = &http.Server{Handler: http.HandlerFunc(m.proxied), ReadHeaderTimeout: 10 * time.Second, ErrorLog: quietLog()}
	go m.app.Serve(appLn)
	go m.proxy.Serve(proxyLn)
	return m, nil
}

// SetSystem gives the resource a system-assigned identity (nil: none).
func (m *ManagedIdentity) SetSystem(id *Identity) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if id != nil {
		c := fill(*id)
		id = &c
	}
	m.system = id
}

// AddUser assigns a user-assigned identity to the resource.
func (m *ManagedIdentity) AddUser(id Identity) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.users[id.ClientID] = fill(id)
}

func fill(id Identity) Identity {
	if id.ObjectID == "" {
		id.ObjectID = ObjectIDFor(id.ClientID)
	}
	return id
}

// AppServiceEnv is the environment App Service and Container Apps give a process with a managed identity.
func (m *ManagedIdentity) AppServiceEnv() []string {
	return []string{"IDENTITY_ENDPOINT=http://" + m.appAddr + "/msi/token", "IDENTITY_HEADER=" + m.secret}
}

// ProxyEnv routes IMDS requests to the stand-in (and nothing else anywhere: loopback is never proxied).
func (m *ManagedIdentity) ProxyEnv() []string {
	p := "http://" + m.proxyAddr
	return []string{"HTTP_PROXY=" + p, "HTTPS_PROXY=" + p, "http_proxy=" + p, "https_proxy=" + p, "NO_PROXY=", "no_proxy="}
}

// ProxyURL is the proxy's address, for clients built in process.
func (m *ManagedIdentity) ProxyURL() string { return "http://" + m.proxyAddr }

// Leaks lists the destinations other than IMDS that something tried to reach through the proxy.
func (m *ManagedIdentity) Leaks() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.leaks...)
}

// Hits counts token requests that reached either endpoint.
func (m *ManagedIdentity) Hits() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.hits
}

// Hold makes token requests wait until Release.
func (m *ManagedIdentity) Hold() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.hold == nil {
		m.hold = make(chan struct{})
	}
}

// Release ends Hold.
func (m *ManagedIdentity) Release() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.hold != nil {
		close(m.hold)
		m.hold = nil
	}
}

// Close stops both servers.
func (m *ManagedIdentity) Close() {
	m.Release()
	m.app.Close()
	m.proxy.Close()
}

func (m *ManagedIdentity) wait(ctx context.Context) bool {
	m.mu.Lock()
	m.hits++
	hold := m.hold
	m.mu.Unlock()
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

// identity picks the identity a request names (client_id) or the system-assigned one.
func (m *ManagedIdentity) identity(clientID string) (Identity, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if clientID != "" {
		id, ok := m.users[clientID]
		return id, ok
	}
	if m.system == nil {
		return Identity{}, false
	}
	return *m.system, true
}

// appService answers like the App Service managed-identity endpoint (api-version 2019-08-01).
func (m *ManagedIdentity) appService(w http.ResponseWriter, r *http.Request) {
	if !m.wait(r.Context()) {
		return
	}
	q := r.URL.Query()
	if r.Header.Get("X-IDENTITY-HEADER") != m.secret || q.Get("api-version") != "2019-08-01" || q.Get("resource") == "" {
		writeJSON(w, http.StatusBadRequest, map[string]any{"statusCode": 400, "message": "entratest: bad App Service token request", "correlationId": newGUID()})
		return
	}
	id, ok := m.identity(q.Get("client_id"))
	if !ok {
		writeJSON(w, http.StatusBadRequest, map[string]any{"statusCode": 400,
			"message":       "No User Assigned or Delegated Managed Identity found for specified ClientId/ResourceId/PrincipalId.",
			"correlationId": newGUID()})
		return
	}
	tok, exp := m.a.issue("appservice", id.TenantID, id.ClientID, id.ObjectID, q.Get("resource"))
	writeJSON(w, http.StatusOK, map[string]any{"access_token": tok, "expires_on": strconv.FormatInt(exp.Unix(), 10),
		"resource": q.Get("resource"), "token_type": "Bearer", "client_id": id.ClientID})
}

// proxied serves IMDS for requests proxied to 169.254.169.254 and refuses everything else.
func (m *ManagedIdentity) proxied(w http.ResponseWriter, r *http.Request) {
	host := r.URL.Hostname()
	if r.Method == http.MethodConnect || host != imdsHost || r.URL.Path != "/metadata/identity/oauth2/token" {
		dest := r.Host
		if r.Method != http.MethodConnect {
			dest = r.URL.String()
		}
		m.mu.Lock()
		m.leaks = append(m.leaks, r.Method+" "+dest)
		m.mu.Unlock()
		http.Error(w, "entratest: this proxy only serves IMDS; refused "+dest, http.StatusForbidden)
		return
	}
	if !m.wait(r.Context()) {
		return
	}
	q := r.URL.Query()
	if r.Header.Get("Metadata") != "true" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request", "error_description": "Required metadata header not specified"})
		return
	}
	id, ok := m.identity(q.Get("client_id"))
	if !ok || q.Get("resource") == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request", "error_description": "Identity not found"})
		return
	}
	tok, exp := m.a.issue("imds", id.TenantID, id.ClientID, id.ObjectID, q.Get("resource"))
	life := strconv.Itoa(int(time.Until(exp).Round(time.Second).Seconds()))
	now := time.Now().Unix()
	writeJSON(w, http.StatusOK, map[string]string{"access_token": tok, "client_id": id.ClientID, "expires_in": life,
		"expires_on": strconv.FormatInt(exp.Unix(), 10), "ext_expires_in": life, "not_before": strconv.FormatInt(now, 10),
		"resource": q.Get("resource"), "token_type": "Bearer"})
}

// quietLog keeps the servers' TLS handshake and connection errors out of test output.
func quietLog() *log.Logger { return log.New(io.Discard, "", 0) }

func (m *ManagedIdentity) String() string {
	return fmt.Sprintf("managed identity endpoints (app service %s, imds proxy %s)", m.appAddr, m.proxyAddr)
}
