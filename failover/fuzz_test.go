package failover

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"
)

func FuzzRetryAfter(f *testing.F) {
	for _, s := range [][2]string{
		{"", "7"}, {"1500", "9"}, {"2.5", ""}, {"", "Fri, 02 Jan 2026 03:05:05 GMT"}, {"-1", "-1"},
		{"NaN", "Inf"}, {"1e309", "99999999999999999999"}, {"", "Mon, 02 Jan 2006 15:04:05 MST"}, {" 10 ", "0x10"},
	} {
		f.Add(s[0], s[1])
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	f.Fuzz(func(t *testing.T, ms, ra string) {
		h := http.Header{}
		if ms != "" {
			h["Retry-After-Ms"] = []string{ms}
		}
		if ra != "" {
			h["Retry-After"] = []string{ra}
		}
		d, ok := RetryAfter(h, now)
		if d < 0 || d > maxHint || (!ok && d != 0) {
			t.Fatalf("RetryAfter(%q, %q) = %v, %v", ms, ra, d, ok)
		}
		v := Classify(Signal{Status: 429, Header: h, Now: now})
		if v.Outcome != OutcomeThrottled || v.RetryAfter != d {
			t.Fatalf("Classify 429: %+v, RetryAfter %v", v, d)
		}
	})
}

func FuzzErrorCode(f *testing.F) {
	for _, s := range []string{
		`{"error":{"code":"DeploymentNotFound","message":"x"}}`,
		`{"error":{"code":404,"message":"Resource not found"}}`,
		`{"error":{"code":null}}`, `{"error":"x"}`, `{"statusCode": 500, "message": "Internal server error"}`,
		`{"error":{"message":"m","code":"a\"b\u00e9"}}`, `not json`, `{"error":{"code":"x"`, `[]`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		code := ErrorCode(body) // must not panic on anything
		if code != "DeploymentNotFound" {
			if v := Classify(Signal{Status: 404, Body: body}); v.Outcome != OutcomeClientError {
				t.Fatalf("404 with code %q classified %v", code, v.Outcome)
			}
		}
		// On well-formed JSON (canonicalised, so no duplicate keys) it agrees with encoding/json.
		var v any
		if json.Unmarshal(body, &v) != nil {
			return
		}
		canon, _ := json.Marshal(v)
		var want struct {
			Error struct {
				Code any `json:"code"`
			} `json:"error"`
		}
		if json.Unmarshal(canon, &want) != nil {
			return
		}
		if s, ok := want.Error.Code.(string); ok && ErrorCode(canon) != s {
			t.Fatalf("ErrorCode(%s) = %q, want %q", canon, ErrorCode(canon), s)
		}
	})
}

// FuzzStreamBody feeds any bytes, cut in three pieces, through the stream body of a chat/completions
// stream and checks what the caller gets against the stream read whole: every whole event, in order,
// and the end (io.EOF only when the stream was complete, else a *StreamError).
func FuzzStreamBody(f *testing.F) {
	f.Add([]byte("data: {}\n\ndata: [DONE]\n\n"), uint8(3), uint8(7), uint16(512))
	f.Add([]byte("data: [DON"), uint8(1), uint8(1), uint16(600))
	f.Add([]byte("data: {\"choices\":[{\"index\":0,\"finish_reason\":\"stop\"}]}\r\n\r\n"), uint8(13), uint8(2), uint16(1))
	f.Add([]byte("data: {\"choices\":[{\"index\":0,\"finish_reason\":\"stop\"}]}\n"), uint8(20), uint8(30), uint16(700))
	f.Fuzz(func(t *testing.T, stream []byte, a, b uint8, psize uint16) {
		i, j := min(int(a), len(stream)), min(int(a)+int(b), len(stream))
		pieces := &piecesReader{pieces: [][]byte{stream[:i], stream[i:j], stream[j:]}}
		sb := newStreamBody(testAttempt(t), io.NopCloser(pieces), 200, 0, nil, newTracker("chat/completions", 1))
		got, err := readWith(sb, max(int(psize)%2048, 1))

		ref := newTracker("chat/completions", 1)
		cut := lastEventEnd(stream, 0)
		for p := stream[:cut]; len(p) > 0; {
			e := eventEnd(p, 0)
			ref.event(parseEvent(p[:e]), false)
			p = p[e:]
		}
		want := stream[:cut]
		if tail := stream[cut:]; len(tail) > 0 {
			ref.event(parseEvent(tail), false)
			if ref.complete() {
				want = append(append([]byte(nil), stream...), '\n')
				if tail[len(tail)-1] != '\n' {
					want = append(want, '\n')
				}
			}
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("caller got %q, want %q", got, want)
		}
		var se *StreamError
		switch {
		case ref.complete() && err != nil:
			t.Fatalf("complete stream ended with %v", err)
		case !ref.complete() && (!errors.As(err, &se) || !errors.Is(err, ErrStreamTruncated)):
			t.Fatalf("truncated stream ended with %v", err)
		}
	})
}
