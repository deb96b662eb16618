package failover

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
)

// Upstream streaming (Policy.StreamUpstream): what is sent as a stream, and the answer it is read back into.
//
// A non-streaming chat/completions, completions or responses request goes to its region with "stream": true
// (and, for the two chat-style operations, stream_options.include_usage, so that the usage comes too), unless it
// asks for something a stream cannot give the way the non-streaming answer has it. Those go as they came:
//
//   - chat/completions with audio output (`audio`, or "audio" in `modalities`): a streamed answer carries its
//     audio as pcm16 pieces only, whatever format was asked for, so the non-streaming `message.audio` cannot be
//     rebuilt from it;
//   - chat/completions with Azure `data_sources` (On Your Data): its citations and intent come in a streamed
//     `context` whose reassembly into `message.context` is not documented;
//   - completions with `best_of` above 1: the service cannot stream those ("results cannot be streamed");
//   - responses with `background: true`: without streaming the answer is the queued response at once, with
//     streaming it would wait for the generation;
//   - any request that carries `stream_options` although it does not stream: the region's answer to that is
//     its own (Azure refuses it), and must stay so;
//   - a body that is not a JSON object.
//
// A region that refuses the streamed form (an api-version before 2024-09-01-preview answers 400 "Unrecognized
// request argument supplied: stream_options"; a model that cannot stream answers 400 with param "stream") gets
// the request again as it came, and its deployment is remembered so that later requests go as they came.

// upstreamOps are the operations whose non-streaming answer can be streamed and reassembled.
var upstreamOps = map[string]bool{"chat/completions": true, "completions": true, "responses": true}

// streamRequest returns the streaming form of a non-streaming request body of op, or ok false when the request
// must go as it came.
func streamRequest(op string, body []byte) (out []byte, ok bool) {
	if !upstreamOps[op] || !canStream(op, body) {
		return nil, false
	}
	out, err := sjson.SetRawBytes(bytes.Clone(body), "stream", []byte("true"))
	if err != nil {
		return nil, false
	}
	if op != "responses" {
		if out, err = sjson.SetRawBytes(out, "stream_options", []byte(`{"include_usage":true}`)); err != nil {
			return nil, false
		}
	}
	return out, true
}

// canStream reports whether a non-streaming request of op may go as a stream (see above).
func canStream(op string, body []byte) bool {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' || !gjson.ValidBytes(body) {
		return false
	}
	r := gjson.ParseBytes(body)
	if s := r.Get("stream"); s.Type == gjson.True || (s.Exists() && s.Type != gjson.False && s.Type != gjson.Null) {
		return false
	}
	if r.Get("stream_options").Exists() {
		return false
	}
	switch op {
	case "chat/completions":
		if a := r.Get("audio"); a.Exists() && a.Type != gjson.Null {
			return false
		}
		audio := false
		r.Get("modalities").ForEach(func(_, m gjson.Result) bool {
			audio = m.Str == "audio"
			return !audio
		})
		if audio {
			return false
		}
		if d := r.Get("data_sources"); d.Exists() && d.Type != gjson.Null {
			return false
		}
	case "completions":
		if b := r.Get("best_of"); b.Type == gjson.Number && b.Int() > 1 {
			return false
		}
	case "responses":
		if r.Get("background").Type == gjson.True {
			return false
		}
	}
	return true
}

// refusesStreaming reports whether a region's error answer to a streamed request refuses the streaming form
// itself (so that the request should go again as it came): a 400 or 403 whose error names stream or
// stream_options.
func refusesStreaming(status int, body []byte) bool {
	if status != http.StatusBadRequest && status != http.StatusForbidden {
		return false
	}
	e := gjson.GetBytes(body, "error")
	if !e.Exists() {
		e = gjson.ParseBytes(body) // {"message": "Streaming requests are not yet allowed."}
	}
	switch e.Get("param").Str {
	case "stream", "stream_options":
		return true
	}
	msg := strings.ToLower(e.Get("message").Str)
	return strings.Contains(msg, "stream_options") || strings.Contains(msg, "streaming") ||
		strings.Contains(msg, "'stream'") || strings.Contains(msg, "stream is not supported")
}

