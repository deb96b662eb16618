package failover

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/http/httpguts"
)

// h1Transport is the engine's own HTTP/1.1 client for one region: a pool of keep-alive
// connections on which a request is written and its response read by the caller's goroutine.
//
// net/http's Transport runs a read loop and a write loop goroutine per connection and hands
// every request and response across channels between them; on a proxy's hot path those hops,
// and the buffers the loops keep, are most of what a request costs. Here a request costs the
// syscalls it needs (one write for headers and an in-memory body, the reads of the answer)
// and an idle connection costs its socket and a 4 KB read buffer.
//
// A connection is reused only after its response body was read to the end. Before reuse it is
// checked without blocking for a close (or stray bytes) that arrived while it was idle; a
// request that finds its reused connection closed before any byte of the answer is sent once
// more on a new connection, since the region never saw it.
//
// It serves the engine only: request bodies must have a known length (the engine buffers them).
type h1Transport struct {
	addr    string // host:port to dial
	host    string // the URL host, for a request without one
	tls     *tls.Config
	dialer  net.Dialer
	connect time.Duration
	idleFor time.Duration
	maxIdle int

	mu      sync.Mutex
	idle    []*h1Conn // most recently used last
	sweeper *time.Timer
}

const (
	h1MaxIdle     = 1024
	h1IdleTimeout = 90 * time.Second
	h1ReadBuffer  = 4 << 10
	// h1InlineBody is the largest body copied into the header buffer to go out in one write;
	// a larger one follows in a second write, not copied.
	h1InlineBody = 64 << 10
)

func newH1Transport(scheme, host string, to Timeouts, tlsConf *tls.Config) *h1Transport {
	t := &h1Transport{
		addr: hostPort(scheme, host), host: host,
		dialer:  net.Dialer{Timeout: to.Connect, KeepAlive: 30 * time.Second},
		connect: to.Connect, idleFor: h1IdleTimeout, maxIdle: h1MaxIdle,
	}
	if scheme == "https" {
		c := &tls.Config{}
		if tlsConf != nil {
			c = tlsConf.Clone()
		}
		c.NextProtos = []string{"http/1.1"}
		if c.ServerName == "" {
			c.ServerName = hostOnly(host)
		}
		t.tls = c
	}
	return t
}

// hostPort adds the scheme's default port to host when it has none.
func hostPort(scheme, host string) string {
	if _, _, err := net.SplitHostPort(host); err == nil {
		return host
	}
	h := strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if scheme == "https" {
		return net.JoinHostPort(h, "443")
	}
	return net.JoinHostPort(h, "80")
}

func hostOnly(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		return h
	}
	return strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
}

// h1Conn is one connection to the region.
type h1Conn struct {
	t      *h1Transport
	nc     net.Conn
	raw    syscall.RawConn // of the TCP socket under nc, to look for a close while idle
	br     *bufio.Reader
	idleAt time.Time
	reused bool
}

// RoundTrip sends req on a pooled connection (or a new one) and reads the response headers.
func (t *h1Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	body := req.Body
	defer func() { // a RoundTripper closes the request body, also on errors; it is written in full before returning
		if body != nil {
			body.Close()
		}
	}()
	head, err := t.encode(req)
	if err != nil {
		return nil, err
	}
	defer putHeadBuf(head)
	for fresh := false; ; fresh = true {
		c, err := t.get(ctx, fresh)
		if err != nil {
			if ctx.Err() != nil {
				return nil, context.Cause(ctx) // as from roundTrip, not the dial's "operation was canceled"
			}
			return nil, err
		}
		resp, err := c.roundTrip(ctx, req, body, head)
		if err == nil {
			return resp, nil
		}
		c.nc.Close()
		if !c.reused || !errors.Is(err, errNothingRead) || ctx.Err() != nil {
			return nil, unwrapNothingRead(err)
		}
		// The region closed the idle connection as we used it: it never saw the request.
		if req.GetBody != nil {
			if body != nil {
				body.Close()
			}
			if body, err = req.GetBody(); err != nil {
				body = nil
				return nil, err
			}
		} else if body != nil && body != http.NoBody {
			return nil, unwrapNothingRead(err)
		}
	}
}

// errNothingRead marks a failure before any byte of the response arrived.
var errNothingRead = errors.New("connection closed before any response")

type nothingReadError struct{ err error }

func (e nothingReadError) Error() string { return e.err.Error() }
func (e nothingReadError) Unwrap() []error {
	return []error{e.err, errNothingRead}
}

func unwrapNothingRead(err error) error {
	var n nothingReadError
	if errors.As(err, &n) {
		return n.err
	}
	return err
}

// headBufPool holds request header buffers (a request's head, and a small body with it).
var headBufPool = sync.Pool{New: func() any { b := make([]byte, 0, 2<<10); return &b }}

func putHeadBuf(b *[]byte) {
	if cap(*b) <= 128<<10 {
		*b = (*b)[:0]
		headBufPool.Put(b)
	}
}

