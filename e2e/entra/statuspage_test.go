package entra_test

import (
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/lifeline-sre/lifeline/internal/browsertest"
	"github.com/lifeline-sre/lifeline/internal/entratest"
)

// TestStatusPageEntra opens the status page of a gateway whose regions sign in with Entra ID, in headless
// Chromium: westus's card says its token is valid and when it expires; eastus, whose client secret the authority
// refuses, is shown as no-token (not healthy, although its breaker has seen nothing) and says why and what to do.
// The page shows no secret and no token.
func TestStatusPageEntra(t *testing.T) {
	w := newWorld(t)
	w.a.AddApp(entratest.App{TenantID: tenantA, ClientID: "sp-east", Secret: "sp-secret-east"})
	w.a.AddApp(entratest.App{TenantID: tenantA, ClientID: "sp-west", Secret: "sp-secret-west"})
	s := w.sims(region("eastus", tenantA, "sp-east"), region("westus", tenantA, "sp-west"))
	regions := regionYAML("eastus", s.Region("eastus").URL(), 1, "{tenant_id: "+tenantA+", client_id: sp-east, client_secret: \"${EAST}\"}") +
		regionYAML("westus", s.Region("westus").URL(), 2, "{tenant_id: "+tenantA+", client_id: sp-west, client_secret: \"${WEST}\"}")
	g := w.serve(regions, "", "EAST=not-the-secret", "WEST=sp-secret-west")
	g.waitLog("entra: token obtained", map[string]string{"region": "westus"}, 20*time.Second)
	g.waitLog("entra: no token", map[string]string{"region": "eastus"}, 20*time.Second)

	ctx, cancel := browsertest.Open(t, 1280, 900)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Navigate(g.AdminURL+"/status?key="+adminKey)); err != nil {
		t.Fatalf("opening the status page: %v", err)
	}
	west, east := browsertest.Field("westus", "entra"), browsertest.Field("eastus", "entra")
	browsertest.WaitJS(t, ctx, "westus's valid token and its expiry",
		west+`.includes("service principal sp-west") && `+west+`.includes("token valid") && /expires in \d+m/.test(`+west+`)`, 20*time.Second)
	browsertest.WaitJS(t, ctx, "eastus without a token, why and the fix",
		browsertest.Field("eastus", "state")+` === "no-token" && `+browsertest.Field("eastus", "reason")+`.includes("no valid Entra ID token") && `+
			east+`.includes("no valid token") && `+east+`.includes("fix: ") && `+
			`document.querySelector('.card[data-region="eastus"] [data-field="entra"]').classList.contains("bad")`, 20*time.Second)
	text := browsertest.PageText(ctx)
	t.Logf("eastus: %s", browsertest.Eval[string](t, ctx, east))
	w.assertNoSecret("the status page", text, w.secrets("sp-secret-east", "sp-secret-west", "not-the-secret"))
	browsertest.Screenshot(t, ctx, "../..", "status-entra.png")
}
