// Package cli implements the lifeline command: one file per subcommand, each with its own flag.FlagSet.
package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
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

// Version is set at build time with -ldflags "-X github.com/lifeline-sre/lifeline/internal/cli.Version=...".
var Version = "dev"

// Run runs the lifeline command with args (without the program name) and returns the exit code.
func Run(args []string, env *Env) int {
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
	fmt.Fprintf(env.Stdout, "lifeline %s\n", Version)
	return 0
}
