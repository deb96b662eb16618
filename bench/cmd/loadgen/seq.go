package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"time"
)

// LatencyRound is one target's latency in one round.
type LatencyRound struct {
	N          int     `json:"n"`
	Errors     int     `json:"errors"`
	P50US      float64 `json:"p50_us"`
	P90US      float64 `json:"p90_us"`
	P99US      float64 `json:"p99_us"`
	FirstError string  `json:"first_error,omitempty"`
	// CPU per request (user + system, microseconds) of the target's processes and of the upstream's, over
	// the n timed requests.
	CPUUS         float64 `json:"cpu_us"`
	UpstreamCPUUS float64 `json:"upstream_cpu_us,omitempty"`
}

// ScenarioResult is what every scenario writes: per target key, one entry per round.
type ScenarioResult[R any] struct {
	Scenario string            `json:"scenario"`
	Params   map[string]any    `json:"params"`
	Rounds   map[string][]R    `json:"rounds"`
	Skipped  map[string]string `json:"skipped,omitempty"`
	Extra    map[string]any    `json:"extra,omitempty"`
}

// runSeq: one connection, one request at a time; the latency each target adds is its p50/p99 minus
// direct's in the same round.
func runSeq(args []string) error {
	fs := flag.NewFlagSet("seq", flag.ExitOnError)
	targets := fs.String("targets", "", "targets file")
	rounds := fs.Int("rounds", 5, "rounds")
	n := fs.Int("n", 2000, "timed requests per target per round")
	warm := fs.Int("warmup", 200, "untimed requests before each timed run")
	out := fs.String("out", "", "output JSON")
	fs.Parse(args)
	ts, err := loadTargets(*targets)
	if err != nil {
		return err
	}
	res := ScenarioResult[LatencyRound]{Scenario: "seq", Rounds: map[string][]LatencyRound{}, Skipped: ts.skipped(),
		Params: map[string]any{"rounds": *rounds, "n": *n, "warmup": *warm, "connections": 1}}
	for r := 0; r < *rounds; r++ {
		for _, t := range ts.rotated(r) {
			lr := seqOnce(t, ts.body(t, false), *warm, *n, ts.UpstreamPID)
			logf("seq round %d %-12s p50 %6.0fus p99 %6.0fus cpu %5.1fus/req errors %d", r+1, t.key(), lr.P50US, lr.P99US,
				lr.CPUUS, lr.Errors)
			res.Rounds[t.key()] = append(res.Rounds[t.key()], lr)
		}
	}
	return writeJSON(*out, res)
}

func seqOnce(t Target, body string, warm, n, upPID int) LatencyRound {
	tr := newTransport(t, 1)
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var lr LatencyRound
	lat := make([]time.Duration, 0, n)
	var cpu *cpuMeter
	for i := 0; i < warm+n; i++ {
		if i == warm {
			cpu = startCPU(t, upPID)
		}
		req, err := newRequest(t, body)
		if err != nil {
			lr.Errors++
			lr.FirstError = err.Error()
			return lr
		}
		t0 := time.Now()
		resp, err := c.Do(req)
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode != 200 {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
		}
		d := time.Since(t0)
		if i < warm {
			continue
		}
		if err != nil {
			lr.Errors++
			if lr.FirstError == "" {
				lr.FirstError = err.Error()
			}
			continue
		}
		lat = append(lat, d)
	}
	if cpu != nil {
		lr.CPUUS, lr.UpstreamCPUUS = cpu.perRequest(int64(n))
	}
	sortDur(lat)
	lr.N = len(lat)
	lr.P50US, lr.P90US, lr.P99US = quantileUS(lat, 0.5), quantileUS(lat, 0.9), quantileUS(lat, 0.99)
	return lr
}
