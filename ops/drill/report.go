package drill

import (
	"encoding/json"
	"fmt"
	"html"
	"io"
	"sort"
	"strings"
	"time"
)

// Report is everything a drill wrote down: how it was run, the samples and the analysis.
type Report struct {
	Gateway   string        `json:"gateway"`
	Name      string        `json:"name"`
	Region    string        `json:"region"`
	Method    string        `json:"method"` // "admin" or "fault:<mode>"
	Rate      float64       `json:"rate_per_second"`
	StartedAt time.Time     `json:"started_at"`
	Before    time.Duration `json:"before_ns"`
	Hold      time.Duration `json:"hold_ns"`
	After     time.Duration `json:"after_ns"`
	// FailbackTimeout is how long the drill was ready to wait for failback.
	FailbackTimeout time.Duration `json:"failback_timeout_ns"`
	Timing          struct {
		DisableMs   float64  `json:"disable_ms"`
		EnableMs    float64  `json:"enable_ms"`
		RecoveredMs *float64 `json:"recovered_ms"` // failback finished; null: not within the timeout
		EndMs       float64  `json:"end_ms"`
	} `json:"timing"`
	Analysis Analysis `json:"analysis"`
	Samples  []Sample `json:"samples"`
}

// WriteJSON writes the report for machines; durations of samples are in milliseconds.
func (r *Report) WriteJSON(w io.Writer) error {
	type sample struct {
		StartMs   float64 `json:"start_ms"`
		LatencyMs float64 `json:"latency_ms"`
		Region    string  `json:"region,omitempty"`
		Status    int     `json:"status,omitempty"`
		Err       string  `json:"error,omitempty"`
	}
	out := struct {
		*Report
		Samples []sample `json:"samples"`
	}{Report: r}
	for _, s := range r.Samples {
		out.Samples = append(out.Samples, sample{msf(s.Start), msf(s.Latency), s.Region, s.Status, s.Err})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func fmtMs(v *float64) string {
	if v == nil {
		return "never"
	}
	return fmt.Sprintf("%.0f ms", *v)
}

// WriteMarkdown writes the report for people, with a small text timeline.
func (r *Report) WriteMarkdown(w io.Writer) error {
	a := r.Analysis
	verdict := "PASSED: no client saw an error"
	if !a.Passed {
		verdict = "FAILED: " + strings.Join(a.Problems, "; ")
	}
	fmt.Fprintf(w, "# Lifeline drill: %s out, %s\n\n", r.Region, r.StartedAt.UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "**%s**\n\n", verdict)
	fmt.Fprintf(w, "| | |\n|---|---|\n")
	fmt.Fprintf(w, "| gateway | %s |\n| name | %s |\n| region taken out | %s (%s) |\n", r.Gateway, r.Name, r.Region, r.Method)
	fmt.Fprintf(w, "| traffic | %.1f req/s for %s (before %s, out %s, failback, after %s) |\n", r.Rate,
		time.Duration(r.Timing.EndMs*float64(time.Millisecond)).Round(100*time.Millisecond), r.Before, r.Hold, r.After)
	fmt.Fprintf(w, "| requests | %d |\n| client-visible errors | %d |\n", a.Requests, a.Errors)
	failback := fmtMs(a.FailbackMs)
	switch {
	case !a.CarriedFirst:
		failback = "not exercised: " + r.Region + " carried no traffic before the outage"
	case a.FailbackMs == nil:
		failback = "did not finish"
		if r.FailbackTimeout > 0 {
			failback += " within " + r.FailbackTimeout.String()
		}
	}
	fmt.Fprintf(w, "| time until traffic left %s | %s |\n| time until %s answered again | %s |\n| time until failback finished (healthy, full share) | %s |\n\n",
		r.Region, fmtMs(a.FailoverMs), r.Region, fmtMs(a.FirstAnswerMs), failback)
	fmt.Fprintf(w, "| phase | requests | errors | p50 | p99 | answered by |\n|---|---|---|---|---|---|\n")
	for _, p := range a.Phases {
		p50, p99 := "-", "-"
		if p.Requests > p.Errors {
			p50, p99 = fmt.Sprintf("%.0f ms", p.P50Ms), fmt.Sprintf("%.0f ms", p.P99Ms)
		}
		fmt.Fprintf(w, "| %s | %d | %d | %s | %s | %s |\n", p.Name, p.Requests, p.Errors, p50, p99, byRegion(p.ByRegion))
	}
	if len(a.ErrorKinds) > 0 {
		fmt.Fprintf(w, "\nErrors by kind: %s\n", byRegion(a.ErrorKinds))
	}
	if len(a.Replicas) > 0 {
		fmt.Fprintf(w, "\n## Per replica\n\nWhich region answered each replica's share of the traffic (x-lifeline-replica).\n\n")
		fmt.Fprintf(w, "| replica | requests | errors |")
		for _, p := range a.Phases {
			fmt.Fprintf(w, " %s |", p.Name)
		}
		fmt.Fprintf(w, "\n|---|---|---|%s\n", strings.Repeat("---|", len(a.Phases)))
		for _, r := range a.Replicas {
			fmt.Fprintf(w, "| %s | %d | %d |", r.Name, r.Requests, r.Errors)
			for _, p := range a.Phases {
				fmt.Fprintf(w, " %s |", byRegion(r.ByPhase[p.Name]))
			}
			fmt.Fprintln(w)
		}
	}
	fmt.Fprintf(w, "\n## Timeline\n\n```\n%s```\n\n", r.TextTimeline())
	fmt.Fprintf(w, "![timeline](timeline.svg)\n")
	for _, n := range a.Notes {
		fmt.Fprintf(w, "\nNote: %s\n", n)
	}
	return nil
}

func byRegion(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

// regions lists every region in the timeline, the drilled one first.
func (r *Report) regions() []string {
	set := map[string]bool{}
	for _, b := range r.Analysis.Timeline {
		for k := range b.ByRegion {
			set[k] = true
		}
	}
	out := []string{r.Region}
	var rest []string
	for k := range set {
		if k != r.Region {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	return append(out, rest...)
}

var blocks = []rune(" ▁▂▃▄▅▆▇█")

// TextTimeline draws one row per region and one for errors, a column per timeline bucket.
func (r *Report) TextTimeline() string {
	tl := r.Analysis.Timeline
	peak := 1
	for _, b := range tl {
		for _, v := range b.ByRegion {
			peak = max(peak, v)
		}
		peak = max(peak, b.Errors)
	}
	var sb strings.Builder
	row := func(label string, val func(Bucket) int) {
		fmt.Fprintf(&sb, "%-14s|", label)
		for _, b := range tl {
			v := val(b)
			i := (v*(len(blocks)-1) + peak - 1) / peak
			sb.WriteRune(blocks[i])
		}
		sb.WriteString("|\n")
	}
	for _, reg := range r.regions() {
		row(reg, func(b Bucket) int { return b.ByRegion[reg] })
	}
	row("errors", func(b Bucket) int { return b.Errors })
	marks := []rune(strings.Repeat(" ", len(tl)))
	if w := r.Analysis.BucketMs; w > 0 {
		for _, m := range []struct {
			at float64
			c  rune
		}{{r.Timing.DisableMs, 'v'}, {r.Timing.EnableMs, '^'}, {recovered(r), '|'}} {
			if i := int(m.at / w); m.at >= 0 && i >= 0 && i < len(marks) {
				marks[i] = m.c
			}
		}
	}
	fmt.Fprintf(&sb, "%-14s|%s|\n", "", string(marks))
	fmt.Fprintf(&sb, "%-14s 0s%*s\n", "", len(tl)-1, fmt.Sprintf("%.0fs", r.Timing.EndMs/1000))
	fmt.Fprintf(&sb, "%-14s v: out, ^: back, |: failback finished\n", "")
	return sb.String()
}

var palette = []string{"#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf"}

// WriteSVG draws the timeline as stacked bars per bucket (errors in red) with the outage marked.
func (r *Report) WriteSVG(w io.Writer) error {
	tl, a := r.Analysis.Timeline, r.Analysis
	const width, height, left, top, bottom = 720, 220, 40, 30, 30
	plotH := float64(height - top - bottom)
	peak := 1
	for _, b := range tl {
		sum := b.Errors
		for _, v := range b.ByRegion {
			sum += v
		}
		peak = max(peak, sum)
	}
	bw := float64(width-left-10) / float64(max(1, len(tl)))
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">`+"\n", width, height)
	fmt.Fprintf(&sb, `<text x="%d" y="16">%s</text>`+"\n", left, html.EscapeString(fmt.Sprintf("requests per %.0f ms; %s out between the first two dashed lines; failback finished at the third", a.BucketMs, r.Region)))
	regs := r.regions()
	for i, b := range tl {
		y := float64(height - bottom)
		x := float64(left) + float64(i)*bw
		for j, reg := range regs {
			h := plotH * float64(b.ByRegion[reg]) / float64(peak)
			y -= h
			fmt.Fprintf(&sb, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`+"\n", x, y, bw-1, h, palette[j%len(palette)])
		}
		if b.Errors > 0 {
			h := plotH * float64(b.Errors) / float64(peak)
			fmt.Fprintf(&sb, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#d62728"/>`+"\n", x, y-h, bw-1, h)
		}
	}
	if a.BucketMs > 0 {
		for _, m := range []float64{r.Timing.DisableMs, r.Timing.EnableMs, recovered(r)} {
			if m < 0 {
				continue
			}
			x := float64(left) + m/a.BucketMs*bw
			fmt.Fprintf(&sb, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#333" stroke-dasharray="4 3"/>`+"\n", x, top, x, height-bottom)
		}
	}
	fmt.Fprintf(&sb, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333"/>`+"\n", left, height-bottom, width-10, height-bottom)
	fmt.Fprintf(&sb, `<text x="%d" y="%d">0s</text><text x="%d" y="%d" text-anchor="end">%.0fs</text>`+"\n",
		left, height-bottom+14, width-10, height-bottom+14, r.Timing.EndMs/1000)
	lx := left + 60
	for j, reg := range append(regs, "errors") {
		color := palette[j%len(palette)]
		if reg == "errors" {
			color = "#d62728"
		}
		fmt.Fprintf(&sb, `<rect x="%d" y="%d" width="10" height="10" fill="%s"/><text x="%d" y="%d">%s</text>`+"\n",
			lx, height-12, color, lx+14, height-3, html.EscapeString(reg))
		lx += 20 + 7*len(reg)
	}
	sb.WriteString("</svg>\n")
	_, err := io.WriteString(w, sb.String())
	return err
}

// recovered is when failback finished, in ms (-1: it did not).
func recovered(r *Report) float64 {
	if r.Timing.RecoveredMs == nil {
		return -1
	}
	return *r.Timing.RecoveredMs
}
