package failover

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// RoundTrip sends req to the most preferred available region that serves the name it asks
// for, retrying and failing over by SPEC.md section 5. It is ParseRequest then Send: the same
// parser and the same refusals as the gateway. It returns an error only when the caller's
// context ended or the request body could not be read or was too large; every other failure
// is a response (the region's own, or one the transport made in the OpenAI error shape). Every
// response carries x-lifeline-region and x-lifeline-attempts.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	r, err := ParseRequest(req, t.tab.Load().policy.MaxBodyBytes)
	if err != nil {
		re := err.(*RequestError)
		var tooLarge *BodyTooLargeError
		var readErr *BodyReadError
		if errors.As(re.Err, &tooLarge) || errors.As(re.Err, &readErr) {
			return nil, re.Err // the caller's own body: an error, as http.Client callers expect
		}
		return re.Response(req), nil
	}
	return t.Send(r)
}

// Send sends a request that ParseRequest read (the gateway parses first, to authorize what it
// read). The models list is answered from the configuration. A request placed with WithPlacement
// goes to its region only (stored objects live where they were created). Realtime opens a session
// (Connect), not a request: Send answers it with 501.
func (t *Transport) Send(r *Request) (*http.Response, error) {
	tab := t.tab.Load()
	req := r.HTTP
	switch {
	case r.Operation == OpModels:
		return ModelsResponse(req, tab.sorted, r.Name), nil
	case !r.spec.served:
		return errorResponse(req, http.StatusNotImplemented, "not_implemented", "invalid_request_error",
			"lifeline: "+r.Route+" opens a WebSocket session, which a request cannot carry", 0, 0, false), nil
	}
	rt := &roundTrip{t: t, tab: tab, p: &tab.policy, req: req, ctx: req.Context(), in: r.in}
	pl, placed := PlacementFrom(rt.ctx) // placement.go
	if placed && pl.Unnamed {
		rt.in.name = ""
	}
	rt.upstream = rt.wantsUpstream() // upstream.go
	cands := tab.candidates(rt.in.name, rt.in.name != "")
	if len(cands) == 0 {
		msg := "lifeline: no region serves the name " + strconv.Quote(rt.in.name) +
			"; known names: " + strings.Join(tab.sorted, ", ")
		return errorResponse(req, http.StatusNotFound, "DeploymentNotFound", "invalid_request_error", msg, 0, 0, false), nil
	}
	if placed {
		if cands = place(cands, pl); len(cands) == 0 {
			msg := "lifeline: region " + strconv.Quote(pl.Region) + " does not serve the name " + strconv.Quote(rt.in.name)
			return errorResponse(req, http.StatusNotFound, "DeploymentNotFound", "invalid_request_error", msg, 0, 0, false), nil
		}
	}
	return rt.run(cands)
}

// roundTrip is one client request on its way through the regions.
type roundTrip struct {
	t   *Transport
	tab *table
	p   *Policy
	req *http.Request
	ctx context.Context
	in  inbound
	// name is the client-visible name being served: the one asked for, or a fallback (Config.Fallbacks).
	name string
	// upstream: a non-streaming request that goes to the regions as a stream and is reassembled (upstream.go).
	upstream   bool
	apiVersion string // the request's api-version, with upstream

	attempts atomic.Int32   // attempts made (a hedge runs on its own goroutine)
	kmu      sync.Mutex     // guards kept: a hedge may keep a 5xx too
	kept     *http.Response // the last region 5xx, returned if nothing better comes
	coolNext time.Time      // soonest end of a cool-down among candidates
	openNext time.Time      // soonest probe of an open region
	cooling  bool
	reasons  []string // why each region did not serve, for the final error

	hmu    sync.Mutex   // guards hstate and hrun
	hstate hedgeState   // this request's hedge
	hgen   int          // timers armed, to tell a stale one
	hrun   *hedge       // the hedge, once started
	winner atomic.Int32 // 1: the attempt waited for won, 2: its hedge did
	skip   *region      // a region a failed hedge already tried

	// With upstream: the early answer of a stream gone quiet mid-way (quiet.go), one per request.
	quietAnswer     atomic.Pointer[quietAnswer]
	quietAnswerUsed atomic.Bool
}

// attemptResult is one attempt's end.
type attemptResult struct {
	resp    *http.Response // final: hand to the caller
	err     error          // final error (caller's context)
	final   bool
	verdict Verdict
	tooLong bool // resp is a 400 context_length_exceeded: a fallback name may take the request
}

