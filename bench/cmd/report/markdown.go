package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// verdict is one target of the issue, checked against this run.
type verdict struct {
	target, measured string
	met              *bool // nil: could not be measured
}

func (v verdict) String() string {
	s := "NOT MEASURED"
	if v.met != nil {
		s = map[bool]string{true: "met", false: "MISSED"}[*v.met]
	}
	return fmt.Sprintf("%-7s %s: %s", s, v.target, v.measured)
}

func judged(b bool) *bool { return &b }

func (r *run) markdown() (string, []verdict) {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	m := r.meta
	kind := "full run"
	if m.Quick {
		kind = "quick run (smoke test: few rounds, short runs; do not quote)"
	}
	w("# Lifeline benchmark report\n\n")
	w("%s, %s, commit `%s`. Reproduce with `bench/run.sh` (method: [bench/README.md](../README.md)).\n\n", m.Date, kind, m.Commit)
	w("Every peer proxies to the same mock upstream on loopback; the load generator runs on CPU %s and every server "+
		"(mock included) on CPU %s, at nice %s. Targets are interleaved round by round and every comparison is made "+
		"within a round; figures are medians over rounds, with the min to max over rounds in brackets. **CPU per "+
		"request** is the CPU time (user + system) that the peer's processes used during a run, read from "+
		"`/proc/PID/task/*/schedstat` before and after, divided by the requests answered in it; the mock's own CPU per "+
		"request is shown beside it (it is the same work for every peer).\n\n",
		m.LoadCPU, m.ServerCPU, m.Nice)
	w("Paths, each a table of its own, the production path first:\n\n")
	for _, name := range pathOrder {
		if _, ok := r.paths[name]; ok {
			w("- **%s**: %s\n", name, pathTitle[name])
		}
	}
	w("\n![chart](chart.svg)\n\n")

	vs := r.verdicts()
	w("## Targets (issue 15), on the production path\n\n| target | measured (this run) | |\n|---|---|---|\n")
	for _, v := range vs {
		s := "not measured"
		if v.met != nil {
			s = map[bool]string{true: "met", false: "**missed**"}[*v.met]
		}
		w("| %s | %s | %s |\n", v.target, v.measured, s)
	}
	w("\n")
	for i, name := range pathOrder {
		p, ok := r.paths[name]
		if !ok {
			continue
		}
		w("## %c. Path %s: %s\n\n", 'A'+i, name, pathTitle[name])
		p.sectionSummary(w)
		p.sectionSeq(w)
		p.sectionK6(w)
		p.sectionWrk(w)
		p.sectionSSE(w)
		p.sectionFailover(w)
		p.sectionMemory(w, r.meta)
	}
	w("## Other benchmarks\n\n")
	w("- Where Lifeline's time and memory go on the production path: [PROFILE.md](PROFILE.md).\n")
	if r.continuity {
		w("- Continuity under gray failures (issue 12): errors, added time per request and time to recover for each fault, Lifeline on its default policy beside nginx and Portkey configured to fail over: [CONTINUITY.md](CONTINUITY.md), written by `bench/continuity.sh`.\n")
	}
	if r.staleness {
		w("- Shared state across replicas (issue 14): [STALENESS.md](STALENESS.md), written by `bench/staleness.sh`.\n")
	}
	w("\n")
	r.sectionConditions(w)
	return b.String(), vs
}

// regionProtocol is how each peer talks to the region on a path.
func regionProtocol(path, peer string) string {
	switch {
	case peer == "direct":
		if path == "plain" {
			return "(the client calls the region: HTTP/1.1)"
		}
		return "(the client calls the region: HTTP/1.1 over TLS)"
	case path == "plain":
		return "HTTP/1.1"
	case peer == "nginx" || peer == "portkey" || peer == "lifeline-h1":
		return "HTTP/1.1 over TLS"
	default:
		return "HTTP/2 over TLS"
	}
}

