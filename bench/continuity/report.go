package continuity

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Result is a whole run.
type Result struct {
	Plan     Plan          `json:"plan"`
	Started  time.Time     `json:"started"`
	Finished time.Time     `json:"finished"`
	Faults   []FaultResult `json:"faults"`
	Skipped  []Skipped     `json:"skipped,omitempty"`
}

// FaultResult is one fault, every peer.
type FaultResult struct {
	Name   string    `json:"name"`
	What   string    `json:"what"`
	Stream bool      `json:"stream"`
	Heals  bool      `json:"heals"`
	Runs   []PeerRun `json:"runs"`
}

// Skipped is a peer that could not run.
type Skipped struct {
	Peer string `json:"peer"`
	Why  string `json:"why"`
}

// Meta is what the harness knows about the run and the report states.
type Meta struct {
	Commit      string
	Quick       bool
	LoadAverage string // at the start and the end
	Command     string
	Versions    []string // "nginx 1.22.1", ...
}

func secs(d time.Duration) string {
	switch {
	case d < 0:
		return "−" + secs(-d)
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.1f ms", float64(d)/1e6)
	case d < time.Second:
		return fmt.Sprintf("%.0f ms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.1f s", d.Seconds())
}

// Markdown writes the report.
func (r *Result) Markdown(w io.Writer, m Meta) {
	p := r.Plan
	fmt.Fprintf(w, "# Continuity under gray failures (`bench/continuity.sh`)\n\n")
	mode := "full run"
	if m.Quick {
		mode = "quick run: few requests per fault, do not quote its figures"
	}
	fmt.Fprintf(w, "%s, main `%s`, %s (%s), load average %s (two cores shared with the team's builds and tests).\n",
		r.Started.Format("2006-01-02 15:04 UTC"), m.Commit, mode, r.Finished.Sub(r.Started).Round(time.Second), m.LoadAverage)
	if m.Command != "" {
		fmt.Fprintf(w, "Reproduce: `%s`.\n", m.Command)
	}
	fmt.Fprintf(w, `
Each peer sits in front of two simulated regions of its own (`+"`lifeline sim --tls`"+`: a primary and a secondary,
HTTPS, time to first token 200 ms, 50 tokens/s, answers of %d tokens). Faults are set on each peer's primary through
the simulator's control API (`+"`POST /regions/{name}/fault`"+`), one fault after the other; the peers run at the same
time, each on its own schedule. Each peer gets %.0f requests per second, open loop (users do not wait for each other), from a client that behaves as the
official SDKs with their defaults: HTTP/1.1, retries as openai-go makes them (%d, after the Retry-After hint), a
bound of %v on the whole request. Per fault and peer: traffic until the peer answers %d requests in a row from its
primary (so that no fault starts while the one before still shows), %v of healthy traffic (the baseline), the
fault (%v; the flap %v; the throttle %v), then the heal and traffic until %d answers in a row come from the primary,
or %v.

- **errors**: requests sent while the fault lasted that failed as the application sees them: an HTTP error after the
  client's retries, a broken stream, a stream without `+"`finish_reason`"+`, an error event, or the client's timeout.
  **first attempt**: the same without retries (what a client with retries off sees).
- **added time**: mean time per request (to the last byte of the answer, retries included) while the fault lasted,
  minus the same peer's mean in the baseline; p99 and the longest in brackets. Failures count with the time they
  took, so a peer that fails fast can show less than zero.
- **on primary**: answers from the primary while the fault lasted (a gateway that keeps sending to a broken region;
  a stream Lifeline resumed in the secondary keeps the primary's headers, so it counts here).
- **recovery**: from the heal to the first answer from the primary, and to the first of %d answers in a row all from
  the primary (all traffic back); "not within" when it did not happen before traffic stopped. A peer that never
  moved traffic away from the primary (it tries the primary first on every request) is back at once: read this
  column with the errors and the added time it paid for that.

`, p.Tokens, p.Rate, p.Retries, p.Timeout.D(), p.Back, p.Baseline.D(), p.Fault.D(), p.Flap.D(), p.Throttle.D(), p.Back, p.Recover.D(), p.Back)
	r.summary(w)
	fmt.Fprintf(w, "\n## Every figure\n\n")
	fmt.Fprintf(w, "| fault | peer | errors | first attempt | added time per request | on primary | recovery: first / all back |\n")
	fmt.Fprintf(w, "|---|---|---|---|---|---|---|\n")
	for _, f := range r.Faults {
		for _, run := range f.Runs {
			s := run.Stats
			name := "`" + f.Name + "`"
			peer := run.Peer
			if run.Cannot != "" {
				peer += " ¹"
			}
			if run.Unsettled {
				peer += " ²"
			}
			if run.Error != "" {
				fmt.Fprintf(w, "| %s | %s | run failed: %s | | | | |\n", name, peer, strings.ReplaceAll(run.Error, "|", "/"))
				continue
			}
			rec := "n/a"
			if f.Heals {
				rec = recov(s.FirstPrimary, s.Window) + " / " + recov(s.Back, s.Window)
			}
			errs := fmt.Sprintf("%d / %d", s.Errors, s.Requests)
			if s.ErrorsAfter > 0 {
				errs += fmt.Sprintf(" (+%d after the heal)", s.ErrorsAfter)
			}
			fmt.Fprintf(w, "| %s | %s | %s | %d | %s (p99 %s, max %s) | %d | %s |\n", name, peer, errs, s.FirstErrors,
				plus(s.AddedMean), secs(s.P99), secs(s.Max), s.OnPrimary, rec)
		}
	}
	fmt.Fprintf(w, "\n¹ the peer cannot be configured to handle this fault (below); it ran anyway, so the row shows what its clients get.\n")
	fmt.Fprintf(w, "² the peer had not sent %d answers in a row from its primary within %v before this fault's baseline (the fault before still showed).\n", p.Back, p.Recover.D())
	fmt.Fprintf(w, "\n## The faults\n\n| fault | traffic | what the primary does |\n|---|---|---|\n")
	for _, f := range r.Faults {
		t := "not streamed"
		if f.Stream {
			t = "streamed"
		}
		fmt.Fprintf(w, "| `%s` | %s | %s |\n", f.Name, t, f.What)
	}
	fmt.Fprintf(w, "\n## The peers, and what each can be configured for\n\n")
	for _, pe := range p.Peers {
		if pe.Skip != "" {
			fmt.Fprintf(w, "- **%s**: not run: %s\n", pe.Name, pe.Skip)
			continue
		}
		fmt.Fprintf(w, "- **%s**: %s\n", pe.Name, pe.Config)
		for _, f := range r.Faults {
			if why := pe.Cannot[f.Name]; why != "" {
				fmt.Fprintf(w, "  - `%s`: cannot: %s\n", f.Name, why)
			}
		}
	}
	for _, n := range p.Notes {
		fmt.Fprintf(w, "\n%s\n", n)
	}
	if len(m.Versions) > 0 {
		fmt.Fprintf(w, "\nVersions: %s.\n", strings.Join(m.Versions, "; "))
	}
	fmt.Fprintf(w, "\n## What the errors were\n\n")
	for _, f := range r.Faults {
		for _, run := range f.Runs {
			if len(run.Stats.ErrorKinds) == 0 {
				continue
			}
			fmt.Fprintf(w, "- `%s`, %s: %s\n", f.Name, run.Peer, strings.Join(run.Stats.ErrorKinds, "; "))
		}
	}
}

func plus(d time.Duration) string {
	if d >= 0 {
		return "+" + secs(d)
	}
	return secs(d)
}

func recov(d, window time.Duration) string {
	if d < 0 {
		return "not within " + secs(window)
	}
	return secs(d)
}

// summary is one row per fault and one column per peer: errors, added mean time, time until all traffic is back.
func (r *Result) summary(w io.Writer) {
	var peers []string
	for _, pe := range r.Plan.Peers {
		if pe.Skip == "" {
			peers = append(peers, pe.Name)
		}
	}
	fmt.Fprintf(w, "In short: errors the application saw / requests sent while the fault lasted; mean added time per request; "+
		"time from the heal until all traffic was on the primary again (¹: the peer cannot be configured for this fault).\n\n")
	fmt.Fprintf(w, "| fault | %s |\n|---|%s\n", strings.Join(peers, " | "), strings.Repeat("---|", len(peers)))
	for _, f := range r.Faults {
		cells := make([]string, len(peers))
		for i, name := range peers {
			cells[i] = "not run"
			for _, run := range f.Runs {
				if run.Peer != name {
					continue
				}
				if run.Error != "" {
					cells[i] = "run failed"
					break
				}
				s := run.Stats
				c := fmt.Sprintf("%d/%d, %s", s.Errors, s.Requests, plus(s.AddedMean))
				if f.Heals {
					c += ", back " + recov(s.Back, s.Window)
				}
				if run.Cannot != "" {
					c += " ¹"
				}
				cells[i] = c
			}
		}
		fmt.Fprintf(w, "| `%s` | %s |\n", f.Name, strings.Join(cells, " | "))
	}
}
