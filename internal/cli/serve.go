package cli

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/template"
	"time"

	"github.com/lifeline-sre/lifeline/config"
	"github.com/lifeline-sre/lifeline/gateway"
	"github.com/lifeline-sre/lifeline/internal/sdnotify"
	"github.com/lifeline-sre/lifeline/sim"
)

// serveFlags are the flags of `lifeline serve`.
type serveFlags struct {
	config      string
	dev         bool
	listen      string
	adminListen string
	devRegions  string
	devControl  string
	logFormat   string
}

func runServe(args []string, env *Env) int {
	fs := flag.NewFlagSet("lifeline serve", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	var f serveFlags
	fs.StringVar(&f.config, "config", "", "the gateway's YAML config (docs/config.md); reloaded on SIGHUP and POST /admin/reload")
	fs.BoolVar(&f.dev, "dev", false, "run on embedded simulated regions with a generated client key, and print ready-to-paste client snippets")
	fs.StringVar(&f.listen, "listen", "", "client address, overriding the config's listen (--dev default 127.0.0.1:8080)")
	fs.StringVar(&f.adminListen, "admin-listen", "", "admin address, overriding the config's admin.listen (--dev default 127.0.0.1:8081)")
	fs.StringVar(&f.devRegions, "dev-regions", "eastus,westus,swedencentral", "with --dev: the simulated regions, most preferred first")
	fs.StringVar(&f.devControl, "dev-control", "127.0.0.1:0", "with --dev: address of the simulator's fault-injection API (POST /regions/{name}/fault)")
	fs.StringVar(&f.logFormat, "log-format", "", "json or text, overriding the config's logging.format (--dev default text)")
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintln(w, "Usage: lifeline serve --config FILE | --dev [flags]")
		fmt.Fprintln(w, "\nRuns the Lifeline gateway: an Azure OpenAI / OpenAI-compatible endpoint that fails over between regions.")
		fmt.Fprintln(w, "Clients change only their endpoint and key. Admin API, /metrics and the status page are on the admin")
		fmt.Fprintln(w, "listener (docs/gateway.md). SIGHUP reloads the config; SIGINT/SIGTERM stop gracefully.")
		fmt.Fprintln(w, "\nExamples:\n  lifeline serve --config /etc/lifeline/lifeline.yaml\n  lifeline serve --dev")
		fmt.Fprintln(w, "\nFlags:")
		fs.PrintDefaults()
	}
	for _, a := range args {
		if a == "-h" || a == "-help" || a == "--help" {
			fs.SetOutput(env.Stdout)
			fs.Usage()
			return 0
		}
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(env.Stderr, "lifeline serve: unexpected argument %q; run 'lifeline serve --help'\n", fs.Arg(0))
		return 2
	}
	switch {
	case f.dev && f.config != "":
		fmt.Fprintln(env.Stderr, "lifeline serve: use --config or --dev, not both")
		return 2
	case f.dev:
		return serveDev(f, env)
	case f.config == "":
		fmt.Fprintln(env.Stderr, "lifeline serve: --config FILE is required (or --dev to try it on simulated regions); see 'lifeline serve --help'")
		return 2
	}
	return serveConfig(f, env)
}

// loadServeConfig loads the file and applies the command-line overrides.
func loadServeConfig(f serveFlags, getenv func(string) (string, bool)) (*config.Config, error) {
	data, err := os.ReadFile(f.config)
	if err != nil {
		return nil, err
	}
	cfg, err := config.Parse(data, getenv)
	if err != nil {
		return nil, err
	}
	f.override(cfg)
	return cfg, cfg.Validate()
}

func (f serveFlags) override(cfg *config.Config) {
	if f.listen != "" {
		cfg.Listen = f.listen
	}
	if f.adminListen != "" {
		cfg.Admin.Listen = f.adminListen
	}
	if f.logFormat != "" {
		cfg.Logging.Format = f.logFormat
	}
}

// printConfigError prints each problem on its own line, prefixed "config:", as SPEC.md section 2 shows.
func printConfigError(w io.Writer, file string, err error) {
	var errs *config.Errors
	if errors.As(err, &errs) {
		fmt.Fprintf(w, "lifeline serve: %s has %d problem(s):\n", file, len(errs.Problems))
		for _, p := range errs.Problems {
			fmt.Fprintf(w, "config: %s\n", p)
		}
		return
	}
	fmt.Fprintf(w, "lifeline serve: config: %v\n", err)
}

