// Command loadgen drives the benchmark's scenarios against a set of targets (direct, each peer) and
// writes one JSON file per scenario. Within a scenario it interleaves the targets round by round, so
// that direct is measured in the same minutes as every peer and noise on the shared machine hits them
// alike. The closed-loop and constant-rate scenarios run wrk and k6 as child processes, pinned with
// taskset to the load generator's core.
//
//	loadgen seq      -targets T.json -rounds 5 -n 2000 -out seq.json
//	loadgen sse      -targets T.json -rounds 3 -n 30 -out sse.json
//	loadgen wrk      -targets T.json -rounds 5 -duration 5s -conns 64 -out wrk.json
//	loadgen k6       -targets T.json -rounds 3 -duration 5s -rates 1000,3000 -out k6.json
//	loadgen failover -targets F.json -rounds 3 -duration 5s -warmup 2s -out failover.json
//	loadgen streams  -targets T.json -n 10000 -hold 5s -out streams.json
//	loadgen rss      -targets T.json -out rss.json
//	loadgen certs    -dir DIR (the CA and the server certificate of the HTTPS paths)
//	loadgen continuity -plan P.json -out continuity.json -md CONTINUITY.md (bench/continuity.sh)
package main

import (
	"fmt"
	"os"
	"runtime"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: loadgen seq|sse|wrk|k6|failover|streams|rss|certs|continuity [flags]")
		os.Exit(2)
	}
	cmds := map[string]func([]string) error{
		"seq":        runSeq,
		"sse":        runSSE,
		"wrk":        runWrk,
		"k6":         runK6,
		"failover":   runFailover,
		"streams":    runStreams,
		"rss":        runRSS,
		"certs":      runCerts,
		"continuity": runContinuity,
		"gomaxprocs": func([]string) error {
			fmt.Println(runtime.GOMAXPROCS(0)) // what a Go server started the same way gets
			return nil
		},
	}
	f, ok := cmds[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "loadgen: unknown scenario %q\n", os.Args[1])
		os.Exit(2)
	}
	if err := f(os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "loadgen %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}