// run tries the candidates in order (SPEC.md section 5). When every region that serves the name is
// cooling down after a 429 that ends within Retry.MaxBackoff (and before the caller's deadline), it
// waits for the first to end and goes round once more: a throttle that lasts a second never reaches
// a client whose SDK does not retry.
func (rt *roundTrip) run(cands []*region) (*http.Response, error) {
	rt.name = rt.in.name
	res, final := rt.serveName(cands)
	if final && !res.tooLong {
		return res.resp, res.err
	}
	if len(rt.tab.fallbacks[rt.in.name]) == 0 || rt.ctx.Err() != nil {
		if final {
			return res.resp, nil
		}
		return rt.exhausted()
	}
	return rt.fallBack(res, final)
}

// serveName tries the candidates for the current name, and once more after a short cool-down.
func (rt *roundTrip) serveName(cands []*region) (attemptResult, bool) {
	for round := 0; ; round++ {
		if res, final := rt.pass(cands); final {
			return res, true
		}
		if round > 0 || !rt.waitCoolDown() {
			return attemptResult{}, false
		}
	}
}

// waitCoolDown waits for the soonest cool-down to end when the pass failed only because regions
// are throttled and that end is near; it reports whether a new pass should go.
func (rt *roundTrip) waitCoolDown() bool {
	if !rt.cooling || rt.keptAnswer() || rt.ctx.Err() != nil {
		return false
	}
	wait := rt.coolNext.Sub(rt.t.clock.Now())
	if wait > rt.p.Retry.MaxBackoff {
		return false
	}
	if dl, ok := rt.ctx.Deadline(); ok && time.Until(dl) <= wait {
		return false
	}
	if wait > 0 {
		tm := time.NewTimer(wait)
		defer tm.Stop()
		select {
		case <-tm.C:
		case <-rt.ctx.Done():
			return false
		}
	}
	rt.resetPass()
	return true
}

// resetPass forgets what one pass over the regions learned, before another.
func (rt *roundTrip) resetPass() {
	rt.cooling, rt.coolNext, rt.openNext, rt.reasons, rt.skip = false, time.Time{}, time.Time{}, rt.reasons[:0], nil
}

// pass makes one pass over the candidates; final reports an answer (or the caller's error) to return.
func (rt *roundTrip) pass(cands []*region) (attemptResult, bool) {
	var buf [maxCandidates]*region
	plan := rt.t.order(buf[:0], cands, rt.p, rt.name, rt.t.clock.Now())
	var from *region
	var reason Outcome
	for i, r := range plan {
		if r == rt.skip {
			continue
		}
		tg := r.targets[rt.name]
		for k := 0; k < rt.p.Retry.AttemptsPerRegion; k++ {
			tk, ok := rt.admit(r, tg)
			if !ok {
				break
			}
			if from != nil && from != r {
				rt.t.obs.Failover(FailoverEvent{Name: rt.name, From: from.cfg.Name, To: r.cfg.Name, Reason: reason})
				from = nil
			}
			res := rt.attemptHedged(r, tg, tk, plan[i+1:])
			if res.final && res.resp != nil && rt.upstream {
				res = rt.reassemble(res) // upstream.go: a stream that fails now fails over like any attempt
				res = rt.settleQuietAnswer(res)
			}
			if res.final {
				rt.discardKept()
				return res, true
			}
			from, reason = r, res.verdict.Outcome
			rt.noteCooling(res.verdict)
			if !rt.retryInPlace(res.verdict, k, plan[i+1:], tg) {
				rt.reasons = append(rt.reasons, r.cfg.Name+": "+res.verdict.Outcome.String())
				break
			}
			if err := rt.backoff(k, res.verdict.RetryAfter); err != nil {
				rt.discardKept()
				return attemptResult{err: err}, true
			}
		}
	}
	return attemptResult{}, false
}

// noteCooling records a 429's cool-down for the final answer.
func (rt *roundTrip) noteCooling(v Verdict) {
	if v.Outcome != OutcomeThrottled {
		return
	}
	rt.cooling = true
	d := v.RetryAfter
	if d <= 0 {
		d = DefaultCoolDown
	}
	rt.coolNext = earliest(rt.coolNext, rt.t.clock.Now().Add(d))
}

// note records the failure of an attempt outside the plan's own loop (a hedge).
func (rt *roundTrip) note(r *region, v Verdict) {
	rt.noteCooling(v)
	rt.reasons = append(rt.reasons, r.cfg.Name+": "+v.Outcome.String())
}

