// Package examples holds the runnable examples of the README; this test runs each of them against a real gateway
// in front of simulated regions.
package examples

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lifeline-sre/lifeline/internal/nodetest"
	"github.com/lifeline-sre/lifeline/internal/stacktest"
	"github.com/lifeline-sre/lifeline/sim"
)

// TestNodeExample runs examples/node/chat.mjs with the npm openai package, with the primary region down so that
// every call in it must fail over.
func TestNodeExample(t *testing.T) {
	e := stacktest.Start(t, []string{"eastus", "westus"}, "")
	if err := e.Sim.Fault("eastus", sim.Fault{Mode: sim.ModeDown}); err != nil {
		t.Fatal(err)
	}
	// The example imports 'openai' the way an application does; resolve it from the e2e packages.
	link := filepath.Join("node", "node_modules")
	if _, err := os.Lstat(link); os.IsNotExist(err) {
		if err := os.Symlink(filepath.Join(nodetest.Dir(t), "node_modules"), link); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "node/chat.mjs")
	cmd.Env = append(os.Environ(), "LIFELINE_URL="+e.URL, "LIFELINE_KEY="+stacktest.ClientKey)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node examples/node/chat.mjs: %v\n%s", err, out)
	}
	for _, want := range []string{"azure: ", "[region westus]", "stream: ", "tokens]", "openai: "} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestCurlWalkthrough runs examples/curl/walkthrough.sh and checks that each step did what it says.
func TestCurlWalkthrough(t *testing.T) {
	e := stacktest.Start(t, []string{"eastus", "westus"}, "")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "curl/walkthrough.sh")
	cmd.Env = append(os.Environ(), "LIFELINE_URL="+e.URL, "LIFELINE_KEY="+stacktest.ClientKey, "LIFELINE_ADMIN_URL="+e.AdminURL, "LIFELINE_ADMIN_KEY="+stacktest.AdminKey)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("walkthrough.sh: %v\n%s", err, out)
	}
	s := string(out)
	for _, want := range []string{`"gpt-4o"`, "x-lifeline-region: eastus", "chat.completion", "data: [DONE]", "x-lifeline-region: westus", "== Done"} {
		if !strings.Contains(strings.ToLower(s), strings.ToLower(want)) {
			t.Errorf("walkthrough output lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, stacktest.RegionKey) {
		t.Error("a region's key reached the client")
	}
}
