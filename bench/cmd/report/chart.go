package main

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// One SVG, four panels of horizontal bars, readable at a glance: throughput, added latency, throughput
// while the primary fails, memory. Lifeline's bars are drawn in a strong colour, the peers' in grey.

type bar struct {
	label string
	value float64
	color string
}

type group struct {
	name string
	bars []bar
}

type panel struct {
	title, unit string
	groups      []group
	ref         float64 // a vertical reference line (a target); 0: none
	refLabel    string
	clip        float64 // bars longer than this are cut (and marked) so the others stay readable; 0: none
}

const (
	chartW   = 760
	labelW   = 150
	barH     = 14
	barGap   = 3
	groupGap = 10
	valueW   = 170
)

func colorFor(peer string, shade int) string {
	if strings.HasPrefix(peer, "lifeline") {
		return []string{"#d9480f", "#f08c00", "#ffa94d"}[shade%3]
	}
	if peer == "direct" {
		return []string{"#2f9e44", "#69db7c", "#b2f2bb"}[shade%3]
	}
	return []string{"#495057", "#868e96", "#ced4da"}[shade%3]
}

func (p panel) height() int {
	h := 48
	if p.ref > 0 {
		h += 10
	}
	for _, g := range p.groups {
		h += len(g.bars)*(barH+barGap) + groupGap
	}
	return h + 10
}

