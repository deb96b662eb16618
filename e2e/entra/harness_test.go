package entra_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/azure"
	"github.com/openai/openai-go/v3/option"

	"github.com/lifeline-sre/lifeline/config"
	"github.com/lifeline-sre/lifeline/failover"
	"github.com/lifeline-sre/lifeline/internal/cli"
	"github.com/lifeline-sre/lifeline/internal/entratest"
	"github.com/lifeline-sre/lifeline/sim"
)

// The tests run Lifeline in child processes of this test binary: azidentity reads the process environment
// (AZURE_*, IDENTITY_ENDPOINT, HTTP_PROXY), Go reads SSL_CERT_FILE once per process, and MSAL keeps
// managed-identity tokens in a process-wide cache. A child has exactly the environment an operator would give
// Lifeline, and nothing leaks from one test to another.
const childVar = "LIFELINE_ENTRA_TEST_CHILD"

func TestMain(m *testing.M) {
	switch os.Getenv(childVar) {
	case "lifeline":
		os.Exit(cli.Run(os.Args[1:], cli.Std()))
	case "library":
		os.Exit(libraryChild(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// libraryChild is a Go service using the failover library in process: it loads the config, sends one chat
// completion per line of stdin (the line is the model name) through openai-go, and prints one JSON result per line.
func libraryChild(args []string) int {
	cfg, err := config.Load(args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	t, err := failover.New(cfg.Failover())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer t.Close()
	client := openai.NewClient(azure.WithEndpoint("https://lifeline.invalid", "2024-10-21"), azure.WithAPIKey("unused"),
		option.WithHTTPClient(&http.Client{Transport: t}), option.WithMaxRetries(0))
	in := bufio.NewScanner(os.Stdin)
	out := json.NewEncoder(os.Stdout)
	for in.Scan() {
		var raw *http.Response
		_, err := client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
			Model: in.Text(), Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}},
			option.WithResponseInto(&raw))
		res := libraryResult{}
		if raw != nil {
			res.Status, res.Region = raw.StatusCode, raw.Header.Get(failover.HeaderRegion)
		}
		if err != nil {
			res.Error = err.Error()
		}
		out.Encode(res)
	}
	return 0
}

type libraryResult struct {
	Status int    `json:"status"`
	Region string `json:"region"`
	Error  string `json:"error,omitempty"`
}

// world is one test's stand-ins: the Entra authority, the managed-identity endpoints, a cluster issuer, the
// simulated regions, and a directory for files.
type world struct {
	t       *testing.T
	a       *entratest.Authority
	mi      *entratest.ManagedIdentity
	cluster *entratest.Cluster
	dir     string
	caFile  string
}

func newWorld(t *testing.T) *world {
	t.Helper()
	a, err := entratest.StartAuthority()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	mi, err := a.StartManagedIdentity()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mi.Close)
	cl, err := a.NewCluster("https://oidc.prod-aks.test.invalid/11111111/")
	if err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, a: a, mi: mi, cluster: cl, dir: t.TempDir()}
	if w.caFile, err = a.CA().WriteFile(w.dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.assertNoLeaks)
	return w
}

// sims starts simulated regions that verify Entra tokens signed by the authority, strictly (no clock skew).
func (w *world) sims(regions ...sim.RegionConfig) *sim.Sim {
	w.t.Helper()
	s, err := sim.Start(sim.Config{Regions: regions, APIKey: "region-key", Entra: &sim.Entra{Keys: w.a.PublicKey, ClockSkew: -1}})
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(s.Close)
	return s
}

// env is the child's whole environment: the authority host (as the workload identity webhook sets it), the test
// CA as the only trusted root, IMDS through the stand-in proxy, an empty PATH (no az, azd or pwsh) and HOME.
func (w *world) env(extra ...string) []string {
	empty := filepath.Join(w.dir, "bin")
	os.MkdirAll(empty, 0o755)
	env := []string{"PATH=" + empty, "HOME=" + w.dir, "SSL_CERT_FILE=" + w.caFile, "AZURE_AUTHORITY_HOST=" + w.a.Host()}
	env = append(env, w.mi.ProxyEnv()...)
	return append(env, extra...)
}

