package sim

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
)

// sseStream writes server-sent events, flushing each one, and carries out cut_stream.
type sseStream struct {
	c        *call
	rc       *http.ResponseController
	events   int
	cutAfter int  // -1: no cut
	stall    bool // at cutAfter, stop sending and hold the connection instead of resetting it
	buf      []byte
}

// startStream sends the headers of an SSE response.
func (c *call) startStream() *sseStream {
	h := c.w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	c.w.WriteHeader(http.StatusOK)
	c.r.stats.streams.Add(1)
	s := &sseStream{c: c, rc: http.NewResponseController(c.w), cutAfter: -1}
	if c.fault != nil && (c.fault.Mode == ModeCutStream || c.fault.Mode == ModeStall) {
		s.cutAfter = c.fault.AfterEvents
		s.stall = c.fault.Mode == ModeStall
	}
	s.rc.Flush()
	return s
}

// send writes one `data:` event; it reports false when the stream was cut or the client went away.
func (s *sseStream) send(data []byte) bool {
	return s.sendEvent("", data)
}

// sendEvent writes one event with an optional `event:` line (the Responses API names its events).
func (s *sseStream) sendEvent(name string, data []byte) bool {
	if s.cutAfter >= 0 && s.events >= s.cutAfter {
		s.cut()
		return false
	}
	s.buf = s.buf[:0]
	if name != "" {
		s.buf = append(s.buf, "event: "...)
		s.buf = append(s.buf, name...)
		s.buf = append(s.buf, '\n')
	}
	s.buf = append(s.buf, "data: "...)
	s.buf = append(s.buf, data...)
	s.buf = append(s.buf, '\n', '\n')
	if _, err := s.c.w.Write(s.buf); err != nil {
		return false
	}
	if err := s.rc.Flush(); err != nil {
		return false
	}
	s.events++
	return s.c.req.Context().Err() == nil
}

func (s *sseStream) sendValue(v any) bool {
	b, err := json.Marshal(v)
	if err != nil {
		s.abort()
		return false
	}
	return s.send(b)
}

// done ends a chat or completions stream with data: [DONE]; a cut_stream fault that has not fired yet fires here,
// so a stream under that fault never ends cleanly.
func (s *sseStream) done() {
	if s.cutAfter >= 0 {
		s.cut()
		return
	}
	s.send([]byte("[DONE]"))
}

// cut resets the TCP connection in the middle of the stream, or for stall_stream holds it silent until the
// client gives up (or the region goes down or closes).
func (s *sseStream) cut() {
	if s.stall {
		s.c.r.stats.streamsStalled.Add(1)
		<-s.c.req.Context().Done()
		panic(http.ErrAbortHandler)
	}
	s.c.r.stats.streamsCut.Add(1)
	conn, _, err := s.rc.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	reset(conn)
}

// abort ends a stream whose client went away or that cannot go on: the server closes the connection.
func (s *sseStream) abort() {
	panic(http.ErrAbortHandler)
}

func itoa(i int) string { return strconv.Itoa(i) }

func joinLines(parts []string) string { return strings.Join(parts, "\n") }
