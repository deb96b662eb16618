package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/lifeline-sre/lifeline/config"
	"github.com/lifeline-sre/lifeline/ops/aoai"
	"github.com/lifeline-sre/lifeline/ops/finetune"
)

const finetuneUsage = `Usage: lifeline finetune replicate --config FILE --from REGION --job JOB_ID --to REGION [--wait] [--deploy ...]

Brings a fine-tuned model to another region: reads the job in --from (base model, training and validation
files, hyperparameters, seed, suffix), copies the files to --to, starts the same job there, and with --wait
follows it to the end and prints the deployments: line to add to the config. Running it again continues where
it stopped: copied files and the started job are found again (the copies are named
lifeline-<from>-<job>-<role>-<file>), nothing is uploaded or started twice.

--deploy creates the deployment in --to through Azure Resource Manager (needs --subscription,
--resource-group and --account; the ARM token comes from DefaultAzureCredential, or from the environment
variable LIFELINE_ARM_TOKEN, e.g. the output of
  az account get-access-token --resource https://management.azure.com --query accessToken -o tsv).

Exit status: 0 done (or started, without --wait), 1 the replication failed, 2 bad usage or config.

Flags:
`

func runFinetune(args []string, env *Env) int {
	if len(args) == 0 || args[0] != "replicate" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			fmt.Fprint(env.Stdout, finetuneUsage)
			return 0
		}
		fmt.Fprintln(env.Stderr, "lifeline finetune: the only subcommand is `replicate`; see lifeline finetune replicate --help")
		return 2
	}
	return runReplicate(args[1:], env)
}

type replicateFlags struct {
	config, from, to, job, name string
	wait, restart, asJSON       bool
	poll                        time.Duration
	deploy                      bool
	dep                         finetune.Deployment
	armEndpoint, caFile         string
}

func (f *replicateFlags) parse(args []string, env *Env) (int, bool) {
	fs := flag.NewFlagSet("finetune replicate", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.StringVar(&f.config, "config", "", "config `FILE` that lists both regions (required)")
	fs.StringVar(&f.from, "from", "", "source `REGION` (its name in the config; required)")
	fs.StringVar(&f.to, "to", "", "target `REGION` (its name in the config; required)")
	fs.StringVar(&f.job, "job", "", "fine-tuning `JOB_ID` in the source region, e.g. ftjob-... (required)")
	fs.BoolVar(&f.wait, "wait", false, "follow the target job until it succeeds or fails")
	fs.BoolVar(&f.restart, "restart", false, "start a new job when the copy from an earlier run failed")
	fs.DurationVar(&f.poll, "poll", 10*time.Second, "how often to poll the job while waiting")
	fs.StringVar(&f.name, "name", "", "client-visible `NAME` for the deployments: line (default: the name the source region maps to the model)")
	fs.BoolVar(&f.asJSON, "json", false, "write the result as JSON instead of the progress display")
	fs.BoolVar(&f.deploy, "deploy", false, "create the deployment in the target region through Azure Resource Manager")
	fs.StringVar(&f.dep.Subscription, "subscription", "", "ARM subscription id of the target resource (--deploy)")
	fs.StringVar(&f.dep.ResourceGroup, "resource-group", "", "ARM resource group of the target resource (--deploy)")
	fs.StringVar(&f.dep.Account, "account", "", "ARM account (resource) name of the target region (--deploy)")
	fs.StringVar(&f.dep.Name, "deployment-name", "", "deployment `NAME` to create (default: the fine-tuned model's name)")
	fs.StringVar(&f.dep.SKU, "sku", "Standard", "deployment SKU (--deploy): Standard, GlobalStandard, DeveloperTier, ...")
	fs.IntVar(&f.dep.Capacity, "capacity", 1, "deployment capacity (--deploy): thousands of tokens per minute for Standard")
	fs.StringVar(&f.armEndpoint, "arm-endpoint", finetune.DefaultARMEndpoint, "Azure Resource Manager `URL`")
	fs.StringVar(&f.caFile, "ca-file", "", "PEM `FILE` of extra certificates to trust (e.g. the simulator's with --tls)")
	fs.Usage = func() { fmt.Fprint(env.Stderr, finetuneUsage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, false
		}
		return 2, false
	}
	var missing []string
	for _, m := range []struct{ flag, v string }{{"--config", f.config}, {"--from", f.from}, {"--job", f.job}, {"--to", f.to}} {
		if m.v == "" {
			missing = append(missing, m.flag)
		}
	}
	if len(missing) > 0 {
		fmt.Fprintf(env.Stderr, "lifeline finetune replicate: %s required; see --help\n", strings.Join(missing, ", "))
		return 2, false
	}
	if f.from == f.to {
		fmt.Fprintln(env.Stderr, "lifeline finetune replicate: --from and --to name the same region; pick the region that lacks the model as --to")
		return 2, false
	}
	return 0, true
}

func runReplicate(args []string, env *Env) int {
	var f replicateFlags
	if code, ok := f.parse(args, env); !ok {
		return code
	}
	cfg, err := loadConfig(f.config, env)
	if err != nil {
		fmt.Fprintf(env.Stderr, "lifeline finetune replicate: %v\n", err)
		return 2
	}
	hc := &http.Client{Timeout: 5 * time.Minute}
	if f.caFile != "" {
		tc, err := trustFile(f.caFile)
		if err != nil {
			fmt.Fprintf(env.Stderr, "lifeline finetune replicate: --ca-file: %v\n", err)
			return 2
		}
		hc.Transport = &http.Transport{TLSClientConfig: tc, Proxy: http.ProxyFromEnvironment}
	}
	src, srcIdx, err := regionClient(cfg, f.from, hc)
	if err == nil {
		var tgt *aoai.Client
		tgt, _, err = regionClient(cfg, f.to, hc)
		if err == nil {
			return replicate(env, &f, cfg, src, srcIdx, tgt, hc)
		}
	}
	fmt.Fprintf(env.Stderr, "lifeline finetune replicate: %v\n", err)
	return 2
}

func replicate(env *Env, f *replicateFlags, cfg *config.Config, src *aoai.Client, srcIdx int, tgt *aoai.Client, hc *http.Client) int {
	var progress io.Writer = env.Stdout
	if f.asJSON {
		progress = nil
	}
	rp := &finetune.Replicator{Source: src, Target: tgt, Progress: progress, PollInterval: f.poll}
	res, err := rp.Replicate(env.Context, finetune.Request{JobID: f.job, Wait: f.wait, Restart: f.restart})
	if err == nil && f.deploy {
		err = deploy(env, f, res, hc)
	}
	if f.asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		enc.Encode(res)
	}
	if err != nil {
		fmt.Fprintf(env.Stderr, "lifeline finetune replicate: %v\n", err)
		return 1
	}
	model := res.FineTunedModel()
	if f.asJSON {
		return 0
	}
	if model == "" {
		fmt.Fprintf(env.Stdout, "\nThe job %s in %s is %s. Run the same command with --wait to follow it; it will not start a second job.\n",
			res.Job.ID, f.to, res.Job.Status)
		return 0
	}
	printDeploymentsLine(env.Stdout, f, cfg, srcIdx, res, model)
	return 0
}

