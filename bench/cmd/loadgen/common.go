package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Targets is the file the harness writes: what to call, with which body, and which processes serve it.
type Targets struct {
	Body       string   `json:"body"`        // non-streaming request body
	StreamBody string   `json:"stream_body"` // streaming request body (the mock paces it)
	Targets    []Target `json:"targets"`
	// CA is a PEM file of the certificate authority that the harness made for every TLS listener (the mock's
	// HTTPS regions, the peers' TLS listeners); the client trusts it for https:// targets. Empty: system roots.
	CA string `json:"ca,omitempty"`
	// UpstreamPID is the mock upstream's process: its CPU per request is recorded beside each target's.
	UpstreamPID int `json:"upstream_pid,omitempty"`
}

// Target is one way to reach the mock upstream: directly or through a peer.
type Target struct {
	Name    string            `json:"name"`             // direct, nginx, goproxy, caddy, portkey, lifeline
	Mode    string            `json:"mode,omitempty"`   // failover: healthy, 503, refused, blackhole
	URL     string            `json:"url"`              // full URL, path and query included
	Headers map[string]string `json:"headers"`          // sent with every request
	PID     int               `json:"pid,omitempty"`    // root process of the peer (its children are counted too)
	Skip    string            `json:"skip,omitempty"`   // why this target cannot run here; kept in the report
	Bodies  map[string]string `json:"bodies,omitempty"` // per-target body override: "body", "stream_body"
	// MaxStreams caps the streams scenario for this target (a proxy that holds an upstream socket per stream
	// needs two file descriptors per stream, and the open-file limit is per process); 0: no cap.
	MaxStreams int `json:"max_streams,omitempty"`

	tls *tls.Config // for https:// URLs: trusts Targets.CA
}

func (t Target) key() string {
	if t.Mode == "" {
		return t.Name
	}
	return t.Name + "/" + t.Mode
}

func (ts *Targets) body(t Target, stream bool) string {
	k, def := "body", ts.Body
	if stream {
		k, def = "stream_body", ts.StreamBody
	}
	if b, ok := t.Bodies[k]; ok {
		return b
	}
	return def
}

func loadTargets(path string) (*Targets, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var ts Targets
	if err := json.Unmarshal(b, &ts); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var conf *tls.Config
	if ts.CA != "" {
		pem, err := os.ReadFile(ts.CA)
		if err != nil {
			return nil, fmt.Errorf("%s: ca: %w", path, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: ca %s: no certificate in it", path, ts.CA)
		}
		conf = &tls.Config{RootCAs: pool}
	}
	for i := range ts.Targets {
		if strings.HasPrefix(ts.Targets[i].URL, "https://") {
			ts.Targets[i].tls = conf
		}
	}
	return &ts, nil
}

// rotated returns the runnable targets in the order for round r: each round starts one further along,
// so no target is always measured first or last.
func (ts *Targets) rotated(r int) []Target {
	var run []Target
	for _, t := range ts.Targets {
		if t.Skip == "" {
			run = append(run, t)
		}
	}
	if len(run) == 0 {
		return nil
	}
	k := r % len(run)
	return append(run[k:len(run):len(run)], run[:k]...)
}

func (ts *Targets) skipped() map[string]string {
	m := map[string]string{}
	for _, t := range ts.Targets {
		if t.Skip != "" {
			m[t.key()] = t.Skip
		}
	}
	return m
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// quantile of sorted durations, in microseconds.
func quantileUS(sorted []time.Duration, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q * float64(len(sorted)-1))
	return float64(sorted[i]) / 1e3
}

func sortDur(d []time.Duration) []time.Duration {
	slices.Sort(d)
	return d
}

func newRequest(t Target, body string) (*http.Request, error) {
	req, err := http.NewRequest(http.MethodPost, t.URL, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range t.Headers {
		req.Header.Set(k, v)
	}
	return req, nil
}

// newTransport is the client side of every scenario but wrk and k6: HTTP/1.1, over TLS for an https://
// target (as an SDK's HTTP/1.1 client would be), with room for maxConns connections.
func newTransport(t Target, maxConns int) *http.Transport {
	return &http.Transport{
		TLSClientConfig:     t.tls, // set: HTTP/1.1 even over TLS (no ForceAttemptHTTP2)
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        maxConns,
		MaxIdleConnsPerHost: maxConns,
		MaxConnsPerHost:     maxConns,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}
}

// rssKB is the resident set of pid and all its descendants, in KiB (nginx: master and workers).
func rssKB(pid int) int64 {
	if pid <= 0 {
		return 0
	}
	var total int64
	for _, p := range append([]int{pid}, descendants(pid)...) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p))
		if err != nil {
			continue
		}
		for _, line := range bytes.Split(b, []byte("\n")) {
			if v, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
				f := strings.Fields(string(v))
				if len(f) > 0 {
					n, _ := strconv.ParseInt(f[0], 10, 64)
					total += n
				}
			}
		}
	}
	return total
}

func descendants(root int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	parent := map[int]int{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so cut at the last ')'.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) > 1 {
			pp, _ := strconv.Atoi(f[1])
			parent[pid] = pp
		}
	}
	var out []int
	frontier := []int{root}
	for len(frontier) > 0 {
		p := frontier[0]
		frontier = frontier[1:]
		for c, pp := range parent {
			if pp == p {
				out = append(out, c)
				frontier = append(frontier, c)
			}
		}
	}
	return out
}
