package config_test

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/lifeline-sre/lifeline/config"
	"github.com/lifeline-sre/lifeline/failover"
)

var update = flag.Bool("update", false, "rewrite the golden .err files of testdata/invalid-*.yaml")

func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
}

var exampleEnv = env(map[string]string{
	"LIFELINE_CLIENT_KEY": "client-key", "WEB_FRONTEND_KEY": "web-key", "BATCH_JOBS_KEY": "batch-key",
	"LIFELINE_ADMIN_KEY": "admin-key", "AOAI_EASTUS_KEY": "east-key", "AOAI_WESTUS_KEY": "west-key",
	"AZURE_TENANT_ID": "tenant", "AZURE_CLIENT_ID": "client", "AZURE_CLIENT_SECRET": "secret",
	"APP_KEY": "k", "AOAI_FRANCE_IDENTITY": "uami-client-id", "REDIS_PASSWORD": "redis-secret",
})

func parseFile(t *testing.T, path string) (*config.Config, error) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return config.Parse(data, exampleEnv)
}

func TestMinimalExampleGetsDefaults(t *testing.T) {
	c, err := parseFile(t, "../examples/minimal.yaml")
	if err != nil {
		t.Fatalf("examples/minimal.yaml: %v", err)
	}
	if c.Listen != config.DefaultListen || c.Admin.Listen != config.DefaultAdminListen {
		t.Errorf("listen = %q, admin.listen = %q; want the defaults", c.Listen, c.Admin.Listen)
	}
	if c.Clients[0].Key != "client-key" || c.Regions[0].APIKey != "east-key" {
		t.Errorf("${ENV} not expanded: client key %q, region key %q", c.Clients[0].Key, c.Regions[0].APIKey)
	}
	p := c.Policy
	if p.Routing != "priority" || p.Retry.AttemptsPerRegion != 2 || p.Retry.Backoff.D() != 100*time.Millisecond ||
		p.Breaker.Failures != 5 || p.Breaker.OpenFor.D() != 30*time.Second || p.Timeouts.StreamIdle.D() != time.Minute ||
		p.Timeouts.Response.D() != 300*time.Second || p.MaxBodyBytes != 32<<20 {
		t.Errorf("policy defaults not applied: %+v", p)
	}
	if c.Regions[0].Priority != 1 || c.Regions[1].Priority != 2 || c.Regions[1].Weight != 1 {
		t.Errorf("priorities/weights = %+v", c.Regions)
	}
	if c.Logging.Format != "json" || c.Logging.Level != "info" || c.Server.ShutdownTimeout.D() != 30*time.Second {
		t.Errorf("logging/server defaults not applied: %+v %+v", c.Logging, c.Server)
	}
	if got := c.Names(); !reflect.DeepEqual(got, []string{"gpt-4o"}) {
		t.Errorf("Names() = %v", got)
	}
}

func TestFullExampleParses(t *testing.T) {
	c, err := parseFile(t, "../examples/full.yaml")
	if err != nil {
		t.Fatalf("examples/full.yaml: %v", err)
	}
	if c.TLS == nil || c.TLS.CertFile == "" || len(c.Clients) != 2 || c.Admin.Key != "admin-key" {
		t.Errorf("tls/clients/admin not read: %+v %+v %+v", c.TLS, c.Clients, c.Admin)
	}
	west := c.Regions[1]
	if west.Entra == nil || *west.Entra != (config.Entra{}) || west.APIKey != "" {
		t.Errorf("westus entra: {} not read: %+v", west)
	}
	if sc := c.Regions[2].Entra; sc == nil || sc.ClientSecret != "secret" {
		t.Errorf("swedencentral entra = %+v", sc)
	}
	if got := c.Regions[0].Deployments["support-bot"]; !strings.HasPrefix(got, "gpt-4o-mini-2024-07-18.ft-") {
		t.Errorf("support-bot deployment = %q", got)
	}
	if got := c.Names(); !reflect.DeepEqual(got, []string{"gpt-4o", "support-bot", "text-embedding-3-small"}) {
		t.Errorf("Names() = %v", got)
	}
}

// TestFullExampleShowsEveryKey keeps examples/full.yaml and docs/config.md complete: every key of the Config
// structs appears in both.
func TestFullExampleShowsEveryKey(t *testing.T) {
	full, _ := os.ReadFile("../examples/full.yaml")
	doc, _ := os.ReadFile("../docs/config.md")
	for _, path := range yamlKeys("", reflect.TypeFor[config.Config]()) {
		leaf := path[strings.LastIndex(path, ".")+1:]
		leaf = strings.TrimSuffix(leaf, "[]")
		if !strings.Contains(string(full), leaf+":") {
			t.Errorf("examples/full.yaml does not show key %q", path)
		}
		if !strings.Contains(string(doc), "| `"+path+"` |") {
			t.Errorf("docs/config.md does not document key `%s`", path)
		}
	}
}

func yamlKeys(prefix string, t reflect.Type) []string {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() == reflect.Slice {
		t = t.Elem()
		prefix += "[]"
	}
	if t.Kind() != reflect.Struct || t == reflect.TypeFor[config.Duration]() {
		return nil
	}
	if prefix != "" {
		prefix += "."
	}
	var keys []string
	for i := range t.NumField() {
		tag, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if tag == "-" {
			continue // not a key of the file (set from another key's long form)
		}
		keys = append(keys, prefix+tag)
		keys = append(keys, yamlKeys(prefix+tag, t.Field(i).Type)...)
	}
	return keys
}

