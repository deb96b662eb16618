package entra_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/lifeline-sre/lifeline/internal/entratest"
)

// TestCheck runs `lifeline check` as an operator would, on a machine whose DefaultAzureCredential finds no
// identity at all (no variables, IMDS answers "Identity not found", no az): per region it shows the credential
// that answered, the token's audience and expiry, or the exact cause and fix; --json holds no token or secret.
func TestCheck(t *testing.T) {
	w := newWorld(t)
	w.a.AddApp(entratest.App{TenantID: tenantA, ClientID: "sp-east", Secret: "sp-secret-east"})
	w.mi.AddUser(entratest.Identity{TenantID: tenantA, ClientID: "uami-west"})
	s := w.sims(region("eastus", tenantA, "sp-east"), region("westus", tenantA, "uami-west"), region("northeurope", tenantA),
		region("francecentral", tenantA))
	regions := regionYAML("eastus", s.Region("eastus").URL(), 1, `{tenant_id: `+tenantA+`, client_id: sp-east, client_secret: "${EAST}"}`) +
		regionYAML("westus", s.Region("westus").URL(), 2, "{managed_identity_client_id: uami-west}") +
		regionYAML("northeurope", s.Region("northeurope").URL(), 2, "{}") +
		regionYAML("francecentral", s.Region("francecentral").URL(), 3, "{managed_identity_client_id: uami-unassigned}")
	rep, out := w.check(regions, "EAST=sp-secret-east")
	auth := map[string]map[string]any{}
	for _, r := range rep["regions"].([]any) {
		r := r.(map[string]any)
		auth[r["name"].(string)] = r["auth"].(map[string]any)
	}
	entraOf := func(region string) map[string]any {
		e, _ := auth[region]["entra"].(map[string]any)
		return e
	}
	for region, source := range map[string]string{"eastus": "ClientSecretCredential", "westus": "ManagedIdentityCredential (IMDS)"} {
		e := entraOf(region)
		if auth[region]["ok"] != true || e["credential"] != source || e["audience"] != entratest.Audience || e["expires_at"] == nil {
			t.Errorf("%s: %v", region, auth[region])
		}
	}
	for region, want := range map[string]struct{ kind, message, fix string }{
		"northeurope":   {"no_identity", "DefaultAzureCredential found no identity", "workload identity"},
		"francecentral": {"not_assigned", "managed identity uami-unassigned is not assigned", "assign the identity"},
	} {
		a := auth[region]
		if a["ok"] != false || a["kind"] != want.kind || !strings.Contains(fmt.Sprint(a["message"]), want.message) ||
			!strings.Contains(fmt.Sprint(a["fix"]), want.fix) {
			t.Errorf("%s: %v", region, a)
		}
	}
	for _, want := range []string{"ENTRA", "ClientSecretCredential", "ManagedIdentityCredential (IMDS)", "no_identity", "not_assigned"} {
		if !strings.Contains(out, want) {
			t.Errorf("the text report lacks %q:\n%s", want, out)
		}
	}
	w.assertNoSecret("lifeline check", out, w.secrets("sp-secret-east"))
}
