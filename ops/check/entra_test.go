package check

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/lifeline-sre/lifeline/internal/entra"
	"github.com/lifeline-sre/lifeline/internal/entratest"
	"github.com/lifeline-sre/lifeline/ops/aoai"
	"github.com/lifeline-sre/lifeline/sim"
)

const (
	homeTenant  = "aaaaaaaa-1111-4111-8111-aaaaaaaaaaaa"
	otherTenant = "bbbbbbbb-2222-4222-8222-bbbbbbbbbbbb"
)

// spCredential is a service principal on the stand-in authority, described as internal/entra describes it.
type spCredential struct {
	azcore.TokenCredential
	spec entra.Spec
}

func (c spCredential) Source() string   { return "ClientSecretCredential" }
func (c spCredential) Spec() entra.Spec { return c.spec }

func newSP(t *testing.T, a *entratest.Authority, tenant, client, secret string) spCredential {
	t.Helper()
	cred, err := azidentity.NewClientSecretCredential(tenant, client, secret, &azidentity.ClientSecretCredentialOptions{
		ClientOptions: azcore.ClientOptions{Cloud: cloud.Configuration{ActiveDirectoryAuthorityHost: a.Host()},
			Transport: &http.Client{Transport: &http.Transport{TLSClientConfig: a.CA().ClientConfig()}},
			Retry:     policy.RetryOptions{MaxRetries: -1}},
		DisableInstanceDiscovery: true})
	if err != nil {
		t.Fatal(err)
	}
	return spCredential{cred, entra.Spec{TenantID: tenant, ClientID: client, ClientSecret: secret}}
}

// TestCheckEntra: for each region check shows the credential that answered, the token's audience, expiry,
// tenant and principal, and for each failure its exact cause and fix; no token in the report.
func TestCheckEntra(t *testing.T) {
	a, err := entratest.StartAuthority()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	for _, app := range []entratest.App{
		{TenantID: homeTenant, ClientID: "sp-ok", Secret: "secret-ok"},
		{TenantID: homeTenant, ClientID: "sp-norole", Secret: "secret-norole"},
		{TenantID: otherTenant, ClientID: "sp-foreign", Secret: "secret-foreign"},
	} {
		a.AddApp(app)
	}
	users := []string{entratest.ObjectIDFor("sp-ok"), entratest.ObjectIDFor("sp-foreign")}
	mk := func(name string, local bool) sim.RegionConfig {
		return sim.RegionConfig{Name: name, TenantID: homeTenant, OpenAIUsers: users, DisableLocalAuth: local, Deployments: sim.DefaultDeployments()}
	}
	s, err := sim.Start(sim.Config{APIKey: "region-key", Entra: &sim.Entra{Keys: a.PublicKey},
		Regions: []sim.RegionConfig{mk("ok", false), mk("norole", false), mk("foreign", false), mk("nokeys", true), mk("badsecret", false)}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// A resource whose clock is an hour ahead of this host's: the token looks expired to it.
	late, err := sim.Start(sim.Config{APIKey: "region-key", Entra: &sim.Entra{Keys: a.PublicKey},
		Now: func() time.Time { return time.Now().Add(time.Hour + 10*time.Minute) }, Regions: []sim.RegionConfig{mk("skewed", false)}})
	if err != nil {
		t.Fatal(err)
	}
	defer late.Close()
	dep := map[string]string{"gpt-4o": "gpt-4o"}
	regions := []Region{
		{Name: "ok", Endpoint: s.Region("ok").URL(), Credential: newSP(t, a, homeTenant, "sp-ok", "secret-ok"), Deployments: dep},
		{Name: "norole", Endpoint: s.Region("norole").URL(), Credential: newSP(t, a, homeTenant, "sp-norole", "secret-norole"), Deployments: dep},
		{Name: "foreign", Endpoint: s.Region("foreign").URL(), Credential: newSP(t, a, otherTenant, "sp-foreign", "secret-foreign"), Deployments: dep},
		{Name: "nokeys", Endpoint: s.Region("nokeys").URL(), APIKey: "region-key", Deployments: dep},
		{Name: "badsecret", Endpoint: s.Region("badsecret").URL(), Credential: newSP(t, a, homeTenant, "sp-ok", "not-the-secret"), Deployments: dep},
		{Name: "skewed", Endpoint: late.Region("skewed").URL(), Credential: newSP(t, a, homeTenant, "sp-ok", "secret-ok"), Deployments: dep},
	}
	rep := Run(context.Background(), regions, Options{Timeout: 5 * time.Second})
	by := map[string]RegionResult{}
	for _, r := range rep.Regions {
		by[r.Name] = r
	}

	ok := by["ok"].Auth
	if !ok.OK || ok.Entra == nil || ok.Entra.Credential != "ClientSecretCredential" || ok.Entra.Audience != entratest.Audience ||
		ok.Entra.TenantID != homeTenant || ok.Entra.ObjectID != entratest.ObjectIDFor("sp-ok") || ok.Entra.AppID != "sp-ok" ||
		ok.Entra.ExpiresAt == nil || time.Until(*ok.Entra.ExpiresAt) < 50*time.Minute ||
		ok.Entra.Identity != "service principal sp-ok in tenant "+homeTenant {
		t.Errorf("ok: %+v %+v", ok, ok.Entra)
	}
	for _, c := range []struct {
		region       string
		kind         aoai.Kind
		message, fix string
	}{
		{"norole", aoai.KindMissingRole, "principal " + entratest.ObjectIDFor("sp-norole"), `--assignee-object-id ` + entratest.ObjectIDFor("sp-norole")},
		{"foreign", aoai.KindWrongTenant, "the token is from tenant " + otherTenant, "tenant_id"},
		{"nokeys", aoai.KindKeyAuthDisabled, "Key based authentication is disabled", "entra:"},
		{"badsecret", aoai.Kind(entra.ProblemBadSecret), "AADSTS7000215", "client_secret"},
		{"skewed", KindClockSkew, "ahead of this host's", "NTP"},
	} {
		got := by[c.region].Auth
		if got.OK || got.Kind != c.kind || !strings.Contains(got.Message, c.message) || !strings.Contains(got.Fix, c.fix) {
			t.Errorf("%s: kind %q message %q fix %q", c.region, got.Kind, got.Message, got.Fix)
		}
	}
	if f := by["norole"].Auth.Fix; !strings.Contains(f, "Cognitive Services OpenAI User") {
		t.Errorf("missing role fix %q", f)
	}
	found := map[string]bool{}
	for _, f := range rep.Findings {
		if f.Kind == KindAuth {
			found[f.Region] = true
		}
	}
	for _, r := range []string{"norole", "foreign", "nokeys", "badsecret", "skewed"} {
		if !found[r] {
			t.Errorf("no auth finding for %s: %+v", r, rep.Findings)
		}
	}
	var js, text bytes.Buffer
	rep.WriteJSON(&js)
	rep.WriteText(&text)
	for _, is := range a.Issued() {
		if strings.Contains(js.String()+text.String(), is.Token[strings.LastIndexByte(is.Token, '.')+1:]) {
			t.Fatal("the report shows a token")
		}
	}
	for _, secret := range []string{"secret-ok", "secret-norole", "secret-foreign", "not-the-secret", "region-key"} {
		if strings.Contains(js.String()+text.String(), secret) {
			t.Errorf("the report shows the secret %q", secret)
		}
	}
	if out := text.String(); !strings.Contains(out, "ENTRA") || !strings.Contains(out, "ClientSecretCredential") || !strings.Contains(out, entratest.Audience) {
		t.Errorf("text report:\n%s", out)
	}
}
