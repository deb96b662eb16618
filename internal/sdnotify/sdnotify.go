// Package sdnotify tells a service manager (systemd, for units with Type=notify) about the service's state by
// sending sd_notify(3) datagrams to the unix socket named by $NOTIFY_SOCKET. Without that variable it does nothing,
// so callers need not know whether they run under systemd.
package sdnotify

import (
	"fmt"
	"net"
	"strings"
	"sync"
)

// Notifier sends state lines ("READY=1", "STOPPING=1", "STATUS=...") to the service manager. A nil *Notifier,
// or one made without a socket, does nothing. It is safe for concurrent use.
type Notifier struct {
	addr *net.UnixAddr

	mu   sync.Mutex
	conn *net.UnixConn
}

// FromEnv returns a Notifier for the socket in $NOTIFY_SOCKET as getenv reports it, or nil when the variable is
// unset or empty (the process does not run under a service manager that listens). A name starting with "@" is a
// socket in the abstract namespace, as sd_notify(3) says. Other values (vsock addresses) are an error.
func FromEnv(getenv func(string) (string, bool)) (*Notifier, error) {
	path, ok := getenv("NOTIFY_SOCKET")
	if !ok || path == "" {
		return nil, nil
	}
	if !strings.HasPrefix(path, "/") && !strings.HasPrefix(path, "@") {
		return nil, fmt.Errorf("NOTIFY_SOCKET %q: only unix socket paths (/...) and abstract names (@...) are supported", path)
	}
	// Go maps a leading "@" to the abstract namespace (a leading NUL byte) on Linux.
	return &Notifier{addr: &net.UnixAddr{Name: path, Net: "unixgram"}}, nil
}

// Notify sends state, one or more newline-separated VAR=value assignments, in one datagram.
func (n *Notifier) Notify(state string) error {
	if n == nil || n.addr == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conn == nil {
		c, err := net.DialUnix("unixgram", nil, n.addr)
		if err != nil {
			return fmt.Errorf("sd_notify: %w", err)
		}
		n.conn = c
	}
	if _, err := n.conn.Write([]byte(state)); err != nil {
		n.conn.Close()
		n.conn = nil // the manager may have re-created its socket: dial again next time
		return fmt.Errorf("sd_notify: %w", err)
	}
	return nil
}

// Close releases the socket; later calls to Notify open it again.
func (n *Notifier) Close() error {
	if n == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conn == nil {
		return nil
	}
	err := n.conn.Close()
	n.conn = nil
	return err
}