// sectionSummary is the path's one-glance table: CPU per request, throughput and added latency per peer.
func (p *pathRun) sectionSummary(w writer) {
	if p.wrk == nil && p.seq == nil {
		return
	}
	w("### Per request: CPU, throughput, latency\n\n")
	w("CPU per request from the closed-loop runs (wrk, 64 connections) and from the sequential runs (one connection, " +
		"one request at a time); added latency from the sequential runs, against direct in the same round.\n\n")
	w("| peer | to the region | CPU / request, closed loop | / nginx's | mock's CPU / request | req/s | Lifeline / peer | added p50 | added p99 | CPU / request, sequential |\n")
	w("|---|---|---|---|---|---|---|---|---|---|\n")
	var wr, ng, ll map[string][]wrkRound
	if p.wrk != nil {
		wr = p.wrk.Rounds
		ng = map[string][]wrkRound{"nginx": wr["nginx"]}
		ll = map[string][]wrkRound{"lifeline": wr["lifeline"]}
	}
	peers := map[string]bool{}
	if p.wrk != nil {
		for k := range p.wrk.Rounds {
			peers[k] = true
		}
	}
	if p.seq != nil {
		for k := range p.seq.Rounds {
			peers[k] = true
		}
	}
	for _, peer := range peerOrder {
		if !peers[peer] {
			continue
		}
		cpu, vsN, up, rps, llp := "n/a", "n/a", "n/a", "n/a", "n/a"
		if x, ok := wr[peer]; ok {
			cpu = fmtStat(each(x, cpuOf), " µs", 1)
			if ng["nginx"] != nil {
				vsN = fmtStat(paired(x, ng["nginx"], ratioCPU), "×", 2)
			}
			up = fmtStat(each(x, func(a wrkRound) float64 { return a.UpstreamCPUUS }), " µs", 1)
			if peer == "direct" {
				up = "(is the mock)"
			}
			rps = fmtStat(each(x, func(a wrkRound) float64 { return a.RPS }), "", 0)
			if ll["lifeline"] != nil && peer != "lifeline" {
				llp = fmtStat(paired(ll["lifeline"], x, ratioRPS), "×", 2)
			}
		}
		a50, a99, scpu := "n/a", "n/a", "n/a"
		if p.seq != nil {
			if x, ok := p.seq.Rounds[peer]; ok {
				d := p.seq.Rounds["direct"]
				a50 = fmtStat(paired(x, d, func(a, b latencyRound) float64 { return a.P50US - b.P50US }), " µs", 0)
				a99 = fmtStat(paired(x, d, func(a, b latencyRound) float64 { return a.P99US - b.P99US }), " µs", 0)
				scpu = fmtStat(each(x, func(a latencyRound) float64 { return a.CPUUS }), " µs", 0)
			}
		}
		w("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", peer, regionProtocol(p.name, peer), cpu, vsN, up, rps, llp, a50, a99, scpu)
	}
	w("\n")
}

type writer func(format string, a ...any)

func (r *pathRun) sectionSeq(w writer) {
	if r.seq == nil {
		return
	}
	d := r.seq.Rounds["direct"]
	w("### Added latency, one connection, sequential\n\n")
	w("%v requests per target per round after %v untimed, %v rounds. Added = peer minus direct in the same round.\n\n",
		r.seq.Params["n"], r.seq.Params["warmup"], r.seq.Params["rounds"])
	w("| peer | p50 | added p50 | p99 | added p99 | p50 / direct | errors |\n|---|---|---|---|---|---|---|\n")
	for _, p := range present(r.seq.Rounds) {
		x := r.seq.Rounds[p]
		errs := 0
		for _, lr := range x {
			errs += lr.Errors
		}
		w("| %s | %s | %s | %s | %s | %s | %d |\n", p,
			fmtStat(each(x, func(a latencyRound) float64 { return a.P50US }), " µs", 0),
			fmtStat(paired(x, d, func(a, b latencyRound) float64 { return a.P50US - b.P50US }), " µs", 0),
			fmtStat(each(x, func(a latencyRound) float64 { return a.P99US }), " µs", 0),
			fmtStat(paired(x, d, func(a, b latencyRound) float64 { return a.P99US - b.P99US }), " µs", 0),
			fmtStat(paired(x, d, func(a, b latencyRound) float64 { return a.P50US / b.P50US }), "×", 2), errs)
	}
	r.lifelineVsPeers(w, r.seq.Rounds, "added p50", func(p []latencyRound, i int) float64 { return p[i].P50US - d[i].P50US })
	skippedNote(w, r.seq.Skipped)
}

