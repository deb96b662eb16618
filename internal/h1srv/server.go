// Package h1srv is Lifeline's HTTP/1.1 server for the client side of the gateway: it runs an
// http.Handler like net/http's server does, at a smaller cost per request and per open stream.
//
// net/http's server keeps, per connection, a 4 KB read buffer, a 4 KB write buffer and a 2 KB
// chunking buffer for as long as the connection lives, and starts a background read goroutine
// for every request whose body was consumed, to cancel the request if the client leaves. Here a
// connection holds a read buffer only while it reads a request head and body, and a write buffer
// only between a response's writes and its flush; an open SSE stream holds neither. The client
// leaving is noticed by a failed write, and for a request that has sent nothing for a second by
// a watcher that waits for the socket to become readable without reading it.
//
// It serves HTTP/1.0 and HTTP/1.1 on plain connections. A connection that opens with the
// HTTP/2 preface (h2c with prior knowledge) is handed to Fallback.
package h1srv

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/http/httpguts"
)

// Server serves HTTP/1.x on the connections of a listener.
type Server struct {
	Handler http.Handler
	// ReadHeaderTimeout bounds reading a request's head; IdleTimeout the wait for the next request
	// on a kept-alive connection. Zero: no bound.
	ReadHeaderTimeout, IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's head; zero means 1 MiB (net/http's default).
	MaxHeaderBytes int
	// BaseContext is the parent of every request's context; nil means context.Background.
	BaseContext func() context.Context
	// Fallback takes a connection that opens with the HTTP/2 preface, with the bytes already read
	// replayed; nil closes such connections.
	Fallback func(net.Conn)
	// ErrorLog receives handler panics and connection errors worth knowing; nil: slog.Default.
	ErrorLog *slog.Logger

	mu       sync.Mutex
	lns      map[net.Listener]struct{}
	conns    map[*conn]struct{}
	shutdown atomic.Bool
	done     chan struct{} // closed when the last connection ends during shutdown
}

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = http.ErrServerClosed

// watchAfter is how long a request may run without writing anything before a watcher looks out
// for its client leaving.
const watchAfter = time.Second

// Serve accepts connections on ln and serves each on its own goroutine until ln fails or the
// server is shut down.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.shutdown.Load() {
		s.mu.Unlock()
		return ErrServerClosed
	}
	if s.lns == nil {
		s.lns = map[net.Listener]struct{}{}
		s.conns = map[*conn]struct{}{}
	}
	s.lns[ln] = struct{}{}
	s.mu.Unlock()
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.shutdown.Load() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.logger().Warn("accept failed; retrying", "err", err, "in", backoff)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		c := newConn(s, nc)
		if !s.track(c) {
			nc.Close()
			return ErrServerClosed
		}
		go c.serve()
	}
}

func (s *Server) logger() *slog.Logger {
	if s.ErrorLog != nil {
		return s.ErrorLog
	}
	return slog.Default()
}

func (s *Server) track(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdown.Load() {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	if s.shutdown.Load() && len(s.conns) == 0 && s.done != nil {
		close(s.done)
		s.done = nil
	}
	s.mu.Unlock()
}

// Shutdown stops accepting, closes idle connections, and waits until every request in flight
// has finished (each connection closes after its current response) or ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.shutdown.Store(true)
	for ln := range s.lns {
		ln.Close()
	}
	s.lns = nil
	var wait chan struct{}
	if len(s.conns) > 0 {
		if s.done == nil {
			s.done = make(chan struct{})
		}
		wait = s.done
	}
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.closeIfIdle()
	}
	if wait == nil {
		return nil
	}
	select {
	case <-wait:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops accepting and closes every connection at once.
func (s *Server) Close() error {
	s.mu.Lock()
	s.shutdown.Store(true)
	for ln := range s.lns {
		ln.Close()
	}
	s.lns = nil
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.nc.Close()
	}
	return nil
}

// Connection states.
const (
	stateNew int32 = iota
	stateIdle
	stateActive
	stateClosed
)

