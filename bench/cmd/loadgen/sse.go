package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// SSERound is one target's streaming result in one round.
type SSERound struct {
	Streams    int     `json:"streams"`
	Errors     int     `json:"errors"`
	FirstError string  `json:"first_error,omitempty"`
	Chunks     int     `json:"chunks"`      // content chunks received
	Expected   int     `json:"expected"`    // content chunks the upstream sent
	Coalesced  int     `json:"coalesced"`   // chunks that arrived in the same read as the one before
	TTFTP50US  float64 `json:"ttft_p50_us"` // request start to first content chunk
	TTFTP99US  float64 `json:"ttft_p99_us"`
	GapP50US   float64 `json:"gap_p50_us"` // time between consecutive content chunks at the client
	GapP99US   float64 `json:"gap_p99_us"`
	DelayP50US float64 `json:"delay_p50_us"` // upstream write (x_sent) to arrival at the client
	DelayP99US float64 `json:"delay_p99_us"`
	DelayMaxUS float64 `json:"delay_max_us"`
	Done       int     `json:"done"` // streams that ended with data: [DONE]
}

// runSSE: one stream at a time; each content chunk carries its send time, so the client measures how
// long every chunk spent in the proxy and whether any two arrived in one read (coalesced).
func runSSE(args []string) error {
	fs := flag.NewFlagSet("sse", flag.ExitOnError)
	targets := fs.String("targets", "", "targets file")
	rounds := fs.Int("rounds", 3, "rounds")
	n := fs.Int("n", 30, "streams per target per round")
	chunks := fs.Int("chunks", 20, "content chunks per stream (must match the stream body)")
	out := fs.String("out", "", "output JSON")
	fs.Parse(args)
	ts, err := loadTargets(*targets)
	if err != nil {
		return err
	}
	res := ScenarioResult[SSERound]{Scenario: "sse", Rounds: map[string][]SSERound{}, Skipped: ts.skipped(),
		Params: map[string]any{"rounds": *rounds, "streams": *n, "chunks": *chunks, "body": ts.StreamBody}}
	for r := 0; r < *rounds; r++ {
		for _, t := range ts.rotated(r) {
			sr := sseRound(t, ts.body(t, true), *n, *chunks)
			logf("sse round %d %-10s ttft p50 %6.0fus delay p50 %5.0fus p99 %5.0fus coalesced %d/%d errors %d",
				r+1, t.key(), sr.TTFTP50US, sr.DelayP50US, sr.DelayP99US, sr.Coalesced, sr.Chunks, sr.Errors)
			res.Rounds[t.key()] = append(res.Rounds[t.key()], sr)
		}
	}
	return writeJSON(*out, res)
}

type streamStats struct {
	ttft    time.Duration
	gaps    []time.Duration
	delays  []time.Duration
	chunks  int
	coalesc int
	done    bool
}

func sseRound(t Target, body string, n, chunks int) SSERound {
	tr := newTransport(t, 1)
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	sr := SSERound{Streams: n, Expected: n * chunks}
	var ttft, gaps, delays []time.Duration
	for i := 0; i < n+2; i++ { // two warm-up streams
		st, err := oneStream(c, t, body)
		if i < 2 {
			continue
		}
		if err != nil {
			sr.Errors++
			if sr.FirstError == "" {
				sr.FirstError = err.Error()
			}
		}
		if st.chunks > 0 {
			ttft = append(ttft, st.ttft)
		}
		gaps = append(gaps, st.gaps...)
		delays = append(delays, st.delays...)
		sr.Chunks += st.chunks
		sr.Coalesced += st.coalesc
		if st.done {
			sr.Done++
		}
	}
	sortDur(ttft)
	sortDur(gaps)
	sortDur(delays)
	sr.TTFTP50US, sr.TTFTP99US = quantileUS(ttft, 0.5), quantileUS(ttft, 0.99)
	sr.GapP50US, sr.GapP99US = quantileUS(gaps, 0.5), quantileUS(gaps, 0.99)
	sr.DelayP50US, sr.DelayP99US, sr.DelayMaxUS = quantileUS(delays, 0.5), quantileUS(delays, 0.99), quantileUS(delays, 1)
	return sr
}

var (
	xSent = []byte(`"x_sent":`)
	xSeq  = []byte(`"x_seq":`)
	done  = []byte("data: [DONE]")
)

// oneStream reads the body straight from the connection: each Read returns what the proxy has flushed
// so far, so two content chunks completed by one Read were coalesced somewhere on the way.
func oneStream(c *http.Client, t Target, body string) (streamStats, error) {
	var st streamStats
	req, err := newRequest(t, body)
	if err != nil {
		return st, err
	}
	t0 := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		io.Copy(io.Discard, resp.Body)
		return st, fmt.Errorf("status %d", resp.StatusCode)
	}
	buf := make([]byte, 64<<10)
	var pending []byte
	var last time.Time
	for {
		n, rerr := resp.Body.Read(buf)
		now := time.Now()
		if n > 0 {
			pending = append(pending, buf[:n]...)
			inRead := 0
			for {
				i := bytes.Index(pending, []byte("\n\n"))
				if i < 0 {
					break
				}
				ev := pending[:i]
				if bytes.Contains(ev, done) {
					st.done = true
				}
				if j := bytes.Index(ev, xSeq); j >= 0 {
					inRead++
					if inRead > 1 {
						st.coalesc++
					}
					if st.chunks == 0 {
						st.ttft = now.Sub(t0)
					} else {
						st.gaps = append(st.gaps, now.Sub(last))
					}
					last = now
					st.chunks++
					if k := bytes.Index(ev, xSent); k >= 0 {
						if ns, ok := leadingInt(ev[k+len(xSent):]); ok {
							st.delays = append(st.delays, now.Sub(time.Unix(0, ns)))
						}
					}
				}
				pending = pending[i+2:]
			}
		}
		if rerr != nil {
			if errors.Is(rerr, io.EOF) {
				if !st.done {
					return st, errors.New("stream ended without [DONE]")
				}
				return st, nil
			}
			return st, rerr
		}
	}
}

func leadingInt(b []byte) (int64, bool) {
	i := 0
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	n, err := strconv.ParseInt(string(b[:i]), 10, 64)
	return n, err == nil
}
