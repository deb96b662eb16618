// Command report turns the raw JSON of one benchmark run (bench/results/raw) into bench/results/REPORT.md
// and bench/results/chart.svg. Every figure is a median over rounds of a per-round value, and every
// comparison is made within a round (peer against direct measured minutes apart), so that the noise of a
// shared machine cancels as far as it can; the spread (min-max over rounds) is printed beside it.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

var peerOrder = []string{"direct", "nginx", "caddy", "portkey", "goproxy", "lifeline", "lifeline-h1"}

// pathOrder is the order of the paths in the report: the production path first.
var pathOrder = []string{"https", "tls", "plain"}

// pathTitle says what each path is.
var pathTitle = map[string]string{
	"https": "clients on plain HTTP, regions on HTTPS (the production path: a gateway behind an ingress or beside its application)",
	"tls":   "clients on TLS, regions on HTTPS",
	"plain": "clients and regions on plain HTTP (the earlier runs' path)",
}

type rounds[R any] struct {
	Scenario string            `json:"scenario"`
	Params   map[string]any    `json:"params"`
	Rounds   map[string][]R    `json:"rounds"`
	Skipped  map[string]string `json:"skipped"`
	Extra    json.RawMessage   `json:"extra"`
}

type latencyRound struct {
	N             int     `json:"n"`
	Errors        int     `json:"errors"`
	P50US         float64 `json:"p50_us"`
	P99US         float64 `json:"p99_us"`
	FirstError    string  `json:"first_error"`
	CPUUS         float64 `json:"cpu_us"`
	UpstreamCPUUS float64 `json:"upstream_cpu_us"`
}

type wrkRound struct {
	RPS        float64 `json:"rps"`
	Requests   int64   `json:"requests"`
	Non2xx     int64   `json:"non_2xx"`
	SockErrors int64   `json:"socket_errors"`
	P50US      float64 `json:"p50_us"`
	P99US      float64 `json:"p99_us"`
	Error      string  `json:"error"`
	// CPU per request of the target's processes and of the mock's, in microseconds.
	CPUUS         float64 `json:"cpu_us"`
	UpstreamCPUUS float64 `json:"upstream_cpu_us"`
	Seconds       float64 `json:"seconds"`
}

type k6Round struct {
	Rate       int     `json:"rate"`
	Requests   float64 `json:"requests"`
	Dropped    float64 `json:"dropped"`
	FailedRate float64 `json:"failed_rate"`
	P50US      float64 `json:"p50_us"`
	P99US      float64 `json:"p99_us"`
	Error      string  `json:"error"`
}

type sseRound struct {
	Streams    int     `json:"streams"`
	Errors     int     `json:"errors"`
	FirstError string  `json:"first_error"`
	Chunks     int     `json:"chunks"`
	Expected   int     `json:"expected"`
	Coalesced  int     `json:"coalesced"`
	TTFTP50US  float64 `json:"ttft_p50_us"`
	TTFTP99US  float64 `json:"ttft_p99_us"`
	GapP50US   float64 `json:"gap_p50_us"`
	GapP99US   float64 `json:"gap_p99_us"`
	DelayP50US float64 `json:"delay_p50_us"`
	DelayP99US float64 `json:"delay_p99_us"`
	DelayMaxUS float64 `json:"delay_max_us"`
	Done       int     `json:"done"`
}

type streamsRound struct {
	Requested   int     `json:"requested"`
	Established int     `json:"established"`
	Errors      int64   `json:"errors"`
	FirstError  string  `json:"first_error"`
	RSSBeforeKB int64   `json:"rss_before_kb"`
	RSSPeakKB   int64   `json:"rss_peak_kb"`
	RampSeconds float64 `json:"ramp_seconds"`
}

type meta struct {
	Date             string            `json:"date"`
	Quick            bool              `json:"quick"`
	Commit           string            `json:"commit"`
	Kernel           string            `json:"kernel"`
	CPUs             string            `json:"cpus"`
	LoadCPU          string            `json:"load_cpu"`
	ServerCPU        string            `json:"server_cpu"`
	Nice             string            `json:"nice"`
	GOMAXPROCS       string            `json:"gomaxprocs_servers"`
	NoFile           string            `json:"nofile"`
	Streams          string            `json:"streams"`
	MaxStreamsH1     string            `json:"max_streams_h1"`
	Paths            string            `json:"paths"`
	LoadAverageStart string            `json:"load_average_start"`
	Versions         map[string]string `json:"versions"`
	Skipped          map[string]string `json:"skipped"`
}

type run struct {
	meta       meta
	staleness  bool // results/STALENESS.md exists beside the report
	continuity bool // results/CONTINUITY.md exists beside the report
	paths      map[string]*pathRun
	loadavg    []struct{ Scenario, LoadAverage string }
}

