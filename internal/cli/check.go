package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
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

Validates the config (every problem at once, each naming its field), then probes every region: DNS, TCP
connect and TLS handshake time, the certificate, auth (the exact failure: wrong key, key auth disabled,
missing role), and each mapped deployment: whether it exists and which model and version it serves (with
--probe from one minimal request, which costs tokens; with --arm-resource from Azure Resource Manager, which
does not; else when the deployment is named after a model). Ends with a parity table across regions:
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
	armEndpoint := fs.String("arm-endpoint", aoai.DefaultARMEndpoint, "Azure Resource Manager `URL` (with --arm-resource)")
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
	if len(armResources) > 0 {
		opts.ARM = &check.ARM{Endpoint: *armEndpoint, Credential: armCredential(env), Resources: armResources}
	}
	cfg, err := config.Parse(data, env.Getenv)
	rep := &check.Report{}
	var regions []config.Region
	switch {
	case err == nil:
		regions = cfg.Regions
	default:
		var ce *config.Errors
		if !errors.As(err, &ce) {
			fmt.Fprintf(env.Stderr, "lifeline check: %s: %v\n", *cfgPath, err)
			return 2
		}
		var problems []config.Problem
		problems, regions = lenient(data, env.Getenv, ce)
		for _, p := range problems {
			rep.AddConfigError(p.Field, p.String())
		}
	}
	if len(regions) > 0 {
		probed := check.Run(env.Context, checkRegions(regions), opts)
		probed.Config = rep.Config
		rep = probed
	}
	for i := range rep.Findings { // the fixes can name the real file
		rep.Findings[i].Fix = strings.ReplaceAll(rep.Findings[i].Fix, "--config FILE", "--config "+*cfgPath)
	}
	if *asJSON {
		rep.WriteJSON(env.Stdout)
	} else {
		rep.WriteText(env.Stdout)
	}
	return rep.ExitCode()
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

// lenient reads a config that did not load, as far as it can: it adds the validation problems that the strict
// decoder did not get to (so that one run shows every problem), and returns the regions without a problem of
// their own, so that they can still be probed.
func lenient(data []byte, getenv func(string) (string, bool), ce *config.Errors) ([]config.Problem, []config.Region) {
	problems := append([]config.Problem(nil), ce.Problems...)
	expanded := os.Expand(string(data), func(k string) string { v, _ := getenv(k); return v })
	var c config.Config
	if err := yaml.Unmarshal([]byte(expanded), &c); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return problems, nil
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
	var out []config.Region
	for i, r := range c.Regions {
		if !related("regions["+strconv.Itoa(i)+"]", problems) && r.Name != "" && r.Endpoint != "" {
			out = append(out, r)
		}
	}
	return problems, out
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
