package cli

import "fmt"

func runCheck(args []string, env *Env) int {
	fmt.Fprintln(env.Stderr, "lifeline check: not built yet")
	return 1
}
