// Package cli implements the lifeline command: one file per subcommand, each with its own flag.FlagSet.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"

	"github.com/lifeline-sre/lifeline/internal/version"
)

// Env is what a subcommand may touch of the outside world; tests fill it with buffers.
type Env struct {
	Stdout io.Writer
	Stderr io.Writer
	Getenv func(string) (string, bool)
	// Context ends on SIGINT or SIGTERM.
	Context context.Context
}

// Std returns the process environment, with a context that ends on SIGINT or SIGTERM.
func Std() *Env {
	ctx, _ := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	return &Env{Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.LookupEnv, Context: ctx}
}

type command struct {
	summary string
	run     func(args []string, env *Env) int
}

func commands() map[string]command {
	return map[string]command{
		"demo":     {"run simulated regions, the gateway, live traffic and a scripted outage", runDemo},
		"serve":    {"run the gateway (--config FILE, or --dev on embedded simulated regions)", runServe},
		"sim":      {"run simulated Azure OpenAI regions with fault injection", runSim},
		"check":    {"validate a config and probe every region, with a parity report", runCheck},
		"drill":    {"rehearse a region outage through a running gateway and report", runDrill},
		"finetune": {"replicate a fine-tuned model to another region (finetune replicate)", runFinetune},
		"version":  {"print the version", runVersion},
	}
}

// Version, when set at build time with -ldflags "-X github.com/lifeline-sre/lifeline/internal/cli.Version=v1.2.3",
// overrides the module version from the binary's build information (a container build without .git, a packager).
// The commit and Go version still come from the build information.
var Version = ""

// Run runs the lifeline command with args (without the program name) and returns the exit code.
func Run(args []string, env *Env) int {
	if Version != "" {
		version.Override = Version // the one place it is set: lifeline version and the traces' service.version read it
	}
	if env.Context == nil {
		env.Context = context.Background()
	}
	if env.Getenv == nil {
		env.Getenv = os.LookupEnv
	}
	cmds := commands()
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(env.Stdout, cmds)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(env.Stderr, "lifeline: unknown command %q; run 'lifeline --help' for the list\n", args[0])
		return 2
	}
	return c.run(args[1:], env)
}

func usage(w io.Writer, cmds map[string]command) {
	fmt.Fprintln(w, "lifeline keeps applications that call Azure OpenAI answering when a region fails.")
	fmt.Fprintln(w, "\nUsage: lifeline <command> [flags]    (lifeline <command> --help for its flags)")
	fmt.Fprintln(w, "\nCommands:")
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-9s %s\n", n, cmds[n].summary)
	}
}

func runVersion(args []string, env *Env) int {
	fs := flag.NewFlagSet("lifeline version", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	asJSON := fs.Bool("json", false, "print version, commit, commit_time, modified, go_version and module as JSON")
	fs.Usage = func() {
		fmt.Fprintln(env.Stderr, "Usage: lifeline version [--json]\n\nPrints the version, the commit it was built from and the Go version, from the binary's build information.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(env.Stderr, "lifeline version: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	in := version.Get()
	if *asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		enc.Encode(in)
		return 0
	}
	fmt.Fprintln(env.Stdout, in.String())
	return 0
}
