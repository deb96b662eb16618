// Package entra builds the Microsoft Entra ID credential that a region's `entra:` config asks for, the same way for
// the engine (package failover) and for `lifeline check`, tells which credential of DefaultAzureCredential's chain
// answered, and explains a failure to get a token as a cause and a fix, without a secret or a token in either.
package entra

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/managedidentity"
)

// Scope is the scope of Azure OpenAI data-plane tokens.
const Scope = "https://cognitiveservices.azure.com/.default"

// Spec is a region's `entra:` block. All empty: DefaultAzureCredential. TenantID, ClientID and ClientSecret: a
// service principal. ManagedIdentityClientID alone: that user-assigned managed identity.
type Spec struct {
	TenantID                string
	ClientID                string
	ClientSecret            string
	ManagedIdentityClientID string
}

// Kinds of credential a Spec selects.
const (
	KindDefault          = "default"           // DefaultAzureCredential
	KindServicePrincipal = "service_principal" // ClientSecretCredential
	KindManagedIdentity  = "managed_identity"  // ManagedIdentityCredential with a user-assigned client id
)

// Kind says which credential the spec selects.
func (s Spec) Kind() string {
	switch {
	case s.ManagedIdentityClientID != "":
		return KindManagedIdentity
	case s.TenantID != "" || s.ClientID != "" || s.ClientSecret != "":
		return KindServicePrincipal
	}
	return KindDefault
}

// Identity names the identity for people: ids, never the secret.
func (s Spec) Identity() string {
	switch s.Kind() {
	case KindServicePrincipal:
		return "service principal " + s.ClientID + " in tenant " + s.TenantID
	case KindManagedIdentity:
		return "user-assigned managed identity " + s.ManagedIdentityClientID
	}
	return "DefaultAzureCredential"
}

// Credential is the azcore.TokenCredential of one region. It remembers which credential answered.
type Credential struct {
	spec   Spec
	cred   azcore.TokenCredential
	rec    *recorder // nil: not recorded (Service Fabric, which needs the SDK's own transport)
	getenv func(string) string

	mu     sync.Mutex
	source string
}

// Options tune New. The zero value reads the process environment.
type Options struct {
	// Getenv reads the environment that decides instance discovery and names the answering credential; it must be
	// the environment azidentity reads (the process's). Nil: os.Getenv.
	Getenv func(string) string
}

// New builds the credential spec asks for. Instance discovery (a request to login.microsoftonline.com before
// authenticating) is turned off when AZURE_AUTHORITY_HOST names a host outside Microsoft's clouds: a private
// cloud or a stand-in, where that request would go to the wrong place.
func New(spec Spec, o Options) (*Credential, error) {
	getenv := o.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	c := &Credential{spec: spec, getenv: getenv}
	// No retries inside azidentity: the engine retries with its own backoff, and check wants the first answer.
	// TryTimeout bounds a black-holed endpoint.
	opts := azcore.ClientOptions{Retry: policy.RetryOptions{MaxRetries: -1, TryTimeout: 30 * time.Second}}
	if spec.Kind() == KindServicePrincipal || miSource() != managedidentity.ServiceFabric {
		c.rec = newRecorder()
		opts.Transport = c.rec
	}
	noDiscovery := !microsoftCloud(getenv("AZURE_AUTHORITY_HOST"))
	var err error
	switch spec.Kind() {
	case KindServicePrincipal:
		c.cred, err = azidentity.NewClientSecretCredential(spec.TenantID, spec.ClientID, spec.ClientSecret,
			&azidentity.ClientSecretCredentialOptions{ClientOptions: opts, DisableInstanceDiscovery: noDiscovery})
		c.source = "ClientSecretCredential"
	case KindManagedIdentity:
		c.cred, err = azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{
			ClientOptions: opts, ID: azidentity.ClientID(spec.ManagedIdentityClientID)})
		c.source = managedIdentitySource()
	default:
		c.cred, err = azidentity.NewDefaultAzureCredential(&azidentity.DefaultAzureCredentialOptions{
			ClientOptions: opts, DisableInstanceDiscovery: noDiscovery})
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Spec returns the spec the credential was built from.
func (c *Credential) Spec() Spec { return c.spec }

// GetToken gets a token from azidentity and notes which credential answered.
func (c *Credential) GetToken(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	tok, err := c.cred.GetToken(ctx, opts)
	if err == nil && c.spec.Kind() == KindDefault {
		c.mu.Lock()
		if c.source == "" {
			c.source = c.chainSource()
		}
		c.mu.Unlock()
	}
	return tok, err
}

// Source names the credential that answered: ClientSecretCredential, ManagedIdentityCredential (App Service),
// WorkloadIdentityCredential, EnvironmentCredential, ... Empty until DefaultAzureCredential got its first token.
func (c *Credential) Source() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.source
}

