package sdnotify

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// listen opens a real unix datagram socket, as systemd does for a Type=notify unit.
func listen(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func receive(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no datagram: %v", err)
	}
	return string(buf[:n])
}

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestNotifyPathSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify.sock")
	sock := listen(t, path)
	n, err := FromEnv(env(map[string]string{"NOTIFY_SOCKET": path}))
	if err != nil || n == nil {
		t.Fatalf("FromEnv = %v, %v", n, err)
	}
	defer n.Close()
	if err := n.Notify("READY=1\nSTATUS=serving"); err != nil {
		t.Fatal(err)
	}
	if got := receive(t, sock); got != "READY=1\nSTATUS=serving" {
		t.Errorf("datagram %q", got)
	}
	if err := n.Notify("STOPPING=1"); err != nil {
		t.Fatal(err)
	}
	if got := receive(t, sock); got != "STOPPING=1" {
		t.Errorf("datagram %q", got)
	}
}

func TestNotifyAbstractSocket(t *testing.T) {
	name := "@lifeline-sdnotify-test-" + strings.ReplaceAll(t.Name(), "/", "-") + time.Now().Format("150405.000000000")
	sock := listen(t, name)
	n, err := FromEnv(env(map[string]string{"NOTIFY_SOCKET": name}))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Notify("READY=1"); err != nil {
		t.Fatal(err)
	}
	if got := receive(t, sock); got != "READY=1" {
		t.Errorf("datagram %q", got)
	}
}

// TestNotifyRedial: a manager that re-creates its socket gets the next notification on the new one.
func TestNotifyRedial(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify.sock")
	first := listen(t, path)
	n, _ := FromEnv(env(map[string]string{"NOTIFY_SOCKET": path}))
	if err := n.Notify("READY=1"); err != nil {
		t.Fatal(err)
	}
	receive(t, first)
	first.Close()
	os.Remove(path)
	if err := n.Notify("STATUS=lost"); err == nil {
		t.Error("Notify to a closed socket succeeded")
	}
	second := listen(t, path)
	if err := n.Notify("STOPPING=1"); err != nil {
		t.Fatal(err)
	}
	if got := receive(t, second); got != "STOPPING=1" {
		t.Errorf("datagram %q", got)
	}
}

func TestFromEnv(t *testing.T) {
	for _, c := range []struct {
		name, value string
		set, want   bool
		err         bool
	}{
		{name: "unset"},
		{name: "empty", set: true},
		{name: "path", value: "/run/systemd/notify", set: true, want: true},
		{name: "abstract", value: "@/org/freedesktop/systemd1/notify", set: true, want: true},
		{name: "vsock", value: "vsock:2:1234", set: true, err: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := map[string]string{}
			if c.set {
				m["NOTIFY_SOCKET"] = c.value
			}
			n, err := FromEnv(env(m))
			if (err != nil) != c.err || (n != nil) != c.want {
				t.Errorf("FromEnv(%q) = %v, %v", c.value, n, err)
			}
			if err := n.Notify("READY=1"); n == nil && err != nil {
				t.Errorf("nil Notifier: %v", err)
			}
		})
	}
}