// reassembled turns a region's streamed response into the non-streaming one: the same status and headers,
// the JSON body, its Content-Type and Content-Length.
func reassembled(resp *http.Response, body []byte) *http.Response {
	h := resp.Header.Clone()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Del("Transfer-Encoding")
	out := *resp
	out.Header = h
	out.Body = http.NoBody
	if len(body) > 0 {
		out.Body = nopCloser{bytes.NewReader(body)}
	}
	out.ContentLength = int64(len(body))
	out.TransferEncoding = nil
	return &out
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

// streamUpstream reports whether the policy streams non-streaming requests (the default).
func (p *Policy) streamUpstream() bool { return p.StreamUpstream == nil || *p.StreamUpstream }

// wantsUpstream decides, once per request, whether it goes to the regions as a stream.
func (rt *roundTrip) wantsUpstream() bool {
	in := &rt.in
	if !rt.p.streamUpstream() || in.stream || in.multipart || in.name == "" || rt.req.Method != http.MethodPost {
		return false
	}
	if !canStream(in.op, in.body) || !upstreamOps[in.op] {
		return false
	}
	rt.apiVersion = rt.req.URL.Query().Get("api-version")
	return true
}

// upstreamFor reports whether an attempt for tg sends the streamed form: not to a deployment that refused it
// for this api-version.
func (rt *roundTrip) upstreamFor(tg *target) bool {
	return rt.upstream && (tg == nil || !tg.state.noStream.has(rt.apiVersion, rt.t.clock.Now()))
}

// streamForm is the streamed form of a body that canStream accepted (the body itself if it cannot be made).
func streamForm(op string, body []byte) []byte {
	if out, ok := streamRequest(op, body); ok {
		return out
	}
	return body
}

// noStreamFor is how long a deployment that refused the streamed form gets requests as they came before it is
// asked again (its api-version may be upgraded, its model replaced).
const noStreamFor = time.Hour

// noStreamSet holds the api-versions for which a deployment refused the streamed form, each until a time.
type noStreamSet struct {
	mu    sync.Mutex
	until map[string]time.Time
}

// maxNoStream bounds the api-versions remembered per deployment.
const maxNoStream = 16

func (s *noStreamSet) has(version string, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.until[version]
	return ok && now.Before(u)
}

func (s *noStreamSet) add(version string, until time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.until == nil || len(s.until) >= maxNoStream {
		s.until = map[string]time.Time{}
	}
	s.until[version] = until
}

// unlessRefused returns the region's response to the streamed form, or, when the region refused that form,
// its response to the request as it came: the same attempt, with the non-streaming deadline, and the
// deployment remembered for this api-version.
func (a *attempt) unlessRefused(resp *http.Response, start AttemptStart) (*http.Response, error) {
	if resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusForbidden {
		return resp, nil
	}
	b, _ := readPrefix(resp.Body, errorPeek)
	if !refusesStreaming(resp.StatusCode, b) {
		resp.Body = &prefixedBody{prefix: b, ReadCloser: resp.Body}
		return resp, nil
	}
	drain(resp.Body)
	now := a.rt.t.clock.Now()
	if a.tg != nil {
		a.tg.state.noStream.add(a.rt.apiVersion, now.Add(noStreamFor))
	}
	a.upstream = false
	if !a.timer.Stop() && context.Cause(a.ctx) == ErrAttemptTimeout {
		return nil, ErrAttemptTimeout
	}
	a.timer.Reset(a.rt.p.Timeouts.Response - now.Sub(a.start))
	return a.send(start)
}

// reassemble reads the winner's stream into the non-streaming answer. A stream that breaks, goes idle, ends
// early, carries an error event or an event that is not JSON is a failed attempt of its region: the request
// goes on to the next one before the caller has seen a byte. A region that answered JSON to the streamed
// form (some OpenAI-compatible servers ignore "stream") is passed on as it is.
func (rt *roundTrip) reassemble(res attemptResult) attemptResult {
	body, ok := res.resp.Body.(*streamBody)
	if !ok {
		return res
	}
	a := body.a
	out, err := reassemble(rt.in.op, body, choicesWanted(rt.in.body), int(min(rt.p.MaxBodyBytes, 1<<31-1)))
	if err == nil {
		body.Close()
		return attemptResult{resp: reassembled(res.resp, out), final: true}
	}
	var se *StreamError
	var ans *regionAnswer
	switch {
	case rt.ctx.Err() != nil:
		body.Close()
		return attemptResult{final: true, err: rt.ctx.Err(), verdict: Verdict{Outcome: OutcomeCanceled}}
	case errors.As(err, &se):
		body.Close() // the body has counted the failure against the region
		return attemptResult{verdict: Verdict{Outcome: OutcomeStreamError, Scope: ScopeRegion, Retry: true, FailOver: true}}
	case errors.As(err, &ans):
		// The region refused the request in its stream: the caller gets the 400 it would have got without it.
		v := Verdict{Outcome: OutcomeClientError}
		a.end(v, body.status, body.latency, nil)
		a.cancel(nil)
		body.Close()
		resp := reassembled(res.resp, ans.body)
		resp.StatusCode, resp.Status = http.StatusBadRequest, "400 Bad Request"
		return attemptResult{resp: resp, final: true, verdict: v, tooLong: ans.code == contextTooLong}
	case errors.Is(err, errNoUsage), errors.Is(err, errReassemblyTooLarge):
		// The region answered, but this answer cannot come as a stream: ask for it again as it came.
		a.end(Verdict{Outcome: OutcomeOK}, body.status, body.latency, nil)
		a.cancel(nil)
		body.Close()
		if errors.Is(err, errNoUsage) && a.tg != nil {
			a.tg.state.noStream.add(rt.apiVersion, rt.t.clock.Now().Add(noStreamFor))
		} else {
			rt.upstream = false // for this request only: it is the answer that is too large
		}
		return attemptResult{verdict: Verdict{Outcome: OutcomeOK, Retry: true}}
	}
	v := Verdict{Outcome: OutcomeStreamError, Scope: ScopeRegion, Retry: true, FailOver: true}
	a.end(v, body.status, body.latency, &StreamError{Region: a.r.cfg.Name, Err: err})
	a.cancel(nil)
	body.Close()
	return attemptResult{verdict: v}
}
