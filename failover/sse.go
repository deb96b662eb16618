package failover

import "bytes"

// Server-sent events framing, as much of it as the engine needs: where events end, and an event's
// `event:` name and `data:`. Lines end with LF or CRLF; an empty line ends an event. (A lone CR, which
// the SSE format also allows, is not used by any OpenAI-compatible server and is not recognised: such
// a stream is passed on as it comes, without event tracking.)

// eventEnd returns the end of the first event terminator (a blank line) in b at or after from, or -1.
func eventEnd(b []byte, from int) int {
	for i := max(from, 0); i < len(b); {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return -1
		}
		j += i
		switch {
		case j+1 < len(b) && b[j+1] == '\n':
			return j + 2
		case j+2 < len(b) && b[j+1] == '\r' && b[j+2] == '\n':
			return j + 3
		}
		i = j + 1
	}
	return -1
}

// lastEventEnd returns the end of the last complete event in b (0: none). from is where a terminator
// may start at the earliest (bytes before it were searched already).
func lastEventEnd(b []byte, from int) int {
	last := 0
	for {
		e := eventEnd(b, from)
		if e < 0 {
			return last
		}
		last, from = e, e
	}
}

// sseEvent is one event: its name (`event:`) and its data (`data:` lines joined by LF).
type sseEvent struct {
	name []byte
	data []byte
}

// parseEvent reads the fields of one event (b holds the event, terminator included or not). Data of
// a single `data:` line is a slice of b; several are joined into a new slice.
func parseEvent(b []byte) sseEvent {
	var ev sseEvent
	lines := 0
	for len(b) > 0 {
		var line []byte
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			line, b = b, nil
		}
		line = bytes.TrimSuffix(line, []byte{'\r'})
		field, value, _ := bytes.Cut(line, []byte{':'})
		if len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
		switch string(field) {
		case "data":
			if lines == 0 {
				ev.data = value
			} else {
				ev.data = append(append(append([]byte(nil), ev.data...), '\n'), value...)
			}
			lines++
		case "event":
			ev.name = value
		}
	}
	return ev
}
