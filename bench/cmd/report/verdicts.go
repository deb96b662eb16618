package main

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
)

func jsonUnmarshal(b json.RawMessage, v any) error {
	if len(b) == 0 {
		return nil
	}
	return json.Unmarshal(b, v)
}

// lifelines are the Lifeline targets judged: the default (protocol auto: HTTP/2 to HTTPS regions) and the own
// HTTP/1.1 client (protocol http1).
var lifelines = []string{"lifeline", "lifeline-h1"}

// verdicts checks the targets of the performance issue (issue 15) against the production path of this run:
// clients on plain HTTP, regions on HTTPS.
func (r *run) verdicts() []verdict {
	var vs []verdict
	none := func(t, why string) { vs = append(vs, verdict{target: t, measured: why}) }
	p := r.paths["https"]
	if p == nil {
		none("every target", "the production path (https) was not run")
		return vs
	}
	label := func(ll string) string {
		if ll == "lifeline" {
			return "Lifeline (HTTP/2 to the region, the default)"
		}
		return "Lifeline protocol: http1 (HTTP/1.1 to the region)"
	}

	// CPU per request against nginx's, and throughput against Portkey's and the Go floor's.
	if p.wrk != nil && p.wrk.Rounds["nginx"] != nil {
		for _, ll := range lifelines {
			x, ok := p.wrk.Rounds[ll]
			if !ok {
				continue
			}
			s := paired(x, p.wrk.Rounds["nginx"], ratioCPU)
			m := fmt.Sprintf("%s: %s nginx's (%s against %s)", label(ll), fmtStat(s, "×", 2),
				fmtStat(each(x, cpuOf), " µs", 1), fmtStat(each(p.wrk.Rounds["nginx"], cpuOf), " µs", 1))
			vs = append(vs, verdict{"CPU per request ≤ 1.25 × nginx's (closed loop)", m, judged(s.ok() && s.med <= 1.25)})
		}
	} else {
		none("CPU per request ≤ 1.25 × nginx's", "Lifeline or nginx not measured")
	}
	if p.seq != nil && p.seq.Rounds["nginx"] != nil && p.seq.Rounds["direct"] != nil {
		ng, d := p.seq.Rounds["nginx"], p.seq.Rounds["direct"]
		for _, ll := range lifelines {
			x, ok := p.seq.Rounds[ll]
			if !ok {
				continue
			}
			var excess []float64
			for i := 0; i < len(x) && i < len(ng) && i < len(d); i++ {
				excess = append(excess, (x[i].P50US-d[i].P50US)-(ng[i].P50US-d[i].P50US))
			}
			e := summarize(excess)
			vs = append(vs, verdict{"added p50 ≤ nginx's + 50 µs (one connection, sequential)",
				label(ll) + ": added p50 minus nginx's " + fmtStat(e, " µs", 0), judged(e.ok() && e.med <= 50)})
		}
	} else {
		none("added p50 ≤ nginx's + 50 µs", "Lifeline or nginx not measured")
	}
	if p.streams != nil {
		for _, ll := range lifelines {
			if st, ok := p.streams.Rounds[ll]; ok && len(st) > 0 {
				vs = append(vs, r.streamsVerdict(label(ll), st[0]))
			}
		}
	} else {
		none("10,000 concurrent streams < 150 MB", "streams not measured")
	}
	if p.failover != nil && p.failover.Rounds["lifeline/healthy"] != nil {
		h := p.failover.Rounds["lifeline/healthy"]
		for _, mode := range foModes[1:] {
			x, ok := p.failover.Rounds["lifeline/"+mode]
			if !ok {
				continue
			}
			s := paired(x, h, func(a, b wrkRound) float64 { return 100 * ratioRPS(a, b) })
			vs = append(vs, verdict{"primary failing (" + mode + "): throughput ≥ 90% of healthy", fmtStat(s, "%", 0), judged(s.ok() && s.med >= 90)})
		}
	} else {
		none("primary failing: throughput ≥ 90% of healthy", "Lifeline failover not measured")
	}
	if p.wrk != nil {
		for _, c := range []struct {
			peer string
			min  float64
		}{{"portkey", 10}, {"goproxy", 2}} {
			for _, ll := range lifelines {
				x, ok := p.wrk.Rounds[ll]
				y, ok2 := p.wrk.Rounds[c.peer]
				if !ok || !ok2 {
					continue
				}
				s := paired(x, y, ratioRPS)
				vs = append(vs, verdict{fmt.Sprintf("closed-loop throughput ≥ %.0f × %s's", c.min, c.peer),
					label(ll) + ": " + fmtStat(s, "×", 2), judged(s.ok() && s.med >= c.min)})
			}
		}
	}
	// Carried from the first benchmark issue: streaming stays correct.
	if p.sse != nil && p.sse.Rounds["lifeline"] != nil {
		vs = append(vs, sseVerdict(p.sse.Rounds["lifeline"], p.sse.Rounds["direct"]))
	}
	return vs
}

