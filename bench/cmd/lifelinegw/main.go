// Command lifelinegw runs Lifeline's gateway exactly as `lifeline serve --config FILE` does (config.Load,
// gateway.New, Run), plus an optional net/http/pprof listener so that the benchmark can profile the hot
// path under load. The harness uses `lifeline serve` when it works and this otherwise; the report says which.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/signal"
	"syscall"

	"github.com/lifeline-sre/lifeline/config"
	"github.com/lifeline-sre/lifeline/gateway"
)

func main() {
	path := flag.String("config", "", "Lifeline config file")
	pprofAddr := flag.String("pprof", "", "if set, serve net/http/pprof on this address")
	flag.Parse()
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	g, err := gateway.New(cfg, gateway.Options{Load: func() (*config.Config, error) { return config.Load(*path) }})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if *pprofAddr != "" {
		go func() { fmt.Fprintln(os.Stderr, http.ListenAndServe(*pprofAddr, nil)) }()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := g.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
