package failover

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Sessions: connections that outlive a request, such as the Realtime API over WebSocket. The engine chooses the
// region (and fails over) while the connection is being set up, exactly as for a request; once the session is
// open, nothing can move it, and a region that fails it is counted against that region when the session ends.

// Upstream is one region offered to a session's dialer.
type Upstream struct {
	Region string
	// URL is the region's URL for the session: its endpoint, the client's path shape, and the query with the
	// deployment (or model) mapped to the region's deployment and no client credential. Scheme http or https.
	URL *url.URL
	// Header carries the region's credential (api-key or an Entra bearer token), to send with the handshake.
	Header http.Header
}

// DialFunc opens a session to one region. It returns the handshake's response when the region answered (for a
// WebSocket, resp.StatusCode is 101 on success), or an error when it could not connect.
type DialFunc func(ctx context.Context, u Upstream) (*http.Response, error)

// Session is an open session: the region that serves it, and End to account for how it ended.
type Session struct {
	Region string
	// Attempts is the number of regions tried (dials made).
	Attempts int
	rt       *roundTrip
	r        *region
	tg       *target
	ended    bool
}

// End records how the session ended: nil for an end the region did not cause (the client closed it), an error
// when the region failed it (the connection broke or the region closed it abnormally). The handshake counted as
// a success for the region when it opened; a failure during the session counts against the region as a broken
// stream does.
func (s *Session) End(regionErr error) {
	if s == nil || s.ended || regionErr == nil {
		return
	}
	s.ended = true
	now := s.rt.t.clock.Now()
	tk, ok := s.r.h.breaker.acquire(now)
	if !ok {
		return // already out of service: nothing more to learn
	}
	s.r.h.inflight.Add(1)
	a := &attempt{rt: s.rt, r: s.r, tg: s.tg, tk: tk, n: s.Attempts, start: now}
	a.end(Verdict{Outcome: OutcomeStreamError, Scope: ScopeRegion}, http.StatusSwitchingProtocols, 0, regionErr)
}

// ErrNoRegion is returned by Connect when no region could open the session; it is a *ConnectError.
var ErrNoRegion = errors.New("failover: no region could open the session")

// ConnectError says why Connect could not open a session. Resp, when set, is a region's own final answer to the
// handshake (a 4xx such as 400 or 404 for a bad request), to pass to the client as it is.
type ConnectError struct {
	Resp       *http.Response
	Status     int           // the status to answer when Resp is nil: 404 unknown name, 429 or 503
	RetryAfter time.Duration // for 429 and 503
	Message    string
}

func (e *ConnectError) Error() string { return e.Message }
func (e *ConnectError) Unwrap() error { return ErrNoRegion }

// Connect opens a session for the client request req (a Realtime WebSocket upgrade): it is
// ParseRequest then ConnectRequest, as RoundTrip is ParseRequest then Send. A request that is not
// a Realtime route, or that the request model refuses, is a *ConnectError with the refusal's status.
func (t *Transport) Connect(req *http.Request, dial DialFunc) (*Session, error) {
	r, err := ParseRequest(req, t.tab.Load().policy.MaxBodyBytes)
	if err != nil {
		re := err.(*RequestError)
		return nil, &ConnectError{Status: re.Status, Message: re.Message}
	}
	return t.ConnectRequest(r, dial)
}

// ConnectRequest opens a session for a Realtime request that ParseRequest read: it tries the
// regions that serve its name (from the query: `deployment` on /openai/realtime, `model` on
// /openai/v1/realtime and /v1/realtime) in the engine's order, by the rules of requests: an
// unavailable region is skipped, a failed dial counts against its region and the next one is
// tried. dial gets each region in turn.
func (t *Transport) ConnectRequest(pr *Request, dial DialFunc) (*Session, error) {
	tab := t.tab.Load()
	req, name := pr.HTTP, pr.Name
	if pr.Operation != OpRealtime {
		return nil, &ConnectError{Status: http.StatusNotFound, Message: "lifeline: " + pr.Route + " does not open a session"}
	}
	rt := &roundTrip{t: t, tab: tab, p: &tab.policy, req: req, ctx: req.Context(), in: inbound{name: name, stream: true}}
	if len(tab.names[name]) == 0 {
		return nil, &ConnectError{Status: http.StatusNotFound, Message: "lifeline: no region serves the name " + strconv.Quote(name) +
			"; known names: " + strings.Join(tab.sorted, ", ")}
	}
	var buf [maxCandidates]*region
	for _, r := range t.order(buf[:0], tab.names[name], rt.p, name, t.clock.Now()) {
		tg := r.targets[name]
		tk, ok := rt.admit(r, tg)
		if !ok {
			continue
		}
		s, err := rt.dial(r, tg, tk, dial)
		if s != nil || err != nil {
			return s, err
		}
	}
	resp, _ := rt.exhausted()
	e := &ConnectError{Status: resp.StatusCode, Message: "lifeline: no region could open the session for " + strconv.Quote(name)}
	if len(rt.reasons) > 0 {
		e.Message += " (" + strings.Join(rt.reasons, "; ") + ")"
	}
	if ms, err := strconv.Atoi(resp.Header.Get("Retry-After-Ms")); err == nil {
		e.RetryAfter = time.Duration(ms) * time.Millisecond
	}
	resp.Body.Close()
	return nil, e
}

