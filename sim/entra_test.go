package sim

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lifeline-sre/lifeline/internal/entratest"
)

// TestEntraTokens: every way Azure OpenAI refuses an Entra token, with its own status and body, and the tokens it
// accepts, on both path shapes.
func TestEntraTokens(t *testing.T) {
	a, err := entratest.StartAuthority()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	const home, other = "11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222"
	user, stranger := entratest.ObjectIDFor("app-user"), entratest.ObjectIDFor("app-stranger")
	s := startSim(t, Config{
		Entra: &Entra{Keys: a.PublicKey, ClockSkew: -1},
		Regions: []RegionConfig{
			{Name: "eastus", TenantID: home, OpenAIUsers: []string{strings.ToUpper(user)}, DisableLocalAuth: true},
			{Name: "westus"}, // any tenant, any principal
		},
	})
	now := time.Now()
	mint := func(mut func(*entratest.Claims), foreign bool) string {
		c := entratest.Claims{TenantID: home, ObjectID: user, ClientID: "app-user", IssuedAt: now, NotBefore: now, ExpiresOn: now.Add(time.Hour)}
		if mut != nil {
			mut(&c)
		}
		return a.Mint(c, foreign)
	}
	good := mint(nil, false)
	invalid := string(tokenInvalidBody)
	cases := []struct {
		name, region, token string
		status              int
		body                string
	}{
		{"good", "eastus", good, 200, ""},
		{"trailing slash audience", "eastus", mint(func(c *Claims) { c.Audience = "https://cognitiveservices.azure.com/" }, false), 200, ""},
		{"expired", "eastus", mint(func(c *Claims) { c.ExpiresOn = now.Add(-time.Second) }, false), 401, invalid},
		{"not yet valid", "eastus", mint(func(c *Claims) { c.NotBefore = now.Add(time.Hour) }, false), 401, invalid},
		{"other audience", "eastus", mint(func(c *Claims) { c.Audience = "https://management.azure.com" }, false), 401, invalid},
		{"foreign signature", "eastus", mint(nil, true), 401, invalid},
		{"truncated", "eastus", good[:len(good)-5], 401, invalid},
		{"other tenant", "eastus", mint(func(c *Claims) { c.TenantID = other }, false), 400,
			`{"error":{"code":"Tenant provided in token does not match resource token","message":"Token tenant ` + other + ` does not match resource tenant."}}`},
		{"no role", "eastus", mint(func(c *Claims) { c.ObjectID = stranger }, false), 401,
			`{"error":{"code":"PermissionDenied","message":"Principal does not have access to API/Operation."}}`},
		{"other tenant where any is fine", "westus", mint(func(c *Claims) { c.TenantID = other; c.ObjectID = stranger }, false), 200, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := s.Region(tc.region)
			for _, shape := range []struct{ url, body string }{
				{chatURL(r, "gpt-4o"), hello},
				{r.URL() + "/openai/v1/chat/completions", `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`},
			} {
				resp, b := send(t, s.Client(), "POST", shape.url, shape.body, map[string]string{
					"Content-Type": "application/json", "Authorization": "Bearer " + tc.token})
				if resp.StatusCode != tc.status || (tc.body != "" && string(b) != tc.body) {
					t.Errorf("%s: %d %s, want %d %s", shape.url, resp.StatusCode, b, tc.status, tc.body)
				}
			}
		})
	}
	// Clock skew: within the tolerance an expired token still passes, as Azure's validation allows.
	lenient := startSim(t, Config{Entra: &Entra{Keys: a.PublicKey}, Regions: DefaultRegions("eastus")})
	tok := mint(func(c *entratest.Claims) { c.ExpiresOn = now.Add(-time.Minute) }, false)
	resp, b := send(t, lenient.Client(), "POST", chatURL(lenient.Region("eastus"), "gpt-4o"), hello,
		map[string]string{"Content-Type": "application/json", "Authorization": "Bearer " + tok})
	if resp.StatusCode != http.StatusOK {
		t.Errorf("a token expired a minute ago, 5 minutes of skew allowed: %d %s", resp.StatusCode, b)
	}
}

// Claims is a shorthand for the table above.
type Claims = entratest.Claims
