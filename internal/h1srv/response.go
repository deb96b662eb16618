package h1srv

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"
)

// response is the http.ResponseWriter (and http.Flusher) of one request.
type response struct {
	c      *conn
	req    *http.Request
	header http.Header
	// frozen is the header as it was at WriteHeader, taken when the handler asks for the map
	// after that and before the head is sent; nil: header.
	frozen http.Header
	cancel context.CancelCauseFunc

	body     *requestBody
	bodyDone bool // the request body was read to its end (or there was none)

	status        int
	wroteHeader   bool // the handler chose the status
	headSent      bool // the status line and headers are written or buffered
	flushed       bool // something went to the client
	chunked       bool
	contentLength int64 // declared by the handler; -1: unknown
	written       int64 // body bytes accepted from the handler
	closeAfter    bool
	failed        error // a write to the client failed

	wbuf *[]byte // pending output; nil while empty

	watchMu sync.Mutex
	watch   *time.Timer
	watched watchState // see watch_*.go
	stopped bool
}

// errClientGone is the cause a request's context ends with when its client left.
var errClientGone = errors.New("h1srv: client closed the connection")

var (
	_ http.ResponseWriter = (*response)(nil)
	_ http.Flusher        = (*response)(nil)
)

func (w *response) Header() http.Header {
	if w.wroteHeader && !w.headSent && w.frozen == nil {
		// Changes after WriteHeader must not reach the head, though it goes out later.
		w.frozen = w.header.Clone()
	}
	return w.header
}

func (w *response) WriteHeader(code int) {
	if w.wroteHeader || w.failed != nil {
		return
	}
	if code < 100 || code > 999 {
		panic("h1srv: invalid WriteHeader code " + strconv.Itoa(code))
	}
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		w.writeInterim(code)
		return
	}
	w.wroteHeader = true
	w.status = code
	if cl := w.header.Get("Content-Length"); cl != "" {
		if n, err := strconv.ParseInt(cl, 10, 64); err == nil && n >= 0 {
			w.contentLength = n
		} else {
			w.header.Del("Content-Length")
		}
	}
}

// writeInterim sends a 1xx answer at once (103 Early Hints); 100 Continue is sent by the body.
func (w *response) writeInterim(code int) {
	if code == http.StatusContinue {
		return
	}
	b := getBuf()
	*b = appendStatusLine(*b, w.req, code)
	*b = appendHeader(*b, w.header)
	*b = append(*b, "\r\n"...)
	w.writeNow(*b)
	putBuf(b)
}

