package check_test

import (
	"fmt"

	"github.com/lifeline-sre/lifeline/ops/aoai"
	"github.com/lifeline-sre/lifeline/ops/check"
)

// Analyze compares what the regions serve, as probed: here westus runs an older gpt-4o and lacks the
// fine-tuned support-bot.
func ExampleAnalyze() {
	const ft = "gpt-4o-mini-2024-07-18.ft-0123456789abcdef0123456789abcdef"
	dep := func(name, deployment, model string) check.DeploymentResult {
		return check.DeploymentResult{Name: name, Deployment: deployment, Status: check.StatusOK, Model: model, ID: aoai.SplitModel(model)}
	}
	regions := []check.RegionResult{
		{Name: "eastus", Priority: 1, Auth: check.AuthResult{OK: true}, Deployments: []check.DeploymentResult{
			dep("gpt-4o", "gpt-4o", "gpt-4o-2024-11-20"), dep("support-bot", ft, ft)}},
		{Name: "westus", Priority: 2, Auth: check.AuthResult{OK: true}, Deployments: []check.DeploymentResult{
			dep("gpt-4o", "gpt-4o", "gpt-4o-2024-08-06")}},
	}
	for _, f := range check.Analyze(regions) {
		fmt.Printf("%s %s: %s\n", f.Severity, f.Kind, f.Message)
	}
	// Output:
	// warning version_mismatch: regions serve different models: eastus: gpt-4o 2024-11-20; westus: gpt-4o 2024-08-06 (answers change on failover)
	// warning single_point_of_failure: only eastus serves it: a single point of failure
	// warning finetuned_missing: fine-tuned model (from gpt-4o-mini-2024-07-18) is missing in westus
}
