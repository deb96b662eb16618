package failover

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// attempt is one request sent to one region.
type attempt struct {
	rt     *roundTrip
	r      *region
	tg     *target
	tk     ticket // from the region's breaker; done exactly once, by end
	n      int
	start  time.Time
	ctx    context.Context
	cancel context.CancelCauseFunc
	timer  *time.Timer
	ended  atomic.Bool
	hedge  bool // started as the hedge of another attempt
	// resumeFrom is the region whose broken stream this attempt resumes ("" for others); transform
	// changes the body the region gets (a prefill), nil for none.
	resumeFrom string
	transform  func([]byte) ([]byte, error)
	trace      func(AttemptResult) // the tracer's end of the attempt's span, nil without one
	// unwait stops the attempt's watch on its region's breaker (it leaves when the breaker opens
	// before its first byte came).
	unwait func() bool
	// upstream: the request is not streaming but goes to the region as a stream, to be reassembled
	// (upstream.go); false once the region refused the streamed form.
	upstream bool
}

// errorPeek is how much of a 404 body is read to tell DeploymentNotFound from other 404s.
const errorPeek = 4 << 10

// streamPeek is the buffer for the first bytes of a stream, read before the response is
// handed over so that a region that stalls before its first event can still be failed over;
// jsonPeek the same for an answer that is not a stream.
const (
	streamPeek = 2 << 10
	jsonPeek   = 512
)

// peekBufs are the buffers of a stream's first bytes. Every streamed attempt that delivers takes one (with
// policy.stream_upstream that is every chat request); its stream body gives it back once the caller has
// read those bytes.
var peekBufs = sync.Pool{New: func() any { b := make([]byte, streamPeek); return &b }}

// newAttempt starts accounting an attempt in r (the observers hear of it now) and arms its timeout.
func (rt *roundTrip) newAttempt(r *region, tg *target, tk ticket, hedge bool) *attempt {
	t := rt.t
	n := int(rt.attempts.Add(1))
	a := &attempt{rt: rt, r: r, tg: tg, tk: tk, n: n, start: t.clock.Now(), hedge: hedge, upstream: rt.upstreamFor(tg)}
	a.ctx, a.cancel = context.WithCancelCause(rt.ctx)
	timeout := rt.p.Timeouts.Response
	if a.streamed() {
		timeout = rt.p.Timeouts.StreamFirstByte
	}
	a.timer = time.AfterFunc(timeout, func() { a.cancel(ErrAttemptTimeout) })
	r.h.inflight.Add(1)
	r.h.attempts.Add(1)
	a.unwait = context.AfterFunc(r.h.waiting(), func() { a.cancel(errRegionOpened) })
	return a
}

// streamed reports whether attempts of this request are streams (first-byte and idle deadlines).
func (rt *roundTrip) streamed() bool { return rt.in.stream || rt.upstream }

// streamed reports whether this attempt is a stream.
func (a *attempt) streamed() bool { return a.rt.in.stream || a.upstream }

// kind is the kind of this request's attempts, for the breaker's counts.
func (rt *roundTrip) kind() int {
	if rt.streamed() {
		return kindStreamed
	}
	return kindOther
}

// run sends the attempt and classifies what came back.
func (a *attempt) run() attemptResult {
	rt, r, t := a.rt, a.r, a.rt.t
	start := AttemptStart{Region: r.cfg.Name, Name: rt.name, Attempt: a.n, Probe: a.tk.trial != 0, Hedge: a.hedge,
		ResumeFrom: a.resumeFrom}
	t.obs.AttemptStarted(start)
	resp, err := a.send(start)
	if err == nil && a.upstream {
		resp, err = a.unlessRefused(resp, start) // upstream.go
	}
	if err != nil {
		return a.fail(err)
	}
	sig := Signal{Status: resp.StatusCode, Header: resp.Header, Now: t.clock.Now()}
	if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusBadRequest {
		b, _ := readPrefix(resp.Body, errorPeek)
		sig.Body = b
		resp.Body = &prefixedBody{prefix: b, ReadCloser: resp.Body}
	}
	v := Classify(sig)
	switch {
	case !v.Final():
		return a.failed(v, resp)
	case resp.StatusCode >= 400:
		res := a.passThrough(v, resp)
		res.tooLong = resp.StatusCode == http.StatusBadRequest && ErrorCode(sig.Body) == contextTooLong
		return res
	}
	return a.deliver(resp)
}

// send builds the request for the attempt's region and sends it.
func (a *attempt) send(start AttemptStart) (*http.Response, error) {
	out, err := a.rt.build(a.ctx, a.r, a.tg, a.upstream)
	if err == nil && a.transform != nil {
		err = transformBody(out, a.transform)
	}
	if err != nil {
		return nil, err
	}
	if t := a.rt.t; t.tracer != nil && a.trace == nil {
		a.trace = t.tracer.StartAttempt(out, start)
	}
	return a.r.rt.RoundTrip(out)
}