func (w *world) assertNoLeaks() {
	if n := w.a.Hits("discovery"); n != 0 {
		w.t.Errorf("instance discovery was called %d times: it would have gone to login.microsoftonline.com", n)
	}
	if l := w.mi.Leaks(); len(l) > 0 {
		w.t.Errorf("requests that would have left loopback: %v", l)
	}
}

// writeConfig writes a lifeline config and returns its path.
func (w *world) writeConfig(yaml string) string {
	p := filepath.Join(w.dir, fmt.Sprintf("lifeline-%d.yaml", time.Now().UnixNano()))
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		w.t.Fatal(err)
	}
	return p
}

// secrets are every string that must never appear in output: the tokens issued so far and the given secrets.
func (w *world) secrets(extra ...string) []string {
	out := append([]string(nil), extra...)
	for _, is := range w.a.Issued() {
		out = append(out, is.Token, is.Token[strings.LastIndexByte(is.Token, '.')+1:]) // the signature alone too
	}
	return out
}

// assertNoSecret fails if out holds a secret or a token, or anything shaped like a JWT.
func (w *world) assertNoSecret(what, out string, secrets []string) {
	w.t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(out, s) {
			w.t.Errorf("%s shows a secret or a token (%.12s...)", what, s)
		}
	}
	if strings.Contains(out, "eyJ") {
		w.t.Errorf("%s holds something shaped like a JWT:\n%s", what, excerpt(out, "eyJ"))
	}
}

func excerpt(s, at string) string {
	i := strings.Index(s, at)
	return s[max(0, i-200):min(len(s), i+200)]
}

// gateway is a `lifeline serve` child process.
type gateway struct {
	w        *world
	cmd      *exec.Cmd
	URL      string
	AdminURL string
	mu       sync.Mutex
	logs     bytes.Buffer
	exited   chan struct{}
}

const (
	clientKey = "entra-e2e-client-key"
	adminKey  = "entra-e2e-admin-key"
)

// serve starts `lifeline serve --config` with the given regions and extra top-level YAML (policy, logging) and
// waits until it listens.
func (w *world) serve(regions, extra string, env ...string) *gateway {
	w.t.Helper()
	// No shutdown delay: the tests stop the gateway, no load balancer needs to notice.
	cfg := fmt.Sprintf("listen: 127.0.0.1:0\nclients: [{name: e2e, key: %s}]\nadmin: {listen: 127.0.0.1:0, key: %s}\nserver: {shutdown_delay: -1s}\nregions:\n%s",
		clientKey, adminKey, regions)
	cfg += extra
	path := w.writeConfig(cfg)
	cmd := exec.Command(os.Args[0], "serve", "--config", path)
	cmd.Env = append(w.env(env...), childVar+"=lifeline")
	g := &gateway{w: w, cmd: cmd, exited: make(chan struct{})}
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		w.t.Fatal(err)
	}
	addrs := make(chan [2]string, 1)
	go func() {
		defer close(g.exited)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		var gw, admin string
		for sc.Scan() {
			line := sc.Text()
			g.mu.Lock()
			g.logs.WriteString(line + "\n")
			g.mu.Unlock()
			var rec struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &rec) == nil {
				switch rec.Msg {
				case "gateway listening":
					gw = rec.Addr
				case "admin listening":
					admin = rec.Addr
				}
				if gw != "" && admin != "" {
					addrs <- [2]string{gw, admin}
					gw = ""
				}
			}
		}
		cmd.Wait()
	}()
	w.t.Cleanup(g.stop)
	select {
	case a := <-addrs:
		g.URL, g.AdminURL = "http://"+a[0], "http://"+a[1]
	case <-g.exited:
		w.t.Fatalf("lifeline serve exited:\n%s", g.Logs())
	case <-time.After(30 * time.Second):
		w.t.Fatalf("lifeline serve did not listen within 30s:\n%s", g.Logs())
	}
	return g
}

