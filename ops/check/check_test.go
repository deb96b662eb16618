package check

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lifeline-sre/lifeline/ops/aoai"
	"github.com/lifeline-sre/lifeline/ops/internal/simtest"
	"github.com/lifeline-sre/lifeline/sim"
)

// gappySim starts regions with deliberate gaps and a fine-tuned model in eastus only.
func gappySim(t *testing.T) (*sim.Sim, string) {
	s := simtest.Start(t, sim.Config{FineTuneDuration: 50 * time.Millisecond, Regions: []sim.RegionConfig{
		{Name: "eastus", Deployments: []sim.Deployment{
			{Name: "gpt-4o", Model: "gpt-4o", Version: "2024-11-20"},
			{Name: "embed", Model: "text-embedding-3-small", Version: "1"}}},
		{Name: "westus", Deployments: []sim.Deployment{
			{Name: "gpt-4o", Model: "gpt-4o", Version: "2024-08-06"}}}, // older version, no embed
		{Name: "swedencentral", Deployments: sim.DefaultDeployments()},
		{Name: "francecentral", DisableLocalAuth: true},
	}})
	east := s.Region("eastus").URL()
	j := simtest.WaitJob(t, east, simtest.CreateJob(t, east, map[string]any{
		"model": "gpt-4o-mini-2024-07-18", "training_file": simtest.Upload(t, east, "t.jsonl", `{"messages":[{"role":"user","content":"x"}]}`)}).ID)
	if err := s.AddDeployment("eastus", sim.Deployment{Name: j.FineTunedModel, Model: j.FineTunedModel, Version: "1"}); err != nil {
		t.Fatal(err)
	}
	return s, j.FineTunedModel
}

func TestRunFindsDeliberateGaps(t *testing.T) {
	s, ft := gappySim(t)
	url := func(n string) string { return s.Region(n).URL() }
	regions := []Region{
		{Name: "eastus", Endpoint: url("eastus"), APIKey: simtest.Key, Priority: 1,
			Deployments: map[string]string{"gpt-4o": "gpt-4o", "embed": "embed", "support-bot": ft}},
		{Name: "westus", Endpoint: url("westus"), Credential: simtest.Cred{Token: simtest.Token}, Priority: 2,
			Deployments: map[string]string{"gpt-4o": "gpt-4o", "embed": "embed",
				"support-bot": "gpt-4o-mini-2024-07-18.ft-00000000000000000000000000000000"}}, // never trained here
		{Name: "swedencentral", Endpoint: url("swedencentral"), APIKey: "wrong-key-123", Priority: 2,
			Deployments: map[string]string{"gpt-4o": "gpt-4o"}},
		{Name: "francecentral", Endpoint: url("francecentral"), APIKey: simtest.Key, Priority: 3,
			Deployments: map[string]string{"gpt-4o": "gpt-4o"}},
	}
	for _, probe := range []bool{false, true} {
		rep := Run(context.Background(), regions, Options{Probe: probe, Timeout: 5 * time.Second})
		got := map[string]Finding{}
		for _, f := range rep.Findings {
			got[f.Kind+"/"+f.Region+"/"+f.Name] = f
			if f.Fix == "" {
				t.Errorf("probe=%v: finding without a fix: %+v", probe, f)
			}
		}
		want := []string{
			KindAuth + "/swedencentral/", KindAuth + "/francecentral/",
			KindDeployment + "/westus/embed", KindNoWorkingBackup + "//embed",
			KindFineTunedMissing + "/westus/support-bot", KindNoWorkingBackup + "//support-bot",
			KindFineTunedMissing + "/swedencentral/support-bot",
		}
		if probe { // without --probe, a deployment named "gpt-4o" does not say which version it serves
			want = append(want, KindVersionMismatch+"//gpt-4o")
		} else if _, ok := got[KindVersionMismatch+"//gpt-4o"]; ok {
			t.Errorf("version mismatch without --probe")
		}
		for _, k := range want {
			if _, ok := got[k]; !ok {
				t.Errorf("probe=%v: missing %s in %v", probe, k, keys(got))
			}
		}
		if f := got[KindFineTunedMissing+"/westus/support-bot"]; f.Severity != Error || !strings.Contains(f.Fix, "finetune replicate") {
			t.Errorf("missing fine-tuned model: %+v", f)
		}
		if f := got[KindAuth+"/swedencentral/"]; f.Severity != Error || !strings.Contains(f.Message, "wrong_key") || strings.Contains(f.Message, "wrong-key-123") {
			t.Errorf("wrong key finding: %+v", f)
		}
		if f := got[KindAuth+"/francecentral/"]; !strings.Contains(f.Message, "key_auth_disabled") || !strings.Contains(f.Fix, "entra") {
			t.Errorf("key auth disabled finding: %+v", f)
		}
		if f := got[KindVersionMismatch+"//gpt-4o"]; probe && (!strings.Contains(f.Message, "westus: gpt-4o 2024-08-06") || !strings.Contains(f.Message, "eastus: gpt-4o 2024-11-20")) {
			t.Errorf("probe=%v version finding: %+v", probe, f)
		}
		if rep.ExitCode() != 2 {
			t.Errorf("exit %d", rep.ExitCode())
		}
		east := rep.Regions[0]
		if east.ConnectMs == nil || east.DNSMs != nil || !east.Auth.OK || !contains(east.Models, ft) {
			t.Errorf("eastus result %+v", east)
		}
		var embed DeploymentResult
		for _, d := range east.Deployments {
			if d.Name == "embed" {
				embed = d
			}
		}
		if probe && (embed.Status != StatusOK || embed.Model != "text-embedding-3-small") {
			t.Errorf("embeddings probe: %+v", embed)
		}
		var sb strings.Builder
		rep.WriteText(&sb)
		t.Logf("probe=%v\n%s", probe, sb.String())
		for _, w := range []string{"PARITY", "✗ missing", "fine-tuned gpt-4o-mini-2024-07-18", "FAILED: wrong_key", "exit 2"} {
			if !strings.Contains(sb.String(), w) {
				t.Errorf("text lacks %q:\n%s", w, sb.String())
			}
		}
	}
}

