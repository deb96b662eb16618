package failover

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"
)

// BodyTooLargeError is returned by RoundTrip when the request body exceeds Policy.MaxBodyBytes.
type BodyTooLargeError struct{ Limit int64 }

func (e *BodyTooLargeError) Error() string {
	return "failover: request body larger than " + strconv.FormatInt(e.Limit, 10) + " bytes"
}

// BodyReadError is returned by RoundTrip when the request body could not be read.
type BodyReadError struct{ Err error }

func (e *BodyReadError) Error() string { return "failover: reading request body: " + e.Err.Error() }
func (e *BodyReadError) Unwrap() error { return e.Err }

var (
	// ErrStreamTruncated: an SSE stream ended before it was complete (SPEC.md section 9): a
	// chat/completions or completions stream before every choice had a finish_reason (and without
	// data: [DONE]), a Responses stream before response.completed, response.incomplete or
	// response.failed.
	ErrStreamTruncated = errors.New("stream ended before it was complete")
	// ErrStreamIdle: no bytes arrived for longer than timeouts.stream_idle.
	ErrStreamIdle = errors.New("stream idle for longer than the idle timeout")
)

// StreamError is what a response body's Read returns when the region fails after the headers
// arrived (reset, idle gap, truncated SSE stream). It is never io.EOF: the caller can tell a
// cut stream from a finished one.
type StreamError struct {
	Region string
	Err    error
}

func (e *StreamError) Error() string {
	return "region " + e.Region + ": stream failed: " + e.Err.Error()
}
func (e *StreamError) Unwrap() error { return e.Err }

// Header names the transport sets on every response.
const (
	HeaderRegion   = "X-Lifeline-Region"
	HeaderAttempts = "X-Lifeline-Attempts"
	// HeaderHedged is "true" on an answer that came from a hedge (policy.hedge).
	HeaderHedged = "X-Lifeline-Hedged"
	// SelfRegion is the x-lifeline-region value of a response the transport made itself.
	SelfRegion = "lifeline"
)

// errorResponse makes a response in the OpenAI error shape. retryable sets x-should-retry: true, for
// the 429 and 503 that say when the regions may serve again (Retry-After, retry-after-ms): SDKs then
// retry after that time. Anything else carries x-should-retry: false, so that SDKs do not multiply
// load after the transport has already tried every region.
func errorResponse(req *http.Request, status int, code, typ, msg string, retryAfter time.Duration, attempts int, retryable bool) *http.Response {
	body := make([]byte, 0, 96+len(msg))
	body = append(body, `{"error":{"code":`...)
	body = appendJSONString(body, code)
	body = append(body, `,"message":`...)
	body = appendJSONString(body, msg)
	body = append(body, `,"type":`...)
	body = appendJSONString(body, typ)
	body = append(body, "}}"...)
	should := "false"
	if retryable {
		should = "true"
	}
	h := http.Header{
		"Content-Type":   {"application/json"},
		"X-Should-Retry": {should},
		HeaderRegion:     {SelfRegion},
		HeaderAttempts:   {strconv.Itoa(attempts)},
	}
	if retryAfter > 0 {
		secs := int64((retryAfter + time.Second - 1) / time.Second)
		h["Retry-After"] = []string{strconv.FormatInt(secs, 10)}
		h["Retry-After-Ms"] = []string{strconv.FormatInt(int64((retryAfter+time.Millisecond-1)/time.Millisecond), 10)}
	}
	return &http.Response{
		Status:        strconv.Itoa(status) + " " + http.StatusText(status),
		StatusCode:    status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       req,
	}
}
