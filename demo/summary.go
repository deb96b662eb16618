package demo

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Summary is what the demo measured. Every figure comes from the client samples and gateway events of the run.
type Summary struct {
	Requests       int      // sent through the gateway
	Streams        int      // of which streaming
	ClientErrors   int      // requests whose client saw an error
	FirstErrors    []string // up to five distinct client errors, for the report
	ByRegion       map[string]int
	OutageAt       time.Duration // when the primary went down (0 with --no-outage)
	FailoverFirst  time.Duration // outage -> first answer from another region
	FailoverOut    time.Duration // outage -> primary taken out of rotation (breaker open)
	RecoveryAt     time.Duration // when the primary came back
	FailbackFirst  time.Duration // recovery -> first answer from the primary again
	FailbackFull   time.Duration // recovery -> the primary serves 90% of a one-second window again
	GatewayP50     time.Duration // baseline pairs, through the gateway
	GatewayP99     time.Duration
	DirectP50      time.Duration // the same requests straight to the primary region
	DirectP99      time.Duration
	AddedP50       time.Duration // median of the per-pair differences
	Baseline       int           // how many pairs the baseline has
	Outage         bool
	PrimaryRegion  string
	OutOfRotation  bool // the primary's breaker was seen opening
	FailbackSeen   bool
	FailbackFilled bool
	Resumed        int // streams a region broke that went on from another region
	ResumeFailed   int // resumes that did not complete (the client then saw the error event)
	Hedged         int // answers that came from a hedge while a region stayed silent
}

// summarize computes the summary; outageAt/recoveryAt are negative when they did not happen, openedAt when the
// primary's breaker was never seen opening.
func summarize(samples []Sample, primary string, outageAt, recoveryAt, openedAt time.Duration) Summary {
	s := Summary{ByRegion: map[string]int{}, PrimaryRegion: primary, Outage: outageAt >= 0, OutageAt: outageAt, RecoveryAt: recoveryAt}
	seenErr := map[string]bool{}
	for _, x := range samples {
		s.Requests++
		if x.Stream {
			s.Streams++
		}
		if x.Err != "" {
			s.ClientErrors++
			if !seenErr[x.Err] && len(s.FirstErrors) < 5 {
				seenErr[x.Err] = true
				s.FirstErrors = append(s.FirstErrors, x.Err)
			}
			continue
		}
		s.ByRegion[x.Region]++
	}
	if s.Outage {
		s.FailoverFirst = firstAnswer(samples, outageAt, func(r string) bool { return r != primary })
		if openedAt >= 0 {
			s.OutOfRotation, s.FailoverOut = true, openedAt-outageAt
		}
	}
	if recoveryAt >= 0 {
		if d := firstAnswer(samples, recoveryAt, func(r string) bool { return r == primary }); d >= 0 {
			s.FailbackSeen, s.FailbackFirst = true, d
		}
		if d := fullShare(samples, primary, recoveryAt); d >= 0 {
			s.FailbackFilled, s.FailbackFull = true, d
		}
	}
	return s
}

// addBaseline sets the added-latency figures from paired latencies (direct[i] and gateway[i] are one pair).
func (s *Summary) addBaseline(direct, gateway []time.Duration) {
	s.Baseline = len(direct)
	if s.Baseline == 0 {
		return
	}
	delta := make([]time.Duration, len(direct))
	for i := range direct {
		delta[i] = gateway[i] - direct[i]
	}
	s.AddedP50 = percentile(delta, 50)
	s.GatewayP50, s.GatewayP99 = percentile(gateway, 50), percentile(gateway, 99)
	s.DirectP50, s.DirectP99 = percentile(direct, 50), percentile(direct, 99)
}

// firstAnswer returns how long after t the first successful answer from a region matching ok arrived, or -1.
func firstAnswer(samples []Sample, t time.Duration, ok func(string) bool) time.Duration {
	best := time.Duration(-1)
	for _, x := range samples {
		end := x.Start + x.Latency
		if x.Err != "" || x.Start < t || !ok(x.Region) {
			continue
		}
		if best < 0 || end-t < best {
			best = end - t
		}
	}
	return best
}

// fullShare returns how long after t the primary first served at least 90% of the requests started in a sliding
// one-second window, or -1.
func fullShare(samples []Sample, primary string, t time.Duration) time.Duration {
	const window = time.Second
	for start := t; ; start += 100 * time.Millisecond {
		total, mine, later := 0, 0, false
		for _, x := range samples {
			if x.Start < start {
				continue
			}
			if x.Start >= start+window {
				later = true
				continue
			}
			total++
			if x.Region == primary && x.Err == "" {
				mine++
			}
		}
		if !later {
			return -1
		}
		if total > 0 && mine*10 >= total*9 {
			return start + window - t
		}
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond)) }

// Print writes the summary for people.
func (s Summary) Print(w io.Writer) {
	fmt.Fprintln(w, "\nSummary (every figure measured in this run)")
	fmt.Fprintf(w, "  requests sent            %d (%d streaming), through the gateway with openai-go, client retries off\n", s.Requests, s.Streams)
	var parts []string
	for _, r := range sortedKeys(s.ByRegion) {
		parts = append(parts, fmt.Sprintf("%s %d", r, s.ByRegion[r]))
	}
	fmt.Fprintf(w, "  answered by              %s\n", strings.Join(parts, ", "))
	fmt.Fprintf(w, "  failures seen by clients %d\n", s.ClientErrors)
	for _, e := range s.FirstErrors {
		fmt.Fprintf(w, "    - %s\n", e)
	}
	if s.Outage {
		line := "no answer from another region was seen"
		if s.FailoverFirst >= 0 {
			line = fmt.Sprintf("first answer from a backup region %s after %s went down", ms(s.FailoverFirst), s.PrimaryRegion)
		}
		if s.OutOfRotation {
			line += fmt.Sprintf("; %s out of rotation (breaker open) after %s", s.PrimaryRegion, ms(s.FailoverOut))
		}
		fmt.Fprintf(w, "  time to fail over        %s\n", line)
		fmt.Fprintf(w, "  gray failures            %d broken streams resumed in another region (%d resumes failed); %d answers from a hedge\n",
			s.Resumed, s.ResumeFailed, s.Hedged)
		line = "the primary never served again before the end"
		if s.FailbackSeen {
			line = fmt.Sprintf("first answer from %s %s after it came back", s.PrimaryRegion, ms(s.FailbackFirst))
			if s.FailbackFilled {
				line += fmt.Sprintf("; 90%% of traffic back after %s (gradual)", ms(s.FailbackFull))
			} else {
				line += "; it had not taken 90% of traffic back by the end"
			}
		}
		fmt.Fprintf(w, "  time to fail back        %s\n", line)
	}
	if s.Baseline > 0 {
		fmt.Fprintf(w, "  added latency            median %s per request (%d pairs of the same request, direct and through the gateway;\n", ms(s.AddedP50), s.Baseline)
		fmt.Fprintf(w, "                           p50/p99 gateway %s/%s, direct %s/%s, including simulated generation time)\n",
			ms(s.GatewayP50), ms(s.GatewayP99), ms(s.DirectP50), ms(s.DirectP99))
	}
}
