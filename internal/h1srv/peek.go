//go:build linux || darwin || freebsd || netbsd || openbsd

package h1srv

import "syscall"

// peekReady looks at a socket without blocking or consuming: ready when bytes wait to be read,
// closed when the peer closed it (or it failed).
func peekReady(fd uintptr) (ready, closed bool) {
	var buf [1]byte
	n, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	switch {
	case err == syscall.EAGAIN || err == syscall.EWOULDBLOCK || err == syscall.EINTR:
		return false, false
	case err != nil || n == 0:
		return false, true
	}
	return true, false
}

// canReadFD: readFD works on a socket's descriptor here.
const canReadFD = true

// readFD reads from a non-blocking socket once.
func readFD(fd uintptr, p []byte) (int, error) {
	for {
		n, err := syscall.Read(int(fd), p)
		if err == syscall.EINTR {
			continue
		}
		return n, err
	}
}

func isAgain(err error) bool { return err == syscall.EAGAIN || err == syscall.EWOULDBLOCK }