type conn struct {
	s      *Server
	nc     net.Conn
	raw    syscall.RawConn
	remote string
	state  atomic.Int32
	// mu orders Shutdown's look at an idle connection (closeIfIdle) with the connection taking up
	// the bytes of its next request (waitReadable): either the bytes are still in the socket when
	// Shutdown looks, or the connection is active by then.
	mu sync.Mutex
	lr limitedReader
	br *bufio.Reader // nil while not reading
	// linger: the client may still be sending a request body; see closeGently.
	linger bool
	// handedOff: Fallback owns nc now.
	handedOff bool
}

func newConn(s *Server, nc net.Conn) *conn {
	c := &conn{s: s, nc: nc, remote: nc.RemoteAddr().String()}
	if sc, ok := nc.(syscall.Conn); ok {
		c.raw, _ = sc.SyscallConn()
	}
	c.lr.r = nc
	c.lr.n = -1 // unbounded until a head is read: waitReadable may read through it
	return c
}

// closeIfIdle closes the connection if it waits for a request and none has arrived; a busy one
// closes after its response because the server is shutting down. A connection whose request
// bytes already wait in the socket (typically one just accepted: a load balancer connects and
// sends at once) is served, then closed: closing it would lose a request the client believes
// sent, which a client may not retry (a POST). net/http serves such a request too (it closes a
// new connection only after 5 s without a request).
func (c *conn) closeIfIdle() {
	c.mu.Lock()
	st := c.state.Load()
	closing := (st == stateIdle || st == stateNew) && !c.pending() && c.state.CompareAndSwap(st, stateClosed)
	c.mu.Unlock()
	if closing {
		c.nc.Close() // not under mu: Close waits for a read in progress, which may be waiting for mu
	}
}

// pending reports whether request bytes wait in the socket, unread. It does not block; false
// where the socket cannot be looked at (not a socket, or no MSG_PEEK here).
func (c *conn) pending() bool {
	if c.raw == nil || !canReadFD {
		return false
	}
	var ready bool
	if err := c.raw.Control(func(fd uintptr) { ready, _ = peekReady(fd) }); err != nil {
		return false
	}
	return ready
}

var readerPool sync.Pool

const readBufSize = 4 << 10

func (c *conn) reader() *bufio.Reader {
	if c.br == nil {
		if br, _ := readerPool.Get().(*bufio.Reader); br != nil {
			br.Reset(&c.lr)
			c.br = br
		} else {
			c.br = bufio.NewReaderSize(&c.lr, readBufSize)
		}
	}
	return c.br
}

// releaseReader gives the read buffer back while nothing is buffered in it.
func (c *conn) releaseReader() {
	if c.br != nil && c.br.Buffered() == 0 {
		c.br.Reset(nil)
		readerPool.Put(c.br)
		c.br = nil
	}
}

// limitedReader bounds what a request head may read; unlimited (n < 0) for bodies.
type limitedReader struct {
	r      io.Reader
	n      int64
	pre    []byte  // bytes read ahead by waitReadable, served first
	preBuf *[]byte // their pooled buffer, given back once they are served
}

var errHeadTooLarge = errors.New("request head too large")

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n == 0 {
		return 0, errHeadTooLarge
	}
	if l.n > 0 && int64(len(p)) > l.n {
		p = p[:l.n]
	}
	var n int
	var err error
	if len(l.pre) > 0 {
		n = copy(p, l.pre)
		l.pre = l.pre[n:]
		if len(l.pre) == 0 {
			l.release()
		}
	} else {
		n, err = l.r.Read(p)
	}
	if l.n > 0 {
		l.n -= int64(n)
	}
	return n, err
}

// release gives the read-ahead buffer back.
func (l *limitedReader) release() {
	if l.preBuf != nil {
		l.pre = nil
		firstBufs.Put(l.preBuf)
		l.preBuf = nil
	}
}

const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// testHookServe, when set (tests only), runs as a connection's goroutine starts.
var testHookServe atomic.Pointer[func()]