// lifelineVsPeers prints Lifeline's value divided by each peer's, round by round.
func (r *pathRun) lifelineVsPeers(w writer, m map[string][]latencyRound, what string, f func([]latencyRound, int) float64) {
	ll, ok := m["lifeline"]
	if !ok {
		w("\n")
		return
	}
	w("\nLifeline / peer, %s: ", what)
	var parts []string
	for _, p := range present(m) {
		if p == "lifeline" || p == "direct" {
			continue
		}
		var v []float64
		for i := 0; i < len(ll) && i < len(m[p]); i++ {
			if den := f(m[p], i); den != 0 {
				v = append(v, f(ll, i)/den)
			}
		}
		parts = append(parts, fmt.Sprintf("%s %s", p, fmtStat(summarize(v), "×", 2)))
	}
	w("%s.\n\n", strings.Join(parts, ", "))
}

func skippedNote(w writer, s map[string]string) {
	if len(s) == 0 {
		return
	}
	keys := make([]string, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		w("- not measured: **%s**: %s\n", k, s[k])
	}
	w("\n")
}

func (r *pathRun) sectionK6(w writer) {
	if r.k6 == nil {
		return
	}
	w("### Constant arrival rate (k6)\n\n")
	w("k6 constant-arrival-rate, %v per run, %v rounds, rates %v req/s. Dropped = iterations k6 could not start on "+
		"time (the target fell behind the rate).\n\n", r.k6.Params["duration"], r.k6.Params["rounds"], r.k6.Params["rates"])
	w("| rate | peer | p50 | added p50 | p99 | added p99 | dropped | failed |\n|---|---|---|---|---|---|---|---|\n")
	var rates []int
	for k, v := range r.k6.Rounds {
		if strings.HasPrefix(k, "direct@") && len(v) > 0 {
			rates = append(rates, v[0].Rate)
		}
	}
	slices.Sort(rates)
	for _, rate := range rates {
		d := r.k6.Rounds[fmt.Sprintf("direct@%d", rate)]
		for _, p := range peerOrder {
			x, ok := r.k6.Rounds[fmt.Sprintf("%s@%d", p, rate)]
			if !ok {
				continue
			}
			w("| %d | %s | %s | %s | %s | %s | %s | %s |\n", rate, p,
				fmtStat(each(x, func(a k6Round) float64 { return a.P50US }), " µs", 0),
				fmtStat(paired(x, d, func(a, b k6Round) float64 { return a.P50US - b.P50US }), " µs", 0),
				fmtStat(each(x, func(a k6Round) float64 { return a.P99US }), " µs", 0),
				fmtStat(paired(x, d, func(a, b k6Round) float64 { return a.P99US - b.P99US }), " µs", 0),
				fmtStat(each(x, func(a k6Round) float64 { return a.Dropped }), "", 0),
				fmtStat(each(x, func(a k6Round) float64 { return a.FailedRate * 100 }), "%", 1))
		}
	}
	w("\n")
	skippedNote(w, r.k6.Skipped)
}

func (r *pathRun) sectionWrk(w writer) {
	if r.wrk == nil {
		return
	}
	w("### Closed loop (wrk, 64 connections), with CPU per request\n\n")
	d := r.wrk.Rounds["direct"]
	w("wrk, one thread, %v connections, %v per run, %v rounds. Only 2xx answers count as throughput. Direct is the "+
		"mock upstream alone on the servers' core: its margin over every peer is the mock's headroom. CPU per request: "+
		"the peer's processes' CPU time over the run divided by the requests answered in it; the mock's beside it.\n\n",
		r.wrk.Params["connections"], r.wrk.Params["duration"], r.wrk.Params["rounds"])
	w("| peer | req/s | peer / direct | direct headroom | Lifeline / peer | p50 | p99 | CPU / request | mock's CPU / request | errors |\n|---|---|---|---|---|---|---|---|---|---|\n")
	ll := r.wrk.Rounds["lifeline"]
	for _, p := range present(r.wrk.Rounds) {
		x := r.wrk.Rounds[p]
		var errs int64
		for _, a := range x {
			errs += a.Non2xx + a.SockErrors
		}
		llp := "n/a"
		if ll != nil && p != "lifeline" {
			llp = fmtStat(paired(ll, x, ratioRPS), "×", 2)
		}
		w("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %d |\n", p,
			fmtStat(each(x, func(a wrkRound) float64 { return a.RPS }), "", 0),
			fmtStat(paired(x, d, ratioRPS), "×", 2),
			fmtStat(paired(d, x, ratioRPS), "×", 1), llp,
			fmtStat(each(x, func(a wrkRound) float64 { return a.P50US }), " µs", 0),
			fmtStat(each(x, func(a wrkRound) float64 { return a.P99US }), " µs", 0),
			fmtStat(each(x, cpuOf), " µs", 1),
			fmtStat(each(x, func(a wrkRound) float64 { return a.UpstreamCPUUS }), " µs", 1), errs)
	}
	w("\n")
	skippedNote(w, r.wrk.Skipped)
}

