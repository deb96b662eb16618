package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lifeline-sre/lifeline/sim"
)

const opsSimKey = "cli-test-key"

func opsSim(t *testing.T, cfg sim.Config) *sim.Sim {
	t.Helper()
	cfg.APIKey = opsSimKey
	if cfg.VerifyToken == nil {
		cfg.VerifyToken = func(tok string) bool { return tok == "cli-test-token" }
	}
	s, err := sim.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func opsConfigFile(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "lifeline.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func opsRun(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(args, &Env{Stdout: &out, Stderr: &errb, Context: context.Background(),
		Getenv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }})
	return code, out.String(), errb.String()
}

func opsTwoRegions(t *testing.T, westVersion string) *sim.Sim {
	return opsSim(t, sim.Config{Regions: []sim.RegionConfig{
		{Name: "eastus", Deployments: []sim.Deployment{{Name: "gpt-4o", Model: "gpt-4o", Version: "2024-11-20"}}},
		{Name: "westus", Deployments: []sim.Deployment{{Name: "gpt-4o", Model: "gpt-4o", Version: westVersion}}},
	}})
}

func opsCheckConfig(s *sim.Sim, westKey string) string {
	return `clients: [{name: app, key: client-key}]
regions:
  - name: eastus
    endpoint: ` + s.Region("eastus").URL() + `
    api_key: ${EAST_KEY}
    priority: 1
    deployments: {gpt-4o: gpt-4o}
  - name: westus
    endpoint: ` + s.Region("westus").URL() + `
    api_key: ` + westKey + `
    priority: 2
    deployments: {gpt-4o: gpt-4o}
`
}

