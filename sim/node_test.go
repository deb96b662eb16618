package sim_test

import (
	"testing"

	"github.com/lifeline-sre/lifeline/internal/nodetest"
	"github.com/lifeline-sre/lifeline/sim"
)

// The npm openai package's AzureOpenAI client, unchanged, against a simulated region over plain HTTP.
func TestNodeAzureOpenAIClient(t *testing.T) {
	s := start(t, sim.Config{Regions: sim.DefaultRegions("eastus")})
	nodetest.Run(t, "sim.test.mjs", map[string]string{"SIM_URL": s.Region("eastus").URL(), "SIM_KEY": key})
}
