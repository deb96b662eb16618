package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// K6Round is one constant-arrival-rate run of k6 against one target.
type K6Round struct {
	Rate       int     `json:"rate"`
	Requests   float64 `json:"requests"`
	Dropped    float64 `json:"dropped"` // iterations k6 could not start on time (the target fell behind)
	FailedRate float64 `json:"failed_rate"`
	P50US      float64 `json:"p50_us"`
	P99US      float64 `json:"p99_us"`
	Error      string  `json:"error,omitempty"`
}

const k6Script = `import http from 'k6/http';
export const options = {
  discardResponseBodies: true,
  summaryTrendStats: ['med', 'p(99)', 'avg', 'max'],
  scenarios: { open: { executor: 'constant-arrival-rate', rate: Number(__ENV.RATE), timeUnit: '1s',
    duration: __ENV.DUR, preAllocatedVUs: 64, maxVUs: 512 } },
};
const headers = JSON.parse(__ENV.HEADERS);
const body = __ENV.BODY;
export default function () { http.post(__ENV.URL, body, { headers: headers }); }
export function handleSummary(data) { return { [__ENV.OUT]: JSON.stringify(data.metrics) }; }
`

// runK6: open loop at fixed rates; p50/p99 at each rate, targets interleaved within each round.
func runK6(args []string) error {
	fs := flag.NewFlagSet("k6", flag.ExitOnError)
	targets := fs.String("targets", "", "targets file")
	rounds := fs.Int("rounds", 3, "rounds")
	rates := fs.String("rates", "1000,3000", "request rates per second, comma-separated")
	dur := fs.Duration("duration", 5*time.Second, "duration of one run")
	bin := fs.String("k6", "k6", "k6 binary")
	cpu := fs.String("cpu", "0", "CPU list for taskset; empty: no pinning")
	dir := fs.String("dir", os.TempDir(), "scratch directory")
	out := fs.String("out", "", "output JSON")
	fs.Parse(args)
	ts, err := loadTargets(*targets)
	if err != nil {
		return err
	}
	script := filepath.Join(*dir, "k6-open.js")
	if err := os.WriteFile(script, []byte(k6Script), 0o644); err != nil {
		return err
	}
	res := ScenarioResult[K6Round]{Scenario: "k6", Rounds: map[string][]K6Round{}, Skipped: ts.skipped(),
		Params: map[string]any{"rounds": *rounds, "rates": *rates, "duration": dur.String()}}
	for r := 0; r < *rounds; r++ {
		for _, rs := range strings.Split(*rates, ",") {
			rate, err := strconv.Atoi(strings.TrimSpace(rs))
			if err != nil {
				return err
			}
			for _, t := range ts.rotated(r) {
				kr := k6Once(*bin, *cpu, *dir, script, t, ts.body(t, false), rate, *dur)
				logf("k6 round %d rate %5d %-10s p50 %6.0fus p99 %6.0fus dropped %.0f failed %.3f %s",
					r+1, rate, t.key(), kr.P50US, kr.P99US, kr.Dropped, kr.FailedRate, kr.Error)
				k := t.key() + "@" + strconv.Itoa(rate)
				res.Rounds[k] = append(res.Rounds[k], kr)
			}
		}
	}
	return writeJSON(*out, res)
}

func k6Once(bin, cpu, dir, script string, t Target, body string, rate int, dur time.Duration) K6Round {
	kr := K6Round{Rate: rate}
	hdr := map[string]string{"Content-Type": "application/json"}
	for k, v := range t.Headers {
		hdr[k] = v
	}
	hj, _ := json.Marshal(hdr)
	sum := filepath.Join(dir, "k6-summary.json")
	os.Remove(sum)
	args := []string{"run", "--quiet", "--no-color", "--no-usage-report",
		"-e", "RATE=" + strconv.Itoa(rate), "-e", "DUR=" + dur.String(), "-e", "URL=" + t.URL,
		"-e", "BODY=" + body, "-e", "HEADERS=" + string(hj), "-e", "OUT=" + sum, script}
	var cmd *exec.Cmd
	if cpu != "" {
		cmd = exec.Command("taskset", append([]string{"-c", cpu, bin}, args...)...)
	} else {
		cmd = exec.Command(bin, args...)
	}
	cmd.Env = append(os.Environ(), "K6_NO_USAGE_REPORT=true")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		kr.Error = fmt.Sprintf("%v: %s", err, lastLine(stderr.String()))
		// k6 exits non-zero on threshold failures only; a summary may still be there.
	}
	b, err := os.ReadFile(sum)
	if err != nil {
		if kr.Error == "" {
			kr.Error = err.Error()
		}
		return kr
	}
	var m map[string]struct {
		Values map[string]float64 `json:"values"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		kr.Error = err.Error()
		return kr
	}
	kr.P50US = m["http_req_duration"].Values["med"] * 1e3
	kr.P99US = m["http_req_duration"].Values["p(99)"] * 1e3
	kr.Requests = m["http_reqs"].Values["count"]
	kr.Dropped = m["dropped_iterations"].Values["count"]
	kr.FailedRate = m["http_req_failed"].Values["rate"]
	return kr
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