func keys(m map[string]Finding) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestRunAllGood(t *testing.T) {
	s := simtest.Start(t, sim.Config{Regions: sim.DefaultRegions("eastus", "westus")})
	var regions []Region
	for i, n := range []string{"eastus", "westus"} {
		regions = append(regions, Region{Name: n, Endpoint: s.Region(n).URL(), APIKey: simtest.Key, Priority: i + 1,
			Deployments: map[string]string{"gpt-4o": "gpt-4o", "mini": "gpt-4o-mini"}})
	}
	rep := Run(context.Background(), regions, Options{Probe: true})
	if rep.ExitCode() != 0 {
		var sb strings.Builder
		rep.WriteText(&sb)
		t.Fatalf("want exit 0:\n%s", sb.String())
	}
	if c := rep.Parity[0].Regions["westus"]; c.Model != "gpt-4o" || c.Version != "2024-11-20" {
		t.Errorf("parity %+v", rep.Parity)
	}
	// A deployment that answers 429 exists but has no room for failover traffic.
	if err := s.Fault("westus", sim.Fault{Mode: sim.ModeThrottle, Deployment: "gpt-4o"}); err != nil {
		t.Fatal(err)
	}
	rep = Run(context.Background(), regions, Options{})
	if len(rep.Findings) != 1 || rep.Findings[0].Kind != KindDeploymentBusy || rep.Findings[0].Region != "westus" || rep.ExitCode() != 1 {
		t.Errorf("throttled: %+v", rep.Findings)
	}
}

func TestNetworkProbes(t *testing.T) {
	s := simtest.Start(t, sim.Config{TLS: true, Regions: sim.DefaultRegions("eastus")})
	tlsCfg := &tls.Config{RootCAs: s.CertPool()}
	ok := Region{Name: "eastus", Endpoint: s.Region("eastus").URL(), APIKey: simtest.Key, Deployments: map[string]string{"gpt-4o": "gpt-4o"}}
	r := probeRegion(context.Background(), ok, &Options{TLSConfig: tlsCfg, Timeout: 5 * time.Second, Now: time.Now, Resolver: net.DefaultResolver})
	if r.Network != "" || r.TLSMs == nil || r.Cert == nil || r.Cert.Error != "" || r.Cert.DaysLeft < 1 || !r.Auth.OK || r.Deployments[0].Status != StatusOK {
		t.Fatalf("tls region: %+v %+v", r, r.Cert)
	}
	// Without trust in the simulator's certificate the handshake works but the certificate is not valid.
	r = probeRegion(context.Background(), ok, &Options{Timeout: 5 * time.Second, Now: time.Now, Resolver: net.DefaultResolver})
	if r.Cert == nil || r.Cert.Error == "" {
		t.Fatalf("untrusted cert not reported: %+v", r.Cert)
	}
	if fs := oneRegion(r); len(fs) == 0 || fs[0].Kind != KindTLS {
		t.Errorf("findings %+v", fs)
	}
	// Expiring soon: look at the certificate from a year later.
	r = probeRegion(context.Background(), ok, &Options{TLSConfig: tlsCfg, Timeout: 5 * time.Second, Resolver: net.DefaultResolver,
		Now: func() time.Time { return r.Cert.NotAfter.Add(-48 * time.Hour) }})
	if fs := oneRegion(r); len(fs) != 1 || fs[0].Kind != KindCertExpiringSoon {
		t.Errorf("expiring cert findings %+v", fs)
	}

	// Connection refused: listen, then close.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "http://" + l.Addr().String()
	l.Close()
	r = probeRegion(context.Background(), Region{Name: "dead", Endpoint: dead}, &Options{Timeout: 2 * time.Second, Now: time.Now, Resolver: net.DefaultResolver})
	if !strings.HasPrefix(r.Network, "connect:") || !strings.Contains(r.Network, "refused") {
		t.Errorf("dead region: %q", r.Network)
	}
	// DNS failure, with a resolver that cannot reach any server.
	res := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
		return nil, errors.New("no DNS server in tests")
	}}
	r = probeRegion(context.Background(), Region{Name: "nxdomain", Endpoint: "https://contoso-nowhere.openai.azure.com"},
		&Options{Timeout: 2 * time.Second, Now: time.Now, Resolver: res})
	if !strings.HasPrefix(r.Network, "dns: contoso-nowhere.openai.azure.com") || r.DNSMs != nil {
		t.Errorf("dns failure: %q", r.Network)
	}
}