func (w *response) Write(p []byte) (int, error) {
	if w.failed != nil {
		return 0, w.failed
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !bodyAllowed(w.status) {
		if len(p) > 0 {
			return 0, http.ErrBodyNotAllowed
		}
		return 0, nil
	}
	if w.contentLength >= 0 && w.written+int64(len(p)) > w.contentLength {
		return 0, http.ErrContentLength
	}
	w.written += int64(len(p))
	if w.req.Method == http.MethodHead && w.headSent {
		return len(p), nil // a HEAD response's body only serves to decide its head
	}
	w.appendBody(p)
	if len(*w.wbuf) >= flushAt {
		w.send(false)
	}
	if w.failed != nil {
		return 0, w.failed
	}
	return len(p), nil
}

// flushAt is the pending output size from which Write sends at once.
const flushAt = 4 << 10

// Flush sends what is pending (the headers, at least).
func (w *response) Flush() {
	if w.failed != nil {
		return
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	w.send(false)
}

// FlushError is Flush with its error, for http.ResponseController.
func (w *response) FlushError() error {
	w.Flush()
	return w.failed
}

func bodyAllowed(status int) bool {
	return status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}

func (w *response) bodyAllowedHere() bool {
	return bodyAllowed(w.status) && w.req.Method != http.MethodHead
}

// appendBody adds body bytes to the pending output: as they are until the head is sent (it is
// decided then whether the body is chunked), in chunk framing after.
func (w *response) appendBody(p []byte) {
	if w.wbuf == nil {
		w.wbuf = getBuf()
	}
	if len(p) == 0 {
		return
	}
	b := *w.wbuf
	if w.headSent && w.chunked {
		b = appendChunk(b, p)
	} else {
		b = append(b, p...)
	}
	*w.wbuf = b
}

func appendChunk(b, p []byte) []byte {
	b = strconv.AppendInt(b, int64(len(p)), 16)
	b = append(b, "\r\n"...)
	b = append(b, p...)
	return append(b, "\r\n"...)
}

// send writes the head, if it has not gone yet, and the pending body. final reports that the
// handler returned: a body that is all pending then gets a Content-Length instead of chunking.
func (w *response) send(final bool) {
	if w.failed != nil {
		return
	}
	if !w.headSent {
		var pending []byte
		if w.wbuf != nil {
			pending = *w.wbuf
		}
		out := getBuf()
		*out = w.appendHead(*out, pending, final)
		switch {
		case w.req.Method == http.MethodHead: // the body gave the head its length and type
		case w.chunked && len(pending) > 0:
			*out = appendChunk(*out, pending)
		default:
			*out = append(*out, pending...)
		}
		if w.wbuf != nil {
			putBuf(w.wbuf)
		}
		w.wbuf = out
	}
	if w.wbuf == nil {
		return
	}
	if len(*w.wbuf) > 0 {
		w.writeNow(*w.wbuf)
	}
	putBuf(w.wbuf)
	w.wbuf = nil
}

// appendHead decides the framing and appends the status line and headers.
func (w *response) appendHead(b, pending []byte, final bool) []byte {
	w.headSent = true
	if w.bodyDone {
		w.c.releaseReader() // the request is read: an open stream need not hold the read buffer
	}
	h := w.header
	if w.frozen != nil {
		h = w.frozen
	}
	switch {
	case !bodyAllowed(w.status):
		h.Del("Content-Length")
		h.Del("Transfer-Encoding")
	case w.contentLength >= 0:
		h.Del("Transfer-Encoding")
	case final:
		h.Del("Transfer-Encoding") // a handler's "chunked" would contradict the length
		w.contentLength = int64(len(pending))
		if w.req.Method != http.MethodHead || len(pending) > 0 {
			h.Set("Content-Length", strconv.Itoa(len(pending)))
		}
	case w.req.ProtoAtLeast(1, 1):
		w.chunked = w.req.Method != http.MethodHead
		h.Del("Content-Length")
		if w.chunked {
			h.Set("Transfer-Encoding", "chunked")
		}
	default:
		w.closeAfter = true // HTTP/1.0: the body ends with the connection
		h.Del("Transfer-Encoding")
	}
	if _, ok := h["Content-Type"]; !ok && bodyAllowed(w.status) && len(pending) > 0 && h.Get("Content-Encoding") == "" {
		h.Set("Content-Type", http.DetectContentType(pending))
	}
	if _, ok := h["Date"]; !ok {
		h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	}
	if v := h.Get("Connection"); v != "" && httpguts.HeaderValuesContainsToken([]string{v}, "close") {
		w.closeAfter = true
	}
	if w.c.s.shutdown.Load() {
		w.closeAfter = true
	}
	if w.closeAfter {
		h.Set("Connection", "close")
	} else if !w.req.ProtoAtLeast(1, 1) {
		h.Set("Connection", "keep-alive")
	}
	b = appendStatusLine(b, w.req, w.status)
	b = appendHeader(b, h)
	return append(b, "\r\n"...)
}

func (w *response) writeNow(b []byte) {
	if w.failed != nil {
		return
	}
	if _, err := w.c.nc.Write(b); err != nil {
		w.failed = err
		w.closeAfter = true
		w.cancel(errClientGone)
		return
	}
	w.flushed = true
}

// finish completes the response after the handler returned; false ends the connection.
func (w *response) finish() bool {
	if w.failed != nil || w.c.handedOff { // handedOff: hijacked (hijack.go); the handler owns the connection
		return false
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.headSent {
		// Settle the request body first, so that the head can say whether the connection stays.
		w.discardBody()
		w.send(true)
	}
	if w.chunked {
		if w.wbuf == nil {
			w.wbuf = getBuf()
		}
		*w.wbuf = append(*w.wbuf, "0\r\n\r\n"...)
	}
	if w.contentLength >= 0 && w.bodyAllowedHere() && w.written != w.contentLength {
		w.closeAfter = true // the handler wrote less than it declared: the client must not wait for the rest
	}
	w.send(true)
	if w.failed == nil {
		w.discardBody()
	}
	if w.failed != nil || w.closeAfter {
		if b := w.body; w.failed == nil && b != nil && !b.ended && (b.continued || !b.expect) {
			w.c.linger = true
		}
		return false
	}
	w.c.releaseReader()
	return !w.c.s.shutdown.Load()
}

// maxDiscard is how much of a request body left unread by the handler the server reads to keep
// the connection (net/http's maxPostHandlerReadBytes).
const maxDiscard = 256 << 10

// discardBody reads what the handler left of the request body, so that the connection can serve
// the next request. A large rest, or one the client has not been asked for (it waits for a 100
// Continue), closes the connection instead.
func (w *response) discardBody() {
	b := w.body
	if b == nil || b.ended || w.closeAfter {
		return
	}
	if b.expect && !b.continued {
		w.closeAfter = true
		return
	}
	io.CopyN(io.Discard, b, maxDiscard+1)
	if !b.ended {
		w.closeAfter = true
	}
}

var aLongTimeAgo = time.Unix(1, 0)

// requestBody is the request body: it sends 100 Continue when first read if the client asked,
// and lets the read buffer go once the body ended.
type requestBody struct {
	rc        io.ReadCloser
	w         *response
	expect    bool
	continued bool
	ended     bool
}

func (b *requestBody) Read(p []byte) (int, error) {
	if b.ended {
		return 0, io.EOF
	}
	if b.expect && !b.continued {
		b.continued = true
		if !b.w.headSent {
			b.w.writeNow([]byte("HTTP/1.1 100 Continue\r\n\r\n"))
		}
	}
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.ended = true
		b.w.bodyDone = true
		// net/http's body keeps the connection's read buffer (it reads from it): let both go, or an open
		// stream holds its request's read buffer for as long as the handler holds the request.
		b.rc = nil
	}
	return n, err
}

func (b *requestBody) Close() error { return nil }

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, flushAt+512); return &b }}

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if cap(*b) <= 64<<10 {
		*b = (*b)[:0]
		bufPool.Put(b)
	}
}