// deliver hands a good response to the caller. It first waits for the first bytes of the body,
// within the attempt's timeout (a stream's first-byte timeout), so that a region that sends its
// headers and then stalls can still be left (and hedged: a hedge races to the first byte). The
// attempt ends when the body does: a stream only counts as a success once it is complete.
func (a *attempt) deliver(resp *http.Response) attemptResult {
	// A stream's first bytes go into a pooled buffer (its stream body gives it back once the caller has
	// read them); an answer that is not a stream peeks into a small one that its body keeps.
	var peek *[]byte
	var buf []byte
	if a.streamed() {
		peek = peekBufs.Get().(*[]byte)
		buf = *peek
	} else {
		buf = make([]byte, jsonPeek)
	}
	var n int
	var err error
	for n == 0 && err == nil {
		n, err = resp.Body.Read(buf)
	}
	if n == 0 && (err != io.EOF || a.streamed()) {
		if peek != nil {
			peekBufs.Put(peek)
		}
		resp.Body.Close()
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return a.fail(err)
	}
	first := buf[:n]
	a.stopWaiting() // the first byte came: the region answered
	if !a.timer.Stop() && context.Cause(a.ctx) == ErrAttemptTimeout {
		resp.Body.Close()
		return a.fail(ErrAttemptTimeout)
	}
	lat := a.rt.t.clock.Now().Sub(a.start)
	a.r.h.observeLatency(lat)
	if a.tg != nil {
		a.tg.state.sketch(a.streamed()).add(lat)
	}
	a.label(resp)
	if isEventStream(resp.Header) && resp.Header.Get("Content-Encoding") == "" {
		n := choicesWanted(a.rt.in.body)
		tk := newTracker(a.rt.in.op, n)
		sb := newStreamBody(a, resp.Body, resp.StatusCode, lat, nil, tk)
		sb.peek = peek
		if ct, ok := tk.(*choicesTracker); ok && a.resumeFrom == "" && a.rt.resumable() {
			ct.log = newReplayLog(ct.want, a.rt.p.Streams.Resume == ResumePrefill)
			if wantsLogprobs(a.rt.in.body) {
				ct.log.broken = "the request asks for logprobs, which a resumed answer could not match"
			}
			sb.feed(first)
			rb := &resumingBody{rt: a.rt, cur: sb, src: sb, track: ct, region: a.r}
			if a.rt.hedging() {
				sb.onQuiet = func(read int64) { rb.startQuiet(sb, read) } // quiet.go
			}
			resp.Body = rb
		} else {
			sb.feed(first)
			if a.upstream && !a.rt.in.stream && a.rt.hedging() {
				sb.onQuiet = func(read int64) { a.rt.startQuietAnswer(sb, read) } // quiet.go
			}
			resp.Body = sb
		}
	} else {
		if len(first) > 0 {
			resp.Body = &prefixedBody{prefix: first, ReadCloser: resp.Body}
		}
		resp.Body = newJSONBody(a, resp.Body, resp.StatusCode, lat)
	}
	return attemptResult{resp: resp, final: true}
}

// passThrough hands a region's 4xx answer to the caller as it is. The attempt's timeout keeps
// running until the caller closes the body, so a region that stalls mid-body cannot hang it.
func (a *attempt) passThrough(v Verdict, resp *http.Response) attemptResult {
	lat := a.rt.t.clock.Now().Sub(a.start)
	a.r.h.observeLatency(lat)
	a.end(v, resp.StatusCode, lat, nil)
	a.label(resp)
	resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: a.cancel, timer: a.timer}
	return attemptResult{resp: resp, final: true}
}

// failed handles a response that sends the request on (5xx, 429, 404 DeploymentNotFound, 401, 403).
func (a *attempt) failed(v Verdict, resp *http.Response) attemptResult {
	lat := a.rt.t.clock.Now().Sub(a.start)
	// The body is read within the attempt's timeout: a region that stalls mid-body cannot hang us.
	if v.Outcome == OutcomeServerError {
		a.rt.keep(a.r, resp)
	} else {
		drain(resp.Body)
	}
	a.timer.Stop()
	a.r.h.observeLatency(lat)
	a.end(v, resp.StatusCode, lat, nil)
	a.cancel(nil)
	return attemptResult{verdict: v}
}