func (g *gateway) stop() {
	if g.cmd.Process != nil {
		g.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-g.exited:
		case <-time.After(20 * time.Second):
			g.cmd.Process.Kill()
			<-g.exited
		}
	}
}

// Logs is everything the gateway wrote to stderr so far.
func (g *gateway) Logs() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.logs.String()
}

// logLines returns the JSON log records whose msg starts with prefix.
func (g *gateway) logLines(prefix string) []map[string]any {
	var out []map[string]any
	for _, l := range strings.Split(g.Logs(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(l), &rec) == nil {
			if m, _ := rec["msg"].(string); strings.HasPrefix(m, prefix) {
				out = append(out, rec)
			}
		}
	}
	return out
}

// waitLog waits until a log record with msg prefix and the given attributes appears.
func (g *gateway) waitLog(prefix string, attrs map[string]string, within time.Duration) map[string]any {
	g.w.t.Helper()
	deadline := time.Now().Add(within)
	for {
	lines:
		for _, rec := range g.logLines(prefix) {
			for k, v := range attrs {
				if fmt.Sprint(rec[k]) != v {
					continue lines
				}
			}
			return rec
		}
		if time.Now().After(deadline) {
			g.w.t.Fatalf("no log %q %v within %s:\n%s", prefix, attrs, within, g.Logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// chat sends one chat completion through the gateway with openai-go and returns the answering region.
func (g *gateway) chat(model string) (region string, status int, err error) {
	client := openai.NewClient(option.WithBaseURL(g.URL+"/openai/v1/"), option.WithAPIKey(clientKey), option.WithMaxRetries(0),
		option.WithRequestTimeout(20*time.Second))
	var raw *http.Response
	_, err = client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{Model: model,
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}}, option.WithResponseInto(&raw))
	if raw != nil {
		region, status = raw.Header.Get("x-lifeline-region"), raw.StatusCode
	}
	return region, status, err
}

// admin GETs an admin path and returns the body.
func (g *gateway) admin(method, path string) string {
	g.w.t.Helper()
	req, _ := http.NewRequest(method, g.AdminURL+path, nil)
	req.Header.Set("Authorization", "Bearer "+adminKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		g.w.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// library runs the failover library in a child process with the config, one chat completion per model.
func (w *world) library(regions string, models []string, env ...string) []libraryResult {
	w.t.Helper()
	path := w.writeConfig("clients: [{name: e2e, key: unused}]\nregions:\n" + regions)
	cmd := exec.Command(os.Args[0], path)
	cmd.Env = append(w.env(env...), childVar+"=library")
	cmd.Stdin = strings.NewReader(strings.Join(models, "\n") + "\n")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		w.t.Fatalf("library child: %v\n%s", err, stderr.String())
	}
	var res []libraryResult
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var r libraryResult
		if err := dec.Decode(&r); err != nil {
			break
		}
		res = append(res, r)
	}
	w.assertNoSecret("the library's output", string(out)+stderr.String(), w.secrets())
	return res
}

// check runs `lifeline check --config --json` in a child process and returns the report and the text output.
func (w *world) check(regions string, env ...string) (map[string]any, string) {
	w.t.Helper()
	path := w.writeConfig("clients: [{name: e2e, key: unused}]\nregions:\n" + regions)
	run := func(args ...string) string {
		cmd := exec.Command(os.Args[0], append([]string{"check", "--config", path, "--timeout", "5s"}, args...)...)
		cmd.Env = append(w.env(env...), childVar+"=lifeline")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		cmd.Run()
		if stdout.Len() == 0 {
			w.t.Fatalf("lifeline check wrote nothing:\n%s", stderr.String())
		}
		return stdout.String() + stderr.String()
	}
	js := run("--json")
	var rep map[string]any
	if err := json.Unmarshal([]byte(js[:strings.LastIndexByte(js, '}')+1]), &rep); err != nil {
		w.t.Fatalf("check --json: %v\n%s", err, js)
	}
	return rep, js + "\n" + run()
}
