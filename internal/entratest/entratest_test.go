package entratest

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
	"github.com/golang-jwt/jwt/v5"
)

const (
	tenant = "11111111-1111-1111-1111-111111111111"
	scope  = "https://cognitiveservices.azure.com/.default"
)

func start(t *testing.T) *Authority {
	t.Helper()
	a, err := StartAuthority()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	return a
}

// clientOptions points azidentity at the stand-in: its host, its CA, no retries (tests want the first answer).
func clientOptions(a *Authority, proxy string) azcore.ClientOptions {
	tr := &http.Transport{TLSClientConfig: a.CA().ClientConfig()}
	if proxy != "" {
		u, _ := url.Parse(proxy)
		tr.Proxy = http.ProxyURL(u)
	}
	return azcore.ClientOptions{
		Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: a.Host()},
		Transport: &http.Client{Transport: tr},
		Retry:     policy.RetryOptions{MaxRetries: -1},
	}
}

func claimsOf(t *testing.T, tok string) jwt.MapClaims {
	t.Helper()
	var c jwt.MapClaims
	if _, _, err := jwt.NewParser().ParseUnverified(tok, &c); err != nil {
		t.Fatalf("token %q: %v", tok, err)
	}
	return c
}

func TestClientSecretCredentialGetsAToken(t *testing.T) {
	a := start(t)
	a.AddApp(App{TenantID: tenant, ClientID: "app-1", Secret: "s3cret"})
	cred, err := azidentity.NewClientSecretCredential(tenant, "app-1", "s3cret", &azidentity.ClientSecretCredentialOptions{
		ClientOptions: clientOptions(a, ""), DisableInstanceDiscovery: true})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{scope}})
	if err != nil {
		t.Fatal(err)
	}
	c := claimsOf(t, tok.Token)
	if c["aud"] != Audience || c["tid"] != tenant || c["appid"] != "app-1" || c["oid"] != ObjectIDFor("app-1") {
		t.Errorf("claims %v", c)
	}
	if d := time.Until(tok.ExpiresOn); d < 50*time.Minute || d > time.Hour+time.Minute {
		t.Errorf("expires in %v", d)
	}
	if a.Hits("discovery") != 0 {
		t.Error("instance discovery was called")
	}
	// Wrong secret, unknown app, unknown tenant: the errors carry Entra's codes.
	for _, c := range []struct{ tenant, client, secret, want string }{
		{tenant, "app-1", "wrong", "AADSTS7000215"},
		{tenant, "app-2", "s3cret", "AADSTS700016"},
		{"22222222-2222-2222-2222-222222222222", "app-1", "s3cret", "AADSTS90002"},
	} {
		cred, _ := azidentity.NewClientSecretCredential(c.tenant, c.client, c.secret, &azidentity.ClientSecretCredentialOptions{
			ClientOptions: clientOptions(a, ""), DisableInstanceDiscovery: true})
		_, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{scope}})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v", c, err)
		}
		if err != nil && strings.Contains(err.Error(), "wrong") && c.secret == "wrong" {
			t.Errorf("the error shows the secret: %v", err)
		}
	}
}

func TestWorkloadIdentityCredentialExchangesTheFederatedToken(t *testing.T) {
	a := start(t)
	cl, err := a.NewCluster("https://oidc.test.invalid/cluster-1/")
	if err != nil {
		t.Fatal(err)
	}
	a.AddApp(App{TenantID: tenant, ClientID: "wi-app", Federated: []Federation{{Issuer: cl.Issuer, Subject: "system:serviceaccount:ai:lifeline"}}})
	file := filepath.Join(t.TempDir(), "token")
	newCred := func() *azidentity.WorkloadIdentityCredential {
		cred, err := azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{
			ClientOptions: clientOptions(a, ""), DisableInstanceDiscovery: true, ClientID: "wi-app", TenantID: tenant, TokenFilePath: file})
		if err != nil {
			t.Fatal(err)
		}
		return cred
	}
	cl.WriteToken(file, "system:serviceaccount:ai:lifeline", time.Hour)
	tok, err := newCred().GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{scope}})
	if err != nil {
		t.Fatal(err)
	}
	if c := claimsOf(t, tok.Token); c["appid"] != "wi-app" {
		t.Errorf("claims %v", c)
	}
	if got := a.Issued(); len(got) != 1 || got[0].Via != "assertion" {
		t.Errorf("issued %+v", got)
	}
	cl.WriteToken(file, "system:serviceaccount:ai:other", time.Hour)
	if _, err := newCred().GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{scope}}); err == nil || !strings.Contains(err.Error(), "AADSTS70021") {
		t.Errorf("wrong subject: %v", err)
	}
	cl.WriteToken(file, "system:serviceaccount:ai:lifeline", -time.Minute)
	if _, err := newCred().GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{scope}}); err == nil || !strings.Contains(err.Error(), "AADSTS700024") {
		t.Errorf("expired assertion: %v", err)
	}
}

func TestIMDSThroughTheProxy(t *testing.T) {
	a := start(t)
	mi, err := a.StartManagedIdentity()
	if err != nil {
		t.Fatal(err)
	}
	defer mi.Close()
	mi.AddUser(Identity{TenantID: tenant, ClientID: "uami-1"})
	cred, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{
		ClientOptions: clientOptions(a, mi.ProxyURL()), ID: azidentity.ClientID("uami-1")})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{scope}})
	if err != nil {
		t.Fatal(err)
	}
	if c := claimsOf(t, tok.Token); c["appid"] != "uami-1" || c["aud"] != Audience {
		t.Errorf("claims %v", c)
	}
	// An identity that is not assigned: IMDS's 400 "Identity not found".
	cred, _ = azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{
		ClientOptions: clientOptions(a, mi.ProxyURL()), ID: azidentity.ClientID("uami-2")})
	_, err = cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{scope}})
	var af *azidentity.AuthenticationFailedError
	if !errors.As(err, &af) || af.RawResponse == nil || af.RawResponse.StatusCode != 400 {
		t.Errorf("unassigned identity: %v", err)
	}
	if l := mi.Leaks(); len(l) != 0 {
		t.Errorf("leaks %v", l)
	}
}

func TestHoldAndDown(t *testing.T) {
	a := start(t)
	a.AddApp(App{TenantID: tenant, ClientID: "app-1", Secret: "s"})
	get := func(ctx context.Context) error {
		cred, _ := azidentity.NewClientSecretCredential(tenant, "app-1", "s", &azidentity.ClientSecretCredentialOptions{
			ClientOptions: clientOptions(a, ""), DisableInstanceDiscovery: true})
		_, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{scope}})
		return err
	}
	a.Hold()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	if err := get(ctx); err == nil {
		t.Error("a held authority answered")
	}
	cancel()
	a.Release()
	if err := get(context.Background()); err != nil {
		t.Fatal(err)
	}
	a.Down()
	// Refused, or reset when the connect races the closing listener.
	if err := get(context.Background()); err == nil || !strings.Contains(err.Error(), "connection re") {
		t.Errorf("down: %v", err)
	}
	if err := a.Up(); err != nil {
		t.Fatal(err)
	}
	if err := get(context.Background()); err != nil {
		t.Errorf("up again: %v", err)
	}
}
