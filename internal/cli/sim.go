package cli

import "fmt"

func runSim(args []string, env *Env) int {
	fmt.Fprintln(env.Stderr, "lifeline sim: not built yet")
	return 1
}
