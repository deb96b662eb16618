package main

import (
	"fmt"
	"strings"
)

// summaryPeers are the columns of the README's table, Lifeline first.
var summaryPeers = []string{"lifeline", "lifeline-h1", "nginx", "goproxy", "caddy", "portkey"}

var summaryLabel = map[string]string{
	"lifeline": "Lifeline (default: HTTP/2 to the region)", "lifeline-h1": "Lifeline, `protocol: http1`",
	"nginx": "nginx", "goproxy": "Go floor", "caddy": "Caddy", "portkey": "Portkey",
}

// summary is the README's performance table: the production path's medians, one column per peer.
func (r *run) summary() string {
	p := r.paths["https"]
	if p == nil {
		return ""
	}
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	day, _, _ := strings.Cut(r.meta.Date, "T")
	w("| clients plain, regions HTTPS (%s, commit `%s`) |", day, r.meta.Commit)
	for _, peer := range summaryPeers {
		w(" %s |", summaryLabel[peer])
	}
	w("\n|---|%s\n", strings.Repeat("---|", len(summaryPeers)))
	row := func(label string, f func(peer string) string) {
		w("| %s |", label)
		for _, peer := range summaryPeers {
			w(" %s |", f(peer))
		}
		w("\n")
	}
	med := func(s stat, unit string, prec int) string {
		if !s.ok() {
			return "n/a"
		}
		return fmt.Sprintf("%.*f%s", prec, s.med, unit)
	}
	if p.wrk != nil {
		row("CPU per request, closed loop (× nginx's)", func(peer string) string {
			x, ok := p.wrk.Rounds[peer]
			if !ok {
				return "n/a"
			}
			return med(each(x, cpuOf), " µs", 0) + " (" + med(paired(x, p.wrk.Rounds["nginx"], ratioCPU), "×", 2) + ")"
		})
		row("closed-loop req/s (wrk, 64 connections)", func(peer string) string {
			return med(each(p.wrk.Rounds[peer], func(a wrkRound) float64 { return a.RPS }), "", 0)
		})
	}
	if p.seq != nil {
		d := p.seq.Rounds["direct"]
		// p50 only: on a shared machine the p99 of one connection is the neighbours' noise (REPORT.md has it).
		row("added latency p50, one connection", func(peer string) string {
			x, ok := p.seq.Rounds[peer]
			if !ok {
				return "n/a"
			}
			return med(paired(x, d, func(a, b latencyRound) float64 { return a.P50US - b.P50US }), " µs", 0)
		})
	}
	if p.sse != nil {
		d := p.sse.Rounds["direct"]
		row("added time to first token (SSE)", func(peer string) string {
			x, ok := p.sse.Rounds[peer]
			if !ok {
				return "n/a"
			}
			return med(paired(x, d, func(a, b sseRound) float64 { return a.TTFTP50US - b.TTFTP50US }), " µs", 0)
		})
	}
	if p.failover != nil {
		row("primary 503 / refused / black-holed: % of healthy", func(peer string) string {
			h, ok := p.failover.Rounds[peer+"/healthy"]
			if !ok {
				return "not measured"
			}
			var parts []string
			for _, mode := range foModes[1:] {
				parts = append(parts, med(paired(p.failover.Rounds[peer+"/"+mode], h,
					func(a, b wrkRound) float64 { return 100 * ratioRPS(a, b) }), "", 0))
			}
			return strings.Join(parts, " / ") + "%"
		})
	}
	if p.streams != nil {
		row("memory per open stream (streams held)", func(peer string) string {
			s, ok := p.streams.Rounds[peer]
			if !ok || len(s) == 0 || s[0].Established == 0 {
				return "n/a"
			}
			st := s[0]
			return fmt.Sprintf("%.0f KB (%d)", float64(st.RSSPeakKB-st.RSSBeforeKB)/float64(st.Established), st.Established)
		})
	}
	return b.String()
}
