package gateway

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/lifeline-sre/lifeline/failover"
)

// Realtime over WebSocket (SPEC.md section 10): GET /openai/realtime?api-version=V&deployment=NAME,
// GET /openai/v1/realtime?model=NAME and GET /v1/realtime?model=NAME upgrade to a WebSocket that is proxied to a
// region, message by message, both ways. The engine chooses the region and fails over while connecting
// (failover.Transport.Connect); the region gets its own credential, never the client's. Once open, a session
// cannot move: when its region fails it, the client's socket is closed with 1011 and a reason naming the region.

// realtimeSessions counts the open sessions per region (lifeline_realtime_sessions, the status page).
type realtimeSessions struct {
	mu       sync.Mutex
	byRegion map[string]int
}

func (s *realtimeSessions) add(region string, d int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byRegion == nil {
		s.byRegion = map[string]int{}
	}
	s.byRegion[region] += d
}

// Count is the number of open sessions in region.
func (s *realtimeSessions) count(region string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byRegion[region]
}

// Realtime keep-alive: both sockets are pinged at this interval, and a peer that does not answer a ping within
// realtimePongWait is gone.
const (
	realtimePing     = 20 * time.Second
	realtimePongWait = 15 * time.Second
	// realtimeMaxMessage bounds one message either way (audio chunks are far smaller).
	realtimeMaxMessage = 16 << 20
)

// forwardHeaders are the client headers a region's handshake gets (the SDKs' own; never a credential).
var forwardHeaders = [...]string{"OpenAI-Beta", "User-Agent", "X-Ms-Client-Request-Id", "X-Stainless-Lang"}

func (g *Gateway) serveRealtime(w http.ResponseWriter, x *exchange, pr *failover.Request) {
	r := pr.HTTP
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		g.reply(w, x, http.StatusBadRequest, "websocket_required", "invalid_request_error",
			"lifeline: the Realtime route needs a WebSocket upgrade (Connection: Upgrade, Upgrade: websocket)", 0)
		return
	}
	// authorize has set x.name to the configured name (an unknown one was answered 404 there).
	var upstream *websocket.Conn
	sess, err := g.transport.ConnectRequest(pr, func(ctx context.Context, u failover.Upstream) (*http.Response, error) {
		h := u.Header
		for _, k := range forwardHeaders {
			if v := r.Header.Get(k); v != "" {
				h.Set(k, v)
			}
		}
		c, resp, err := websocket.Dial(ctx, u.URL.String(), &websocket.DialOptions{
			HTTPClient: g.wsClient(), HTTPHeader: h, Subprotocols: subprotocols(r.Header),
		})
		if err == nil {
			upstream = c
		}
		return resp, err
	})
	if err != nil {
		g.realtimeRefused(w, x, err)
		return
	}
	x.region, x.attempts = sess.Region, strconv.Itoa(sess.Attempts)
	w.Header()[failover.HeaderRegion] = []string{sess.Region}
	w.Header()[failover.HeaderAttempts] = []string{x.attempts}
	client, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		Subprotocols: []string{upstream.Subprotocol()},
		// The client key authenticates every session; no cookie is involved, so any Origin may connect.
		InsecureSkipVerify: true,
	})
	if err != nil {
		upstream.Close(websocket.StatusGoingAway, "client handshake failed")
		sess.End(nil)
		x.status, x.err = http.StatusBadRequest, err.Error()
		return
	}
	x.status, x.stream = http.StatusSwitchingProtocols, true
	g.realtime.add(sess.Region, 1)
	g.metrics.realtime.WithLabelValues(sess.Region).Inc()
	defer func() {
		g.realtime.add(sess.Region, -1)
		g.metrics.realtime.WithLabelValues(sess.Region).Dec()
	}()
	regionErr := proxySession(r.Context(), client, upstream, sess.Region)
	sess.End(regionErr)
	if regionErr != nil {
		x.err = regionErr.Error()
	}
}

// realtimeRefused answers a session that no region opened: the region's own refusal (400, 404...) as it is, or
// the engine's 404, 429 or 503 in the OpenAI error shape.
func (g *Gateway) realtimeRefused(w http.ResponseWriter, x *exchange, err error) {
	var ce *failover.ConnectError
	if !errors.As(err, &ce) {
		g.roundTripError(w, x, context.Background(), err)
		return
	}
	if ce.Resp != nil {
		defer ce.Resp.Body.Close()
		h := w.Header()
		for _, k := range []string{"Content-Type", "Apim-Request-Id", "X-Request-Id", "X-Ms-Region", failover.HeaderRegion, failover.HeaderAttempts} {
			if v := ce.Resp.Header.Get(k); v != "" {
				h.Set(k, v)
			}
		}
		x.status, x.region = ce.Resp.StatusCode, ce.Resp.Header.Get(failover.HeaderRegion)
		w.WriteHeader(ce.Resp.StatusCode)
		io.Copy(w, io.LimitReader(ce.Resp.Body, 64<<10))
		return
	}
	code, typ := "service_unavailable", "server_error"
	switch ce.Status {
	case http.StatusNotFound:
		code, typ = "DeploymentNotFound", "invalid_request_error"
	case http.StatusTooManyRequests:
		code = "429"
	}
	if ce.Status == http.StatusTooManyRequests || ce.Status == http.StatusServiceUnavailable {
		secs := max(1, int64((ce.RetryAfter+time.Second-1)/time.Second))
		w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	}
	g.reply(w, x, ce.Status, code, typ, ce.Message, 0)
}