func ratioRPS(a, b wrkRound) float64 {
	if b.RPS == 0 {
		return math.NaN()
	}
	return a.RPS / b.RPS
}

func (r *pathRun) sectionSSE(w writer) {
	if r.sse == nil {
		return
	}
	w("### Streaming (SSE), paced upstream\n\n")
	d := r.sse.Rounds["direct"]
	w("One stream at a time, %v streams per target per round, %v rounds; the mock sends %v content chunks "+
		"(body `%v`), each stamped with its send time and flushed alone. TTFT: request start to the first content "+
		"chunk. Delay: upstream write to arrival at the client, per chunk. Coalesced: chunks that arrived in the same "+
		"read as the chunk before (direct shows what the client's own scheduling causes on this machine).\n\n",
		r.sse.Params["streams"], r.sse.Params["rounds"], r.sse.Params["chunks"], r.sse.Params["body"])
	w("| peer | TTFT p50 | added TTFT p50 | added TTFT p99 | chunk delay p50 | chunk delay p99 | gap p99 | coalesced | chunks received | errors |\n|---|---|---|---|---|---|---|---|---|---|\n")
	for _, p := range present(r.sse.Rounds) {
		x := r.sse.Rounds[p]
		var co, ch, ex, errs int
		for _, a := range x {
			co += a.Coalesced
			ch += a.Chunks
			ex += a.Expected
			errs += a.Errors
		}
		w("| %s | %s | %s | %s | %s | %s | %s | %d | %d / %d | %d |\n", p,
			fmtStat(each(x, func(a sseRound) float64 { return a.TTFTP50US }), " µs", 0),
			fmtStat(paired(x, d, func(a, b sseRound) float64 { return a.TTFTP50US - b.TTFTP50US }), " µs", 0),
			fmtStat(paired(x, d, func(a, b sseRound) float64 { return a.TTFTP99US - b.TTFTP99US }), " µs", 0),
			fmtStat(each(x, func(a sseRound) float64 { return a.DelayP50US }), " µs", 0),
			fmtStat(each(x, func(a sseRound) float64 { return a.DelayP99US }), " µs", 0),
			fmtStat(each(x, func(a sseRound) float64 { return a.GapP99US }), " µs", 0), co, ch, ex, errs)
	}
	w("\n")
	skippedNote(w, r.sse.Skipped)
}

var foModes = []string{"healthy", "503", "refused", "blackhole"}

func (r *pathRun) sectionFailover(w writer) {
	if r.failover == nil {
		return
	}
	w("### Failover: the primary fails, the secondary is healthy\n\n")
	w("Each peer is configured with a primary and a backup region. The primary is healthy, answers 503, refuses "+
		"connections (a closed port) or black-holes (accepts, never answers; peers give up after 1 s). Per round: a "+
		"%v closed-loop warm-up (the peer learns the primary is bad), then %v measured with wrk (64 connections, only "+
		"2xx counted); %v rounds. \"of healthy\" divides by the same peer's healthy run in the same round. The first "+
		"warm-up column is the throughput while the failure is being detected.\n\n",
		r.failover.Params["warmup"], r.failover.Params["duration"], r.failover.Params["rounds"])
	var extra struct {
		FirstWarmup map[string]wrkRound `json:"first_warmup"`
	}
	_ = jsonUnmarshal(r.failover.Extra, &extra)
	w("| peer | primary | req/s | of healthy | Lifeline / peer | p99 | non-2xx | first warm-up req/s |\n|---|---|---|---|---|---|---|---|\n")
	for _, p := range peerOrder {
		h, ok := r.failover.Rounds[p+"/healthy"]
		if !ok {
			continue
		}
		for _, mode := range foModes {
			k := p + "/" + mode
			x, ok := r.failover.Rounds[k]
			if !ok {
				continue
			}
			var bad int64
			for _, a := range x {
				bad += a.Non2xx + a.SockErrors
			}
			llp := "n/a"
			if ll, ok := r.failover.Rounds["lifeline/"+mode]; ok && p != "lifeline" {
				llp = fmtStat(paired(ll, x, ratioRPS), "×", 2)
			}
			fw := "n/a"
			if a, ok := extra.FirstWarmup[k]; ok {
				fw = fmt.Sprintf("%.0f", a.RPS)
			}
			w("| %s | %s | %s | %s | %s | %s | %d | %s |\n", p, mode,
				fmtStat(each(x, func(a wrkRound) float64 { return a.RPS }), "", 0),
				fmtStat(paired(x, h, func(a, b wrkRound) float64 { return 100 * ratioRPS(a, b) }), "%", 0), llp,
				fmtStat(each(x, func(a wrkRound) float64 { return a.P99US }), " µs", 0), bad, fw)
		}
	}
	w("\n")
	skippedNote(w, r.failover.Skipped)
}

