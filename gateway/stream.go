package gateway

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/tidwall/gjson"

	"github.com/lifeline-sre/lifeline/failover"
)

const (
	// copyBufSize is what one Read of a response body may return. A stream holds its buffer for as long as it
	// lasts, so it is small: SSE events are far smaller, and a larger one goes out in pieces.
	copyBufSize = 4 << 10
	// bigBufSize is the buffer for a non-streaming body larger than copyBufSize (embeddings, images): read
	// and written in 4 KB pieces such a body costs twice the time; it is taken only for the copy.
	bigBufSize = 32 << 10
	tailSize   = 4 << 10 // the end of a body, where `usage` sits
	// streamBufSize is what one Read of an SSE stream may return: an event larger than it goes out in pieces
	// (Azure's chunks are well under 1 KB). Every open stream holds it.
	streamBufSize = 2 << 10
	// streamTailSize is the end of a stream kept for `usage`: the usage event (chat, completions) or the end
	// of response.completed (Responses API) with what follows it. Every open stream holds it.
	streamTailSize = 1 << 10
)

// copyBuf is a pooled buffer for moving one response body, with the tail of what went through it.
type copyBuf struct {
	buf  []byte
	tail []byte
	nt   int
}

var (
	copyBufs   = sync.Pool{New: func() any { return &copyBuf{buf: make([]byte, copyBufSize), tail: make([]byte, tailSize)} }}
	streamBufs = sync.Pool{New: func() any { return &copyBuf{buf: make([]byte, streamBufSize), tail: make([]byte, streamTailSize)} }}
	bigBufs    = sync.Pool{New: func() any { return new([bigBufSize]byte) }}
)

// keep remembers the last len(c.tail) bytes seen.
func (c *copyBuf) keep(p []byte) {
	tailSize := len(c.tail)
	if len(p) >= tailSize {
		c.nt = copy(c.tail, p[len(p)-tailSize:])
		return
	}
	if c.nt+len(p) > tailSize {
		drop := c.nt + len(p) - tailSize
		copy(c.tail[:], c.tail[drop:c.nt])
		c.nt -= drop
	}
	c.nt += copy(c.tail[c.nt:], p)
}

// respond writes the engine's response to the client: headers as the region sent them (plus the engine's
// x-lifeline-* ones), then the body, event by event for SSE.
func (g *Gateway) respond(w http.ResponseWriter, resp *http.Response, x *exchange) {
	if v := resp.Header[failover.HeaderRegion]; len(v) > 0 {
		x.region = v[0]
	}
	if v := resp.Header[failover.HeaderAttempts]; len(v) > 0 {
		x.attempts = v[0]
	}
	h := w.Header()
	for k, vv := range resp.Header {
		if failover.HopByHop(k) { // the engine scrubs regions' answers; this keeps the server's framing its own
			continue
		}
		h[k] = vv
	}
	x.status = resp.StatusCode
	x.hedged = resp.Header.Get("X-Lifeline-Hedged") == "true"
	x.stream = strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream")
	pool := &copyBufs
	if x.stream {
		pool = &streamBufs
	}
	cb := pool.Get().(*copyBuf)
	cb.nt = 0
	defer pool.Put(cb)
	x.writeDeadline(g.now())
	w.WriteHeader(resp.StatusCode)
	if x.stream {
		h.Del("Content-Length")
		g.copyEvents(w, resp.Body, x, cb)
	} else {
		buf := cb.buf[:]
		if resp.ContentLength < 0 || resp.ContentLength > copyBufSize {
			big := bigBufs.Get().(*[bigBufSize]byte)
			defer bigBufs.Put(big)
			buf = big[:]
		}
		g.copyBody(w, resp.Body, x, cb, buf)
	}
	if x.status < 400 {
		x.usage = findUsage(cb.tail[:cb.nt])
		if x.span != nil {
			x.model = findModel(cb.tail[:cb.nt])
		}
	}
}

// copyBody copies a non-streaming body through buf, keeping its tail in cb. A failure half-way aborts the connection: the status was sent, so the
// only honest signal left is a broken response.
func (g *Gateway) copyBody(w http.ResponseWriter, body io.Reader, x *exchange, cb *copyBuf, buf []byte) {
	for {
		n, err := body.Read(buf)
		if n > 0 {
			if x.ttfb == 0 {
				x.ttfb = g.now().Sub(x.start)
			}
			cb.keep(buf[:n])
			x.writeDeadline(g.now())
			if _, werr := w.Write(buf[:n]); werr != nil {
				x.err, x.status = "client went away: "+werr.Error(), 499
				return
			}
			x.bytes += int64(n)
		}
		if err == io.EOF {
			if x.ttfb == 0 {
				x.ttfb = g.now().Sub(x.start)
			}
			return
		}
		if err != nil {
			x.err, x.streamErr = err.Error(), "body_error"
			g.metrics.streamErrors.WithLabelValues(x.region).Inc()
			panic(http.ErrAbortHandler)
		}
	}
}