// subprotocols are the WebSocket subprotocols the client offers; one that carries a credential
// (openai-insecure-api-key.KEY, what browsers use) is never passed on.
func subprotocols(h http.Header) []string {
	var out []string
	for _, v := range h.Values("Sec-Websocket-Protocol") {
		for p := range strings.SplitSeq(v, ",") {
			if p = strings.TrimSpace(p); p != "" && !strings.HasPrefix(p, "openai-insecure-api-key.") {
				out = append(out, p)
			}
		}
	}
	return out
}

// wsClient is the HTTP client for region handshakes: the region's TLS trust, no proxy, connect timeout.
func (g *Gateway) wsClient() *http.Client {
	g.wsOnce.Do(func() {
		tr := &http.Transport{Proxy: nil, TLSClientConfig: g.opts.RegionTLS, ForceAttemptHTTP2: false,
			TLSHandshakeTimeout: 10 * time.Second, DisableCompression: true}
		if g.opts.RegionTLS != nil {
			tr.TLSClientConfig = g.opts.RegionTLS.Clone()
		}
		g.ws = &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	})
	return g.ws
}

// sessionEnd is how one side of a session ended.
type sessionEnd struct {
	fromRegion bool // the region's side failed or closed
	err        error
}

// proxySession copies messages both ways until one side ends. It returns the region's failure, if the region
// ended the session abnormally (then the client gets 1011 with a reason naming the region); nil when the client
// ended it, or the region closed it normally (its close code and reason are passed on).
func proxySession(parent context.Context, client, region *websocket.Conn, name string) error {
	client.SetReadLimit(realtimeMaxMessage)
	region.SetReadLimit(realtimeMaxMessage)
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	ends := make(chan sessionEnd, 4)
	pipe := func(dst, src *websocket.Conn, fromRegion bool) {
		for {
			typ, data, err := src.Read(ctx)
			if err != nil {
				ends <- sessionEnd{fromRegion, err}
				return
			}
			wctx, wcancel := context.WithTimeout(ctx, realtimePongWait)
			err = dst.Write(wctx, typ, data)
			wcancel()
			if err != nil {
				ends <- sessionEnd{!fromRegion, err}
				return
			}
		}
	}
	go pipe(region, client, false)
	go pipe(client, region, true)
	go keepAlive(ctx, client, region, ends)
	e := <-ends
	// The close frames go out before ctx is canceled: a Read whose context ends closes its connection at once,
	// which would race the close frame and leave the client with 1006 instead of the code meant for it.
	defer cancel()
	code := websocket.CloseStatus(e.err)
	switch {
	case parent.Err() != nil: // the client's request ended (it left) or the gateway is stopping
		client.Close(websocket.StatusGoingAway, "lifeline: the gateway is shutting down")
		region.Close(websocket.StatusGoingAway, "client gone")
		return nil
	case !e.fromRegion:
		if code == -1 {
			code = websocket.StatusGoingAway
		}
		region.Close(code, "client closed the session")
		client.CloseNow()
		return nil
	case code == websocket.StatusNormalClosure || code == websocket.StatusGoingAway || code >= 4000 ||
		code == websocket.StatusPolicyViolation || code == websocket.StatusMessageTooBig:
		var ce websocket.CloseError
		errors.As(e.err, &ce)
		client.Close(code, ce.Reason)
		region.CloseNow()
		return nil
	default:
		client.Close(websocket.StatusInternalError, "lifeline: region "+name+" failed during the session")
		region.CloseNow()
		return e.err
	}
}

// keepAlive pings both peers; a peer that does not answer in time ends the session.
func keepAlive(ctx context.Context, client, region *websocket.Conn, ends chan<- sessionEnd) {
	t := time.NewTicker(realtimePing)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, p := range [...]sessionEnd{{fromRegion: false}, {fromRegion: true}} {
			c := client
			if p.fromRegion {
				c = region
			}
			pctx, cancel := context.WithTimeout(ctx, realtimePongWait)
			err := c.Ping(pctx)
			cancel()
			if err != nil && ctx.Err() == nil {
				ends <- sessionEnd{p.fromRegion, err}
				return
			}
		}
	}
}
