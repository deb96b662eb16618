// Package clitest tests the `lifeline sim` command through cli.Run, in its own package so that the sim package's
// tests do not depend on the whole command tree building.
package clitest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lifeline-sre/lifeline/internal/cli"
	"github.com/lifeline-sre/lifeline/internal/syncbuf"
)

type syncBuffer = syncbuf.Buffer

// runSim starts `lifeline sim args...` and waits until it prints that it is ready.
func runSim(t *testing.T, args ...string) (stdout *syncBuffer, stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- cli.Run(append([]string{"sim"}, args...), &cli.Env{Stdout: stdout, Stderr: stderr, Context: ctx})
	}()
	deadline := time.After(20 * time.Second)
	for !strings.Contains(stdout.String(), "Press Ctrl-C to stop.") {
		select {
		case code := <-done:
			cancel()
			t.Fatalf("lifeline sim exited %d:\n%s%s", code, stdout, stderr)
		case <-deadline:
			cancel()
			t.Fatalf("lifeline sim did not start:\n%s%s", stdout, stderr)
		case <-time.After(10 * time.Millisecond):
		}
	}
	var once sync.Once
	code := 0
	stop = func() int {
		once.Do(func() {
			cancel()
			select {
			case code = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("lifeline sim did not stop on cancel")
			}
		})
		return code
	}
	t.Cleanup(func() { stop() })
	return stdout, stop
}

var urlRE = regexp.MustCompile(`(?m)^\s+(\w+)\s+.*?(https?://[0-9.:]+)\s`)

func TestSimCommandServesTLSAndStops(t *testing.T) {
	cert := filepath.Join(t.TempDir(), "ca.pem")
	out, stop := runSim(t, "--regions", "eastus,westus", "--port", "0", "--control", "127.0.0.1:0", "--api-key", "K",
		"--ttft", "0", "--tps", "0", "--tls", "--cert-out", cert)
	m := urlRE.FindAllStringSubmatch(out.String(), -1)
	if len(m) != 2 || m[0][1] != "eastus" || !strings.HasPrefix(m[0][2], "https://127.0.0.1:") {
		t.Fatalf("regions not printed as expected:\n%s", out)
	}
	pem, err := os.ReadFile(cert)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	req, _ := http.NewRequest("POST", m[1][2]+"/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21",
		strings.NewReader(`{"messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("api-key", "K")
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("x-ms-region") != "West US" {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	ctl := regexp.MustCompile(`control: (http://[0-9.:]+)`).FindStringSubmatch(out.String())
	if ctl == nil {
		t.Fatalf("control URL not printed:\n%s", out)
	}
	resp, err = http.Post(ctl[1]+"/regions/eastus/fault", "application/json", strings.NewReader(`{"mode":"down"}`))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("control: %v", err)
	}
	resp.Body.Close()
	if code := stop(); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

func TestSimCommandConfigFileAndFlags(t *testing.T) {
	file := filepath.Join(t.TempDir(), "sim.yaml")
	os.WriteFile(file, []byte("api_key: filekey\ntokens_per_second: 0\ntime_to_first_token: 0s\nregions:\n  - name: eastus\n    deployments:\n      - {name: only, model: gpt-4o-mini}\n  - name: westus\n"), 0o644)
	out, _ := runSim(t, "--config", file, "--port", "0", "--control", "off", "--regions", "eastus,swedencentral")
	s := out.String()
	if !strings.Contains(s, "api key: filekey") || !strings.Contains(s, "deployments: only\n") || !strings.Contains(s, "Sweden Central") || strings.Contains(s, "westus") || strings.Contains(s, "control:") {
		t.Fatalf("config and flags not merged as documented:\n%s", s)
	}
}

func TestSimCommandErrors(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("regions:\n  - name: a\n    colour: red\n"), 0o644)
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--port", "70000"}, 2, "--port 70000 is not a port number"},
		{[]string{"--regions", " , "}, 2, "--regions is empty"},
		{[]string{"--regions", "a,a"}, 2, `--regions lists "a" twice`},
		{[]string{"--config", bad}, 2, "field colour not found"},
		{[]string{"--config", "/nonexistent/sim.yaml"}, 2, "no such file"},
		{[]string{"--tps", "-1", "--port", "0"}, 2, "must not be negative"},
		{[]string{"--nope"}, 2, "flag provided but not defined"},
		{[]string{"extra"}, 2, `unexpected argument "extra"`},
		{[]string{"--answers", "creative", "--port", "0"}, 2, `--answers "creative": use region, deterministic or random`},
	}
	for _, tc := range cases {
		var out, errb bytes.Buffer
		code := cli.Run(append([]string{"sim"}, tc.args...), &cli.Env{Stdout: &out, Stderr: &errb, Context: context.Background()})
		if code != tc.code || !strings.Contains(errb.String(), tc.want) || strings.Contains(errb.String(), "goroutine") {
			t.Errorf("lifeline sim %v: exit %d, stderr %q; want %d containing %q", tc.args, code, errb.String(), tc.code, tc.want)
		}
	}
	var out bytes.Buffer
	if code := cli.Run([]string{"sim", "--help"}, &cli.Env{Stdout: &out, Stderr: io.Discard, Context: context.Background()}); code != 0 {
		t.Fatalf("--help exit %d", code)
	}
	for _, flag := range []string{"-regions", "-port", "-api-key", "-tls", "-control", "-config", "-seed", "-ttft", "-tps", "-host", "-cert-out", "-entra-token", "-fine-tune-duration", "-tls-hosts", "-answers"} {
		if !strings.Contains(out.String(), flag) {
			t.Errorf("--help does not document %s", flag)
		}
	}
}
