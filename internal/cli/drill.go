package cli

import "fmt"

func runDrill(args []string, env *Env) int {
	fmt.Fprintln(env.Stderr, "lifeline drill: not built yet")
	return 1
}
