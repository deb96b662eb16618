package entra

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/lifeline-sre/lifeline/internal/entratest"
)

const tenant = "11111111-1111-1111-1111-111111111111"

func options(a *entratest.Authority, proxy string) azcore.ClientOptions {
	tr := &http.Transport{TLSClientConfig: a.CA().ClientConfig()}
	if proxy != "" {
		u, _ := url.Parse(proxy)
		tr.Proxy = http.ProxyURL(u)
	}
	return azcore.ClientOptions{Cloud: cloud.Configuration{ActiveDirectoryAuthorityHost: a.Host()},
		Transport: &http.Client{Transport: tr}, Retry: policy.RetryOptions{MaxRetries: -1}}
}

func get(cred azcore.TokenCredential) error {
	_, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{Scope}})
	return err
}

// TestDiagnose runs the real credentials into every failure the stand-ins can produce and checks the diagnosis:
// the problem, a cause that names Entra's own code, a fix, and never the secret.
func TestDiagnose(t *testing.T) {
	a, err := entratest.StartAuthority()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	mi, err := a.StartManagedIdentity()
	if err != nil {
		t.Fatal(err)
	}
	defer mi.Close()
	cl, _ := a.NewCluster("https://oidc.test.invalid/c1/")
	a.AddApp(entratest.App{TenantID: tenant, ClientID: "app", Secret: "right-secret-value",
		Federated: []entratest.Federation{{Issuer: cl.Issuer, Subject: "system:serviceaccount:ai:lifeline"}}})
	a.AddTenant("22222222-2222-2222-2222-222222222222")
	sp := func(tenant, client, secret string) (Spec, error) {
		s := Spec{TenantID: tenant, ClientID: client, ClientSecret: secret}
		cred, _ := azidentity.NewClientSecretCredential(tenant, client, secret, &azidentity.ClientSecretCredentialOptions{
			ClientOptions: options(a, ""), DisableInstanceDiscovery: true})
		return s, get(cred)
	}
	wi := func(subject string, life time.Duration) (Spec, error) {
		file := filepath.Join(t.TempDir(), "token")
		cl.WriteToken(file, subject, life)
		cred, _ := azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{ClientOptions: options(a, ""),
			DisableInstanceDiscovery: true, ClientID: "app", TenantID: tenant, TokenFilePath: file})
		return Spec{}, get(cred)
	}
	uami := func(id string) (Spec, error) {
		cred, _ := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{
			ClientOptions: options(a, mi.ProxyURL()), ID: azidentity.ClientID(id)})
		return Spec{ManagedIdentityClientID: id}, get(cred)
	}
	type result struct {
		spec Spec
		err  error
	}
	r := func(s Spec, err error) result { return result{s, err} }
	cases := []struct {
		name    string
		got     result
		problem string
		cause   string
	}{
		{"wrong secret", r(sp(tenant, "app", "wrong-secret-value")), ProblemBadSecret, "AADSTS7000215: Invalid client secret provided"},
		{"app not in tenant", r(sp("22222222-2222-2222-2222-222222222222", "app", "right-secret-value")), ProblemWrongTenant, "AADSTS700016: Application with identifier 'app' was not found in the directory"},
		{"no such tenant", r(sp("33333333-3333-3333-3333-333333333333", "app", "right-secret-value")), ProblemWrongTenant, "AADSTS90002: Tenant '33333333-3333-3333-3333-333333333333' not found"},
		{"federation mismatch", r(wi("system:serviceaccount:ai:other", time.Hour)), ProblemNoFederation, "AADSTS70021: No matching federated identity record"},
		{"expired service-account token", r(wi("system:serviceaccount:ai:lifeline", -time.Minute)), ProblemClockSkew, "AADSTS700024: Client assertion is not within its valid time range"},
		{"identity not assigned", r(uami("uami-nope")), ProblemNotAssigned, "managed identity uami-nope is not assigned"},
	}
	a2, _ := entratest.StartAuthority()
	a2.AddApp(entratest.App{TenantID: tenant, ClientID: "app", Secret: "right-secret-value"})
	cred, _ := azidentity.NewClientSecretCredential(tenant, "app", "right-secret-value", &azidentity.ClientSecretCredentialOptions{
		ClientOptions: options(a2, ""), DisableInstanceDiscovery: true})
	a2.Close()
	cases = append(cases, struct {
		name    string
		got     result
		problem string
		cause   string
	}{"authority down", result{Spec{TenantID: tenant, ClientID: "app", ClientSecret: "right-secret-value"}, get(cred)}, ProblemUnreachable, "https://127.0.0.1:"})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.got.err == nil {
				t.Fatal("no error")
			}
			d := Diagnose(c.got.spec, c.got.err)
			// A closed listener gives connection refused, or a reset when the connect raced the close: both
			// are the same problem, and the cause names the endpoint.
			if d.Problem != c.problem || !strings.Contains(d.Cause, c.cause) || d.Fix == "" {
				t.Errorf("%+v\nfrom %v", d, c.got.err)
			}
			if strings.Contains(d.Cause+d.Fix, "right-secret-value") || strings.Contains(d.Cause+d.Fix, "wrong-secret-value") ||
				strings.Contains(d.Cause, "\n") || len(d.Cause) > 400 {
				t.Errorf("cause %q", d.Cause)
			}
		})
	}
}

