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
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/lifeline-sre/lifeline/sim"
)

// simFlags are the flags of `lifeline sim`.
type simFlags struct {
	regions    string
	host       string
	port       int
	apiKey     string
	tls        bool
	certOut    string
	tlsHosts   string
	control    string
	config     string
	seed       int64
	ttft       time.Duration
	tps        float64
	token      string
	fineTune   time.Duration
	answers    string
	setByFlags map[string]bool
}

func runSim(args []string, env *Env) int {
	fs := flag.NewFlagSet("lifeline sim", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	var f simFlags
	fs.StringVar(&f.regions, "regions", "eastus,westus,swedencentral", "comma-separated region names; region N listens on --port+N-1")
	fs.StringVar(&f.host, "host", "127.0.0.1", "interface the regions listen on (0.0.0.0 for every interface)")
	fs.IntVar(&f.port, "port", 18001, "port of the first region; the next regions use the following ports (0: pick free ports)")
	fs.StringVar(&f.apiKey, "api-key", "", "key that clients send in api-key (or as Bearer on /openai/v1); empty: one is generated and printed")
	fs.BoolVar(&f.tls, "tls", false, "serve HTTPS with a generated self-signed certificate (written to --cert-out)")
	fs.StringVar(&f.tlsHosts, "tls-hosts", "", "with --tls: extra comma-separated DNS names or IPs for the certificate (it always covers localhost, 127.0.0.1, ::1 and --host)")
	fs.StringVar(&f.certOut, "cert-out", "", "with --tls: file to write the certificate (PEM) that clients must trust; default: lifeline-sim-ca.pem in the temp directory")
	fs.StringVar(&f.control, "control", "127.0.0.1:18000", "address of the control API (faults, counters, deployments, ARM endpoint); \"off\" to disable")
	fs.StringVar(&f.config, "config", "", "YAML file with regions, deployments, quotas and latency (see docs/sim.md); flags given explicitly override it")
	fs.Int64Var(&f.seed, "seed", 1, "seed of every random choice (fault rates, ids), so a scenario replays")
	fs.DurationVar(&f.ttft, "ttft", 200*time.Millisecond, "time to first token of every region (0 for none)")
	fs.Float64Var(&f.tps, "tps", 50, "tokens per second after the first token (0 for infinitely fast)")
	fs.StringVar(&f.token, "entra-token", "", "a bearer token accepted as an Entra ID token (data plane and ARM endpoint); empty: none")
	fs.StringVar(&f.answers, "answers", "region", "answer text: region (each region its own), deterministic (the prompt decides: the same in every region) or random (different every request)")
	fs.DurationVar(&f.fineTune, "fine-tune-duration", 30*time.Second, "time a fine-tuning job takes from pending to succeeded")
	usage := func(w io.Writer) {
		fmt.Fprintln(w, "Usage: lifeline sim [flags]")
		fmt.Fprintln(w, "\nRuns simulated Azure OpenAI regions (both path shapes, api-key and Bearer auth, real JSON/SSE shapes,")
		fmt.Fprintln(w, "quotas, latency, files, fine-tuning) with fault injection through a control API. Runs until Ctrl-C.")
		fmt.Fprintln(w, "\nExample:\n  lifeline sim --regions eastus,westus --port 18001 --api-key KEY")
		fmt.Fprintln(w, "  curl -X POST localhost:18000/regions/eastus/fault -d '{\"mode\":\"down\"}'")
		fmt.Fprintln(w, "\nFlags:")
		fs.SetOutput(w)
		fs.PrintDefaults()
		fmt.Fprintln(w, "\nDocumentation: docs/sim.md")
	}
	fs.Usage = func() {} // errors are printed by the flag package; the hint follows below
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(env.Stdout)
			return 0
		}
		fmt.Fprintln(env.Stderr, "run 'lifeline sim --help' for the flags")
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(env.Stderr, "lifeline sim: unexpected argument %q; every setting is a flag (lifeline sim --help)\n", fs.Arg(0))
		return 2
	}
	f.setByFlags = map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { f.setByFlags[fl.Name] = true })
	cfg, err := f.simConfig()
	if err != nil {
		fmt.Fprintf(env.Stderr, "lifeline sim: %v\n", err)
		return 2
	}
	s, err := sim.Start(cfg)
	if err != nil {
		fmt.Fprintf(env.Stderr, "lifeline sim: %v\n", err)
		return 1
	}
	defer s.Close()
	if err := printSim(env.Stdout, s, cfg, f); err != nil {
		fmt.Fprintf(env.Stderr, "lifeline sim: %v\n", err)
		return 1
	}
	<-env.Context.Done()
	fmt.Fprintln(env.Stdout, "lifeline sim: stopping")
	return 0
}