// encode writes the request line and headers, and an in-memory body of up to h1InlineBody.
func (t *h1Transport) encode(req *http.Request) (*[]byte, error) {
	if req.URL == nil {
		return nil, errors.New("failover: request without URL")
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	if host == "" {
		host = t.host
	}
	if !httpguts.ValidHostHeader(host) {
		return nil, fmt.Errorf("failover: invalid Host %q", host)
	}
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	if !validMethod(method) {
		return nil, fmt.Errorf("failover: invalid method %q", method)
	}
	hasBody := req.Body != nil && req.Body != http.NoBody
	if hasBody && req.ContentLength <= 0 {
		return nil, errors.New("failover: HTTP/1.1 region transport needs a body of known length")
	}
	uri := req.URL.RequestURI()
	if !validRequestTarget(uri) {
		return nil, errors.New("failover: control character in request URL")
	}
	bp := headBufPool.Get().(*[]byte)
	b := *bp
	b = append(b, method...)
	b = append(b, ' ')
	b = append(b, uri...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, host...)
	b = append(b, "\r\n"...)
	for k, vs := range req.Header {
		switch k {
		case "Host", "Content-Length", "Transfer-Encoding", "Connection", "Expect", "Te", "Trailer", "Upgrade",
			"Keep-Alive", "Proxy-Connection":
			continue
		}
		if !httpguts.ValidHeaderFieldName(k) {
			*bp = b
			putHeadBuf(bp)
			return nil, fmt.Errorf("failover: invalid header name %q", k)
		}
		for _, v := range vs {
			if !httpguts.ValidHeaderFieldValue(v) {
				*bp = b
				putHeadBuf(bp)
				return nil, fmt.Errorf("failover: invalid value for header %q", k)
			}
			b = append(b, k...)
			b = append(b, ": "...)
			b = append(b, strings.TrimSpace(v)...)
			b = append(b, "\r\n"...)
		}
	}
	if _, ok := req.Header["User-Agent"]; !ok {
		b = append(b, "User-Agent: lifeline\r\n"...)
	}
	if hasBody || method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch {
		b = append(b, "Content-Length: "...)
		cl := int64(0) // no body is sent, whatever req.ContentLength says
		if hasBody {
			cl = req.ContentLength
		}
		b = strconv.AppendInt(b, cl, 10)
		b = append(b, "\r\n"...)
	}
	b = append(b, "\r\n"...)
	*bp = b
	return bp, nil
}

func validMethod(m string) bool {
	for i := 0; i < len(m); i++ {
		if !httpguts.IsTokenRune(rune(m[i])) {
			return false
		}
	}
	return m != ""
}

// validRequestTarget reports whether the request target has no control character (a CR LF in
// a raw query would end the request line and inject headers, or a second request).
func validRequestTarget(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] == 0x7f {
			return false
		}
	}
	return true
}

// get takes the most recently used live idle connection, or dials one (always, if fresh).
func (t *h1Transport) get(ctx context.Context, fresh bool) (*h1Conn, error) {
	if !fresh {
		now := time.Now()
		for {
			t.mu.Lock()
			n := len(t.idle)
			if n == 0 {
				t.mu.Unlock()
				break
			}
			c := t.idle[n-1]
			t.idle[n-1] = nil
			t.idle = t.idle[:n-1]
			t.mu.Unlock()
			if now.Sub(c.idleAt) < t.idleFor && c.alive() {
				c.reused = true
				return c, nil
			}
			c.nc.Close()
		}
	}
	return t.dial(ctx)
}

func (t *h1Transport) dial(ctx context.Context) (*h1Conn, error) {
	nc, err := t.dialer.DialContext(ctx, "tcp", t.addr)
	if err != nil {
		return nil, err
	}
	c := &h1Conn{t: t, nc: nc}
	if sc, ok := nc.(syscall.Conn); ok {
		c.raw, _ = sc.SyscallConn()
	}
	if t.tls != nil {
		tc := tls.Client(nc, t.tls)
		hctx, cancel := ctx, context.CancelFunc(func() {})
		if t.connect > 0 { // 0: no bound of its own, as for the dial
			hctx, cancel = context.WithTimeout(ctx, t.connect)
		}
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			nc.Close()
			return nil, err
		}
		if p := tc.ConnectionState().NegotiatedProtocol; p != "" && p != "http/1.1" {
			nc.Close()
			return nil, fmt.Errorf("failover: region negotiated %q, not http/1.1", p)
		}
		c.nc = tc
	}
	c.br = bufio.NewReaderSize(c.nc, h1ReadBuffer)
	return c, nil
}

// alive reports whether an idle connection can take a request: nothing (no close, no stray
// bytes) arrived while it was idle.
func (c *h1Conn) alive() bool {
	return c.br.Buffered() == 0 && (c.raw == nil || peekIdle(c.raw))
}

// put returns a connection whose response was read to the end to the pool.
func (t *h1Transport) put(c *h1Conn) {
	c.idleAt = time.Now()
	t.mu.Lock()
	if len(t.idle) >= t.maxIdle {
		t.mu.Unlock()
		c.nc.Close()
		return
	}
	t.idle = append(t.idle, c)
	if t.sweeper == nil {
		t.sweeper = time.AfterFunc(t.idleFor, t.sweep)
	}
	t.mu.Unlock()
}

