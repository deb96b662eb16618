package failover

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
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
	// ErrStreamQuiet: no bytes arrived for longer than the quiet bound, in a deployment seen stalling or
	// while an early resume in another region answered (docs/failover.md, Timeouts and streams). It is
	// an ErrStreamIdle too (errors.Is).
	ErrStreamQuiet = fmt.Errorf("%w: quiet past the quiet bound while the region was seen stalling or another region answered", ErrStreamIdle)
)

// StreamError is what a response body's Read returns when the region fails after the headers
// arrived (reset, idle gap, truncated SSE stream). It is never io.EOF: the caller can tell a
// cut stream from a finished one.
type StreamError struct {
	Region string
	Err    error
	// Resume says what a resume of the stream came to (policy.streams.resume), "" when none was tried:
	// "diverged in westus: ...", "no_region: ...", "not resumed: ...".
	Resume string
}

func (e *StreamError) Error() string {
	s := "region " + e.Region + ": stream failed: " + e.Err.Error()
	if e.Resume != "" {
		s += "; resume: " + e.Resume
	}
	return s
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

// ErrorBody is the OpenAI error shape: {"error":{"code":CODE,"message":MSG,"type":TYPE}}.
func ErrorBody(code, typ, msg string) []byte {
	body := make([]byte, 0, 96+len(msg))
	body = append(body, `{"error":{"code":`...)
	body = appendJSONString(body, code)
	body = append(body, `,"message":`...)
	body = appendJSONString(body, msg)
	body = append(body, `,"type":`...)
	body = appendJSONString(body, typ)
	return append(body, "}}"...)
}

// WriteError answers w with an error Lifeline made itself, in the OpenAI shape, marked with
// x-lifeline-region: lifeline and x-lifeline-attempts: 0. A positive retryAfter sets Retry-After
// and retry-after-ms, which the OpenAI SDKs honour.
func WriteError(w http.ResponseWriter, status int, code, typ, msg string, retryAfter time.Duration) {
	body := ErrorBody(code, typ, msg)
	h := w.Header()
	h["Content-Type"] = []string{"application/json"}
	h[HeaderRegion] = []string{SelfRegion}
	h[HeaderAttempts] = []string{"0"}
	setRetryAfter(h, retryAfter)
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(status)
	w.Write(body)
}

func setRetryAfter(h http.Header, d time.Duration) {
	if d <= 0 {
		return
	}
	secs := int64((d + time.Second - 1) / time.Second)
	h["Retry-After"] = []string{strconv.FormatInt(secs, 10)}
	h["Retry-After-Ms"] = []string{strconv.FormatInt(int64((d+time.Millisecond-1)/time.Millisecond), 10)}
}

// errorResponse makes a response in the OpenAI error shape. retryable sets x-should-retry: true, for
// the 429 and 503 that say when the regions may serve again (Retry-After, retry-after-ms): SDKs then
// retry after that time. Anything else carries x-should-retry: false, so that SDKs do not multiply
// load after the transport has already tried every region.
func errorResponse(req *http.Request, status int, code, typ, msg string, retryAfter time.Duration, attempts int, retryable bool) *http.Response {
	body := ErrorBody(code, typ, msg)
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
	setRetryAfter(h, retryAfter)
	return selfResponse(req, status, h, body)
}

func selfResponse(req *http.Request, status int, h http.Header, body []byte) *http.Response {
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

// ModelsResponse answers the models list (SPEC.md section 4) with names, in the OpenAI list
// shape; with id, the one model of that name (404 model_not_found when names does not hold it).
// The gateway passes the names a client may use.
func ModelsResponse(req *http.Request, names []string, id string) *http.Response {
	var body []byte
	if id == "" {
		body = append(body, `{"object":"list","data":[`...)
		for i, n := range names {
			if i > 0 {
				body = append(body, ',')
			}
			body = appendModel(body, n)
		}
		body = append(body, "]}"...)
	} else if slices.Contains(names, id) {
		body = appendModel(body, id)
	} else {
		return errorResponse(req, http.StatusNotFound, "model_not_found", "invalid_request_error", "lifeline: no region serves the requested model", 0, 0, false)
	}
	h := http.Header{"Content-Type": {"application/json"}, HeaderRegion: {SelfRegion}, HeaderAttempts: {"0"}}
	if req.Method == http.MethodHead {
		resp := selfResponse(req, http.StatusOK, h, nil)
		h["Content-Length"] = []string{strconv.Itoa(len(body))}
		return resp
	}
	return selfResponse(req, http.StatusOK, h, body)
}

func appendModel(b []byte, name string) []byte {
	b = append(b, `{"id":`...)
	b = appendJSONString(b, name)
	return append(b, `,"object":"model","created":0,"owned_by":"lifeline"}`...)
}
