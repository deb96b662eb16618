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
		"within a round; figures are medians over rounds, with the min to max over rounds in brackets.\n\n",
		m.LoadCPU, m.ServerCPU, m.Nice)
	w("![chart](chart.svg)\n\n")

	vs := r.verdicts()
	w("## Targets\n\n| target | measured (Lifeline, this run) | |\n|---|---|---|\n")
	for _, v := range vs {
		s := "not measured"
		if v.met != nil {
			s = map[bool]string{true: "met", false: "**missed**"}[*v.met]
		}
		w("| %s | %s | %s |\n", v.target, v.measured, s)
	}
	w("\n")
	r.sectionSeq(w)
	r.sectionK6(w)
	r.sectionWrk(w)
	r.sectionSSE(w)
	r.sectionFailover(w)
	r.sectionMemory(w)
	r.sectionConditions(w)
	return b.String(), vs
}

type writer func(format string, a ...any)

func (r *run) sectionSeq(w writer) {
	if r.seq == nil {
		w("## 1. Sequential latency\n\nNot run.\n\n")
		return
	}
	d := r.seq.Rounds["direct"]
	w("## 1. Added latency, one connection, sequential\n\n")
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
func (r *run) lifelineVsPeers(w writer, m map[string][]latencyRound, what string, f func([]latencyRound, int) float64) {
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

func (r *run) sectionK6(w writer) {
	w("## 2. Constant arrival rate (k6)\n\n")
	if r.k6 == nil {
		w("Not run (k6 missing or failed; see the run log).\n\n")
		return
	}
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

func (r *run) sectionWrk(w writer) {
	w("## 3. Closed-loop maximum (wrk, 64 connections)\n\n")
	if r.wrk == nil {
		w("Not run.\n\n")
		return
	}
	d := r.wrk.Rounds["direct"]
	w("wrk, one thread, %v connections, %v per run, %v rounds. Only 2xx answers count. Direct is the mock upstream "+
		"alone on the servers' core: its margin over every peer is the mock's headroom.\n\n",
		r.wrk.Params["connections"], r.wrk.Params["duration"], r.wrk.Params["rounds"])
	w("| peer | req/s | peer / direct | direct headroom | Lifeline / peer | p50 | p99 | errors |\n|---|---|---|---|---|---|---|---|\n")
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
		w("| %s | %s | %s | %s | %s | %s | %s | %d |\n", p,
			fmtStat(each(x, func(a wrkRound) float64 { return a.RPS }), "", 0),
			fmtStat(paired(x, d, ratioRPS), "×", 2),
			fmtStat(paired(d, x, ratioRPS), "×", 1), llp,
			fmtStat(each(x, func(a wrkRound) float64 { return a.P50US }), " µs", 0),
			fmtStat(each(x, func(a wrkRound) float64 { return a.P99US }), " µs", 0), errs)
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

func (r *run) sectionSSE(w writer) {
	w("## 4. Streaming (SSE), paced upstream\n\n")
	if r.sse == nil {
		w("Not run.\n\n")
		return
	}
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

func (r *run) sectionFailover(w writer) {
	w("## 5. Failover: the primary fails, the secondary is healthy\n\n")
	if r.failover == nil {
		w("Not run.\n\n")
		return
	}
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

func (r *run) sectionMemory(w writer) {
	w("## 6. Memory\n\n")
	w("RSS of each server's processes (nginx: master and worker) after the load scenarios above, and at the peak " +
		"while holding many concurrent open streams (slow SSE, one chunk a second).")
	if r.meta.Streams != "" {
		w(" Streams requested: %s (the container's hard limit on open files is %s; a proxy needs two sockets per stream).", r.meta.Streams, r.meta.NoFile)
	}
	w("\n\n| peer | RSS after load | streams open | RSS with the streams open | per stream |\n|---|---|---|---|---|\n")
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
		w("| %s | %s | %s | %s | %s |\n", label, after, open, peak, per)
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
