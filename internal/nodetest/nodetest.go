// Package nodetest runs end-to-end test scripts written for Node's test runner (node --test) against servers that a
// Go test started, so the official npm openai client is exercised by `go test`.
package nodetest

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
)

// Dir returns the absolute path of e2e/node, where the scripts and their node_modules live.
func Dir(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("nodetest: cannot locate source file")
	}
	return filepath.Join(filepath.Dir(file), "..", "..", "e2e", "node")
}

// Run runs `node --test SCRIPT` in e2e/node with env added to the environment and fails t if the script fails.
// SCRIPT is a file name inside e2e/node. Node and `npm ci` in e2e/node are prerequisites that .ci/run installs;
// their absence is a test failure, not a skip, because these tests are the proof that real clients work.
func Run(t testing.TB, script string, env map[string]string) string {
	t.Helper()
	return Start(t, script, env, 2*time.Minute)()
}

// Start starts `node --test SCRIPT` like Run, bounded by timeout, and returns at once. wait waits for the script
// to end and fails t if it failed; call it from the test's goroutine.
func Start(t testing.TB, script string, env map[string]string, timeout time.Duration) (wait func() string) {
	t.Helper()
	dir := Dir(t)
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("nodetest: node is not installed (needed for the npm openai client tests): %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "openai")); err != nil {
		t.Fatalf("nodetest: npm packages are missing: run `npm ci` in %s (scripts/test.sh does it)", dir)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	cmd := exec.CommandContext(ctx, node, "--test", "--test-reporter=spec", script)
	cmd.Dir = dir
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("node --test %s: %v", script, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	var once sync.Once
	var err2 error
	return func() string {
		t.Helper()
		once.Do(func() { err2 = <-done; done <- err2 })
		if err2 != nil {
			t.Fatalf("node --test %s failed: %v\n%s", script, err2, out.String())
		}
		t.Logf("node --test %s:\n%s", script, out.String())
		return out.String()
	}
}