func appendStatusLine(b []byte, req *http.Request, code int) []byte {
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, ' ')
	text := http.StatusText(code)
	if text == "" {
		text = "status code " + strconv.Itoa(code)
	}
	b = append(b, text...)
	return append(b, "\r\n"...)
}

// appendHeader writes the header lines, with values made safe (CR, LF become spaces) as net/http does.
func appendHeader(b []byte, h http.Header) []byte {
	for k, vs := range h {
		if !httpguts.ValidHeaderFieldName(k) {
			continue
		}
		for _, v := range vs {
			b = append(b, k...)
			b = append(b, ": "...)
			for i := 0; i < len(v); i++ {
				c := v[i]
				if c == '\r' || c == '\n' {
					c = ' '
				}
				b = append(b, c)
			}
			b = append(b, "\r\n"...)
		}
	}
	return b
}

// SetReadDeadline sets the connection's read deadline, for http.ResponseController: it bounds
// reading the request body.
func (w *response) SetReadDeadline(t time.Time) error { return w.c.nc.SetReadDeadline(t) }

// SetWriteDeadline sets the connection's write deadline, for http.ResponseController: a write
// to a client that stopped reading fails at t.
func (w *response) SetWriteDeadline(t time.Time) error { return w.c.nc.SetWriteDeadline(t) }
