package entra_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lifeline-sre/lifeline/internal/entratest"
)

// TestRefreshAndAuthorityOutage follows eastus's token through its life with short-lived tokens (20s, renewed 5s
// before they expire and used until 2.5s before):
//
//  1. the refresh starts before expiry while the authority is holding every request (accepts, never answers):
//     requests keep being answered by eastus with the held token, none waits on the authority;
//  2. the authority goes down and the token expires: eastus's attempts fail at once as auth_error and every
//     request is answered by westus, whose identity (a managed identity through IMDS) still works; the log says
//     so once, naming the identity and the cause;
//  3. the authority comes back: eastus gets a token again by itself and takes its traffic back.
func TestRefreshAndAuthorityOutage(t *testing.T) {
	w := newWorld(t)
	w.a.SetLifetime(20 * time.Second)
	w.a.AddApp(entratest.App{TenantID: tenantA, ClientID: "sp-east", Secret: "sp-secret-east"})
	w.mi.AddUser(entratest.Identity{TenantID: tenantA, ClientID: "uami-west"})
	s := w.sims(region("eastus", tenantA, "sp-east"), region("westus", tenantA, "uami-west"))
	regions := regionYAML("eastus", s.Region("eastus").URL(), 1, "{tenant_id: "+tenantA+", client_id: sp-east, client_secret: \"${EAST}\"}") +
		regionYAML("westus", s.Region("westus").URL(), 2, "{managed_identity_client_id: uami-west}")
	// A short open_for so that failback fits in a test; everything else is the default policy. Debug logs, so
	// that the per-attempt lines are checked for secrets too.
	g := w.serve(regions, "policy: {breaker: {open_for: 2s}}\nlogging: {level: debug}\n", "EAST=sp-secret-east")
	g.waitLog("entra: token obtained", map[string]string{"region": "eastus"}, 10*time.Second)
	g.waitLog("entra: token obtained", map[string]string{"region": "westus"}, 10*time.Second)

	// 1. The authority holds every request from now on; eastus's token is refreshed a quarter of its life
	// before it expires, in the background.
	w.a.Hold()
	exp := lastExpiry(t, w.a, "sp-east")
	tokenHits := w.a.Hits("token")
	served, afterRefresh := 0, 0
	// Until the renewal has reached the held authority and a few requests went on after it, or until the
	// token's last usable seconds (a renewal timer late by more than 2s on a loaded machine fails the test).
	for time.Until(exp) > 3*time.Second && afterRefresh < 5 {
		if w.a.Hits("token") > tokenHits {
			afterRefresh++
		}
		// A request that waited on the held authority would give up after timeouts.connect and go to westus.
		region, status, err := g.chat("gpt-4o")
		if err != nil || status != 200 || region != "eastus" {
			t.Fatalf("with a valid token held: %s %d %v (%s before expiry)\n%s", region, status, err, time.Until(exp), g.Logs())
		}
		served++
		time.Sleep(100 * time.Millisecond)
	}
	if afterRefresh == 0 {
		t.Fatalf("no renewal reached the authority 3s before expiry (served %d)", served)
	}

	// 2. Down, and the token runs out.
	w.a.Down()
	time.Sleep(time.Until(exp) + 200*time.Millisecond)
	for i := range 20 {
		region, status, err := g.chat("gpt-4o")
		if err != nil || status != 200 || region != "westus" {
			t.Fatalf("request %d after eastus's token expired: %s %d %v\n%s", i, region, status, err, g.Logs())
		}
	}
	// The log says it once, not once per request: which region, which identity, why.
	var errs []map[string]any
	for _, rec := range g.logLines("entra: no token") {
		if rec["region"] == "eastus" {
			errs = append(errs, rec)
		}
	}
	if len(errs) != 1 {
		t.Fatalf("%d 'entra: no token' lines for eastus, want 1:\n%s", len(errs), g.Logs())
	}
	e := errs[0]
	if e["level"] != "ERROR" || e["identity"] != "service principal sp-east in tenant "+tenantA ||
		e["problem"] != "unreachable" || !strings.Contains(fmt.Sprint(e["cause"]), "/oauth2/v2.0/token") {
		t.Errorf("the outage line: %v", e)
	}
	if len(g.logLines("entra: token refresh failed")) != 1 {
		t.Errorf("want one warning while the held token was still valid:\n%s", g.Logs())
	}
	var view struct {
		Regions []struct {
			Name  string
			Entra *struct{ State, Problem, Identity string }
		}
	}
	json.Unmarshal([]byte(g.admin("GET", "/admin/regions")), &view)
	if len(view.Regions) != 2 || view.Regions[0].Entra == nil || view.Regions[0].Entra.State != "unavailable" || view.Regions[0].Entra.Problem != "unreachable" {
		t.Errorf("/admin/regions: %+v", view)
	}

	// 3. The authority is back: eastus gets a token on its own and its traffic back.
	if err := w.a.Up(); err != nil {
		t.Fatal(err)
	}
	g.waitLog("entra: token obtained again", map[string]string{"region": "eastus"}, 40*time.Second)
	deadline := time.Now().Add(30 * time.Second)
	for {
		region, status, err := g.chat("gpt-4o")
		if err == nil && status == 200 && region == "eastus" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("eastus did not take its traffic back: last answer %s %d %v\n%s", region, status, err, g.Logs())
		}
		time.Sleep(200 * time.Millisecond)
	}
	w.assertNoSecret("the gateway's log", g.Logs(), w.secrets("sp-secret-east"))
}

func lastExpiry(t *testing.T, a *entratest.Authority, clientID string) time.Time {
	t.Helper()
	var exp time.Time
	for _, is := range a.Issued() {
		if is.ClientID == clientID && is.ExpiresOn.After(exp) {
			exp = is.ExpiresOn
		}
	}
	if exp.IsZero() {
		t.Fatalf("no token issued to %s", clientID)
	}
	return exp
}
