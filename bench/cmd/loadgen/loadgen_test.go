package main

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The run's certificate must be trusted through its CA for both names a peer may use, by a real TLS
// handshake (what nginx, Caddy, Node and the load generator do), and the key must stay private.
func TestCertsServeAndVerify(t *testing.T) {
	dir := t.TempDir()
	if err := runCerts([]string{"-dir", dir}); err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "key.pem")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key.pem: mode %v, err %v; want 0600", fi.Mode().Perm(), err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	defer srv.Close()
	pem, _ := os.ReadFile(filepath.Join(dir, "ca.pem"))
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("ca.pem holds no certificate")
	}
	port := srv.Listener.Addr().String()[strings.LastIndexByte(srv.Listener.Addr().String(), ':'):]
	for _, host := range []string{"127.0.0.1", "localhost"} {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 5 * time.Second}
		resp, err := c.Get("https://" + host + port + "/")
		if err != nil {
			t.Fatalf("%s: %v", host, err)
		}
		resp.Body.Close()
	}
	// A client that does not trust the CA must fail: the certificate is not accidentally trusted some other way.
	c := &http.Client{Transport: &http.Transport{}, Timeout: 5 * time.Second}
	if resp, err := c.Get(srv.URL); err == nil {
		resp.Body.Close()
		t.Fatal("a client without the CA accepted the certificate")
	}
}

// cpuTime must see CPU spent on any thread of the process, and only grow.
func TestCPUTimeCountsThisProcess(t *testing.T) {
	pid := os.Getpid()
	before, ruBefore := cpuTime(pid), rusageSelf(t)
	done := make(chan struct{})
	go func() { // on another goroutine, most likely another thread
		defer close(done)
		// Busy until the kernel's own account (getrusage) has seen 100 ms of CPU: on a loaded machine wall time
		// says nothing about how much CPU the loop got.
		for x := 0; rusageSelf(t)-ruBefore < 100*time.Millisecond; x++ {
			for i := 0; i < 1e5; i++ {
				x += i
			}
		}
	}()
	<-done
	after := cpuTime(pid)
	if d := after - before; d < 80*time.Millisecond {
		t.Fatalf("cpuTime grew by %v while getrusage saw at least 100 ms of CPU; want at least 80 ms", d)
	}
	if cpuTime(0) != 0 || cpuTime(-1) != 0 {
		t.Fatal("cpuTime of no process must be 0")
	}
}

// rusageSelf is the process's user + system CPU time as getrusage reports it.
func rusageSelf(t *testing.T) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Error(err)
		return time.Hour
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loadTargets trusts the CA for https:// targets only, and rejects a CA file without a certificate.
func TestLoadTargetsCA(t *testing.T) {
	dir := t.TempDir()
	if err := runCerts([]string{"-dir", dir}); err != nil {
		t.Fatal(err)
	}
	write := func(name, ca string) string {
		p := filepath.Join(dir, name)
		body := `{"ca":"` + ca + `","targets":[{"name":"a","url":"https://127.0.0.1:1/"},{"name":"b","url":"http://127.0.0.1:1/"}]}`
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ts, err := loadTargets(write("t.json", filepath.Join(dir, "ca.pem")))
	if err != nil {
		t.Fatal(err)
	}
	if ts.Targets[0].tls == nil || ts.Targets[0].tls.RootCAs == nil || ts.Targets[1].tls != nil {
		t.Fatalf("tls: https target %v, http target %v; want the CA on the https one only", ts.Targets[0].tls, ts.Targets[1].tls)
	}
	if _, err := loadTargets(write("bad.json", filepath.Join(dir, "t.json"))); err == nil || !strings.Contains(err.Error(), "no certificate") {
		t.Fatalf("a CA file without a certificate: err %v", err)
	}
}