func TestCheckExitCodes(t *testing.T) {
	env := map[string]string{"EAST_KEY": opsSimKey}
	good := opsTwoRegions(t, "2024-11-20")
	code, out, errOut := opsRun(t, env, "check", "--config", opsConfigFile(t, opsCheckConfig(good, opsSimKey)), "--probe")
	if code != 0 || !strings.Contains(out, "OK: every region can serve every name") || errOut != "" {
		t.Errorf("good config: exit %d\n%s%s", code, out, errOut)
	}
	drift := opsTwoRegions(t, "2024-08-06")
	code, out, _ = opsRun(t, env, "check", "--config", opsConfigFile(t, opsCheckConfig(drift, opsSimKey)), "--probe")
	if code != 1 || !strings.Contains(out, "westus: gpt-4o 2024-08-06") {
		t.Errorf("version drift: exit %d\n%s", code, out)
	}
	code, out, _ = opsRun(t, env, "check", "--config", opsConfigFile(t, opsCheckConfig(good, "not-the-key")), "--json")
	var rep struct {
		Regions []struct {
			Name string
			Auth struct {
				OK   bool
				Kind string
			}
		}
		Findings []struct{ Severity, Kind, Region string }
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	if code != 2 || rep.Regions[1].Auth.Kind != "wrong_key" || rep.Findings[0].Severity != "error" || strings.Contains(out, "not-the-key") {
		t.Errorf("bad key: exit %d %+v", code, rep)
	}
}

// A config with errors is not probed: every problem is reported, each with what to do, and nothing else.
func TestCheckStopsAfterConfigErrors(t *testing.T) {
	s := opsTwoRegions(t, "2024-11-20")
	cfg := strings.Replace(opsCheckConfig(s, opsSimKey), "clients: [{name: app, key: client-key}]\n", "", 1) +
		"  - name: broken\n    endpoint: ftp://x\n    api_key: k\n    deployments: {gpt-4o: gpt-4o}\nbogus_key: 1\n"
	file := opsConfigFile(t, cfg)
	code, out, _ := opsRun(t, nil, "check", "--config", file)
	for _, want := range []string{"regions[0].api_key", "EAST_KEY", "regions[2].endpoint", "bogus_key", "clients",
		"no region was probed", "fix: set the variable", "fix: correct regions[2].endpoint in " + file} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for _, not := range []string{"ok (api-key)", "REGION", "single point of failure", "FINDINGS"} {
		if strings.Contains(out, not) {
			t.Errorf("a config with errors was probed (%q in the output):\n%s", not, out)
		}
	}
	if code != 2 || s.Region("eastus").Stats().Requests != 0 || s.Region("westus").Stats().Requests != 0 {
		t.Errorf("exit %d; requests to the regions: %d, %d", code, s.Region("eastus").Stats().Requests, s.Region("westus").Stats().Requests)
	}
	code, out, _ = opsRun(t, nil, "check", "--config", file, "--json")
	var rep struct {
		ConfigErrors []struct{ Field, Message, Fix string } `json:"config_errors"`
		Regions      []any
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 2 || len(rep.Regions) != 0 || len(rep.ConfigErrors) < 4 {
		t.Fatalf("--json: exit %d, %v\n%s", code, err, out)
	}
	for _, c := range rep.ConfigErrors {
		if c.Fix == "" {
			t.Errorf("config error without a fix: %+v", c)
		}
	}
}

func TestCheckUsage(t *testing.T) {
	if code, _, errOut := opsRun(t, nil, "check"); code != 2 || !strings.Contains(errOut, "--config FILE is required") {
		t.Errorf("no config: %d %s", code, errOut)
	}
	if code, _, errOut := opsRun(t, nil, "check", "--help"); code != 0 || !strings.Contains(errOut, "Exit status: 0 all good") {
		t.Errorf("help: %d %s", code, errOut)
	}
	if code, _, errOut := opsRun(t, nil, "check", "--config", "/nonexistent.yaml"); code != 2 || !strings.Contains(errOut, "no such file") {
		t.Errorf("missing file: %d %s", code, errOut)
	}
}

func TestCheckWithARMResources(t *testing.T) {
	s := opsTwoRegions(t, "2024-08-06")
	arm := httptest.NewServer(s.ControlHandler())
	defer arm.Close()
	const rg = "/subscriptions/sub-1/resourceGroups/rg-ai/providers/Microsoft.CognitiveServices/accounts/"
	code, out, errOut := opsRun(t, map[string]string{"EAST_KEY": opsSimKey, "LIFELINE_ARM_TOKEN": "cli-test-token"}, "check",
		"--config", opsConfigFile(t, opsCheckConfig(s, opsSimKey)), "--arm-endpoint", arm.URL,
		"--arm-resource", "eastus="+rg+"contoso-eastus", "--arm-resource", "westus="+rg+"contoso-westus")
	if code != 1 || !strings.Contains(out, "westus: gpt-4o 2024-08-06") || errOut != "" {
		t.Errorf("exit %d\n%s%s", code, out, errOut)
	}
	if code, _, errOut := opsRun(t, nil, "check", "--config", "x", "--arm-resource", "eastus"); code != 2 || !strings.Contains(errOut, "want REGION=") {
		t.Errorf("bad --arm-resource: %d %s", code, errOut)
	}
}

// Without --probe and without --arm-resource, check finds each region's resource in Resource Manager by its
// endpoint and shows every model and version, so a version drift is found without spending a token.
func TestCheckFindsResourcesThroughARM(t *testing.T) {
	s := opsTwoRegions(t, "2024-08-06")
	arm := httptest.NewServer(s.ControlHandler())
	defer arm.Close()
	env := map[string]string{"EAST_KEY": opsSimKey, "LIFELINE_ARM_TOKEN": "cli-test-token"}
	file := opsConfigFile(t, opsCheckConfig(s, opsSimKey))
	code, out, errOut := opsRun(t, env, "check", "--config", file, "--arm-endpoint", arm.URL)
	for _, want := range []string{"westus: gpt-4o 2024-08-06", "eastus: gpt-4o 2024-11-20", "Resource Manager: found the resource of 2 of 2 region(s)",
		"gpt-4o 2024-11-20"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if code != 1 || errOut != "" || strings.Contains(out, "? (--probe") {
		t.Errorf("exit %d\n%s%s", code, out, errOut)
	}
	if got := s.Region("eastus").Stats().Requests; got > 3 { // the models list and one free existence check
		t.Errorf("eastus got %d requests", got)
	}
	// --arm off: back to what the data plane alone can tell.
	_, out, _ = opsRun(t, env, "check", "--config", file, "--arm-endpoint", arm.URL, "--arm", "off")
	if !strings.Contains(out, "? (--probe or ARM)") || strings.Contains(out, "Resource Manager:") {
		t.Errorf("--arm off:\n%s", out)
	}
	// A token Resource Manager refuses: said once, not a finding, and the rest of the check goes on.
	env["LIFELINE_ARM_TOKEN"] = "expired"
	code, out, _ = opsRun(t, env, "check", "--config", file, "--arm-endpoint", arm.URL)
	if code != 0 || !strings.Contains(out, "Resource Manager: not used: ") || !strings.Contains(out, "InvalidAuthenticationToken") {
		t.Errorf("bad ARM token: exit %d\n%s", code, out)
	}
	if code, _, errOut := opsRun(t, env, "check", "--config", file, "--arm", "maybe"); code != 2 || !strings.Contains(errOut, "use auto, on or off") {
		t.Errorf("--arm maybe: %d %s", code, errOut)
	}
}