// admit checks that r may take an attempt for tg now, and takes a ticket from its breaker (the
// half-open trial, if that is what it takes). A region that may not is noted for the final answer.
func (rt *roundTrip) admit(r *region, tg *target) (ticket, bool) {
	now := rt.t.clock.Now()
	why, until := r.check(tg, now)
	if why == isAvailable {
		if tk, ok := r.h.breaker.acquireKind(now, rt.kind()); ok {
			return tk, true
		}
		why, until = isOpen, r.h.breaker.retryAt()
	}
	switch why {
	case isCooling:
		rt.cooling = true
		rt.coolNext = earliest(rt.coolNext, until)
		rt.reasons = append(rt.reasons, r.cfg.Name+": cooling down after 429")
	case isOpen:
		rt.openNext = earliest(rt.openNext, until)
		rt.reasons = append(rt.reasons, r.cfg.Name+": out of service (breaker open)")
	case isDisabled:
		rt.reasons = append(rt.reasons, r.cfg.Name+": disabled")
	case isBroken:
		rt.openNext = earliest(rt.openNext, until)
		rt.reasons = append(rt.reasons, r.cfg.Name+": deployment marked broken")
	}
	return ticket{}, false
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// retryInPlace decides whether the region that just failed gets another attempt. A timeout, or a
// stream that broke mid-generation, is retried in place only when no other region could take the
// request: a region that did not answer within the timeout, or whose generation broke, would
// likely cost the caller another one.
func (rt *roundTrip) retryInPlace(v Verdict, k int, rest []*region, tg *target) bool {
	if !v.Retry || k+1 >= rt.p.Retry.AttemptsPerRegion {
		return false
	}
	if v.Outcome == OutcomeTimeout || v.Outcome == OutcomeStreamError {
		now := rt.t.clock.Now()
		for _, r := range rest {
			if why, _ := r.check(r.targets[rt.name], now); why == isAvailable {
				return false
			}
		}
	}
	if v.RetryAfter > rt.p.Retry.MaxBackoff {
		return false // the region asks for longer than we wait in place: move on
	}
	if dl, ok := rt.ctx.Deadline(); ok && time.Until(dl) <= v.RetryAfter {
		return false
	}
	return true
}

// backoff waits before retry k+1 in the same region: exponential with full jitter, at least
// the region's hint, never past the caller's deadline (then it returns so the next region
// gets what time is left).
func (rt *roundTrip) backoff(k int, hint time.Duration) error {
	ceil := rt.p.Retry.Backoff << k
	if ceil <= 0 || ceil > rt.p.Retry.MaxBackoff {
		ceil = rt.p.Retry.MaxBackoff
	}
	d := time.Duration(float64n(rt.t.rand) * float64(ceil))
	d = max(d, hint)
	if dl, ok := rt.ctx.Deadline(); ok {
		if left := time.Until(dl); d >= left {
			return nil
		}
	}
	if d <= 0 {
		return rt.ctx.Err()
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return nil
	case <-rt.ctx.Done():
		return rt.ctx.Err()
	}
}

// exhausted is the answer when no region served: the caller's context error, a 429 with the
// shortest cool-down, the last region 5xx, or a 503 naming why each region did not serve.
func (rt *roundTrip) exhausted() (*http.Response, error) {
	if err := rt.ctx.Err(); err != nil {
		rt.discardKept()
		return nil, err
	}
	now := rt.t.clock.Now()
	if rt.cooling {
		rt.discardKept()
		wait := max(rt.coolNext.Sub(now), time.Millisecond)
		msg := "lifeline: every region that serves " + strconv.Quote(rt.name) + " is rate limited; retry after " + wait.Round(time.Millisecond).String()
		return errorResponse(rt.req, http.StatusTooManyRequests, "429", "rate_limit_exceeded", msg, wait, rt.nAttempts(), true), nil
	}
	rt.kmu.Lock()
	resp := rt.kept
	rt.kept = nil
	rt.kmu.Unlock()
	if resp != nil {
		resp.Header.Set("X-Should-Retry", "false")
		resp.Header.Set(HeaderAttempts, strconv.Itoa(rt.nAttempts()))
		resp.Request = rt.req
		return resp, nil
	}
	wait := time.Second
	if !rt.openNext.IsZero() {
		wait = max(rt.openNext.Sub(now), time.Second)
	}
	msg := "lifeline: no region is available"
	if rt.name != "" {
		msg += " for " + strconv.Quote(rt.name)
	}
	if len(rt.reasons) > 0 {
		msg += " (" + strings.Join(rt.reasons, "; ") + ")"
	}
	return errorResponse(rt.req, http.StatusServiceUnavailable, "service_unavailable", "server_error", msg, wait, rt.nAttempts(), true), nil
}

func (rt *roundTrip) discardKept() {
	rt.kmu.Lock()
	defer rt.kmu.Unlock()
	if rt.kept != nil {
		rt.kept.Body.Close()
		rt.kept = nil
	}
}

func (rt *roundTrip) nAttempts() int { return int(rt.attempts.Load()) }

func (rt *roundTrip) keptAnswer() bool {
	rt.kmu.Lock()
	defer rt.kmu.Unlock()
	return rt.kept != nil
}

// keep holds a region's 5xx answer (body read into memory) as the fallback answer.
func (rt *roundTrip) keep(r *region, resp *http.Response) {
	b, _ := readPrefix(resp.Body, 64<<10)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(b))
	resp.ContentLength = int64(len(b))
	resp.Header.Del("Content-Length")
	resp.Header.Set(HeaderRegion, r.cfg.Name)
	rt.kmu.Lock()
	if rt.kept != nil {
		rt.kept.Body.Close()
	}
	rt.kept = resp
	rt.kmu.Unlock()
}

