package monitoring_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/lifeline-sre/lifeline/config"
	"github.com/lifeline-sre/lifeline/gateway"
)

// promtool finds promtool. Its absence fails the test: scripts/setup.sh installs it (Debian: prometheus), and the
// alert rules are a feature that these tests are the proof of.
func promtool(t *testing.T) string {
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found: install it (Debian: apt-get install prometheus; scripts/setup.sh does it)")
	}
	return p
}

func run(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command(promtool(t), args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestAlertRules checks the rules and runs their unit tests (alerts_test.yml).
func TestAlertRules(t *testing.T) {
	run(t, "prometheus", "check", "rules", "alerts.yml")
	out := run(t, "prometheus", "test", "rules", "alerts_test.yml")
	if !strings.Contains(out, "SUCCESS") {
		t.Fatalf("promtool test rules:\n%s", out)
	}
}

// TestEveryAlertIsTested: each alert of alerts.yml has a unit test that expects it to fire.
func TestEveryAlertIsTested(t *testing.T) {
	rules := readYAML(t, "prometheus/alerts.yml")
	tests, _ := os.ReadFile("prometheus/alerts_test.yml")
	for _, g := range rules["groups"].([]any) {
		for _, r := range g.(map[string]any)["rules"].([]any) {
			name := r.(map[string]any)["alert"].(string)
			re := regexp.MustCompile(`alertname: ` + name + `\n\s+exp_alerts:\n\s+- exp_labels`)
			if !re.Match(tests) {
				t.Errorf("alert %s has no test in alerts_test.yml that expects it to fire", name)
			}
			ann, _ := r.(map[string]any)["annotations"].(map[string]any)
			for _, k := range []string{"summary", "description", "runbook"} {
				if ann[k] == nil {
					t.Errorf("alert %s has no %s annotation", name, k)
				}
			}
			doc, _ := os.ReadFile("../docs/monitoring.md")
			if !strings.Contains(string(doc), "### "+name+"\n") {
				t.Errorf("docs/monitoring.md has no section for %s (its runbook)", name)
			}
		}
	}
}

func readYAML(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return m
}

type dashboard struct {
	Panels []struct {
		Title   string `json:"title"`
		Type    string `json:"type"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

// dashboardExprs returns every PromQL expression of the dashboard, Grafana's variables replaced by values that
// Prometheus accepts, keyed by the panel's title.
func dashboardExprs(t *testing.T) map[string]string {
	b, err := os.ReadFile("grafana/lifeline.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("grafana/lifeline.json: %v", err)
	}
	vars := strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$job", ".*", "$instance", ".*", "$region", ".*")
	out := map[string]string{}
	for _, p := range d.Panels {
		for i, tg := range p.Targets {
			out[fmt.Sprintf("%s #%d", p.Title, i+1)] = vars.Replace(tg.Expr)
		}
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
	}
	labelValues := regexp.MustCompile(`^label_values\((.*),\s*\w+\)$`)
	for _, v := range d.Templating.List {
		q, ok := v.Query.(map[string]any)
		if !ok {
			continue
		}
		m := labelValues.FindStringSubmatch(q["query"].(string))
		if m == nil {
			t.Errorf("variable %s: query %v is not label_values(SELECTOR, LABEL)", v.Name, q["query"])
			continue
		}
		out["variable "+v.Name] = vars.Replace(m[1])
	}
	return out
}

// TestDashboardQueriesParse hands every query of the dashboard to promtool as a recording rule, so a query that
// Prometheus would refuse fails here.
func TestDashboardQueriesParse(t *testing.T) {
	exprs := dashboardExprs(t)
	if len(exprs) < 20 {
		t.Fatalf("only %d queries in the dashboard", len(exprs))
	}
	type rule struct {
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	}
	var rules []rule
	keys := make([]string, 0, len(exprs))
	for k := range exprs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		rules = append(rules, rule{Record: fmt.Sprintf("dashboard:query_%d", i), Expr: exprs[k]})
	}
	b, _ := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}})
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "dashboard.yml"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, dir, "check", "rules", "dashboard.yml")
}

// fixedBySpec are metric names that SPEC.md fixes for features the engine does not export yet. The dashboard and
// the rules may use them before the gateway in this tree registers them; everything else must be registered.
var fixedBySpec = map[string]bool{}

// recorder is a registry that remembers the name of every metric registered.
type recorder struct {
	*prometheus.Registry
	names map[string]bool
}

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

func (r *recorder) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc, 64)
	go func() { c.Describe(ch); close(ch) }()
	for d := range ch {
		if m := fqName.FindStringSubmatch(d.String()); m != nil {
			r.names[m[1]] = true
		}
	}
	return r.Registry.Register(c)
}

func (r *recorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

// TestMetricsExist: every lifeline_* metric the rules and the dashboard use is one the gateway registers.
func TestMetricsExist(t *testing.T) {
	rec := &recorder{Registry: prometheus.NewRegistry(), names: map[string]bool{}}
	cfg := &config.Config{
		Clients: []config.Client{{Name: "app", Key: "k"}},
		Regions: []config.Region{{Name: "eastus", Endpoint: "http://127.0.0.1:9", APIKey: "k", Deployments: map[string]string{"gpt-4o": "gpt-4o"}}},
		// With state.redis the state backend's metrics are registered too. Nothing waits for this Redis, which is
		// never there.
		State: config.State{Replica: "r1", Redis: &config.Redis{Addr: "127.0.0.1:9"}},
	}
	cfg.ApplyDefaults()
	g, err := gateway.New(cfg, gateway.Options{Registerer: rec, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if len(rec.names) < 10 {
		t.Fatalf("the recorder saw only %v", rec.names)
	}
	rules, _ := os.ReadFile("prometheus/alerts.yml")
	texts := map[string]string{"prometheus/alerts.yml": string(rules)}
	for k, e := range dashboardExprs(t) {
		texts["dashboard: "+k] = e
	}
	metric := regexp.MustCompile(`lifeline_[a-z_]+`)
	used := map[string]bool{}
	for where, text := range texts {
		for _, m := range metric.FindAllString(text, -1) {
			base := m
			for _, suf := range []string{"_bucket", "_count", "_sum"} {
				if b, ok := strings.CutSuffix(m, suf); ok && rec.names[b] {
					base = b
				}
			}
			used[base] = true
			if !rec.names[base] && !fixedBySpec[base] {
				t.Errorf("%s uses %s, which the gateway does not export", where, m)
			}
		}
	}
	for name := range rec.names {
		if !used[name] {
			t.Logf("note: %s is not on the dashboard or in a rule", name)
		}
	}
}