func (p panel) svg(b *strings.Builder, y0 int) {
	maxV := p.ref
	for _, g := range p.groups {
		for _, br := range g.bars {
			maxV = math.Max(maxV, br.value)
		}
	}
	if p.clip > 0 && maxV > p.clip {
		maxV = p.clip
	}
	if maxV <= 0 {
		maxV = 1
	}
	plotW := float64(chartW - labelW - valueW - 20)
	x0 := float64(labelW + 10)
	fmt.Fprintf(b, `<text x="10" y="%d" font-size="15" font-weight="bold">%s</text>`+"\n", y0+20, html.EscapeString(p.title))
	y := y0 + 36
	if p.ref > 0 {
		y += 10 // room for the reference line's label under the title
	}
	top := y
	for _, g := range p.groups {
		gy := y
		for _, br := range g.bars {
			w := math.Min(math.Max(0, br.value), maxV) / maxV * plotW
			fmt.Fprintf(b, `<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n", x0, y, w, barH, br.color)
			if br.value > maxV { // cut: two white slashes near the end say the bar goes on
				fmt.Fprintf(b, `<path d="M%.1f %d l6 %d M%.1f %d l6 %d" stroke="white" stroke-width="2"/>`+"\n",
					x0+w-22, y+barH, -barH, x0+w-15, y+barH, -barH)
			}
			fmt.Fprintf(b, `<text x="%.1f" y="%d" font-size="11">%s</text>`+"\n", x0+w+4, y+barH-3,
				html.EscapeString(fmtValue(br.value, p.unit)+" "+br.label))
			y += barH + barGap
		}
		fmt.Fprintf(b, `<text x="%d" y="%d" font-size="12" text-anchor="end"%s>%s</text>`+"\n", labelW, gy+barH-2,
			boldIf(strings.HasPrefix(g.name, "lifeline")), html.EscapeString(g.name))
		y += groupGap
	}
	if p.ref > 0 {
		rx := x0 + p.ref/maxV*plotW
		fmt.Fprintf(b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#c92a2a" stroke-dasharray="4,3"/>`+"\n", rx, top-4, rx, y-groupGap)
		fmt.Fprintf(b, `<text x="%.1f" y="%d" font-size="10" fill="#c92a2a">%s</text>`+"\n", rx+3, top-6, html.EscapeString(p.refLabel))
	}
}

func boldIf(b bool) string {
	if b {
		return ` font-weight="bold"`
	}
	return ""
}

func fmtValue(v float64, unit string) string {
	switch {
	case unit == "req/s" && v >= 1000:
		return fmt.Sprintf("%.1fk req/s", v/1000)
	case unit == "%":
		return fmt.Sprintf("%.0f%%", v)
	default:
		return fmt.Sprintf("%.0f %s", v, unit)
	}
}

func (r *run) panels() []panel {
	var ps []panel
	p := r.paths["https"]
	if p == nil {
		for _, name := range pathOrder {
			if p = r.paths[name]; p != nil {
				break
			}
		}
	}
	if p.wrk != nil {
		c := panel{title: "CPU per request, closed loop (lower is better)", unit: "µs"}
		if ng, ok := p.wrk.Rounds["nginx"]; ok {
			if s := each(ng, cpuOf); s.ok() {
				c.ref, c.refLabel = 1.25*s.med, "target: 1.25 × nginx's"
			}
		}
		t := panel{title: "Closed-loop throughput (wrk, 64 connections; higher is better)", unit: "req/s"}
		for _, peer := range present(p.wrk.Rounds) {
			s := each(p.wrk.Rounds[peer], func(a wrkRound) float64 { return a.RPS })
			t.groups = append(t.groups, group{peer, []bar{{"", s.med, colorFor(peer, 0)}}})
			if peer != "direct" {
				s = each(p.wrk.Rounds[peer], cpuOf)
				c.groups = append(c.groups, group{peer, []bar{{"", s.med, colorFor(peer, 0)}}})
			}
		}
		c.clip = 4 * c.ref // Portkey's bar would flatten the rest
		ps = append(ps, c, t)
	}
	if p.seq != nil {
		l := panel{title: "Added latency vs direct, sequential (lower is better; long bars cut)", unit: "µs"}
		d := p.seq.Rounds["direct"]
		var lens []float64
		for _, peer := range present(p.seq.Rounds) {
			if peer == "direct" {
				continue
			}
			x := p.seq.Rounds[peer]
			p50 := paired(x, d, func(a, b latencyRound) float64 { return a.P50US - b.P50US })
			p99 := paired(x, d, func(a, b latencyRound) float64 { return a.P99US - b.P99US })
			l.groups = append(l.groups, group{peer, []bar{{"p50", p50.med, colorFor(peer, 0)}, {"p99", p99.med, colorFor(peer, 1)}}})
			lens = append(lens, p50.med, p99.med)
		}
		if s := summarize(lens); s.ok() {
			l.clip = 3 * s.med // one slow peer must not flatten the rest
		}
		ps = append(ps, l)
	}
	if p.failover != nil {
		f := panel{title: "Throughput with the primary failing, % of the same peer healthy (higher is better)", unit: "%",
			ref: 90, refLabel: "target 90%"}
		for _, peer := range peerOrder {
			h, ok := p.failover.Rounds[peer+"/healthy"]
			if !ok {
				continue
			}
			var bars []bar
			for i, mode := range foModes[1:] {
				if x, ok := p.failover.Rounds[peer+"/"+mode]; ok {
					s := paired(x, h, func(a, b wrkRound) float64 { return 100 * ratioRPS(a, b) })
					bars = append(bars, bar{mode, s.med, colorFor(peer, i)})
				}
			}
			f.groups = append(f.groups, group{peer, bars})
		}
		ps = append(ps, f)
	}
	if p.rss != nil || p.streams != nil {
		m := panel{title: "Memory: RSS after load, and with the streams open (lower is better)", unit: "MB",
			ref: 150, refLabel: "Lifeline's target for 10,000 streams: 150 MB"}
		for _, peer := range peerOrder {
			if peer == "direct" {
				continue
			}
			var bars []bar
			if kb, ok := p.rss[peer]; ok {
				bars = append(bars, bar{"after load", float64(kb) / 1024, colorFor(peer, 0)})
			}
			if p.streams != nil {
				if s, ok := p.streams.Rounds[peer]; ok && len(s) > 0 {
					bars = append(bars, bar{fmt.Sprintf("%d streams", s[0].Established), float64(s[0].RSSPeakKB) / 1024, colorFor(peer, 1)})
				}
			}
			if len(bars) > 0 {
				m.groups = append(m.groups, group{peer, bars})
			}
		}
		ps = append(ps, m)
	}
	return ps
}

func (r *run) chart() string {
	ps := r.panels()
	h := 40
	for _, p := range ps {
		h += p.height()
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="Helvetica,Arial,sans-serif">`+"\n", chartW, h)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="10" y="24" font-size="17" font-weight="bold">Lifeline vs peers, clients plain, regions HTTPS, same run (%s)</text>`+"\n",
		html.EscapeString(r.meta.Date))
	y := 40
	for _, p := range ps {
		p.svg(&b, y)
		y += p.height()
	}
	b.WriteString("</svg>\n")
	return b.String()
}
