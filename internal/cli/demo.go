package cli

import (
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/lifeline-sre/lifeline/demo"
)

func runDemo(args []string, env *Env) int {
	fs := flag.NewFlagSet("lifeline demo", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	var o demo.Options
	fs.DurationVar(&o.Duration, "duration", 2*time.Minute, "how long the whole demo runs; the outage timeline scales with it")
	fs.Float64Var(&o.Rate, "rate", 20, "client requests per second (half of them streaming)")
	fs.BoolVar(&o.NoOutage, "no-outage", false, "keep every region healthy (a baseline run)")
	fs.Int64Var(&o.Seed, "seed", 1, "seed of the simulator's randomness, so a run replays")
	fs.Usage = func() {
		fmt.Fprintln(env.Stderr, `Usage: lifeline demo [flags]

Starts three simulated Azure OpenAI regions (eastus primary, westus secondary, swedencentral tertiary), the real
gateway in front of them on loopback sockets, and steady traffic from the official openai-go client. Then it plays
a timeline: healthy; eastus goes down; westus throttles with 429; westus recovers; eastus comes back and takes its
traffic back gradually. A live view shows requests per second per region, region states, client errors and each
failover; the summary at the end gives the measured figures. Exit status 0 only if no client saw an error.

Flags:`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(env.Stderr, "lifeline demo: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if o.Duration < 5*time.Second {
		fmt.Fprintln(env.Stderr, "lifeline demo: --duration must be at least 5s so that the outage timeline fits")
		return 2
	}
	o.Out = env.Stdout
	sum, err := demo.Run(env.Context, o)
	if err != nil {
		fmt.Fprintf(env.Stderr, "lifeline demo: %v\n", err)
		return 1
	}
	sum.Print(env.Stdout)
	if sum.ClientErrors > 0 {
		fmt.Fprintf(env.Stdout, "\nFAIL: clients saw %d errors\n", sum.ClientErrors)
		return 1
	}
	fmt.Fprintln(env.Stdout, "\nOK: no client saw an error")
	return 0
}