func (r *pathRun) sectionMemory(w writer, m meta) {
	if r.rss == nil && r.streams == nil {
		return
	}
	w("### Memory\n\n")
	w("RSS of each server's processes (nginx: master and worker) after the load scenarios above")
	if r.streams != nil {
		w(", and at the peak while holding many concurrent open streams (slow SSE, one chunk a second). Streams "+
			"requested: %s; through a peer that holds an HTTP/1.1 connection to the region per stream, %s (the "+
			"container's hard limit on open files is %s per process, and such a proxy needs two sockets per stream; "+
			"over HTTP/2 the region's side is a few connections)", m.Streams, m.MaxStreamsH1, m.NoFile)
	}
	w(".\n\n| peer | to the region | RSS after load | streams open | RSS with the streams open | per stream |\n|---|---|---|---|---|---|\n")
	for _, p := range peerOrder {
		rss, ok := r.rss[p]
		var st *streamsRound
		if r.streams != nil {
			if s, ok2 := r.streams.Rounds[p]; ok2 && len(s) > 0 {
				st = &s[0]
			}
		}
		if !ok && st == nil {
			continue
		}
		after := "n/a"
		if ok {
			after = fmt.Sprintf("%.1f MB", float64(rss)/1024)
		}
		open, peak, per := "n/a", "n/a", "n/a"
		if st != nil {
			open = fmt.Sprintf("%d / %d", st.Established, st.Requested)
			if st.Errors > 0 {
				open += fmt.Sprintf(" (%d errors: %s)", st.Errors, trim(st.FirstError, 60))
			}
			peak = fmt.Sprintf("%.1f MB", float64(st.RSSPeakKB)/1024)
			if st.Established > 0 {
				per = fmt.Sprintf("%.1f KB", float64(st.RSSPeakKB-st.RSSBeforeKB)/float64(st.Established))
			}
		}
		label := p
		if p == "direct" {
			label = "direct (the mock itself)"
		}
		w("| %s | %s | %s | %s | %s | %s |\n", label, regionProtocol(r.name, p), after, open, peak, per)
	}
	w("\n")
}

func trim(s string, n int) string {
	s = strings.ReplaceAll(s, "|", "/")
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func (r *run) sectionConditions(w writer) {
	m := r.meta
	w("## Conditions\n\n")
	w("- CPUs: %s; load generator on CPU %s, servers on CPU %s (`taskset`), nice %s\n", m.CPUs, m.LoadCPU, m.ServerCPU, m.Nice)
	w("- GOMAXPROCS of the Go servers: %s\n", m.GOMAXPROCS)
	w("- kernel: %s; open-file hard limit: %s\n", m.Kernel, m.NoFile)
	var keys []string
	for k := range m.Versions {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		w("- %s: `%s`\n", k, m.Versions[k])
	}
	if len(r.loadavg) > 0 {
		var parts []string
		for _, la := range r.loadavg {
			parts = append(parts, fmt.Sprintf("%s %s", la.Scenario, la.LoadAverage))
		}
		w("- load average (1, 5, 15 min) at the start of each scenario: %s. The machine is shared: other "+
			"people's builds and tests ran during the benchmark, which is why every figure is a within-round comparison.\n",
			strings.Join(parts, "; "))
	}
	if len(m.Skipped) > 0 {
		w("\nNot measured in this run:\n\n")
		skippedNote(w, m.Skipped)
	}
	w("\n")
}