// pathRun is what one path's scenarios measured; a scenario that did not run is nil.
type pathRun struct {
	name     string
	seq      *rounds[latencyRound]
	wrk      *rounds[wrkRound]
	k6       *rounds[k6Round]
	sse      *rounds[sseRound]
	failover *rounds[wrkRound]
	streams  *rounds[streamsRound]
	rss      map[string]int64
}

func main() {
	raw := flag.String("raw", "bench/results/raw", "directory with the raw JSON of one run")
	out := flag.String("out", "bench/results", "where REPORT.md and chart.svg go")
	flag.Parse()
	r, err := load(*raw)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(*out, "STALENESS.md")); err == nil {
		r.staleness = true
	}
	if _, err := os.Stat(filepath.Join(*out, "CONTINUITY.md")); err == nil {
		r.continuity = true
	}
	md, verdicts := r.markdown()
	if err := os.WriteFile(filepath.Join(*out, "REPORT.md"), []byte(md), 0o644); err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(*out, "chart.svg"), []byte(r.chart()), 0o644); err != nil {
		log.Fatal(err)
	}
	// The README's performance table, to paste: the production path's medians.
	if err := os.WriteFile(filepath.Join(*out, "summary.md"), []byte(r.summary()), 0o644); err != nil {
		log.Fatal(err)
	}
	for _, v := range verdicts {
		fmt.Println(v)
	}
}

func readJSON(path string, v any) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	if err := json.Unmarshal(b, v); err != nil {
		log.Printf("%s: %v", path, err)
		return false
	}
	return true
}

func load(dir string) (*run, error) {
	r := &run{paths: map[string]*pathRun{}}
	if !readJSON(filepath.Join(dir, "meta.json"), &r.meta) {
		return nil, fmt.Errorf("%s/meta.json: missing or unreadable", dir)
	}
	for _, name := range pathOrder {
		if p := loadPath(filepath.Join(dir, name), name); p != nil {
			r.paths[name] = p
		}
	}
	if len(r.paths) == 0 {
		return nil, fmt.Errorf("%s: no path's results (https/, tls/, plain/)", dir)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "loadavg.jsonl")); err == nil {
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var la struct {
				Scenario    string `json:"scenario"`
				LoadAverage string `json:"load_average"`
			}
			if json.Unmarshal([]byte(line), &la) == nil {
				r.loadavg = append(r.loadavg, struct{ Scenario, LoadAverage string }{la.Scenario, la.LoadAverage})
			}
		}
	}
	return r, nil
}

// loadRounds reads one scenario's file; nil if it is not there.
func loadRounds[R any](path string) *rounds[R] {
	var x rounds[R]
	if !readJSON(path, &x) {
		return nil
	}
	return &x
}

func loadPath(dir, name string) *pathRun {
	if _, err := os.Stat(dir); err != nil {
		return nil
	}
	p := &pathRun{name: name}
	p.seq = loadRounds[latencyRound](filepath.Join(dir, "seq.json"))
	p.wrk = loadRounds[wrkRound](filepath.Join(dir, "wrk.json"))
	p.k6 = loadRounds[k6Round](filepath.Join(dir, "k6.json"))
	p.sse = loadRounds[sseRound](filepath.Join(dir, "sse.json"))
	p.failover = loadRounds[wrkRound](filepath.Join(dir, "failover.json"))
	p.streams = loadRounds[streamsRound](filepath.Join(dir, "streams.json"))
	var rss struct {
		RSSKB map[string]int64 `json:"rss_kb"`
	}
	if readJSON(filepath.Join(dir, "rss.json"), &rss) {
		p.rss = rss.RSSKB
	}
	return p
}

// stat is a median over rounds with its spread.
type stat struct {
	med, lo, hi float64
	n           int
}

func (s stat) ok() bool { return s.n > 0 }

func summarize(v []float64) stat {
	s := slices.DeleteFunc(slices.Clone(v), math.IsNaN) // a ratio with nothing to divide by is left out
	if len(s) == 0 {
		return stat{}
	}
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return stat{med: m, lo: s[0], hi: s[len(s)-1], n: len(s)}
}

// paired applies f to round i of a and round i of b (same round: measured minutes apart).
func paired[R any](a, b []R, f func(x, y R) float64) stat {
	var v []float64
	for i := 0; i < len(a) && i < len(b); i++ {
		v = append(v, f(a[i], b[i]))
	}
	return summarize(v)
}

func each[R any](a []R, f func(x R) float64) stat {
	var v []float64
	for _, x := range a {
		v = append(v, f(x))
	}
	return summarize(v)
}

func fmtStat(s stat, unit string, prec int) string {
	if !s.ok() {
		return "n/a"
	}
	if s.n == 1 {
		return fmt.Sprintf("%.*f%s", prec, s.med, unit)
	}
	return fmt.Sprintf("%.*f%s (%.*f to %.*f)", prec, s.med, unit, prec, s.lo, prec, s.hi)
}

func present[R any](m map[string][]R) []string {
	var out []string
	for _, p := range peerOrder {
		if _, ok := m[p]; ok {
			out = append(out, p)
		}
	}
	return out
}
