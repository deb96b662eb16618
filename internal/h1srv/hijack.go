package h1srv

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"net/http"
	"time"
)

var _ http.Hijacker = (*response)(nil)

// Hijack takes the connection from the server, as net/http's does, for a protocol upgrade (a WebSocket): the
// handler owns it from then on and must close it. Bytes the server had read beyond the request are replayed
// first. A status the handler set (101) is sent first. It fails once the response has started.
func (w *response) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.headSent || w.failed != nil || w.c.handedOff {
		return nil, nil, errors.New("h1srv: Hijack after the response started")
	}
	w.stopWatch()
	if w.wroteHeader {
		// A handler that chose the status first (101 Switching Protocols) has it sent now, as net/http does.
		w.closeAfter = false // Connection: Upgrade, not close
		w.send(false)
		if w.failed != nil {
			return nil, nil, w.failed
		}
	}
	c := w.c
	var buffered []byte
	if c.br != nil {
		buffered, _ = c.br.Peek(c.br.Buffered())
	}
	pc := &prefixConn{Conn: c.nc, prefix: append(bytes.Clone(buffered), c.lr.pre...)}
	c.lr.release()
	c.releaseReader()
	c.br = nil
	c.nc.SetDeadline(time.Time{})
	c.s.untrack(c)
	c.handedOff = true // serve's deferred close must not end it
	return pc, bufio.NewReadWriter(bufio.NewReader(pc), bufio.NewWriter(pc)), nil
}
