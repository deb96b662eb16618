package entra_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lifeline-sre/lifeline/internal/entratest"
	"github.com/lifeline-sre/lifeline/sim"
)

const (
	tenantA = "aaaaaaaa-1111-4111-8111-aaaaaaaaaaaa"
	tenantB = "bbbbbbbb-2222-4222-8222-bbbbbbbbbbbb"
)

// region is a simulated resource that accepts only the given principals' tokens, from its tenant.
func region(name, tenant string, principals ...string) sim.RegionConfig {
	var oids []string
	for _, p := range principals {
		oids = append(oids, entratest.ObjectIDFor(p))
	}
	return sim.RegionConfig{Name: name, TenantID: tenant, OpenAIUsers: oids, Deployments: sim.DefaultDeployments()}
}

// regionYAML is one region in block style; entra is a flow mapping whose ${VAR} values are quoted.
func regionYAML(name, endpoint string, priority int, entra string) string {
	return fmt.Sprintf("  - name: %s\n    endpoint: %s\n    priority: %d\n    entra: %s\n    deployments: {gpt-4o: gpt-4o}\n",
		name, endpoint, priority, entra)
}

// wayIn proves one way in through the gateway and through the library: requests succeed with the region's
// token, the log names the identity and the credential that answered, and no secret or token shows anywhere.
func wayIn(t *testing.T, w *world, s *sim.Sim, entra, wantSource string, env ...string) {
	t.Helper()
	regions := regionYAML("eastus", s.Region("eastus").URL(), 1, entra)
	g := w.serve(regions, "", env...)
	for range 3 {
		if region, status, err := g.chat("gpt-4o"); err != nil || status != 200 || region != "eastus" {
			t.Fatalf("through the gateway: %s %d %v\n%s", region, status, err, g.Logs())
		}
	}
	rec := g.waitLog("entra: token obtained", map[string]string{"region": "eastus"}, 10*time.Second)
	if rec["credential"] != wantSource {
		t.Errorf("credential %v, want %s", rec["credential"], wantSource)
	}
	if exp, _ := time.Parse(time.RFC3339, fmt.Sprint(rec["expires_at"])); time.Until(exp) < 50*time.Minute {
		t.Errorf("expires_at %v", rec["expires_at"])
	}
	regionsJSON := g.admin("GET", "/admin/regions")
	if !strings.Contains(regionsJSON, wantSource) {
		t.Errorf("/admin/regions does not name the credential:\n%s", regionsJSON)
	}
	for _, r := range w.library(regions, []string{"gpt-4o", "gpt-4o"}, env...) {
		if r.Status != 200 || r.Region != "eastus" {
			t.Errorf("through the library: %+v", r)
		}
	}
	secrets := w.secrets("sp-secret-east", "sp-secret-west")
	w.assertNoSecret("the gateway's log", g.Logs(), secrets)
	w.assertNoSecret("/admin/regions", regionsJSON, secrets)
	w.assertNoSecret("/metrics", g.admin("GET", "/metrics"), secrets)
	w.assertNoSecret("/status", g.admin("GET", "/status"), secrets)
}

func TestServicePrincipal(t *testing.T) {
	w := newWorld(t)
	w.a.AddApp(entratest.App{TenantID: tenantA, ClientID: "sp-east", Secret: "sp-secret-east"})
	s := w.sims(region("eastus", tenantA, "sp-east"))
	wayIn(t, w, s, "{tenant_id: "+tenantA+", client_id: sp-east, client_secret: \"${EAST_SECRET}\"}", "ClientSecretCredential",
		"EAST_SECRET=sp-secret-east")
	if got := w.a.Issued(); len(got) == 0 || got[0].Via != "secret" || got[0].ClientID != "sp-east" {
		t.Errorf("issued %+v", got)
	}
}

// TestDefaultCredentialManagedIdentity: `entra: {}` on App Service or Container Apps (IDENTITY_ENDPOINT and
// IDENTITY_HEADER) resolves to the system-assigned managed identity.
func TestDefaultCredentialManagedIdentity(t *testing.T) {
	w := newWorld(t)
	w.mi.SetSystem(&entratest.Identity{TenantID: tenantA, ClientID: "system-mi"})
	s := w.sims(region("eastus", tenantA, "system-mi"))
	wayIn(t, w, s, "{}", "ManagedIdentityCredential (AppService)", w.mi.AppServiceEnv()...)
}

// TestDefaultCredentialIMDS: `entra: {}` on a VM, a scale set or an AKS node resolves to IMDS.
func TestDefaultCredentialIMDS(t *testing.T) {
	w := newWorld(t)
	w.mi.SetSystem(&entratest.Identity{TenantID: tenantA, ClientID: "vm-mi"})
	s := w.sims(region("eastus", tenantA, "vm-mi"))
	wayIn(t, w, s, "{}", "ManagedIdentityCredential (IMDS)")
}

