package check

import (
	"strings"
	"testing"

	"github.com/lifeline-sre/lifeline/ops/aoai"
)

func dep(name, deployment, status, model string) DeploymentResult {
	d := DeploymentResult{Name: name, Deployment: deployment, Status: status, Model: model}
	if model != "" {
		d.ID = aoai.SplitModel(model)
	}
	return d
}

func region(name string, prio int, deps ...DeploymentResult) RegionResult {
	return RegionResult{Name: name, Priority: prio, Auth: AuthResult{OK: true}, Deployments: deps}
}

func kinds(fs []Finding) map[string]Finding {
	out := map[string]Finding{}
	for _, f := range fs {
		out[f.Kind+"/"+f.Name+"/"+f.Region] = f
	}
	return out
}

func TestAnalyzeFindsEveryGap(t *testing.T) {
	const ft = "gpt-4o-mini-2024-07-18.ft-0123456789abcdef0123456789abcdef"
	regions := []RegionResult{
		region("eastus", 1,
			dep("gpt-4o", "gpt-4o", StatusOK, "gpt-4o-2024-08-06"),
			dep("embed", "emb", StatusOK, "text-embedding-3-small"),
			dep("support-bot", ft, StatusOK, ft),
			dep("only-east", "x", StatusOK, "gpt-4o-2024-08-06")),
		region("westus", 2,
			dep("gpt-4o", "gpt-4o", StatusOK, "gpt-4o-2024-05-13"),
			dep("embed", "emb", StatusMissing, "")),
		region("sweden", 2,
			dep("gpt-4o", "gpt-4o", StatusOK, "gpt-4o-2024-08-06")),
	}
	got := kinds(Analyze(regions))
	want := map[string]Severity{
		KindVersionMismatch + "/gpt-4o/":             Warning,
		KindSinglePoint + "/only-east/":              Warning,
		KindSinglePoint + "/support-bot/":            Warning,
		KindNoWorkingBackup + "/embed/":              Error,
		KindFineTunedMissing + "/support-bot/westus": Warning,
		KindFineTunedMissing + "/support-bot/sweden": Warning,
	}
	for k, sev := range want {
		f, ok := got[k]
		if !ok {
			t.Errorf("missing finding %s; got %v", k, got)
			continue
		}
		if f.Severity != sev {
			t.Errorf("%s: severity %s, want %s", k, f.Severity, sev)
		}
	}
	if f := got[KindVersionMismatch+"/gpt-4o/"]; !strings.Contains(f.Message, "westus: gpt-4o 2024-05-13") ||
		!strings.Contains(f.Message, "eastus, sweden: gpt-4o 2024-08-06") {
		t.Errorf("version message: %s", f.Message)
	}
	if f := got[KindFineTunedMissing+"/support-bot/westus"]; !strings.Contains(f.Fix, "--from eastus --job ftjob-0123456789abcdef0123456789abcdef --to westus") {
		t.Errorf("fix: %s", f.Fix)
	}
	if len(got) != len(want) {
		t.Errorf("unexpected findings: %v", got)
	}
}

func TestAnalyzeNoBackupLevel(t *testing.T) {
	regions := []RegionResult{
		region("eastus", 1, dep("a", "a", StatusOK, "gpt-4o-2024-08-06")),
		region("centralus", 1, dep("a", "a", StatusOK, "gpt-4o-2024-08-06")),
		region("westus", 2, dep("b", "b", StatusOK, ""), dep("a2", "a", StatusOK, "")),
		region("sweden", 2, dep("b", "b", StatusOK, ""), dep("a2", "a", StatusOK, "")),
	}
	got := kinds(Analyze(regions))
	if _, ok := got[KindNoBackup+"/a/"]; !ok {
		t.Errorf("want no_backup for a (priority 1 only): %v", got)
	}
	if len(got) != 3 { // a, b and a2 each live at one level only
		t.Errorf("findings: %v", got)
	}
	// A single priority level is an active-active design, not a missing backup.
	if fs := Analyze(regions[:2]); len(fs) != 0 {
		t.Errorf("two equal regions: %v", fs)
	}
}

func TestExitCodes(t *testing.T) {
	r := &Report{}
	if r.ExitCode() != 0 {
		t.Error("empty report should exit 0")
	}
	r.Findings = append(r.Findings, Finding{Severity: Warning})
	if r.ExitCode() != 1 {
		t.Error("warning should exit 1")
	}
	r.AddConfigError("regions[0].endpoint", "regions[0].endpoint: required", "fix it")
	if r.ExitCode() != 2 {
		t.Error("config error should exit 2")
	}
}
