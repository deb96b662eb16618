package cli

import "fmt"

func runFinetune(args []string, env *Env) int {
	fmt.Fprintln(env.Stderr, "lifeline finetune: not built yet")
	return 1
}
