package cli

import "fmt"

func runDemo(args []string, env *Env) int {
	fmt.Fprintln(env.Stderr, "lifeline demo: not built yet")
	return 1
}
