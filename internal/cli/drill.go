package cli

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/lifeline-sre/lifeline/ops/drill"
	"github.com/lifeline-sre/lifeline/sim"
)

const drillUsage = `Usage: lifeline drill --admin URL --admin-key K --region NAME [--url URL --key K --name NAME] [flags]

Rehearses a region outage through a running gateway: sends steady synthetic traffic (openai-go, no SDK
retries, so every error the gateway lets through is counted), takes --region out, holds, brings it back,
waits until failback has finished (the region healthy again and back to its full share of traffic, read
from the admin API, or from the traffic without --admin-key), and measures client-visible errors, the time
until traffic left the region, until it answered again and until failback finished, and latency p50/p99
before, during, while failing back and after. A failback that does not finish within --failback-timeout
fails the drill, and the report says where the region was. Writes report.md (with a small timeline chart), report.json
and timeline.svg to --out.

By default the region is taken out with the gateway's admin switch (POST /admin/regions/NAME/disable, then
/enable). --fault uses a real simulator fault instead (through --sim-control), so the automatic path
(breakers, retries, cool-downs, hedges, resumes) is rehearsed too. --fault takes a mode, a mode with its
fields, or the control API's JSON body (docs/sim.md lists them):

  --fault down                      --fault blackhole            --fault throttle,retry_after=5s
  --fault error,status=500          --fault slow,latency=3s      --fault slow_first_byte,latency=8s
  --fault cut_stream,after_events=5 --fault cut_stream,after_events=5,clean=true
  --fault stall_stream,after_events=3                            --fault no_done
  --fault malformed_event,after_events=2
  --fault flap,down_for=5s,up_for=5s,repeat=3,outage=down

Stream faults act on streamed answers: add --stream (or keep policy.stream_upstream on, which streams
non-streaming requests from the gateway to the region). --answers deterministic makes every simulated
region answer a prompt with the same text, so that a stream cut in one region can be resumed in another.

Against real regions keep it cheap: --max-tokens 1 and a low --rate.

Exit status: 0 no client saw an error and failback finished, 1 clients saw errors (or traffic never left
the region, or failback did not finish),
2 the drill could not run (bad flags, gateway or simulator unreachable).

Flags:
`

func runDrill(args []string, env *Env) int {
	var o drill.Options
	fs := flag.NewFlagSet("drill", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.StringVar(&o.URL, "url", "http://127.0.0.1:8080", "gateway client `URL`")
	fs.StringVar(&o.Key, "key", "", "client key of the gateway (default $LIFELINE_CLIENT_KEY)")
	fs.StringVar(&o.Name, "name", "", "client-visible model `NAME` to call (default: the first the gateway lists that answers a chat completion)")
	fs.StringVar(&o.Admin, "admin", "http://127.0.0.1:8081", "gateway admin `URL`")
	fs.StringVar(&o.AdminKey, "admin-key", "", "admin key of the gateway (default $LIFELINE_ADMIN_KEY)")
	fs.StringVar(&o.Region, "region", "", "`NAME` of the region to take out (required)")
	fs.Float64Var(&o.Rate, "rate", 5, "requests per second")
	fs.DurationVar(&o.Before, "before", 10*time.Second, "steady traffic before the region goes out")
	fs.DurationVar(&o.Hold, "hold", 20*time.Second, "how long the region stays out")
	fs.DurationVar(&o.FailbackTimeout, "failback-timeout", 3*time.Minute, "how long to wait, once the region is restored, for failback to finish\n(the region healthy and back to its full share); a drill whose failback does not finish fails")
	fs.DurationVar(&o.After, "after", 20*time.Second, "steady traffic after failback finished")
	fs.IntVar(&o.MaxTokens, "max-tokens", 8, "max_tokens of each request (1 against real regions)")
	fs.DurationVar(&o.Timeout, "timeout", 30*time.Second, "per-request timeout")
	fs.StringVar(&o.Fault, "fault", "", "take the region out with a simulator `FAULT` instead of the admin switch (above)")
	fs.StringVar(&o.SimControl, "sim-control", "http://127.0.0.1:18000", "simulator control `URL` (with --fault and --answers)")
	fs.BoolVar(&o.Stream, "stream", false, "send streaming chat completions (an answer counts only when it ends with a finish_reason)")
	fs.StringVar(&o.Answers, "answers", "", "put every simulated region in this answer `MODE` for the drill: deterministic | random | region")
	out := fs.String("out", "", "`DIR` for report.md, report.json and timeline.svg (default lifeline-drill-TIMESTAMP)")
	fs.Usage = func() { fmt.Fprint(env.Stderr, drillUsage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if msg := drillFlagError(fs, &o, env); msg != "" {
		fmt.Fprintf(env.Stderr, "lifeline drill: %s; see lifeline drill --help\n", msg)
		return 2
	}
	if *out == "" {
		*out = "lifeline-drill-" + time.Now().UTC().Format("20060102-150405")
	}
	o.Progress = env.Stderr
	rep, err := drill.Run(env.Context, o)
	if err != nil {
		fmt.Fprintf(env.Stderr, "lifeline drill: %v\n", err)
		return 2
	}
	if err := writeDrillReport(*out, rep); err != nil {
		fmt.Fprintf(env.Stderr, "lifeline drill: writing the report: %v\n", err)
		return 2
	}
	rep.WriteMarkdown(env.Stdout)
	fmt.Fprintf(env.Stdout, "\nReport: %s\n", filepath.Join(*out, "report.md"))
	if !rep.Analysis.Passed {
		return 1
	}
	return 0
}

func drillFlagError(fs *flag.FlagSet, o *drill.Options, env *Env) string {
	if o.Key == "" {
		o.Key, _ = env.Getenv("LIFELINE_CLIENT_KEY")
	}
	if o.AdminKey == "" {
		o.AdminKey, _ = env.Getenv("LIFELINE_ADMIN_KEY")
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Sprintf("unexpected argument %q", fs.Arg(0))
	case o.Region == "":
		return "--region NAME is required (the region to take out)"
	case o.Rate <= 0 || o.Rate > 1000:
		return "--rate must be between 0 and 1000 requests per second"
	case o.Fault != "" && faultError(o) != nil:
		return faultError(o).Error()
	case o.Answers != "" && o.Answers != sim.AnswersDeterministic && o.Answers != sim.AnswersRandom && o.Answers != sim.AnswersRegion:
		return fmt.Sprintf("--answers %q: use deterministic, random or region", o.Answers)
	case o.Fault == "" && o.AdminKey == "":
		return "--admin-key (or $LIFELINE_ADMIN_KEY) is required to use the admin switch"
	case o.Before <= 0 || o.Hold <= 0 || o.After <= 0 || o.FailbackTimeout <= 0:
		return "--before, --hold, --failback-timeout and --after must be positive"
	}
	return ""
}

func faultError(o *drill.Options) error {
	_, err := drill.ParseFault(o.Fault, o.Hold)
	return err
}

func writeDrillReport(dir string, rep *drill.Report) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, write := range map[string]func(*os.File) error{
		"report.md":    func(f *os.File) error { return rep.WriteMarkdown(f) },
		"report.json":  func(f *os.File) error { return rep.WriteJSON(f) },
		"timeline.svg": func(f *os.File) error { return rep.WriteSVG(f) },
	} {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		err = write(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return nil
}
