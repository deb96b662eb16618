package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// WrkRound is one closed-loop run of wrk against one target.
type WrkRound struct {
	RPS        float64 `json:"rps"`
	Requests   int64   `json:"requests"`
	Non2xx     int64   `json:"non_2xx"`
	SockErrors int64   `json:"socket_errors"` // connect + read + write + timeout
	P50US      float64 `json:"p50_us"`
	P99US      float64 `json:"p99_us"`
	Error      string  `json:"error,omitempty"`
	// CPU per answered request (user + system, microseconds) of the target's processes and of the
	// upstream's, over the run.
	CPUUS         float64 `json:"cpu_us"`
	UpstreamCPUUS float64 `json:"upstream_cpu_us,omitempty"`
	Seconds       float64 `json:"seconds"`
}

type wrkOpts struct {
	bin, cpu, dir string
	conns         int
	duration      time.Duration
	timeout       time.Duration
	upPID         int
}

func wrkFlags(fs *flag.FlagSet) *wrkOpts {
	o := &wrkOpts{}
	fs.StringVar(&o.bin, "wrk", "wrk", "wrk binary")
	fs.StringVar(&o.cpu, "cpu", "0", "CPU list for taskset (the load generator's core); empty: no pinning")
	fs.StringVar(&o.dir, "dir", os.TempDir(), "where to write the wrk Lua scripts")
	fs.IntVar(&o.conns, "conns", 64, "connections")
	fs.DurationVar(&o.duration, "duration", 5*time.Second, "duration of one run")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Second, "wrk request timeout")
	return o
}

// runWrk: closed loop, 64 connections, one wrk thread on the load generator's core.
func runWrk(args []string) error {
	fs := flag.NewFlagSet("wrk", flag.ExitOnError)
	targets := fs.String("targets", "", "targets file")
	rounds := fs.Int("rounds", 5, "rounds")
	out := fs.String("out", "", "output JSON")
	o := wrkFlags(fs)
	fs.Parse(args)
	ts, err := loadTargets(*targets)
	if err != nil {
		return err
	}
	o.upPID = ts.UpstreamPID
	res := ScenarioResult[WrkRound]{Scenario: "wrk", Rounds: map[string][]WrkRound{}, Skipped: ts.skipped(),
		Params: map[string]any{"rounds": *rounds, "connections": o.conns, "duration": o.duration.String(), "threads": 1}}
	for r := 0; r < *rounds; r++ {
		for _, t := range ts.rotated(r) {
			wr := o.run(t, ts.body(t, false), o.duration)
			logf("wrk round %d %-12s %8.0f req/s p50 %6.0fus p99 %6.0fus cpu %5.1fus/req (upstream %4.1f) non2xx %d sockerr %d %s",
				r+1, t.key(), wr.RPS, wr.P50US, wr.P99US, wr.CPUUS, wr.UpstreamCPUUS, wr.Non2xx, wr.SockErrors, wr.Error)
			res.Rounds[t.key()] = append(res.Rounds[t.key()], wr)
		}
	}
	return writeJSON(*out, res)
}

const wrkLua = `wrk.method = "POST"
wrk.body = %s
wrk.headers["Content-Type"] = "application/json"
%s
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRKJSON {\"requests\":%%d,\"duration_us\":%%d,\"non_2xx\":%%d,\"sock\":%%d,\"p50\":%%d,\"p99\":%%d}\n",
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
`

func luaString(s string) string {
	b, _ := json.Marshal(s) // a JSON string is a valid Lua string literal for our ASCII bodies
	return string(b)
}

func (o *wrkOpts) script(t Target, body string) (string, error) {
	var hdr strings.Builder
	for k, v := range t.Headers {
		fmt.Fprintf(&hdr, "wrk.headers[%s] = %s\n", luaString(k), luaString(v))
	}
	name := strings.NewReplacer("/", "_", " ", "_").Replace(t.key())
	path := filepath.Join(o.dir, "wrk-"+name+".lua")
	return path, os.WriteFile(path, []byte(fmt.Sprintf(wrkLua, luaString(body), hdr.String())), 0o644)
}