func (c *conn) serve() {
	if h := testHookServe.Load(); h != nil {
		(*h)()
	}
	defer func() {
		if v := recover(); v != nil && v != http.ErrAbortHandler {
			c.s.logger().Error("h1srv: panic serving "+c.remote, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
		}
		c.state.Store(stateClosed)
		switch {
		case c.handedOff:
		case c.linger:
			c.closeGently()
		default:
			c.nc.Close()
		}
		c.releaseReader()
		c.lr.release()
		c.s.untrack(c)
	}()
	first := true
	accepted := time.Now()
	for {
		// Wait for the next request without holding a buffer.
		if (c.br == nil || c.br.Buffered() == 0) && len(c.lr.pre) == 0 {
			if !first {
				if !c.state.CompareAndSwap(stateActive, stateIdle) {
					return
				}
			} else if !c.state.CompareAndSwap(stateNew, stateIdle) {
				return
			}
			if c.s.shutdown.Load() && !c.pending() {
				return // a request already waiting is served (closeIfIdle), then the connection closes
			}
			if d := c.s.IdleTimeout; d > 0 && !first {
				c.nc.SetReadDeadline(time.Now().Add(d))
			} else if d := c.s.ReadHeaderTimeout; d > 0 && first {
				c.nc.SetReadDeadline(time.Now().Add(d))
			}
			if !c.waitReadable() {
				return // closed by Shutdown, or the client left, or too slow
			}
		} else {
			c.state.Store(stateActive)
		}
		if d := c.s.ReadHeaderTimeout; d > 0 {
			// The first request's head counts from the connection's start, as net/http's does: a client cannot
			// restart the clock by sending one byte. A later request's counts from its first bytes.
			start := time.Now()
			if first {
				start = accepted
			}
			c.nc.SetReadDeadline(start.Add(d))
		} else {
			c.nc.SetReadDeadline(time.Time{})
		}
		max := c.s.MaxHeaderBytes
		if max <= 0 {
			max = http.DefaultMaxHeaderBytes
		}
		c.lr.n = int64(max) + 4096 // as net/http: room for the request line and slop
		br := c.reader()
		if first {
			first = false
			if b, err := br.Peek(3); err == nil && string(b) == "PRI" {
				if b, err := br.Peek(len(h2Preface)); err == nil && string(b) == h2Preface {
					c.handOff()
					return
				}
			}
		}
		req, err := http.ReadRequest(br)
		if err != nil {
			c.badRequest(err)
			return
		}
		c.lr.n = -1
		c.nc.SetReadDeadline(time.Time{})
		if !c.serveRequest(req) {
			return
		}
	}
}

// waitReadable waits for a request's first bytes (or the peer's close) and makes the idle
// connection active; false when it ends instead (Shutdown closed it, a deadline, the client left).
// Where the socket can be read directly, the first bytes are read into a pooled buffer that the
// request's reader then takes them from: one syscall fewer than a peek followed by a read.
func (c *conn) waitReadable() bool {
	if c.raw == nil || !canReadFD {
		_, err := c.reader().Peek(1)
		return err == nil && c.state.CompareAndSwap(stateIdle, stateActive)
	}
	buf := firstBufs.Get().(*[]byte)
	var n int
	var rerr error
	active := false
	err := c.raw.Read(func(fd uintptr) bool {
		// Under mu: the bytes leave the socket and the connection turns active as one step for closeIfIdle.
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.state.Load() != stateIdle {
			rerr = net.ErrClosed // closed by Shutdown
			return true
		}
		n, rerr = readFD(fd, *buf)
		if isAgain(rerr) {
			return false
		}
		active = rerr == nil && n > 0 && c.state.CompareAndSwap(stateIdle, stateActive)
		return true
	})
	if err != nil || !active { // a deadline, the server closing it, an error, or the client's close
		firstBufs.Put(buf)
		return false
	}
	c.lr.pre, c.lr.preBuf = (*buf)[:n], buf
	return true
}

// firstBufs hold the first bytes of a request until the request's reader takes them.
var firstBufs = sync.Pool{New: func() any { b := make([]byte, readBufSize); return &b }}

// handOff gives an HTTP/2 connection to Fallback with the bytes read so far.
func (c *conn) handOff() {
	buffered, _ := c.br.Peek(c.br.Buffered())
	pc := &prefixConn{Conn: c.nc, prefix: append(bytes.Clone(buffered), c.lr.pre...)}
	c.lr.release()
	c.releaseReader()
	c.br = nil
	if c.s.Fallback == nil {
		c.nc.Close()
		return
	}
	c.nc.SetReadDeadline(time.Time{})
	c.s.untrack(c)
	c.handedOff = true // the deferred close must not end it
	c.s.Fallback(pc)
}

// prefixConn replays bytes read before a hand-off.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (p *prefixConn) Read(b []byte) (int, error) {
	if len(p.prefix) > 0 {
		n := copy(b, p.prefix)
		p.prefix = p.prefix[n:]
		return n, nil
	}
	return p.Conn.Read(b)
}

