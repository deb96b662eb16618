//go:build linux || darwin || freebsd || netbsd || openbsd

package failover

import "syscall"

// peekIdle looks at an idle socket without blocking or consuming: true if nothing arrived.
// An orderly close (a zero-byte read), stray bytes or an error mean the connection is done.
func peekIdle(raw syscall.RawConn) bool {
	var buf [1]byte
	ok := false
	err := raw.Read(func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		ok = err == syscall.EAGAIN || err == syscall.EWOULDBLOCK
		return true // never wait for readiness
	})
	return err == nil && ok
}
