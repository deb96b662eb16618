package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeRaw(t *testing.T, dir, rel, body string) {
	t.Helper()
	p := filepath.Join(dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// The report leads with the production path, judges CPU per request round by round against nginx's, and
// extrapolates the streams verdict only with the reason the run gives.
func TestReportProductionPathFirst(t *testing.T) {
	dir := t.TempDir()
	writeRaw(t, dir, "meta.json", `{"date":"d","commit":"c","nofile":"20000","streams":"10000","max_streams_h1":"9500"}`)
	wrk := `{"scenario":"wrk","params":{"rounds":2},"rounds":{
		"direct":[{"rps":30000,"cpu_us":30},{"rps":30000,"cpu_us":30}],
		"nginx":[{"rps":18000,"cpu_us":40},{"rps":18000,"cpu_us":50}],
		"lifeline":[{"rps":9000,"cpu_us":48},{"rps":9000,"cpu_us":60}],
		"lifeline-h1":[{"rps":9000,"cpu_us":80},{"rps":9000,"cpu_us":100}]}}`
	writeRaw(t, dir, "https/wrk.json", wrk)
	writeRaw(t, dir, "plain/wrk.json", wrk)
	writeRaw(t, dir, "https/streams.json", `{"scenario":"streams","rounds":{
		"lifeline":[{"requested":10000,"established":10000,"rss_before_kb":20480,"rss_peak_kb":122880}],
		"lifeline-h1":[{"requested":9500,"established":9500,"rss_before_kb":20480,"rss_peak_kb":307200}]}}`)
	r, err := load(dir)
	if err != nil {
		t.Fatal(err)
	}
	md, vs := r.markdown()
	if i, j := strings.Index(md, "Path https"), strings.Index(md, "Path plain"); i < 0 || j < 0 || i > j {
		t.Fatalf("the https path must come first and both must be there: https at %d, plain at %d", i, j)
	}
	got := map[string][]string{}
	for _, v := range vs {
		if v.met != nil {
			got[v.target] = append(got[v.target], map[bool]string{true: "met", false: "missed"}[*v.met]+": "+v.measured)
		}
	}
	cpu := got["CPU per request ≤ 1.25 × nginx's (closed loop)"]
	if len(cpu) != 2 || !strings.HasPrefix(cpu[0], "met") || !strings.Contains(cpu[0], "1.20×") || !strings.HasPrefix(cpu[1], "missed") {
		t.Fatalf("CPU verdicts: %q; want lifeline met at 1.20× (48/40 and 60/50), lifeline-h1 missed", cpu)
	}
	st := got["10,000 concurrent streams < 150 MB"]
	if len(st) != 2 || !strings.HasPrefix(st[0], "met") || !strings.HasPrefix(st[1], "missed") ||
		!strings.Contains(st[1], "extrapolated") || !strings.Contains(st[1], "open-file hard limit") {
		t.Fatalf("streams verdicts: %q", st)
	}
	if !strings.Contains(r.chart(), "CPU per request") {
		t.Fatal("the chart has no CPU per request panel")
	}
	if sum := r.summary(); !strings.Contains(sum, "| CPU per request, closed loop (× nginx's) | 54 µs (1.20×) | 90 µs (2.00×) |") {
		t.Fatalf("the README table has not the production path's medians:\n%s", sum)
	}
}