// TestDefaultCredentialEnvironment: `entra: {}` with a service principal in AZURE_TENANT_ID, AZURE_CLIENT_ID and
// AZURE_CLIENT_SECRET (EnvironmentCredential, first in the chain).
func TestDefaultCredentialEnvironment(t *testing.T) {
	w := newWorld(t)
	w.a.AddApp(entratest.App{TenantID: tenantA, ClientID: "sp-env", Secret: "sp-secret-east"})
	w.mi.SetSystem(&entratest.Identity{TenantID: tenantA, ClientID: "vm-mi"}) // there too, but later in the chain
	s := w.sims(region("eastus", tenantA, "sp-env"))
	wayIn(t, w, s, "{}", "EnvironmentCredential",
		"AZURE_TENANT_ID="+tenantA, "AZURE_CLIENT_ID=sp-env", "AZURE_CLIENT_SECRET=sp-secret-east")
}

// TestDefaultCredentialWorkloadIdentity: `entra: {}` in an AKS pod with workload identity: the webhook's
// variables and the projected service-account token.
func TestDefaultCredentialWorkloadIdentity(t *testing.T) {
	w := newWorld(t)
	const sa = "system:serviceaccount:ai:lifeline"
	w.a.AddApp(entratest.App{TenantID: tenantA, ClientID: "wi-app", Federated: []entratest.Federation{{Issuer: w.cluster.Issuer, Subject: sa}}})
	file := filepath.Join(w.dir, "azure-identity-token")
	if err := w.cluster.WriteToken(file, sa, time.Hour); err != nil {
		t.Fatal(err)
	}
	// A system identity on the node too: workload identity comes first in the chain, as in a real pod.
	w.mi.SetSystem(&entratest.Identity{TenantID: tenantA, ClientID: "node-mi"})
	s := w.sims(region("eastus", tenantA, "wi-app"))
	wayIn(t, w, s, "{}", "WorkloadIdentityCredential",
		"AZURE_CLIENT_ID=wi-app", "AZURE_TENANT_ID="+tenantA, "AZURE_FEDERATED_TOKEN_FILE="+file)
	for _, is := range w.a.Issued() {
		if is.Via != "assertion" {
			t.Errorf("a token came from %s, not from the federated assertion", is.Via)
		}
	}
}

// TestUserAssignedManagedIdentity: entra.managed_identity_client_id picks one of the identities assigned to the
// machine, through IMDS.
func TestUserAssignedManagedIdentity(t *testing.T) {
	w := newWorld(t)
	w.mi.SetSystem(&entratest.Identity{TenantID: tenantA, ClientID: "vm-system"})
	w.mi.AddUser(entratest.Identity{TenantID: tenantA, ClientID: "uami-openai"})
	w.mi.AddUser(entratest.Identity{TenantID: tenantA, ClientID: "uami-other"})
	s := w.sims(region("eastus", tenantA, "uami-openai"))
	wayIn(t, w, s, "{managed_identity_client_id: uami-openai}", "ManagedIdentityCredential (IMDS)")
	for _, is := range w.a.Issued() {
		if is.ClientID != "uami-openai" {
			t.Errorf("a token for %s", is.ClientID)
		}
	}
}

// TestIdentityPerRegion: two regions, two tenants, two service principals in one config; each region gets a
// token of its own identity (the simulated resources refuse any other: a token from the other tenant gets 400).
func TestIdentityPerRegion(t *testing.T) {
	w := newWorld(t)
	w.a.AddApp(entratest.App{TenantID: tenantA, ClientID: "sp-east", Secret: "sp-secret-east"})
	w.a.AddApp(entratest.App{TenantID: tenantB, ClientID: "sp-west", Secret: "sp-secret-west"})
	s := w.sims(region("eastus", tenantA, "sp-east"), region("westus", tenantB, "sp-west"))
	regions := regionYAML("eastus", s.Region("eastus").URL(), 1, "{tenant_id: "+tenantA+", client_id: sp-east, client_secret: \"${EAST}\"}") +
		regionYAML("westus", s.Region("westus").URL(), 1, "{tenant_id: "+tenantB+", client_id: sp-west, client_secret: \"${WEST}\"}")
	env := []string{"EAST=sp-secret-east", "WEST=sp-secret-west"}
	g := w.serve(regions, "policy: {routing: weighted}\n", env...)
	seen := map[string]int{}
	for range 20 {
		region, status, err := g.chat("gpt-4o")
		if err != nil || status != 200 {
			t.Fatalf("%s %d %v\n%s", region, status, err, g.Logs())
		}
		seen[region]++
	}
	if seen["eastus"] == 0 || seen["westus"] == 0 {
		t.Errorf("answers by region %v; want both", seen)
	}
	byClient := map[string]string{}
	for _, is := range w.a.Issued() {
		byClient[is.ClientID] = is.TenantID
	}
	if byClient["sp-east"] != tenantA || byClient["sp-west"] != tenantB || len(byClient) != 2 {
		t.Errorf("tokens issued %v", byClient)
	}
	res := w.library(regions, []string{"gpt-4o", "gpt-4o", "gpt-4o", "gpt-4o"}, env...)
	for _, r := range res {
		if r.Status != 200 {
			t.Errorf("library: %+v", r)
		}
	}
	secrets := w.secrets("sp-secret-east", "sp-secret-west")
	w.assertNoSecret("the gateway's log", g.Logs(), secrets)
}