// TestInvalid parses each testdata/invalid-*.yaml and compares the error with its golden .err file
// (go test ./config -run TestInvalid -update rewrites them).
func TestInvalid(t *testing.T) {
	files, _ := filepath.Glob("testdata/invalid-*.yaml")
	if len(files) < 10 {
		t.Fatalf("only %d invalid configs in testdata", len(files))
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".yaml"), func(t *testing.T) {
			_, err := parseFile(t, f)
			var errs *config.Errors
			if !errors.As(err, &errs) {
				t.Fatalf("err = %v (%T), want *config.Errors", err, err)
			}
			golden := strings.TrimSuffix(f, ".yaml") + ".err"
			if *update {
				os.WriteFile(golden, []byte(err.Error()+"\n"), 0o644)
			}
			want, rerr := os.ReadFile(golden)
			if rerr != nil {
				t.Fatalf("missing golden file: %v (run with -update)", rerr)
			}
			if got := err.Error() + "\n"; got != string(want) {
				t.Errorf("error:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestErrorsNeverShowSecrets(t *testing.T) {
	secret := "sk-very-secret-value"
	src := `
clients: [{name: app, key: "${K}"}, {name: app2, key: "${K}"}]
regions:
  - {name: eastus, endpoint: "https://${K}@x.openai.azure.com", api_key: "${K}", entra: {}, deployments: {a: b}}
`
	_, err := config.Parse([]byte(src), env(map[string]string{"K": secret}))
	if err == nil {
		t.Fatal("want an error")
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("error shows the secret: %v", err)
	}
}

func TestEnvExpansion(t *testing.T) {
	src := `
listen: "${HOST}:${PORT}"
allow_unauthenticated: true
regions:
  - name: eastus
    endpoint: http://127.0.0.1:${PORT}
    api_key: "pre-${K}-post"
    deployments: {"${NAME}": "dep-${NAME}"}
`
	c, err := config.Parse([]byte(src), env(map[string]string{"HOST": "0.0.0.0", "PORT": "9000", "K": "x", "NAME": "gpt"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "0.0.0.0:9000" || c.Regions[0].APIKey != "pre-x-post" || c.Regions[0].Deployments["gpt"] != "dep-gpt" {
		t.Errorf("got listen %q key %q deployments %v", c.Listen, c.Regions[0].APIKey, c.Regions[0].Deployments)
	}
}

func TestLoad(t *testing.T) {
	t.Setenv("LIFELINE_TEST_KEY", "from-env")
	path := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(path, []byte(`
clients: [{name: a, key: "${LIFELINE_TEST_KEY}"}]
regions: [{name: eastus, endpoint: "http://localhost:1", api_key: k, deployments: {m: m}}]
`), 0o600)
	c, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.Clients[0].Key != "from-env" {
		t.Errorf("key = %q", c.Clients[0].Key)
	}
	if _, err := config.Load(filepath.Join(t.TempDir(), "missing.yaml")); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("missing file: err = %v", err)
	}
}

func FuzzParse(f *testing.F) {
	for _, p := range []string{"../examples/minimal.yaml", "../examples/full.yaml", "testdata/invalid-types.yaml"} {
		data, _ := os.ReadFile(p)
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := config.Parse(data, exampleEnv)
		if err == nil && c.Validate() != nil {
			t.Fatal("Parse accepted a config that Validate rejects")
		}
	})
}

func TestFailoverConversion(t *testing.T) {
	c, err := parseFile(t, "../examples/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	f := c.Failover()
	if err := f.Validate(); err != nil {
		t.Fatalf("failover.Config.Validate: %v", err)
	}
	if len(f.Regions) != 4 || f.Regions[0].APIKey != "east-key" || f.Regions[1].Entra == nil || f.Regions[2].Entra.TenantID != "tenant" ||
		f.Regions[3].Entra.ManagedIdentityClientID != "uami-client-id" {
		t.Errorf("regions = %+v", f.Regions)
	}
	if f.Regions[0].Deployments["gpt-4o"] != "gpt-4o-prod" || f.Regions[2].Weight != 2 {
		t.Errorf("deployments/weight lost: %+v", f.Regions)
	}
	p := f.Policy
	if p.Retry.Backoff != 100*time.Millisecond || p.Breaker.MaxOpenFor != 5*time.Minute || p.Timeouts.StreamIdle != time.Minute ||
		p.Breaker.MinRequests != 20 || p.MaxBodyBytes != 32<<20 {
		t.Errorf("policy = %+v", p)
	}
	// The engine's own defaults agree with the documented ones.
	if got := (failover.Policy{}).WithDefaults(); got.Timeouts.Response != config.DefaultResponse || got.Retry.AttemptsPerRegion != config.DefaultAttemptsPerRegion ||
		got.Breaker.OpenFor != config.DefaultOpenFor || got.MaxBodyBytes != config.DefaultMaxBodyBytes {
		t.Errorf("engine defaults differ from config defaults: %+v", got)
	}
}
