// Command lifelinegw runs Lifeline's gateway exactly as `lifeline serve --config FILE` does (config.Load,
// gateway.New, Run), plus an optional net/http/pprof listener so that the benchmark can profile the hot
// path under load. The harness uses `lifeline serve` when it works and this otherwise; the report says which.
//
// -region-client net/http-h1 replaces the regions' client with net/http's Transport limited to HTTP/1.1
// (what would serve `protocol: http1` regions if Lifeline's own HTTP/1.1 client went): bench/clients.sh
// compares it with the own client and with HTTP/2. It is a benchmark switch, not a product setting.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/lifeline-sre/lifeline/config"
	"github.com/lifeline-sre/lifeline/failover"
	"github.com/lifeline-sre/lifeline/gateway"
)

// netHTTP1 returns one net/http Transport per region, HTTP/1.1 only, with the pool and timeouts that
// failover builds for its own transports.
func netHTTP1(cfg *config.Config) func(failover.Region) http.RoundTripper {
	trs := map[string]*http.Transport{}
	connect := cfg.Failover().Policy.WithDefaults().Timeouts.Connect
	return func(r failover.Region) http.RoundTripper {
		if tr := trs[r.Name]; tr != nil {
			return tr
		}
		p := new(http.Protocols)
		p.SetHTTP1(true)
		tr := &http.Transport{
			DialContext:         (&net.Dialer{Timeout: connect, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout: connect,
			MaxIdleConnsPerHost: 1024,
			IdleConnTimeout:     90 * time.Second,
			Protocols:           p,
		}
		trs[r.Name] = tr
		return tr
	}
}

func main() {
	path := flag.String("config", "", "Lifeline config file")
	pprofAddr := flag.String("pprof", "", "if set, serve net/http/pprof on this address")
	regionClient := flag.String("region-client", "", "net/http-h1: net/http's Transport, HTTP/1.1 only, for every region (default: what the config chooses)")
	flag.Parse()
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	opts := gateway.Options{Load: func() (*config.Config, error) { return config.Load(*path) }}
	switch *regionClient {
	case "":
	case "net/http-h1":
		opts.FailoverOptions = append(opts.FailoverOptions, failover.WithBaseTransport(netHTTP1(cfg)))
	default:
		fmt.Fprintf(os.Stderr, "-region-client %q: only net/http-h1 is known\n", *regionClient)
		os.Exit(2)
	}
	g, err := gateway.New(cfg, opts)
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