// build makes the outgoing request for region r: its host and path shape, its deployment
// name, its credential; the caller's credential never leaves.
// With upstream, the body is the streaming form of the request (upstream.go).
func (rt *roundTrip) build(ctx context.Context, r *region, tg *target, upstream bool) (*http.Request, error) {
	in := &rt.in
	dep, body := "", in.body
	if tg != nil {
		dep = tg.deployment
		body = in.rewriteBody(tg.deployment, tg.quoted)
	}
	if upstream {
		body = streamForm(in.op, body)
	}
	h := outboundHeader(rt.req.Header)
	if err := r.cred.apply(ctx, h); err != nil {
		return nil, fmt.Errorf("region %s: %w", r.cfg.Name, err)
	}
	out := &http.Request{
		Method:     rt.req.Method,
		URL:        &url.URL{Scheme: r.url.scheme, Host: r.url.host, Path: in.targetPath(r.url.prefix, dep), RawQuery: in.targetQuery(dep)},
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     h,
		Host:       r.url.host,
	}
	if len(body) > 0 {
		out.ContentLength = int64(len(body))
		out.Body = replayBody(body)
		out.GetBody = func() (io.ReadCloser, error) { return replayBody(body), nil }
	}
	return out.WithContext(ctx), nil
}

// replayBody is a request body that can be sent again. It must stay an io.NopCloser around a
// *bytes.Reader: net/http writes the headers and a body it knows is in memory in one write; for
// any other body it flushes the headers alone first, a second syscall and TCP segment.
func replayBody(b []byte) io.ReadCloser { return io.NopCloser(bytes.NewReader(b)) }

// outboundHeader copies the caller's headers without what must not reach a region: its
// credentials, hop-by-hop headers (and those its Connection names), framing, Expect, and
// Accept-Encoding (the engine reads answers: SSE completeness, usage). Values are shared, not
// copied: nothing downstream writes to them.
func outboundHeader(src http.Header) http.Header {
	h := make(http.Header, len(src)+1)
	for k, v := range src {
		if ck := http.CanonicalHeaderKey(k); hopByHop(ck) || clientOnly(ck) {
			continue // (a library caller's header map may hold keys that are not canonical)
		}
		h[k] = v
	}
	for _, v := range src["Connection"] {
		for f := range strings.SplitSeq(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				delete(h, http.CanonicalHeaderKey(f))
			}
		}
	}
	return h
}

// HopByHop reports whether the header named k (canonical form) is meaningful for one
// connection only (RFC 9110 section 7.6.1), so that a proxy must not forward it. It is the one
// list the engine and the gateway use.
func HopByHop(k string) bool { return hopByHop(k) }

func hopByHop(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// clientOnly reports whether a request header is the client's own business: a credential for
// the gateway, the body's framing (the engine sets its own), Expect, Accept-Encoding.
func clientOnly(k string) bool {
	switch k {
	case "Api-Key", "Authorization", "Ocp-Apim-Subscription-Key", "Cookie", "Content-Length", "Host", "Expect",
		"Accept-Encoding":
		return true
	}
	return false
}

// scrubResponseHeader removes from a region's answer what must not reach the caller:
// hop-by-hop headers (and those its Connection names) and cookies that bind to the region.
func scrubResponseHeader(h http.Header) {
	for _, v := range h["Connection"] {
		for f := range strings.SplitSeq(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				delete(h, http.CanonicalHeaderKey(f))
			}
		}
	}
	for k := range h {
		if ck := http.CanonicalHeaderKey(k); hopByHop(ck) || ck == "Set-Cookie" {
			delete(h, k)
		}
	}
}