// simConfig merges the YAML file (if any) with the flags; flags given explicitly win.
func (f simFlags) simConfig() (sim.Config, error) {
	file := &sim.File{}
	if f.config != "" {
		var err error
		if file, err = sim.LoadFile(f.config); err != nil {
			return sim.Config{}, fmt.Errorf("%w (fix the file or leave out --config)", err)
		}
	}
	cfg := file.Config()
	if f.setByFlags["regions"] || len(cfg.Regions) == 0 {
		regions, err := f.regionList(cfg.Regions)
		if err != nil {
			return sim.Config{}, err
		}
		cfg.Regions = regions
	}
	if f.port < 0 || f.port > 65535 {
		return sim.Config{}, fmt.Errorf("--port %d is not a port number (1-65535, or 0 for free ports)", f.port)
	}
	for i := range cfg.Regions {
		r := &cfg.Regions[i]
		if r.Addr == "" || f.setByFlags["port"] || f.setByFlags["host"] {
			port := 0
			if f.port != 0 {
				port = f.port + i
			}
			if port > 65535 {
				return sim.Config{}, fmt.Errorf("--port %d leaves no port for region %d (%s); choose a lower --port", f.port, i+1, r.Name)
			}
			r.Addr = net.JoinHostPort(f.host, strconv.Itoa(port))
		}
		ttftInFile, tpsInFile := file.SetsLatency(r.Name)
		if f.setByFlags["ttft"] || !ttftInFile {
			r.TimeToFirstToken = f.ttft
		}
		if f.setByFlags["tps"] || !tpsInFile {
			r.TokensPerSecond = f.tps
		}
	}
	if f.ttft < 0 || f.tps < 0 {
		return sim.Config{}, fmt.Errorf("--ttft and --tps must not be negative (0 means none / infinitely fast)")
	}
	if f.setByFlags["api-key"] || cfg.APIKey == "" {
		cfg.APIKey = f.apiKey
	}
	if cfg.APIKey == "" {
		b := make([]byte, 16)
		rand.Read(b)
		cfg.APIKey = "sim-" + hex.EncodeToString(b)
	}
	if f.setByFlags["seed"] || file.Seed == nil {
		cfg.Seed = f.seed
	}
	cfg.TLS = cfg.TLS || f.tls
	for _, h := range append(strings.Split(f.tlsHosts, ","), f.host) {
		if h = strings.TrimSpace(h); h != "" && h != "0.0.0.0" && h != "::" {
			cfg.TLSHosts = append(cfg.TLSHosts, h)
		}
	}
	if f.setByFlags["control"] || cfg.ControlAddr == "" {
		cfg.ControlAddr = f.control
	}
	if cfg.ControlAddr == "off" {
		cfg.ControlAddr = ""
	}
	if f.setByFlags["fine-tune-duration"] || cfg.FineTuneDuration == 0 {
		cfg.FineTuneDuration = f.fineTune
	}
	if f.setByFlags["answers"] || cfg.Answers == "" {
		cfg.Answers = f.answers
	}
	switch cfg.Answers {
	case sim.AnswersRegion, sim.AnswersDeterministic, sim.AnswersRandom:
	default:
		return sim.Config{}, fmt.Errorf("--answers %q: use region, deterministic or random", cfg.Answers)
	}
	if f.token != "" {
		tok := f.token
		cfg.VerifyToken = func(t string) bool { return t == tok }
	}
	return cfg, nil
}

// regionList builds the regions of --regions, keeping the settings of regions that the file also lists.
func (f simFlags) regionList(fromFile []sim.RegionConfig) ([]sim.RegionConfig, error) {
	byName := map[string]sim.RegionConfig{}
	for _, r := range fromFile {
		byName[r.Name] = r
	}
	var out []sim.RegionConfig
	seen := map[string]bool{}
	for _, n := range strings.Split(f.regions, ",") {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		if seen[n] {
			return nil, fmt.Errorf("--regions lists %q twice; each region needs a distinct name", n)
		}
		seen[n] = true
		if r, ok := byName[n]; ok {
			out = append(out, r)
			continue
		}
		out = append(out, sim.RegionConfig{Name: n})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--regions is empty; give at least one name, e.g. --regions eastus,westus")
	}
	return out, nil
}

func printSim(w io.Writer, s *sim.Sim, cfg sim.Config, f simFlags) error {
	fmt.Fprintf(w, "lifeline sim: %d simulated Azure OpenAI regions\n", len(s.Regions()))
	for _, r := range s.Regions() {
		names := make([]string, 0)
		for _, d := range r.Deployments() {
			names = append(names, d.Name)
		}
		fmt.Fprintf(w, "  %-16s %-20s %s   deployments: %s\n", r.Name(), r.DisplayName(), r.URL(), strings.Join(names, ", "))
	}
	fmt.Fprintf(w, "api key: %s\n", cfg.APIKey)
	if u := s.ControlURL(); u != "" {
		fmt.Fprintf(w, "control: %s   (GET /regions, POST /regions/{name}/fault, POST /regions/{name}/deployments)\n", u)
		fmt.Fprintf(w, "ARM:     %s/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.CognitiveServices/accounts/{region}/deployments/{name}?api-version=2024-10-01\n", u)
	}
	if cfg.TLS {
		path := f.certOut
		if path == "" {
			path = filepath.Join(os.TempDir(), "lifeline-sim-ca.pem")
		}
		if err := os.WriteFile(path, s.CertPEM(), 0o644); err != nil {
			return fmt.Errorf("writing the TLS certificate to %s: %w (choose a writable path with --cert-out)", path, err)
		}
		fmt.Fprintf(w, "TLS certificate (trust it in clients): %s\n", path)
	}
	fmt.Fprintln(w, "Press Ctrl-C to stop.")
	return nil
}