func (r *run) streamsVerdict(label string, st streamsRound) verdict {
	mb := float64(st.RSSPeakKB) / 1024
	m := fmt.Sprintf("%s: %.1f MB with %d of %d streams open", label, mb, st.Established, st.Requested)
	full := st.Established == st.Requested && st.Errors == 0
	if st.Established < 10000 && st.Established > 0 {
		// Fewer than 10,000 could be opened: judge on a linear extrapolation of the cost per stream.
		per := float64(st.RSSPeakKB-st.RSSBeforeKB) / float64(st.Established)
		mb = (float64(st.RSSBeforeKB) + per*10000) / 1024
		m += fmt.Sprintf("; %.0f MB extrapolated to 10,000 (%.1f KB per stream)", mb, per)
		switch {
		case st.Requested < 10000 && fmt.Sprint(st.Requested) == r.meta.MaxStreamsH1:
			m += "; " + strings.TrimSpace("open-file hard limit here: "+r.meta.NoFile+" per process, two sockets per stream over HTTP/1.1")
		case st.Requested < 10000:
			m += fmt.Sprintf("; this run asked for %d", st.Requested)
		}
	}
	return verdict{"10,000 concurrent streams < 150 MB", m, judged(full && mb < 150)}
}

func sseVerdict(ll, d []sseRound) verdict {
	var co, dco, ch, ex, errs int
	for i := range ll {
		co += ll[i].Coalesced
		ch += ll[i].Chunks
		ex += ll[i].Expected
		errs += ll[i].Errors
	}
	for _, a := range d {
		dco += a.Coalesced
	}
	delay50 := paired(ll, d, func(a, b sseRound) float64 { return a.DelayP50US - b.DelayP50US })
	delay99 := paired(ll, d, func(a, b sseRound) float64 { return a.DelayP99US - b.DelayP99US })
	// A proxy that buffers coalesces most chunks and holds each for about a chunk interval (5 ms here). The
	// client's own scheduling on a busy machine coalesces a few even without a proxy (direct's count), so the
	// verdict allows direct's count plus 1% of the chunks, and a median added delay under half an interval.
	met := ch == ex && errs == 0 && co <= dco+ch/100 && delay50.ok() && delay50.med < 2500
	return verdict{"SSE: every chunk passed on at once, none coalesced",
		fmt.Sprintf("%d/%d chunks, %d coalesced (direct: %d), added delay per chunk p50 %s, p99 %s", ch, ex, co, dco,
			fmtStat(delay50, " µs", 0), fmtStat(delay99, " µs", 0)),
		judged(met)}
}

func cpuOf(a wrkRound) float64 { return a.CPUUS }

func ratioCPU(a, b wrkRound) float64 {
	if b.CPUUS == 0 {
		return math.NaN()
	}
	return a.CPUUS / b.CPUUS
}