func serveConfig(f serveFlags, env *Env) int {
	cfg, err := loadServeConfig(f, env.Getenv)
	if err != nil {
		printConfigError(env.Stderr, f.config, err)
		return 2
	}
	notifier, err := sdnotify.FromEnv(env.Getenv)
	if err != nil {
		fmt.Fprintf(env.Stderr, "lifeline serve: %v\n", err)
		return 1
	}
	defer notifier.Close()
	g, err := gateway.New(cfg, gateway.Options{
		LogOutput: env.Stderr, // the gateway's own logger: its level follows reloads
		Load:      func() (*config.Config, error) { return loadServeConfig(f, env.Getenv) },
		Notify: func(state string) {
			if err := notifier.Notify(state); err != nil {
				fmt.Fprintf(env.Stderr, "lifeline serve: %v\n", err)
			}
		},
	})
	if err != nil {
		fmt.Fprintf(env.Stderr, "lifeline serve: %v\n", err)
		return 1
	}
	stopHUP := reloadOnHUP(g)
	defer stopHUP()
	if err := g.Run(env.Context); err != nil {
		fmt.Fprintf(env.Stderr, "lifeline serve: %v\n", err)
		return 1
	}
	return 0
}

// reloadOnHUP reloads the gateway's config on every SIGHUP until the returned stop is called.
func reloadOnHUP(g *gateway.Gateway) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-hup:
				g.ReloadFromSource() // logs the outcome; a bad file keeps the old config
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		close(done)
	}
}

// serveDev runs the gateway on embedded simulated regions with generated keys, and prints how to call it.
func serveDev(f serveFlags, env *Env) int {
	regions := strings.Split(f.devRegions, ",")
	regionKey := "sim-" + randomHex(16)
	simRegions := sim.DefaultRegions(regions...)
	for i := range simRegions { // realistic enough to watch streams arrive
		simRegions[i].TimeToFirstToken, simRegions[i].TokensPerSecond = 150*time.Millisecond, 60
		simRegions[i].Deployments = devDeployments()
	}
	s, err := sim.Start(sim.Config{Regions: simRegions, APIKey: regionKey, ControlAddr: f.devControl, Seed: 1})
	if err != nil {
		fmt.Fprintf(env.Stderr, "lifeline serve --dev: %v\n", err)
		return 1
	}
	defer s.Close()
	cfg := devConfig(s, regions, regionKey)
	f.override(cfg)
	if f.logFormat == "" {
		cfg.Logging.Format = "text"
	}
	if err := cfg.Validate(); err != nil {
		printConfigError(env.Stderr, "--dev", err)
		return 2
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		fmt.Fprintf(env.Stderr, "lifeline serve --dev: listen %s: %v (choose another with --listen)\n", cfg.Listen, err)
		return 1
	}
	aln, err := net.Listen("tcp", cfg.Admin.Listen)
	if err != nil {
		ln.Close()
		fmt.Fprintf(env.Stderr, "lifeline serve --dev: admin listen %s: %v (choose another with --admin-listen)\n", cfg.Admin.Listen, err)
		return 1
	}
	g, err := gateway.New(cfg, gateway.Options{LogOutput: env.Stderr})
	if err != nil {
		fmt.Fprintf(env.Stderr, "lifeline serve --dev: %v\n", err)
		return 1
	}
	info := devInfo{
		URL: "http://" + ln.Addr().String(), AdminURL: "http://" + aln.Addr().String(),
		Key: cfg.Clients[0].Key, AdminKey: cfg.Admin.Key, Regions: regions, Control: s.ControlURL(), Model: "gpt-4o",
		RegionKey: regionKey,
	}
	for _, d := range devDeployments() {
		info.Names = append(info.Names, d.Name)
	}
	for _, name := range regions {
		info.RegionURLs = append(info.RegionURLs, devRegion{Env: strings.ToUpper(name), URL: s.Region(name).URL()})
	}
	printDevSnippets(env.Stdout, info)
	if err := g.Serve(env.Context, ln, aln); err != nil {
		fmt.Fprintf(env.Stderr, "lifeline serve --dev: %v\n", err)
		return 1
	}
	return 0
}

// devDeployments are what every dev region serves: chat, embeddings, images, audio and Realtime, so that every
// route can be tried on a laptop.
func devDeployments() []sim.Deployment {
	return append(sim.DefaultDeployments(),
		sim.Deployment{Name: "dall-e-3", Model: "dall-e-3", Version: "3.0"},
		sim.Deployment{Name: "whisper", Model: "whisper", Version: "001"},
		sim.Deployment{Name: "tts", Model: "tts-1", Version: "001"},
		sim.Deployment{Name: "gpt-4o-realtime-preview", Model: "gpt-4o-realtime-preview", Version: "2024-12-17"})
}

