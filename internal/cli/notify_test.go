package cli

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lifeline-sre/lifeline/sim"
)

// TestServeNotifiesSystemd runs `lifeline serve --config` as a Type=notify unit would: with $NOTIFY_SOCKET naming a
// real unix datagram socket, it sends READY=1 once it listens, and STOPPING=1 as soon as it is told to stop, before
// server.shutdown_delay has passed.
func TestServeNotifiesSystemd(t *testing.T) {
	s, err := sim.Start(sim.Config{Regions: sim.DefaultRegions("eastus"), APIKey: "region-key"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	dir := t.TempDir()
	sockPath := filepath.Join(dir, "notify.sock")
	sock, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sockPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	listen := freeAddr(t)
	path := filepath.Join(dir, "lifeline.yaml")
	os.WriteFile(path, []byte("listen: "+listen+"\nadmin: {listen: "+freeAddr(t)+"}\nclients: [{name: app, key: k}]\n"+
		"server: {shutdown_delay: 300ms}\nregions:\n  - {name: eastus, endpoint: "+s.Region("eastus").URL()+
		", api_key: region-key, deployments: {gpt-4o: gpt-4o}}\n"), 0o600)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	stderr := &lockedBuffer{}
	go func() {
		done <- Run([]string{"serve", "--config", path}, &Env{Stdout: &lockedBuffer{}, Stderr: stderr, Context: ctx,
			Getenv: func(k string) (string, bool) { return sockPath, k == "NOTIFY_SOCKET" }})
	}()
	receive := func() string {
		sock.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 1024)
		n, err := sock.Read(buf)
		if err != nil {
			t.Fatalf("no notification: %v; stderr: %s", err, stderr.String())
		}
		return string(buf[:n])
	}
	if got := receive(); !strings.HasPrefix(got, "READY=1\n") {
		t.Fatalf("first notification %q, want READY=1", got)
	}
	// READY=1 means the listener accepts.
	if c, err := net.Dial("tcp", listen); err != nil {
		t.Fatalf("READY=1 sent before the listener accepts: %v", err)
	} else {
		c.Close()
	}
	cancel()
	if got := receive(); !strings.HasPrefix(got, "STOPPING=1") {
		t.Errorf("notification on stop %q, want STOPPING=1", got)
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("serve exited %d: %s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop")
	}
}
