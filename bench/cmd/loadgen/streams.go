package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// StreamsResult is the memory of one peer holding many open streams.
type StreamsResult struct {
	Requested   int     `json:"requested"`
	Established int     `json:"established"` // streams that delivered their first chunk
	Errors      int64   `json:"errors"`
	FirstError  string  `json:"first_error,omitempty"`
	RSSBeforeKB int64   `json:"rss_before_kb"`
	RSSPeakKB   int64   `json:"rss_peak_kb"`
	RampSeconds float64 `json:"ramp_seconds"`
}

// RSSResult is each target's resident memory at one moment (after the load runs).
type RSSResult struct {
	Scenario string           `json:"scenario"`
	RSSKB    map[string]int64 `json:"rss_kb"`
}

func runRSS(args []string) error {
	fs := flag.NewFlagSet("rss", flag.ExitOnError)
	targets := fs.String("targets", "", "targets file")
	out := fs.String("out", "", "output JSON")
	fs.Parse(args)
	ts, err := loadTargets(*targets)
	if err != nil {
		return err
	}
	res := RSSResult{Scenario: "rss", RSSKB: map[string]int64{}}
	for _, t := range ts.Targets {
		if t.Skip == "" && t.PID > 0 {
			res.RSSKB[t.key()] = rssKB(t.PID)
			logf("rss %-10s %7d KiB", t.key(), res.RSSKB[t.key()])
		}
	}
	return writeJSON(*out, res)
}

// runStreams opens n concurrent slow streams through each target in turn, waits until every one has
// delivered its first chunk, holds them, and records the peak RSS of the target's processes.
func runStreams(args []string) error {
	fs := flag.NewFlagSet("streams", flag.ExitOnError)
	targets := fs.String("targets", "", "targets file")
	n := fs.Int("n", 10000, "concurrent streams")
	hold := fs.Duration("hold", 5*time.Second, "how long to hold them all open")
	ramp := fs.Duration("ramp-timeout", 60*time.Second, "give up waiting for all streams after this")
	body := fs.String("body", `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"stream":true,"user":"interval=1s,chunks=120"}`, "streaming body (slow pacing)")
	out := fs.String("out", "", "output JSON")
	fs.Parse(args)
	ts, err := loadTargets(*targets)
	if err != nil {
		return err
	}
	res := ScenarioResult[StreamsResult]{Scenario: "streams", Rounds: map[string][]StreamsResult{}, Skipped: ts.skipped(),
		Params: map[string]any{"streams": *n, "hold": hold.String(), "body": *body}}
	for _, t := range ts.rotated(0) {
		want := *n
		if t.MaxStreams > 0 && t.MaxStreams < want {
			want = t.MaxStreams
		}
		sr := holdStreams(t, *body, want, *hold, *ramp)
		logf("streams %-10s %d/%d open, rss %d -> %d KiB, errors %d %s", t.key(), sr.Established, sr.Requested,
			sr.RSSBeforeKB, sr.RSSPeakKB, sr.Errors, sr.FirstError)
		res.Rounds[t.key()] = append(res.Rounds[t.key()], sr)
		time.Sleep(2 * time.Second) // let the peer close its side before the next one starts
	}
	return writeJSON(*out, res)
}

func holdStreams(t Target, body string, n int, hold, rampTimeout time.Duration) StreamsResult {
	sr := StreamsResult{Requested: n, RSSBeforeKB: rssKB(t.PID)}
	tr := newTransport(t, n+16)
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	ctx, cancel := context.WithCancel(context.Background())
	var established atomic.Int64
	var errs atomic.Int64
	var firstErr sync.Once
	var wg sync.WaitGroup
	dialing := make(chan struct{}, 256) // bounded connection ramp: the accept queue is finite
	start := time.Now()
	deadline := start.Add(rampTimeout)
	launched := 0
	for i := 0; i < n && time.Now().Before(deadline); i++ {
		select {
		case dialing <- struct{}{}:
		case <-time.After(time.Until(deadline)):
			continue // the loop condition ends the ramp: a peer that cannot keep up is measured as it is
		}
		launched++
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok := false
			defer func() {
				if !ok {
					<-dialing
				}
			}()
			fail := func(err error) {
				if ctx.Err() != nil {
					return
				}
				errs.Add(1)
				firstErr.Do(func() { sr.FirstError = err.Error() })
			}
			req, err := newRequest(t, body)
			if err != nil {
				fail(err)
				return
			}
			resp, err := c.Do(req.WithContext(ctx))
			if err != nil {
				fail(err)
				return
			}
			defer resp.Body.Close()
			if resp.StatusCode != 200 {
				fail(fmt.Errorf("status %d", resp.StatusCode))
				return
			}
			buf := make([]byte, 2048)
			for {
				k, err := resp.Body.Read(buf)
				if k > 0 && !ok && bytes.Contains(buf[:k], xSeq) {
					ok = true
					<-dialing
					established.Add(1)
				}
				if err != nil {
					if ctx.Err() == nil && !ok {
						fail(err)
					}
					return
				}
			}
		}()
	}
	for established.Load()+errs.Load() < int64(launched) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	sr.RampSeconds = time.Since(start).Seconds()
	sr.Established = int(established.Load())
	for end := time.Now().Add(hold); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
		sr.RSSPeakKB = max(sr.RSSPeakKB, rssKB(t.PID))
	}
	sr.Errors = errs.Load()
	cancel()
	wg.Wait()
	return sr
}