// A principal without the data-plane role gets 401 PermissionDenied: check says which role is missing.
func TestMissingRole(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(401)
		w.Write([]byte(`{"error":{"code":"PermissionDenied","message":"The principal ` + "`0000`" + ` lacks the required data action ` + "`Microsoft.CognitiveServices/accounts/OpenAI/models/read`" + `."}}`))
	}))
	defer srv.Close()
	rep := Run(context.Background(), []Region{{Name: "eastus", Endpoint: srv.URL, Credential: simtest.Cred{Token: "t"}}}, Options{})
	r := rep.Regions[0]
	if r.Auth.OK || r.Auth.Kind != aoai.KindMissingRole || !strings.Contains(r.Auth.Fix, "Cognitive Services OpenAI User") {
		t.Errorf("auth %+v", r.Auth)
	}
}

// With Resource Manager, check knows every deployment's model and version without spending a token.
func TestRunWithARMFindsVersionsWithoutTokens(t *testing.T) {
	s := simtest.Start(t, sim.Config{Regions: []sim.RegionConfig{
		{Name: "eastus", Deployments: []sim.Deployment{{Name: "chat", Model: "gpt-4o", Version: "2024-11-20"}}},
		{Name: "westus", Deployments: []sim.Deployment{{Name: "chat", Model: "gpt-4o", Version: "2024-08-06"}}},
	}})
	arm := httptest.NewServer(s.ControlHandler())
	defer arm.Close()
	const rg = "/subscriptions/sub-1/resourceGroups/rg-ai/providers/Microsoft.CognitiveServices/accounts/"
	var regions []Region
	for i, n := range []string{"eastus", "westus"} {
		regions = append(regions, Region{Name: n, Endpoint: s.Region(n).URL(), APIKey: simtest.Key, Priority: i + 1,
			Deployments: map[string]string{"gpt-4o": "chat"}})
	}
	opts := Options{ARM: &ARM{Endpoint: arm.URL, Credential: simtest.Cred{Token: simtest.Token},
		Resources: map[string]string{"eastus": rg + "contoso-eastus", "westus": rg + "contoso-westus"}}}
	rep := Run(context.Background(), regions, opts)
	if len(rep.Findings) != 1 || rep.Findings[0].Kind != KindVersionMismatch {
		t.Fatalf("findings %+v", rep.Findings)
	}
	if d := rep.Regions[1].Deployments[0]; d.Source != "arm" || d.ID.Version != "2024-08-06" || rep.Regions[1].ARM != "listed" {
		t.Errorf("westus %+v", rep.Regions[1])
	}
	for _, n := range []string{"eastus", "westus"} {
		if st := s.Region(n).Stats(); st.PromptTokens != 0 || st.CompletionTokens != 0 {
			t.Errorf("%s spent tokens: %+v", n, st)
		}
	}
	// A token that Resource Manager refuses is a warning; the data-plane checks still run.
	opts.ARM.Credential = simtest.Cred{Token: "expired"}
	rep = Run(context.Background(), regions, opts)
	if rep.ExitCode() != 1 || rep.Findings[0].Kind != KindARM || !strings.Contains(rep.Findings[0].Message, "InvalidAuthenticationToken") {
		t.Errorf("bad ARM token: %+v", rep.Findings)
	}
}
