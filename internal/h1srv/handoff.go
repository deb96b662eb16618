package h1srv

import (
	"net"
	"sync"
)

// HandOffListener is a net.Listener fed with the connections a Server hands off: set Fallback to
// its Deliver and serve it with an http.Server that speaks h2c (HTTP/2 with prior knowledge).
type HandOffListener struct {
	addr   net.Addr
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

// NewHandOffListener returns a HandOffListener that reports addr as its address.
func NewHandOffListener(addr net.Addr) *HandOffListener {
	return &HandOffListener{addr: addr, conns: make(chan net.Conn), closed: make(chan struct{})}
}

// Deliver passes c to Accept; after Close it closes c.
func (l *HandOffListener) Deliver(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.closed:
		c.Close()
	}
}

// Accept returns the next delivered connection, or net.ErrClosed after Close.
func (l *HandOffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

// Close stops Accept; connections delivered after it are closed.
func (l *HandOffListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

// Addr is the address given to NewHandOffListener.
func (l *HandOffListener) Addr() net.Addr { return l.addr }