// fail handles an attempt that got no usable response.
func (a *attempt) fail(err error) attemptResult {
	a.timer.Stop()
	switch cause := context.Cause(a.ctx); {
	case a.rt.ctx.Err() != nil:
		err = a.rt.ctx.Err()
	case cause == ErrAttemptTimeout, cause == errLostBySilence, cause == errRegionOpened:
		err = fmt.Errorf("region %s: %w", a.r.cfg.Name, cause)
	case cause == errHedgeSettled, cause == errResumeTimeout:
		err = cause
	}
	a.cancel(nil)
	now := a.rt.t.clock.Now()
	lat := now.Sub(a.start)
	v := Classify(Signal{Err: err, Now: now, Waited: lat, AbandonAfter: a.abandonAfter()})
	if client, ok := ClientFromContext(a.rt.ctx); ok && v.Outcome == OutcomeAbandoned && !a.r.h.abandons.count(client, now, a.rt.p.Breaker) {
		v = Verdict{Outcome: OutcomeCanceled} // beyond this client's share of the evidence (abandon.go)
	}
	if v.Outcome == OutcomeTimeout {
		// Not for an abandoned attempt: its wait is the caller's patience, and it would raise the very
		// latency that abandonment is measured against.
		a.r.h.observeLatency(lat)
	}
	a.end(v, 0, lat, err)
	if v.Outcome == OutcomeCanceled || v.Outcome == OutcomeAbandoned {
		return attemptResult{final: true, err: err, verdict: v}
	}
	return attemptResult{verdict: v}
}

// abandonAfter is the wait from which the caller giving up counts against the region: the
// policy's AbandonedAfter, or AbandonedFactor times the region's usual latency if that is longer.
func (a *attempt) abandonAfter() time.Duration {
	floor := a.rt.p.Breaker.AbandonedAfter
	if floor < 0 {
		return 0
	}
	return max(floor, AbandonedFactor*a.r.h.latency())
}

// end is the one place an attempt's end is accounted, exactly once: the breaker's ticket (which
// decides what the outcome means for the region's health), the deployment's cool-down or broken
// mark, and the observers. It reports whether this call ended the attempt.
func (a *attempt) end(v Verdict, status int, lat time.Duration, err error) bool {
	if !a.ended.CompareAndSwap(false, true) {
		return false
	}
	a.stopWaiting()
	now := a.rt.t.clock.Now()
	a.tk.done(now, v)
	a.markDeployment(v, now)
	a.r.h.inflight.Add(-1)
	res := AttemptResult{
		Region: a.r.cfg.Name, Name: a.rt.name, Attempt: a.n, Outcome: v.Outcome, Status: status,
		Latency: lat, Duration: now.Sub(a.start), RetryAfter: v.RetryAfter, Err: err,
	}
	a.rt.t.obs.AttemptFinished(res)
	if a.trace != nil {
		a.trace(res)
	}
	return true
}

// markDeployment applies a deployment-scoped failure: a cool-down after 429, or the pair marked
// broken after 404 DeploymentNotFound, 401 or 403.
func (a *attempt) markDeployment(v Verdict, now time.Time) {
	if v.Scope != ScopeDeployment || a.tg == nil {
		return
	}
	st := a.tg.state
	if v.Outcome == OutcomeThrottled {
		d := v.RetryAfter
		if d <= 0 {
			d = DefaultCoolDown
		}
		extend(&st.coolUntil, now.Add(d).UnixNano())
		return
	}
	st.brokenBy.Store(int32(v.Outcome))
	extend(&st.brokenUntil, now.Add(a.rt.p.Breaker.OpenFor).UnixNano())
}

var hedgedTrue = []string{"true"}

// stopWaiting ends the attempt's watch on its region's breaker (attempts made elsewhere than
// newAttempt, such as a Realtime session's, have none).
func (a *attempt) stopWaiting() {
	if a.unwait != nil {
		a.unwait()
	}
}

// label sets x-lifeline-region, x-lifeline-attempts (attempts made so far) and, for an answer from a
// hedge, x-lifeline-hedged, and points the response at the
// caller's request: the region's URL and credential stay inside the transport.
func (a *attempt) label(resp *http.Response) {
	resp.Request = a.rt.req
	if resp.Header == nil {
		resp.Header = http.Header{}
	}
	scrubResponseHeader(resp.Header)
	resp.Header[HeaderRegion] = a.r.label
	resp.Header[HeaderAttempts] = []string{strconv.Itoa(int(a.rt.attempts.Load()))}
	if a.hedge {
		resp.Header[HeaderHedged] = hedgedTrue
	}
}

// drain reads a little of a discarded body so that its connection can be reused, then closes it.
func drain(b io.ReadCloser) {
	io.CopyN(io.Discard, b, 4<<10)
	b.Close()
}

// prefixedBody returns prefix, then the rest of the body.
type prefixedBody struct {
	prefix []byte
	io.ReadCloser
}

func (p *prefixedBody) Read(b []byte) (int, error) {
	if len(p.prefix) > 0 {
		n := copy(b, p.prefix)
		p.prefix = p.prefix[n:]
		return n, nil
	}
	return p.ReadCloser.Read(b)
}

// cancelOnClose ends the attempt's context when the caller closes the body.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelCauseFunc
	timer  *time.Timer
}

func (c *cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.timer.Stop()
	c.cancel(nil)
	return err
}

func isEventStream(h http.Header) bool {
	return strings.HasPrefix(h.Get("Content-Type"), "text/event-stream")
}
