//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package failover

import "syscall"

// peekIdle cannot look at an idle socket here; a connection the region closed while idle is
// found when used, and the request is sent again on a new one.
func peekIdle(syscall.RawConn) bool { return true }
