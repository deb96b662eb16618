package main

import (
	"encoding/json"
	"fmt"
	"strings"
)

func jsonUnmarshal(b json.RawMessage, v any) error {
	if len(b) == 0 {
		return nil
	}
	return json.Unmarshal(b, v)
}

// verdicts checks the targets of the benchmark issue against this run.
func (r *run) verdicts() []verdict {
	var vs []verdict
	none := func(t, why string) { vs = append(vs, verdict{target: t, measured: why}) }

	// Throughput.
	if r.wrk != nil && r.wrk.Rounds["lifeline"] != nil {
		ll := r.wrk.Rounds["lifeline"]
		if ng, ok := r.wrk.Rounds["nginx"]; ok {
			s := paired(ll, ng, ratioRPS)
			vs = append(vs, verdict{"closed-loop throughput ≥ nginx's", fmtStat(s, "× nginx", 2), judged(s.med >= 1)})
		} else {
			none("closed-loop throughput ≥ nginx's", "nginx not measured")
		}
		if gp, ok := r.wrk.Rounds["goproxy"]; ok {
			s := paired(ll, gp, ratioRPS)
			vs = append(vs, verdict{"closed-loop throughput ≥ 1.5 × plain Go proxy's", fmtStat(s, "× goproxy", 2), judged(s.med >= 1.5)})
		}
	} else {
		none("closed-loop throughput ≥ nginx's and ≥ 1.5 × plain Go proxy's", "Lifeline not measured")
	}

	// Latency.
	if r.seq != nil && r.seq.Rounds["lifeline"] != nil && r.seq.Rounds["nginx"] != nil {
		ll, ng, d := r.seq.Rounds["lifeline"], r.seq.Rounds["nginx"], r.seq.Rounds["direct"]
		var excess, ratio []float64
		for i := 0; i < len(ll) && i < len(ng) && i < len(d); i++ {
			excess = append(excess, (ll[i].P50US-d[i].P50US)-(ng[i].P50US-d[i].P50US))
			if a := ng[i].P99US - d[i].P99US; a > 0 {
				ratio = append(ratio, (ll[i].P99US-d[i].P99US)/a)
			}
		}
		e, q := summarize(excess), summarize(ratio)
		vs = append(vs, verdict{"added p50 ≤ nginx's + 25 µs", "Lifeline's added p50 minus nginx's: " + fmtStat(e, " µs", 0), judged(e.ok() && e.med <= 25)})
		vs = append(vs, verdict{"added p99 ≤ 2 × nginx's", "Lifeline's added p99 / nginx's: " + fmtStat(q, "×", 2), judged(q.ok() && q.med <= 2)})
	} else {
		none("added p50 ≤ nginx's + 25 µs; added p99 ≤ 2 × nginx's", "Lifeline or nginx not measured")
	}

	// Failover.
	if r.failover != nil && r.failover.Rounds["lifeline/healthy"] != nil {
		h := r.failover.Rounds["lifeline/healthy"]
		for _, mode := range foModes[1:] {
			x, ok := r.failover.Rounds["lifeline/"+mode]
			if !ok {
				continue
			}
			s := paired(x, h, func(a, b wrkRound) float64 { return 100 * ratioRPS(a, b) })
			vs = append(vs, verdict{"primary failing (" + mode + "): throughput ≥ 90% of healthy", fmtStat(s, "%", 0), judged(s.ok() && s.med >= 90)})
		}
	} else {
		none("primary failing: throughput ≥ 90% of healthy", "Lifeline failover not measured")
	}

	// SSE.
	if r.sse != nil && r.sse.Rounds["lifeline"] != nil {
		ll, d := r.sse.Rounds["lifeline"], r.sse.Rounds["direct"]
		s := paired(ll, d, func(a, b sseRound) float64 { return a.TTFTP50US - b.TTFTP50US })
		vs = append(vs, verdict{"SSE: added TTFT p50 < 100 µs", fmtStat(s, " µs", 0), judged(s.ok() && s.med < 100)})
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
		vs = append(vs, verdict{"SSE: no chunk coalesced or delayed",
			fmt.Sprintf("%d/%d chunks, %d coalesced (direct: %d), added delay per chunk p50 %s, p99 %s", ch, ex, co, dco,
				fmtStat(delay50, " µs", 0), fmtStat(delay99, " µs", 0)),
			judged(met)})
	} else {
		none("SSE: added TTFT p50 < 100 µs, no chunk coalesced or delayed", "Lifeline not measured")
	}

	// Memory.
	if kb, ok := r.rss["lifeline"]; ok {
		mb := float64(kb) / 1024
		vs = append(vs, verdict{"RSS after the load runs < 50 MB", fmt.Sprintf("%.1f MB", mb), judged(mb < 50)})
	} else {
		none("RSS after the load runs < 50 MB", "Lifeline not measured")
	}
	if r.streams != nil && len(r.streams.Rounds["lifeline"]) > 0 {
		st := r.streams.Rounds["lifeline"][0]
		mb := float64(st.RSSPeakKB) / 1024
		m := fmt.Sprintf("%.1f MB with %d of %d streams open", mb, st.Established, st.Requested)
		full := st.Established == st.Requested && st.Errors == 0
		if st.Established < 10000 && st.Established > 0 {
			// Fewer than 10,000 could be opened: judge on a linear extrapolation of the cost per stream.
			per := float64(st.RSSPeakKB-st.RSSBeforeKB) / float64(st.Established)
			mb = (float64(st.RSSBeforeKB) + per*10000) / 1024
			m += fmt.Sprintf("; %.0f MB extrapolated to 10,000 (%.1f KB per stream)", mb, per)
			if st.Requested < 10000 {
				m += "; " + strings.TrimSpace("open-file hard limit here: "+r.meta.NoFile+", two sockets per stream")
			}
		}
		vs = append(vs, verdict{"10,000 concurrent streams in < 300 MB", m, judged(full && mb < 300)})
	} else {
		none("10,000 concurrent streams in < 300 MB", "Lifeline not measured")
	}
	return vs
}