// badRequest answers a request that could not be read, then the connection closes.
func (c *conn) badRequest(err error) {
	var ne net.Error
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF) && c.br.Buffered() == 0, errors.As(err, &ne):
		return // the client left, or was too slow: nothing to answer
	case errors.Is(err, errHeadTooLarge):
		c.writeRaw("431 Request Header Fields Too Large", "request header fields too large")
		c.linger = true // the client is likely still sending the head
	default:
		c.writeRaw("400 Bad Request", "malformed HTTP request")
	}
}

// lingerFor is how long closeGently waits for the client to stop sending (net/http's
// rstAvoidanceDelay).
const lingerFor = 500 * time.Millisecond

// closeGently closes a connection the client may still be sending on. Closing it at once, with
// bytes unread, would reset it, and a reset can destroy the response before the client reads it:
// it stops writing instead, and reads and drops what comes for a moment.
func (c *conn) closeGently() {
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		c.nc.SetReadDeadline(time.Now().Add(lingerFor))
		io.Copy(io.Discard, c.nc)
	}
	c.nc.Close()
}

func (c *conn) writeRaw(status, msg string) {
	c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	fmt.Fprintf(c.nc, "HTTP/1.1 %s\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", status, len(msg), msg)
}

// serveRequest runs the handler for req and finishes its response; false ends the connection.
func (c *conn) serveRequest(req *http.Request) bool {
	if req.ProtoMajor != 1 {
		c.writeRaw("505 HTTP Version Not Supported", "unsupported protocol version")
		return false
	}
	// http.ReadRequest has taken the Host header out into req.Host.
	if req.ProtoAtLeast(1, 1) && req.Host == "" {
		c.writeRaw("400 Bad Request", "missing required Host header")
		return false
	}
	if !httpguts.ValidHostHeader(req.Host) {
		c.writeRaw("400 Bad Request", "malformed Host header")
		return false
	}
	for k := range req.Header {
		if !httpguts.ValidHeaderFieldName(k) { // textproto lets "Name : value" through (Go issue 34540)
			c.writeRaw("400 Bad Request", "invalid header name")
			return false
		}
	}
	req.RemoteAddr = c.remote
	parent := context.Background()
	if c.s.BaseContext != nil {
		parent = c.s.BaseContext()
	}
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	req = req.WithContext(ctx)
	w := &response{c: c, req: req, header: make(http.Header, 8), contentLength: -1, cancel: cancel}
	if req.Body != nil && req.Body != http.NoBody {
		w.body = &requestBody{rc: req.Body, w: w, expect: strings.EqualFold(req.Header.Get("Expect"), "100-continue")}
		req.Body = w.body
	} else {
		w.bodyDone = true
	}
	w.closeAfter = wantsClose(req)
	w.watch = time.AfterFunc(watchAfter, w.startWatch)
	defer w.stopWatch() // when the handler panics
	c.s.Handler.ServeHTTP(w, req)
	w.stopWatch()
	return w.finish()
}

func wantsClose(req *http.Request) bool {
	if req.Close {
		return true
	}
	if !req.ProtoAtLeast(1, 1) {
		return !strings.EqualFold(req.Header.Get("Connection"), "keep-alive")
	}
	return false
}
