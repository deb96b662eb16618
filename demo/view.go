package demo

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"
)

func sortedKeys(m map[string]int) []string {
	k := make([]string, 0, len(m))
	for x := range m {
		k = append(k, x)
	}
	sort.Strings(k)
	return k
}

// view renders the live state once a second: on a terminal it redraws in place, elsewhere it prints one line a
// second so that logs and CI output stay readable.
type view struct {
	w         io.Writer
	tty       bool
	regions   []string
	statusURL string
	lines     int            // lines drawn last time (tty)
	printed   map[Event]bool // events already printed (non-tty)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

type frame struct {
	now     time.Duration
	phase   string
	samples []Sample
	events  []Event
	state   func(region string) string
}

func (v *view) draw(f frame) {
	perRegion, errs, total, totalErrs := map[string]int{}, 0, 0, 0
	for _, s := range f.samples {
		total++
		if s.Err != "" {
			totalErrs++
		}
		if end := s.Start + s.Latency; end > f.now-time.Second && end <= f.now {
			if s.Err != "" {
				errs++
			} else {
				perRegion[s.Region]++
			}
		}
	}
	if !v.tty {
		// Events first: they happened before this line's time, so the log reads in time order.
		if v.printed == nil {
			v.printed = map[Event]bool{}
		}
		for _, e := range f.events {
			if !v.printed[e] {
				v.printed[e] = true
				fmt.Fprintf(v.w, "%5.1fs   event: %s\n", e.At.Seconds(), e.Text)
			}
		}
		var parts []string
		for _, r := range v.regions {
			parts = append(parts, fmt.Sprintf("%s %s %d/s", r, f.state(r), perRegion[r]))
		}
		fmt.Fprintf(v.w, "%5.1fs %-28s %s | client errors %d (total %d of %d)\n", f.now.Seconds(), f.phase, strings.Join(parts, " | "), errs, totalErrs, total)
		return
	}
	var b strings.Builder
	if v.lines > 0 {
		fmt.Fprintf(&b, "\x1b[%dA\x1b[J", v.lines)
	}
	fmt.Fprintf(&b, "t=%5.1fs  phase: %s\nstatus page: %s\n\n", f.now.Seconds(), f.phase, v.statusURL)
	fmt.Fprintf(&b, "  %-15s %-10s %8s %7s\n", "region", "state", "req/s", "share")
	sum := 0
	for _, n := range perRegion {
		sum += n
	}
	for _, r := range v.regions {
		share := 0.0
		if sum > 0 {
			share = 100 * float64(perRegion[r]) / float64(sum)
		}
		fmt.Fprintf(&b, "  %-15s %-10s %8d %6.0f%%\n", r, f.state(r), perRegion[r], share)
	}
	fmt.Fprintf(&b, "\nclient: %d requests, %d errors (%d in the last second)\n\nrecent events:\n", total, totalErrs, errs)
	from := len(f.events) - 6
	if from < 0 {
		from = 0
	}
	for _, e := range f.events[from:] {
		fmt.Fprintf(&b, "  %6.2fs %s\n", e.At.Seconds(), e.Text)
	}
	out := b.String()
	v.lines = strings.Count(out, "\n")
	if v.lines > 0 && strings.HasPrefix(out, "\x1b[") {
		v.lines = strings.Count(out[strings.Index(out, "J")+1:], "\n")
	}
	io.WriteString(v.w, out)
}