func TestDiagnoseDefaultCredentialFoundNothing(t *testing.T) {
	err := errors.New("DefaultAzureCredential: failed to acquire a token.\nAttempted credentials:\n\tEnvironmentCredential: missing environment variable AZURE_TENANT_ID\n\tWorkloadIdentityCredential: no client ID specified. Check pod configuration or set ClientID in the options\n\tManagedIdentityCredential: failed to authenticate a system assigned identity. The endpoint responded with {\"error\":\"invalid_request\",\"error_description\":\"Identity not found\"}\n\tAzureCLICredential: Azure CLI not found on path\n\tAzureDeveloperCLICredential: Azure Developer CLI not found on path")
	d := Diagnose(Spec{}, err)
	if d.Problem != ProblemNoIdentity || !strings.Contains(d.Cause, "ManagedIdentityCredential: failed to authenticate a system assigned identity") ||
		!strings.Contains(d.Cause, "AzureCLICredential: Azure CLI not found on path") || !strings.Contains(d.Fix, "workload identity") {
		t.Errorf("%+v", d)
	}
}

func TestRedact(t *testing.T) {
	tok := "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL2NvZ25pdGl2ZXNlcnZpY2VzIn0.c2lnbmF0dXJl"
	got := Redact("token "+tok+" and secret s3cr3t-value in one", Spec{ClientSecret: "s3cr3t-value"})
	if strings.Contains(got, "eyJ") || strings.Contains(got, "s3cr3t") || !strings.Contains(got, "[token]") || !strings.Contains(got, "[secret]") {
		t.Errorf("%q", got)
	}
}

func TestSpec(t *testing.T) {
	for _, c := range []struct {
		s        Spec
		kind, id string
	}{
		{Spec{}, KindDefault, "DefaultAzureCredential"},
		{Spec{TenantID: "t", ClientID: "c", ClientSecret: "s"}, KindServicePrincipal, "service principal c in tenant t"},
		{Spec{ManagedIdentityClientID: "m"}, KindManagedIdentity, "user-assigned managed identity m"},
	} {
		if c.s.Kind() != c.kind || c.s.Identity() != c.id {
			t.Errorf("%+v: %s %q", c.s, c.s.Kind(), c.s.Identity())
		}
	}
}

func TestInstanceDiscoveryOnlyForMicrosoftClouds(t *testing.T) {
	for host, want := range map[string]bool{
		"": true, "https://login.microsoftonline.com/": true, "https://login.microsoftonline.us/": true,
		"https://login.chinacloudapi.cn/": true, "https://127.0.0.1:8443/": false, "https://login.contoso-stack.local/": false,
	} {
		if got := microsoftCloud(host); got != want {
			t.Errorf("%q: %v", host, got)
		}
	}
}

// TestChainSource: which of DefaultAzureCredential's credentials answered, from the request that brought the
// token and the environment.
func TestChainSource(t *testing.T) {
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	for _, c := range []struct {
		last   string
		getenv func(string) string
		want   string
	}{
		{"token", env("AZURE_TENANT_ID", "t", "AZURE_CLIENT_ID", "c", "AZURE_CLIENT_SECRET", "s"), "EnvironmentCredential"},
		{"token", env("AZURE_TENANT_ID", "t", "AZURE_CLIENT_ID", "c", "AZURE_FEDERATED_TOKEN_FILE", "/f"), "WorkloadIdentityCredential"},
		{"managed", env(), "ManagedIdentityCredential ("},
		{"", env(), "AzureCLICredential"},
	} {
		cr := &Credential{rec: newRecorder(), getenv: c.getenv}
		cr.rec.kind = c.last
		if got := cr.chainSource(); !strings.Contains(got, c.want) {
			t.Errorf("%s: %q, want %q", c.last, got, c.want)
		}
	}
}
