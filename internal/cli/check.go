package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"go.yaml.in/yaml/v3"

	"github.com/lifeline-sre/lifeline/config"
	"github.com/lifeline-sre/lifeline/internal/entra"
	"github.com/lifeline-sre/lifeline/ops/aoai"
	"github.com/lifeline-sre/lifeline/ops/check"
)

const checkUsage = `Usage: lifeline check --config FILE [--probe] [--json] [--arm-resource REGION=RESOURCE_ID ...]

Validates the config (every problem at once, each naming its field, and nothing is probed until the config
is valid), then probes every region: DNS, TCP
connect and TLS handshake time, the certificate, auth (the exact failure: wrong key, key auth disabled,
missing role), and each mapped deployment: whether it exists and which model and version it serves: from
Azure Resource Manager, which costs no tokens (each region's resource is found by its endpoint among the
accounts your Azure sign-in can see: --arm, by default for regions on Azure hosts; or named with
--arm-resource), else with --probe from one minimal request, which costs tokens, else when the deployment
is named after a model. Ends with a parity table across regions:
names served by one region only, model versions that differ, fine-tuned models missing in a region, names
with no backup priority level.

Exit status: 0 all good, 1 warnings, 2 errors (or bad usage).

Flags:
`

func runCheck(args []string, env *Env) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	cfgPath := fs.String("config", "", "config `FILE` to check (required)")
	probe := fs.Bool("probe", false, "send a minimal completion (max_tokens 1) to every deployment to learn its model and version; costs tokens")
	asJSON := fs.Bool("json", false, "write the report as JSON")
	timeout := fs.Duration("timeout", 10*time.Second, "bound for each network step and request")
	caFile := fs.String("ca-file", "", "PEM `FILE` of extra certificates to trust (e.g. the simulator's with --tls)")
	armResources := resourceFlag{}
	fs.Var(armResources, "arm-resource", "`REGION=RESOURCE_ID` (repeatable): list that region's deployments through Azure Resource Manager\nto learn every model and version without tokens; RESOURCE_ID is /subscriptions/.../accounts/NAME")
	armEndpoint := fs.String("arm-endpoint", aoai.DefaultARMEndpoint, "Azure Resource Manager `URL`")
	armMode := fs.String("arm", "auto", "find each region's resource in Azure Resource Manager by its endpoint, to read every model and\nversion without tokens: auto (for regions on Azure hosts, or with --arm-endpoint), on, off")
	fs.Usage = func() { fmt.Fprint(env.Stderr, checkUsage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *cfgPath == "" || fs.NArg() > 0 {
		fmt.Fprintln(env.Stderr, "lifeline check: --config FILE is required (and takes no other arguments); see lifeline check --help")
		return 2
	}
	data, err := os.ReadFile(*cfgPath)
	if err != nil {
		fmt.Fprintf(env.Stderr, "lifeline check: %v; pass the path of your lifeline config with --config\n", err)
		return 2
	}
	opts := check.Options{Probe: *probe, Timeout: *timeout}
	if *caFile != "" {
		if opts.TLSConfig, err = trustFile(*caFile); err != nil {
			fmt.Fprintf(env.Stderr, "lifeline check: --ca-file: %v\n", err)
			return 2
		}
	}
	switch *armMode {
	case "auto", "on", "off":
	default:
		fmt.Fprintf(env.Stderr, "lifeline check: --arm %q: use auto, on or off\n", *armMode)
		return 2
	}
	cfg, err := config.Parse(data, env.Getenv)
	if err != nil {
		var ce *config.Errors
		if !errors.As(err, &ce) {
			fmt.Fprintf(env.Stderr, "lifeline check: %s: %v\n", *cfgPath, err)
			return 2
		}
		// A config with errors is not probed: the regions it names may not be the ones meant, and findings about
		// them (a single point of failure because a region was left out) would only mislead.
		rep := &check.Report{}
		for _, p := range lenient(data, env.Getenv, ce) {
			rep.AddConfigError(p.Field, p.String(), configFix(p, *cfgPath))
		}
		return writeCheckReport(env, rep, *asJSON)
	}
	if discover := armDiscovery(*armMode, *armEndpoint != aoai.DefaultARMEndpoint, cfg.Regions); discover || len(armResources) > 0 {
		opts.ARM = &check.ARM{Endpoint: *armEndpoint, Credential: armCredential(env), Resources: armResources, Discover: discover}
	}
	rep := check.Run(env.Context, checkRegions(cfg.Regions), opts)
	for i := range rep.Findings { // the fixes can name the real file
		rep.Findings[i].Fix = strings.ReplaceAll(rep.Findings[i].Fix, "--config FILE", "--config "+*cfgPath)
	}
	return writeCheckReport(env, rep, *asJSON)
}

// armDiscovery decides whether check looks for the regions' resources in Resource Manager: always with --arm on,
// never with off; with auto when the user named a Resource Manager or some region is on an Azure host (anything
// else, a simulator or a proxy, has no resource to find).
func armDiscovery(mode string, endpointGiven bool, regions []config.Region) bool {
	switch mode {
	case "on":
		return true
	case "off":
		return false
	}
	if endpointGiven {
		return true
	}
	for _, r := range regions {
		if u, err := url.Parse(r.Endpoint); err == nil && aoai.IsAzureHost(u.Host) {
			return true
		}
	}
	return false
}

func writeCheckReport(env *Env, rep *check.Report, asJSON bool) int {
	if asJSON {
		rep.WriteJSON(env.Stdout)
	} else {
		rep.WriteText(env.Stdout)
	}
	return rep.ExitCode()
}

// configFix says what to do about a config problem.
func configFix(p config.Problem, file string) string {
	switch {
	case strings.Contains(p.Message, "environment variable"):
		return "set the variable in the environment of lifeline check (and of lifeline serve), or write the value in " + file
	case p.Field == "":
		return "correct " + file + " (docs/config.md describes every key), then run lifeline check again"
	}
	return "correct " + p.Field + " in " + file + " (docs/config.md describes every key), then run lifeline check again"
}

// resourceFlag collects --arm-resource REGION=RESOURCE_ID.
type resourceFlag map[string]string

func (r resourceFlag) String() string { return "" }

func (r resourceFlag) Set(v string) error {
	region, id, ok := strings.Cut(v, "=")
	if !ok || region == "" || !strings.Contains(strings.ToLower(id), "/providers/microsoft.cognitiveservices/accounts/") {
		return fmt.Errorf("want REGION=/subscriptions/SUB/resourceGroups/RG/providers/Microsoft.CognitiveServices/accounts/NAME")
	}
	r[region] = id
	return nil
}

func trustFile(path string) (*tls.Config, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return &tls.Config{RootCAs: pool}, nil
}

// lenient reads a config that did not load, as far as it can, and adds the validation problems that the strict
// decoder did not get to, so that one run shows every problem.
func lenient(data []byte, getenv func(string) (string, bool), ce *config.Errors) []config.Problem {
	problems := append([]config.Problem(nil), ce.Problems...)
	expanded := os.Expand(string(data), func(k string) string { v, _ := getenv(k); return v })
	var c config.Config
	if err := yaml.Unmarshal([]byte(expanded), &c); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return problems
		}
	}
	c.ApplyDefaults()
	var more *config.Errors
	if errors.As(c.Validate(), &more) {
		for _, p := range more.Problems {
			if !related(p.Field, ce.Problems) {
				problems = append(problems, p)
			}
		}
	}
	return problems
}