// run runs wrk against t for d and reads the CPU time of t's processes (and the upstream's) around it: the
// CPU per request is that time divided by the requests answered in the run.
func (o *wrkOpts) run(t Target, body string, d time.Duration) WrkRound {
	var wr WrkRound
	script, err := o.script(t, body)
	if err != nil {
		wr.Error = err.Error()
		return wr
	}
	args := []string{"-t1", "-c" + strconv.Itoa(o.conns), "-d" + secs(d), "--timeout", secs(o.timeout), "-s", script, t.URL}
	var cmd *exec.Cmd
	if o.cpu != "" {
		cmd = exec.Command("taskset", append([]string{"-c", o.cpu, o.bin}, args...)...)
	} else {
		cmd = exec.Command(o.bin, args...)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cpu := startCPU(t, o.upPID)
	outb, err := cmd.Output()
	if err != nil {
		wr.Error = fmt.Sprintf("%v: %s", err, strings.TrimSpace(stderr.String()))
		return wr
	}
	i := bytes.Index(outb, []byte("WRKJSON "))
	if i < 0 {
		wr.Error = "no summary in wrk output"
		return wr
	}
	var s struct {
		Requests   int64 `json:"requests"`
		DurationUS int64 `json:"duration_us"`
		Non2xx     int64 `json:"non_2xx"`
		Sock       int64 `json:"sock"`
		P50        int64 `json:"p50"`
		P99        int64 `json:"p99"`
	}
	line, _, _ := bytes.Cut(outb[i+8:], []byte("\n"))
	if err := json.Unmarshal(line, &s); err != nil {
		wr.Error = err.Error()
		return wr
	}
	if s.DurationUS == 0 {
		wr.Error = "zero duration"
		return wr
	}
	wr.Requests, wr.Non2xx, wr.SockErrors = s.Requests, s.Non2xx, s.Sock
	wr.CPUUS, wr.UpstreamCPUUS = cpu.perRequest(s.Requests)
	wr.Seconds = float64(s.DurationUS) / 1e6
	// Throughput counts good answers only: an error that comes back fast is not served traffic.
	wr.RPS = float64(s.Requests-s.Non2xx) / (float64(s.DurationUS) / 1e6)
	wr.P50US, wr.P99US = float64(s.P50), float64(s.P99)
	return wr
}

func secs(d time.Duration) string {
	return strconv.Itoa(int((d+time.Second-1)/time.Second)) + "s"
}

// runFailover: for every failover-capable peer and every way the primary can fail (healthy, 503,
// refused, blackhole), a warm-up long enough for the peer to take the primary out, then a closed-loop
// run whose throughput is compared with the same peer's healthy run in the same round.
func runFailover(args []string) error {
	fs := flag.NewFlagSet("failover", flag.ExitOnError)
	targets := fs.String("targets", "", "targets file (each target has a mode)")
	rounds := fs.Int("rounds", 3, "rounds")
	warm := fs.Duration("warmup", 2*time.Second, "closed-loop warm-up before the measured run (trips the breaker)")
	out := fs.String("out", "", "output JSON")
	o := wrkFlags(fs)
	fs.Parse(args)
	ts, err := loadTargets(*targets)
	if err != nil {
		return err
	}
	o.upPID = ts.UpstreamPID
	res := ScenarioResult[WrkRound]{Scenario: "failover", Rounds: map[string][]WrkRound{}, Skipped: ts.skipped(),
		Params: map[string]any{"rounds": *rounds, "connections": o.conns, "duration": o.duration.String(),
			"warmup": warm.String(), "threads": 1}}
	warmups := map[string]WrkRound{}
	for r := 0; r < *rounds; r++ {
		for _, t := range ts.rotated(r) {
			// Every round warms up (a breaker may have half-opened since the last one); the first warm-up
			// is the one that sees the failure fresh, so it is kept as the cost of detection.
			w := o.run(t, ts.body(t, false), *warm)
			if r == 0 {
				warmups[t.key()] = w
			}
			wr := o.run(t, ts.body(t, false), o.duration)
			logf("failover round %d %-20s %8.0f req/s p50 %6.0fus p99 %6.0fus non2xx %d sockerr %d %s",
				r+1, t.key(), wr.RPS, wr.P50US, wr.P99US, wr.Non2xx, wr.SockErrors, wr.Error)
			res.Rounds[t.key()] = append(res.Rounds[t.key()], wr)
		}
	}
	res.Extra = map[string]any{"first_warmup": warmups}
	if len(res.Rounds) == 0 {
		return errors.New("no target ran")
	}
	return writeJSON(*out, res)
}