func printDeploymentsLine(w io.Writer, f *replicateFlags, cfg *config.Config, srcIdx int, res *finetune.Result, model string) {
	name := f.name
	for n, d := range cfg.Regions[srcIdx].Deployments {
		if name == "" && d == res.SourceJob.FineTunedModel {
			name = n
		}
	}
	if name == "" {
		name = model
	}
	dep := model
	if f.dep.Name != "" {
		dep = f.dep.Name
	}
	toIdx := 0
	for i, r := range cfg.Regions {
		if r.Name == f.to {
			toIdx = i
		}
	}
	fmt.Fprintf(w, "\nAdd to regions[%d] (%s) in %s:\n    deployments:\n      %s: %s\n", toIdx, f.to, f.config, name, dep)
	if !f.deploy {
		fmt.Fprintf(w, "after deploying %s in %s as %s (rerun with --deploy, or use the Azure portal).\n", model, f.to, dep)
	}
}

func deploy(env *Env, f *replicateFlags, res *finetune.Result, hc *http.Client) error {
	model := res.FineTunedModel()
	if model == "" {
		return fmt.Errorf("--deploy needs the job to have succeeded; it is %s: add --wait", res.Job.Status)
	}
	d := f.dep
	d.Model = model
	if d.Name == "" {
		d.Name = model
	}
	dp := &finetune.Deployer{Endpoint: f.armEndpoint, Credential: armCredential(env), HTTP: hc, PollInterval: f.poll}
	state, err := dp.Deploy(env.Context, d)
	if err != nil {
		return err
	}
	if !f.asJSON {
		fmt.Fprintf(env.Stdout, "%-15s %-9s %s as %s in %s (%s)\n", "deploy", "created", model, d.Name, d.Account, state)
	}
	return nil
}

// armCredential is LIFELINE_ARM_TOKEN when set, else DefaultAzureCredential.
func armCredential(env *Env) azcore.TokenCredential {
	if tok, ok := env.Getenv("LIFELINE_ARM_TOKEN"); ok && tok != "" {
		return staticToken(tok)
	}
	cred, err := azidentity.NewDefaultAzureCredential(nil)
	if err != nil {
		return failedCredential{err}
	}
	return cred
}

type staticToken string

func (s staticToken) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: string(s), ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// loadConfig reads and validates a config, with ${NAME} from the command's environment.
func loadConfig(path string, env *Env) (*config.Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%v; pass the path of your lifeline config with --config", err)
	}
	cfg, err := config.Parse(data, env.Getenv)
	if err != nil {
		return nil, fmt.Errorf("%s:\n%v\n(lifeline check --config %s shows every problem)", path, err, path)
	}
	return cfg, nil
}

// regionClient builds the data-plane client of the named region, and returns its index in the config.
func regionClient(cfg *config.Config, name string, hc *http.Client) (*aoai.Client, int, error) {
	var names []string
	for i, r := range cfg.Regions {
		if r.Name == name {
			c := &aoai.Client{Region: r.Name, Endpoint: r.Endpoint, APIKey: r.APIKey, HTTP: hc}
			if r.Entra != nil {
				c.Credential = entraCredential(r.Entra)
			}
			return c, i, nil
		}
		names = append(names, r.Name)
	}
	return nil, 0, fmt.Errorf("no region %q in the config; its regions are %s", name, strings.Join(names, ", "))
}