// related reports whether a problem was already reported for field, a field inside it, or a field around it.
func related(field string, problems []config.Problem) bool {
	for _, p := range problems {
		if field == "" || p.Field == "" {
			continue
		}
		if p.Field == field || strings.HasPrefix(p.Field, field+".") || strings.HasPrefix(p.Field, field+"[") ||
			strings.HasPrefix(field, p.Field+".") || strings.HasPrefix(field, p.Field+"[") {
			return true
		}
	}
	return false
}

func checkRegions(regions []config.Region) []check.Region {
	out := make([]check.Region, len(regions))
	for i, r := range regions {
		out[i] = check.Region{Name: r.Name, Endpoint: r.Endpoint, APIKey: r.APIKey, Priority: r.Priority, Deployments: r.Deployments}
		if r.Entra != nil {
			out[i].Credential = entraCredential(r.Entra)
		}
	}
	return out
}

// entraCredential builds the credential a region's `entra:` asks for; a credential that cannot be built
// reports its error when a token is requested, so check shows it against the region.
func entraCredential(e *config.Entra) azcore.TokenCredential {
	// The same credential the gateway builds for the region (internal/entra), so that check proves what serve does.
	cred, err := entra.New(entra.Spec{TenantID: e.TenantID, ClientID: e.ClientID, ClientSecret: e.ClientSecret,
		ManagedIdentityClientID: e.ManagedIdentityClientID}, entra.Options{})
	if err != nil {
		return failedCredential{errors.New(entra.Redact(err.Error(), entra.Spec{ClientSecret: e.ClientSecret}))}
	}
	return cred
}

type failedCredential struct{ err error }

func (f failedCredential) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{}, f.err
}