// copyEvents copies an SSE body, writing and flushing whole events as they arrive (an event larger than the
// buffer goes out in pieces). When the body fails after bytes went out, the stream ends with an explicit error
// event, `data: {"error":{...}}`, so that SDKs raise an error instead of seeing a clean end.
func (g *Gateway) copyEvents(w http.ResponseWriter, body io.Reader, x *exchange, cb *copyBuf) {
	flusher, _ := w.(http.Flusher)
	flushed := false
	flush := func() {
		flushed = true
		if flusher != nil {
			flusher.Flush()
		}
	}
	pending, midEvent := 0, false
	for {
		n, err := body.Read(cb.buf[pending:])
		pending += n
		if !flushed && eventsEnd(cb.buf[:pending]) == 0 && pending < len(cb.buf) && err == nil {
			// The headers go out at once, so the client knows the stream started. The first read is the
			// engine's peek of what the region sent before handing the stream over; when it holds whole
			// events, they go out with the headers in one write.
			flush()
		}
		if n > 0 {
			cut := eventsEnd(cb.buf[:pending])
			if cut == 0 && pending == len(cb.buf) {
				cut, midEvent = pending, true
			} else if cut > 0 {
				midEvent = false
			}
			if cut > 0 {
				if !g.writeEvents(w, x, cb, cb.buf[:cut]) {
					return
				}
				flush()
				pending = copy(cb.buf[:], cb.buf[cut:pending])
			}
		}
		if err == io.EOF {
			if pending > 0 {
				g.writeEvents(w, x, cb, cb.buf[:pending])
				flush()
			}
			return
		}
		if err != nil {
			g.streamFailed(w, x, err, midEvent)
			flush()
			return
		}
	}
}

func (g *Gateway) writeEvents(w http.ResponseWriter, x *exchange, cb *copyBuf, p []byte) bool {
	if x.ttfb == 0 {
		x.ttfb = g.now().Sub(x.start)
	}
	cb.keep(p)
	x.writeDeadline(g.now())
	if _, err := w.Write(p); err != nil {
		x.err, x.status = "client went away: "+err.Error(), 499
		return false
	}
	x.bytes += int64(len(p))
	return true
}

// streamFailed ends a stream that broke with an error event. An incomplete event held back is dropped; one that
// was already partly sent is closed first so the error event stands on its own.
func (g *Gateway) streamFailed(w http.ResponseWriter, x *exchange, err error, midEvent bool) {
	x.err = err.Error()
	code, msg := "stream_error", "lifeline: the region's stream broke after it started; the answer is incomplete"
	switch {
	case errors.Is(err, failover.ErrStreamQuiet):
		code, msg = "stream_idle_timeout", "lifeline: the region stopped sending events (it was seen stalling, or another region answered meanwhile); the answer is incomplete"
	case errors.Is(err, failover.ErrStreamIdle):
		code, msg = "stream_idle_timeout", "lifeline: the region stopped sending events for longer than timeouts.stream_idle; the answer is incomplete"
	case errors.Is(err, failover.ErrStreamTruncated):
		code, msg = "stream_truncated", "lifeline: the region's stream ended before the answer was complete; the answer is incomplete"
	case errors.Is(err, context.Canceled) && g.hardCtx.Err() != nil:
		code, msg = "shutting_down", "lifeline: the gateway is shutting down; the answer is incomplete"
	}
	if se := (*failover.StreamError)(nil); errors.As(err, &se) && se.Resume != "" {
		msg += " (resume: " + se.Resume + ")"
	}
	g.metrics.streamErrors.WithLabelValues(x.region).Inc()
	x.streamErr = code
	var b []byte
	if midEvent {
		b = append(b, "\n\n"...)
	}
	b = append(b, "data: "...)
	b = append(b, failover.ErrorBody(code, "server_error", msg)...)
	b = append(b, "\n\n"...)
	x.writeDeadline(g.now())
	if _, werr := w.Write(b); werr != nil {
		x.status = 499
	}
}

// eventsEnd returns the length of the complete events at the start of p: up to the last blank line.
func eventsEnd(p []byte) int {
	i := bytes.LastIndex(p, []byte("\n\n"))
	j := bytes.LastIndex(p, []byte("\r\n\r\n"))
	switch {
	case i < 0 && j < 0:
		return 0
	case j+4 > i+2:
		return j + 4
	default:
		return i + 2
	}
}

// usage is the token count a region reported.
type usage struct{ prompt, completion int64 }

// findUsage reads the last `"usage":{...}` object in the tail of a JSON body or an SSE stream (chat and
// completions put prompt_tokens/completion_tokens there, the Responses API input_tokens/output_tokens).
func findUsage(tail []byte) usage {
	i := bytes.LastIndex(tail, []byte(`"usage":`))
	for i >= 0 {
		rest := bytes.TrimLeft(tail[i+len(`"usage":`):], " \t\r\n")
		if len(rest) > 0 && rest[0] == '{' {
			u := gjson.ParseBytes(rest)
			if !u.IsObject() {
				return usage{}
			}
			var out usage
			for _, f := range [...]string{"prompt_tokens", "input_tokens"} {
				if v := u.Get(f); v.Exists() {
					out.prompt = v.Int()
				}
			}
			for _, f := range [...]string{"completion_tokens", "output_tokens"} {
				if v := u.Get(f); v.Exists() {
					out.completion = v.Int()
				}
			}
			return out
		}
		i = bytes.LastIndex(tail[:i], []byte(`"usage":`))
	}
	return usage{}
}

// findModel reads the last `"model":"..."` in the tail of a body or a stream: the model and version the region
// says it served (chat and completions chunks carry it, and so does the end of a non-streaming answer).
func findModel(tail []byte) string {
	i := bytes.LastIndex(tail, []byte(`"model":`))
	if i < 0 {
		return ""
	}
	m := gjson.ParseBytes(bytes.TrimLeft(tail[i+len(`"model":`):], " \t\r\n"))
	if m.Type != gjson.String || len(m.Str) > 128 {
		return ""
	}
	return m.Str
}