func devConfig(s *sim.Sim, regions []string, regionKey string) *config.Config {
	cfg := &config.Config{
		Listen:  "127.0.0.1:8080",
		Clients: []config.Client{{Name: "dev", Key: "ll-dev-" + randomHex(16)}},
		Admin:   config.Admin{Listen: "127.0.0.1:8081", Key: "ll-admin-" + randomHex(16)},
		Policy: config.Policy{
			Breaker:  config.Breaker{OpenFor: config.Duration(5 * time.Second)},
			Timeouts: config.Timeouts{Response: config.Duration(30 * time.Second), StreamIdle: config.Duration(15 * time.Second)},
		},
		Server: config.Server{ShutdownDelay: -1}, // no load balancer to wait for: Ctrl-C stops at once
	}
	for i, name := range regions {
		r := s.Region(name)
		deps := map[string]string{}
		for _, d := range r.Deployments() {
			deps[d.Name] = d.Name
		}
		cfg.Regions = append(cfg.Regions, config.Region{Name: name, Endpoint: r.URL(), APIKey: regionKey, Priority: min(i+1, 2), Deployments: deps})
	}
	cfg.ApplyDefaults()
	return cfg
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

type devInfo struct {
	URL, AdminURL, Key, AdminKey, Control, Model, RegionKey string
	Regions, Names                                          []string
	RegionURLs                                              []devRegion
}

// devRegion is a simulated region's URL and the prefix of its variables (AOAI_EASTUS_ENDPOINT, ...).
type devRegion struct{ Env, URL string }

var devSnippets = template.Must(template.New("dev").Parse(`
Lifeline gateway (dev mode) on simulated regions {{range $i, $r := .Regions}}{{if $i}}, {{end}}{{$r}}{{end}}

  endpoint     {{.URL}}
  client key   {{.Key}}
  names        {{range $i, $n := .Names}}{{if $i}}, {{end}}{{$n}}{{end}}
  status page  {{.AdminURL}}/status?key={{.AdminKey}}
  admin key    {{.AdminKey}}
{{if .Control}}  faults       curl -X POST {{.Control}}/regions/{{index .Regions 0}}/fault -d '{"mode":"down"}'   (then {"mode":"clear"})
{{end}}
Variables for the examples (examples/curl, examples/node, examples/library) and the SDKs' own:
  export LIFELINE_URL={{.URL}} LIFELINE_KEY={{.Key}}
  export LIFELINE_ADMIN_URL={{.AdminURL}} LIFELINE_ADMIN_KEY={{.AdminKey}}
  export AZURE_OPENAI_ENDPOINT={{.URL}} AZURE_OPENAI_API_KEY={{.Key}} OPENAI_API_VERSION=2024-10-21
  export OPENAI_BASE_URL={{.URL}}/v1 OPENAI_API_KEY={{.Key}}
{{range .RegionURLs}}  export AOAI_{{.Env}}_ENDPOINT={{.URL}} AOAI_{{.Env}}_KEY={{$.RegionKey}}
{{end}}
curl:
  curl {{.URL}}/openai/deployments/{{.Model}}/chat/completions?api-version=2024-10-21 \
    -H "api-key: {{.Key}}" -H "Content-Type: application/json" \
    -d '{"messages":[{"role":"user","content":"Hello"}]}'

Go (openai-go):
  client := openai.NewClient(
      azure.WithEndpoint("{{.URL}}", "2024-10-21"),
      azure.WithAPIKey("{{.Key}}"),
      azure.WithUnsafeAllowHTTP(), // dev mode serves plain HTTP on loopback
  )
  resp, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
      Model:    "{{.Model}}",
      Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hello")},
  })

Python (openai):
  from openai import AzureOpenAI
  client = AzureOpenAI(azure_endpoint="{{.URL}}", api_key="{{.Key}}", api_version="2024-10-21")
  print(client.chat.completions.create(model="{{.Model}}", messages=[{"role": "user", "content": "Hello"}]).choices[0].message.content)

Node (openai):
  import { AzureOpenAI } from "openai";
  const client = new AzureOpenAI({ endpoint: "{{.URL}}", apiKey: "{{.Key}}", apiVersion: "2024-10-21" });
  const r = await client.chat.completions.create({ model: "{{.Model}}", messages: [{ role: "user", content: "Hello" }] });
  console.log(r.choices[0].message.content);

Stored responses follow their region (retrieve, chain with previous_response_id, delete):
  curl {{.URL}}/v1/responses -H "Authorization: Bearer {{.Key}}" -H "Content-Type: application/json" \
    -d '{"model":"{{.Model}}","input":"Hello"}'
Realtime over WebSocket: {{.URL}}/openai/v1/realtime?model=gpt-4o-realtime-preview (ws://, same key)

Plain OpenAI clients: base URL {{.URL}}/v1 with the same key.
Ctrl-C stops.
`))

func printDevSnippets(w io.Writer, info devInfo) {
	devSnippets.Execute(w, info)
}
