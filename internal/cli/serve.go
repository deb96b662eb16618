package cli

import "fmt"

func runServe(args []string, env *Env) int {
	fmt.Fprintln(env.Stderr, "lifeline serve: not built yet")
	return 1
}
