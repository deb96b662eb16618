package cli

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lifeline-sre/lifeline/config"
	"github.com/lifeline-sre/lifeline/gateway"
	"github.com/lifeline-sre/lifeline/sim"
)

func opsGateway(t *testing.T, s *sim.Sim, westDeployments string) (client, admin string) {
	yaml := `clients: [{name: drill, key: client-key}]
admin: {key: admin-key}
regions:
  - name: eastus
    endpoint: ` + s.Region("eastus").URL() + `
    api_key: ` + opsSimKey + `
    deployments: {gpt-4o: gpt-4o}
  - name: westus
    endpoint: ` + s.Region("westus").URL() + `
    api_key: ` + opsSimKey + `
    priority: 2
    deployments: {` + westDeployments + `}
policy: {breaker: {slow_start: 300ms}}
`
	cfg, err := config.Parse([]byte(yaml), nil)
	if err != nil {
		t.Fatal(err)
	}
	g, err := gateway.New(cfg, gateway.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	c, a := httptest.NewServer(g.Handler()), httptest.NewServer(g.AdminHandler())
	t.Cleanup(func() { c.Close(); a.Close(); g.Close() })
	return c.URL, a.URL
}

func TestDrillCommand(t *testing.T) {
	s := opsSim(t, sim.Config{Regions: sim.DefaultRegions("eastus", "westus")})
	for _, tc := range []struct {
		west string
		code int
		want string
	}{
		{"gpt-4o: gpt-4o", 0, "PASSED"},
		{"gpt-4o-mini: gpt-4o-mini", 1, "FAILED: clients saw"}, // nothing backs gpt-4o up
	} {
		client, admin := opsGateway(t, s, tc.west)
		dir := filepath.Join(t.TempDir(), "report")
		code, out, errOut := opsRun(t, map[string]string{"LIFELINE_ADMIN_KEY": "admin-key"}, "drill",
			"--url", client, "--key", "client-key", "--admin", admin, "--region", "eastus", "--name", "gpt-4o",
			"--rate", "20", "--before", "400ms", "--hold", "800ms", "--after", "800ms", "--max-tokens", "1", "--out", dir)
		if code != tc.code || !strings.Contains(out, tc.want) || !strings.Contains(errOut, "eastus out") {
			t.Fatalf("west %q: exit %d\n%s\n%s", tc.west, code, out, errOut)
		}
		var rep struct {
			Analysis struct {
				Requests     int
				ClientErrors int `json:"client_errors"`
			}
			Samples []struct{ Region string }
		}
		data, err := os.ReadFile(filepath.Join(dir, "report.json"))
		if err == nil {
			err = json.Unmarshal(data, &rep)
		}
		if err != nil || len(rep.Samples) != rep.Analysis.Requests || rep.Analysis.Requests == 0 {
			t.Fatalf("report.json: %v: %d samples, %d requests", err, len(rep.Samples), rep.Analysis.Requests)
		}
		for _, f := range []string{"report.md", "timeline.svg"} {
			if b, err := os.ReadFile(filepath.Join(dir, f)); err != nil || len(b) < 100 {
				t.Errorf("%s: %v", f, err)
			}
		}
	}
}

func TestDrillFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"drill"}, "--region NAME is required"},
		{[]string{"drill", "--region", "eastus"}, "--admin-key"},
		{[]string{"drill", "--region", "eastus", "--fault", "melt"}, `--fault "melt"`},
		{[]string{"drill", "--region", "eastus", "--fault", "flap,down_for=5s"}, "flap needs down_for and up_for"},
		{[]string{"drill", "--region", "eastus", "--fault", "stall_stream,after_events=x"}, "after_events"},
		{[]string{"drill", "--region", "eastus", "--fault", "cut_stream,colour=red"}, "colour"},
		{[]string{"drill", "--region", "eastus", "--fault", "down", "--answers", "creative"}, `--answers "creative"`},
		{[]string{"drill", "--region", "eastus", "--admin-key", "k", "--rate", "0"}, "--rate"},
		{[]string{"drill", "--region", "eastus", "--admin-key", "k", "--admin", "http://127.0.0.1:1"}, "is the gateway running?"},
	} {
		code, _, errOut := opsRun(t, nil, tc.args...)
		if code != 2 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d %q", tc.args, code, errOut)
		}
	}
}