// dial makes one attempt to open the session in r: a session, a final error for the client, or neither (the
// region failed and the next one may be tried).
func (rt *roundTrip) dial(r *region, tg *target, tk ticket, dial DialFunc) (*Session, error) {
	t := rt.t
	n := int(rt.attempts.Add(1))
	t.obs.AttemptStarted(AttemptStart{Region: r.cfg.Name, Name: rt.in.name, Attempt: n, Probe: tk.trial != 0})
	r.h.inflight.Add(1)
	r.h.attempts.Add(1)
	a := &attempt{rt: rt, r: r, tg: tg, tk: tk, n: n, start: t.clock.Now()}
	ctx, cancel := context.WithTimeout(rt.ctx, rt.p.Timeouts.Connect+rt.p.Timeouts.StreamFirstByte)
	defer cancel()
	u := sessionURL(r, tg.deployment, rt.req.URL)
	h := http.Header{}
	if err := r.cred.apply(ctx, h); err != nil {
		a.end(Verdict{Outcome: OutcomeConnectError, Scope: ScopeRegion}, 0, 0, err)
		rt.reasons = append(rt.reasons, r.cfg.Name+": credential: "+err.Error())
		return nil, nil
	}
	resp, err := dial(ctx, Upstream{Region: r.cfg.Name, URL: u, Header: h})
	now := t.clock.Now()
	lat := now.Sub(a.start)
	if err != nil && (resp == nil || resp.StatusCode == http.StatusSwitchingProtocols) {
		if rt.ctx.Err() != nil {
			a.end(Verdict{Outcome: OutcomeCanceled}, 0, lat, rt.ctx.Err())
			return nil, rt.ctx.Err()
		}
		v := Classify(Signal{Err: err, Now: now, Waited: lat})
		a.end(v, 0, lat, err)
		rt.reasons = append(rt.reasons, r.cfg.Name+": "+v.Outcome.String())
		return nil, nil
	}
	r.h.observeLatency(lat)
	if resp.StatusCode == http.StatusSwitchingProtocols {
		a.end(Verdict{Outcome: OutcomeOK}, resp.StatusCode, lat, nil)
		return &Session{Region: r.cfg.Name, Attempts: n, rt: rt, r: r, tg: tg}, nil
	}
	v := Classify(Signal{Status: resp.StatusCode, Header: resp.Header, Now: now})
	a.end(v, resp.StatusCode, lat, nil)
	if v.Final() {
		resp.Header.Set(HeaderRegion, r.cfg.Name)
		resp.Header.Set(HeaderAttempts, strconv.Itoa(n))
		return nil, &ConnectError{Resp: resp, Status: resp.StatusCode, Message: "region " + r.cfg.Name + " refused the session"}
	}
	resp.Body.Close()
	if v.Outcome == OutcomeThrottled {
		rt.cooling = true
		rt.coolNext = earliest(rt.coolNext, now.Add(max(v.RetryAfter, time.Millisecond)))
	}
	rt.reasons = append(rt.reasons, r.cfg.Name+": "+v.Outcome.String())
	return nil, nil
}

// sessionURL is the region's URL for a session: /openai/realtime with `deployment`, or /openai/v1/realtime with
// `model`, mapped to the region's deployment; the client's other query parameters pass, its credential does not.
func sessionURL(r *region, deployment string, client *url.URL) *url.URL {
	q := client.Query()
	q.Del("api-key")
	path := "/openai/realtime"
	if strings.HasPrefix(client.Path, v1Prefix) || strings.HasPrefix(client.Path, plainV1Prefix) {
		path = "/openai/v1/realtime"
		q.Set("model", deployment)
	} else {
		q.Set("deployment", deployment)
	}
	return &url.URL{Scheme: r.url.scheme, Host: r.url.host, Path: r.url.prefix + path, RawQuery: q.Encode()}
}
