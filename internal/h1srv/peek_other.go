//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package h1srv

// peekReady cannot look at a socket here: it reports it ready, so waiting turns into reading.
func peekReady(uintptr) (ready, closed bool) { return true, false }

// canReadFD is false here: waiting for a request reads through the request's reader.
const canReadFD = false

func readFD(uintptr, []byte) (int, error) { return 0, nil }

func isAgain(error) bool { return false }