// chainSource tells which of DefaultAzureCredential's credentials answered, from the request that brought the
// token. The chain is EnvironmentCredential, WorkloadIdentityCredential, ManagedIdentityCredential, then the
// developer tools, and it sticks to the first that answers. A token from the token endpoint came from
// EnvironmentCredential when its variables are set (a configured EnvironmentCredential either answers or stops
// the chain), else from WorkloadIdentityCredential; a token from a managed-identity endpoint, from
// ManagedIdentityCredential; a token without a request of ours, from a developer tool (they run a CLI).
func (c *Credential) chainSource() string {
	last := ""
	if c.rec != nil {
		last = c.rec.last()
	}
	switch last {
	case "token":
		if c.envConfigured() {
			return "EnvironmentCredential"
		}
		return "WorkloadIdentityCredential"
	case "managed":
		return managedIdentitySource()
	case "":
		if c.rec == nil {
			return "ManagedIdentityCredential (ServiceFabric)"
		}
	}
	return "a developer sign-in (AzureCLICredential, AzureDeveloperCLICredential or AzurePowerShellCredential)"
}

func (c *Credential) envConfigured() bool {
	g := c.getenv
	if g("AZURE_TENANT_ID") == "" || g("AZURE_CLIENT_ID") == "" {
		return false
	}
	return g("AZURE_CLIENT_SECRET") != "" || g("AZURE_CLIENT_CERTIFICATE_PATH") != "" ||
		g("AZURE_USERNAME") != "" && g("AZURE_PASSWORD") != ""
}

func miSource() managedidentity.Source {
	s, err := managedidentity.GetSource()
	if err != nil {
		return ""
	}
	return s
}

// managedIdentitySource names the managed-identity API the environment selects.
func managedIdentitySource() string {
	s := miSource()
	if s == managedidentity.DefaultToIMDS {
		s = "IMDS"
	}
	return "ManagedIdentityCredential (" + string(s) + ")"
}

// microsoftCloud reports whether an authority host is one of Microsoft's clouds (MSAL's trusted hosts), where
// instance discovery is right. Empty means the public cloud.
func microsoftCloud(host string) bool {
	if host == "" {
		return true
	}
	u, err := url.Parse(host)
	if err != nil || u.Hostname() == "" {
		return true // azidentity refuses it with its own error
	}
	switch strings.ToLower(u.Hostname()) {
	case "login.microsoftonline.com", "login.microsoft.com", "login.windows.net", "sts.windows.net",
		"login.microsoftonline.us", "login-us.microsoftonline.com", "login.usgovcloudapi.net",
		"login.chinacloudapi.cn", "login.partner.microsoftonline.cn", "login.microsoftonline.de",
		"login.sovcloud-identity.fr", "login.sovcloud-identity.de", "login.sovcloud-identity.sg":
		return true
	}
	return false
}

// recorder is the credential's HTTP transport: the same as azcore's default (proxy from the environment, TLS 1.2
// or later, the same timeouts), and it notes what kind of request last brought a token.
type recorder struct {
	c    *http.Client
	mu   sync.Mutex
	kind string
}

func newRecorder() *recorder {
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	return &recorder{c: &http.Client{Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
	}}}
}

func (r *recorder) Do(req *http.Request) (*http.Response, error) {
	resp, err := r.c.Do(req)
	if err == nil && resp.StatusCode == http.StatusOK {
		kind := ""
		switch {
		case strings.HasSuffix(req.URL.Path, "/oauth2/v2.0/token"):
			kind = "token"
		case req.Method == http.MethodGet && req.URL.Query().Get("resource") != "":
			kind = "managed"
		}
		if kind != "" {
			r.mu.Lock()
			r.kind = kind
			r.mu.Unlock()
		}
	}
	return resp, err
}

func (r *recorder) last() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.kind
}
