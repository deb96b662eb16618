package sim

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// sseStream writes server-sent events, flushing each one, and carries out the stream faults: cut_stream,
// stall_stream, no_done and malformed_event.
type sseStream struct {
	c      *call
	rc     *http.ResponseController
	events int
	fault  Fault // Mode "" when the stream has none
	fired  bool  // the fault's event-count trigger has acted (stall with a latency, malformed_event)
	buf    []byte
}

// startStream sends the headers of an SSE response.
func (c *call) startStream() *sseStream {
	h := c.w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	c.w.WriteHeader(http.StatusOK)
	c.r.stats.streams.Add(1)
	s := &sseStream{c: c, rc: http.NewResponseController(c.w)}
	if c.fault != nil {
		s.fault = *c.fault
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
	if s.events >= s.fault.AfterEvents && !s.fired {
		switch s.fault.Mode {
		case ModeCutStream:
			s.cut()
			return false
		case ModeStall:
			s.fired = true
			if !s.stall() {
				return false
			}
		case ModeMalformed:
			s.fired = true
			s.c.r.stats.malformed.Add(1)
			if !s.write(name, data[:len(data)/2]) { // a broken event: its JSON stops half way
				return false
			}
		}
	}
	return s.write(name, data)
}

// write writes and flushes one event.
func (s *sseStream) write(name string, data []byte) bool {
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

// done ends a chat or completions stream with data: [DONE] (no_done leaves it out and ends the body cleanly).
// A cut_stream or stall_stream fault that has not acted yet acts here, so a stream under it never ends cleanly.
func (s *sseStream) done() {
	if !s.end() {
		return
	}
	if s.fault.Mode == ModeNoDone {
		s.c.r.stats.noDone.Add(1)
		return
	}
	s.send([]byte("[DONE]"))
}

// end fires a cut_stream or stall_stream fault that has not acted before the last event of a stream; it reports
// whether the stream may still end.
func (s *sseStream) end() bool {
	switch {
	case s.fault.Mode == ModeCutStream:
		s.cut()
		return false
	case s.fault.Mode == ModeStall && !s.fired:
		s.fired = true
		return s.stall()
	}
	return true
}

// cut resets the TCP connection in the middle of the stream (RST, so the client sees "connection reset"), or,
// with Clean, ends the response as if it were complete.
func (s *sseStream) cut() {
	s.c.r.stats.streamsCut.Add(1)
	if s.fault.Clean {
		return // the handler returns at once: the server ends the chunked body
	}
	conn, _, err := s.rc.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	reset(conn)
}

// stall stops sending. With a latency it waits that long and reports whether the stream goes on; without one it
// holds the connection silent until the client gives up or the region goes down or closes.
func (s *sseStream) stall() bool {
	s.c.r.stats.streamsStalled.Add(1)
	if s.fault.Latency > 0 {
		return s.c.sleep(time.Duration(s.fault.Latency))
	}
	conn, brw, err := s.rc.Hijack() // flushes what was written; down and Close can now end the connection
	if err != nil {
		<-s.c.req.Context().Done()
		panic(http.ErrAbortHandler)
	}
	markHeld(conn)
	io.Copy(io.Discard, brw)
	conn.Close()
	panic(http.ErrAbortHandler)
}

// abort ends a stream whose client went away or that cannot go on: the server closes the connection.
func (s *sseStream) abort() {
	panic(http.ErrAbortHandler)
}

func itoa(i int) string { return strconv.Itoa(i) }

func joinLines(parts []string) string { return strings.Join(parts, "\n") }