// sweep closes connections idle for longer than idleFor; it runs while any are idle.
func (t *h1Transport) sweep() {
	cut := time.Now().Add(-t.idleFor)
	var old []*h1Conn
	t.mu.Lock()
	i := 0
	for i < len(t.idle) && t.idle[i].idleAt.Before(cut) {
		i++
	}
	old = append(old, t.idle[:i]...)
	t.idle = append(t.idle[:0], t.idle[i:]...)
	if len(t.idle) > 0 {
		t.sweeper = time.AfterFunc(t.idle[0].idleAt.Sub(cut)+time.Second, t.sweep)
	} else {
		t.sweeper = nil
	}
	t.mu.Unlock()
	for _, c := range old {
		c.nc.Close()
	}
}

// CloseIdleConnections closes every idle connection; connections in use close when their
// responses end.
func (t *h1Transport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = nil
	t.mu.Unlock()
	for _, c := range idle {
		c.nc.Close()
	}
}

// aLongTimeAgo is a deadline that has passed: setting it unblocks any read or write.
var aLongTimeAgo = time.Unix(1, 0)

// roundTrip writes the request and reads the response head on c. The connection is the
// caller's to close when it returns an error.
func (c *h1Conn) roundTrip(ctx context.Context, req *http.Request, body io.Reader, head *[]byte) (*http.Response, error) {
	if err := ctx.Err(); err != nil {
		return nil, context.Cause(ctx)
	}
	stop := context.AfterFunc(ctx, func() { c.nc.SetDeadline(aLongTimeAgo) })
	fail := func(err error) (*http.Response, error) {
		stop()
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		return nil, err
	}
	if err := c.writeRequest(body, req.ContentLength, head); err != nil {
		return fail(nothingReadError{err})
	}
	for {
		if _, err := c.br.Peek(1); err != nil {
			return fail(nothingReadError{err})
		}
		resp, err := http.ReadResponse(c.br, req)
		if err != nil {
			return fail(err)
		}
		// An interim answer (100 Continue, 103 Early Hints) is skipped; 101 is not expected here.
		if resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
			continue
		}
		if resp.StatusCode == http.StatusSwitchingProtocols {
			return fail(errors.New("failover: region answered 101 Switching Protocols"))
		}
		b := &h1Body{c: c, ctx: ctx, rc: resp.Body, stop: stop, keep: !resp.Close}
		if resp.Body == http.NoBody {
			b.release(true)
			return resp, nil
		}
		resp.Body = b
		return resp, nil
	}
}

// writeRequest writes the head, with the body in the same write when it is small.
func (c *h1Conn) writeRequest(body io.Reader, n int64, head *[]byte) error {
	b := *head
	if body == nil || body == http.NoBody {
		_, err := c.nc.Write(b)
		return err
	}
	if n <= h1InlineBody {
		buf := getHeadBuf(len(b) + int(n))
		buf = append(buf, b...)
		m, err := io.ReadFull(body, buf[len(b):len(b)+int(n)])
		if err != nil || int64(m) != n {
			putHeadBuf(&buf)
			return fmt.Errorf("failover: request body: %d of %d bytes: %w", m, n, err)
		}
		buf = buf[:len(b)+int(n)]
		_, err = c.nc.Write(buf)
		putHeadBuf(&buf)
		return err
	}
	if _, err := c.nc.Write(b); err != nil {
		return err
	}
	m, err := io.Copy(c.nc, io.LimitReader(body, n))
	if err == nil && m != n {
		err = fmt.Errorf("failover: request body: %d of %d bytes", m, n)
	}
	return err
}

func getHeadBuf(n int) []byte {
	bp := headBufPool.Get().(*[]byte)
	if cap(*bp) >= n {
		return (*bp)[:0]
	}
	headBufPool.Put(bp)
	return make([]byte, 0, n)
}

// h1Body is a response body on a pooled connection: read to the end, the connection goes
// back to the pool; closed early, it is closed.
type h1Body struct {
	c    *h1Conn
	ctx  context.Context
	rc   io.ReadCloser
	stop func() bool
	keep bool
	mu   sync.Mutex
	done bool
}

func (b *h1Body) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	switch {
	case err == io.EOF:
		b.release(true)
	case err != nil && b.ctx.Err() != nil:
		err = context.Cause(b.ctx) // as net/http: the reason the request ended, not the deadline that ended the read
	}
	return n, err
}

func (b *h1Body) Close() error {
	b.release(false)
	return nil
}

// release ends the response once: the connection is pooled if the body ended cleanly, the
// region allows keep-alive, and the request's context did not fire meanwhile.
func (b *h1Body) release(eof bool) {
	b.mu.Lock()
	if b.done {
		b.mu.Unlock()
		return
	}
	b.done = true
	b.mu.Unlock()
	c := b.c
	if b.stop() && eof && b.keep && c.br.Buffered() == 0 {
		c.t.put(c)
		return
	}
	c.nc.Close()
}
