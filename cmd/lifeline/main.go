// Command lifeline keeps applications that call Azure OpenAI answering when a region fails.
package main

import (
	"os"

	"github.com/lifeline-sre/lifeline/internal/cli"
)

func main() { os.Exit(cli.Run(os.Args[1:], cli.Std())) }
