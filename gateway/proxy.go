package gateway

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/lifeline-sre/lifeline/failover"
)

// Handler returns the client-facing handler: the routes of SPEC.md section 4.
func (g *Gateway) Handler() http.Handler { return http.HandlerFunc(g.serveClient) }

// exchange is one client request as the logs and metrics see it.
type exchange struct {
	id       string
	api      string // which client surface: azure, azure-v1, openai-v1; "" for unknown routes
	op       string // the operation (SPEC.md section 12), "models", or "unknown": never the raw path, which a client controls
	client   string // the client key's configured name; "" before authentication
	name     string // a configured name, "" when none, "unknown" when the client asked for one not configured
	region   string
	attempts string
	status   int
	start    time.Time
	ttfb     time.Duration
	stream   bool
	usage    usage
	bytes    int64
	err      string

	// For the trace (nil span: not tracing).
	span      trace.Span
	model     string // the model the region says it served
	hedged    bool   // the answer came from a hedge
	streamErr string // the error code of a stream that broke after it started
	// ctl sets the connection's write deadline before each write when stall (server.write_stall_timeout) is set.
	ctl   *http.ResponseController
	stall time.Duration
}

// writeDeadline bounds the next write to the client: a client that stops reading cannot hold the handler (and the
// region's stream under it) for longer than server.write_stall_timeout.
func (x *exchange) writeDeadline(now time.Time) {
	if x.stall > 0 && x.ctl != nil {
		x.ctl.SetWriteDeadline(now.Add(x.stall))
	}
}

var (
	selfRegion   = []string{failover.SelfRegion}
	zeroAttempts = []string{"0"}
)

// serveClient is the client route: authenticate, hold the client's limits, let the engine read the request (the
// one parser the library uses too), authorize what it read, send it through the engine and copy the answer back.
func (g *Gateway) serveClient(w http.ResponseWriter, r *http.Request) {
	gen := g.state.Load()
	x := &exchange{start: g.now(), id: g.ids.next(), op: "unknown"}
	w.Header()["X-Lifeline-Request-Id"] = []string{x.id}
	if g.trace != nil {
		r = g.trace.start(r, x)
	}
	g.metrics.inFlight.Inc()
	g.active.Add(1)
	defer g.active.Add(-1)
	defer g.metrics.inFlight.Dec()
	defer g.finish(r, x)
	ctl := http.NewResponseController(w)
	if gen.writeStall > 0 {
		// A write deadline outlives the handler on a kept-alive connection: give the server's last flush the same
		// bound, and every write below sets its own.
		defer func() { ctl.SetWriteDeadline(g.now().Add(gen.writeStall)) }()
	}
	x.ctl, x.stall = ctl, gen.writeStall
	if r.ProtoMajor == 1 && len(r.TransferEncoding) > 0 {
		// Once parsed, a request that had both Content-Length and Transfer-Encoding cannot be told from one with
		// Transfer-Encoding alone, and RFC 9112 section 6.3 says to close after the former: close after both.
		w.Header()["Connection"] = []string{"close"}
	}

	c, ok := gen.authenticate(r.Header)
	if !ok {
		g.reply(w, x, http.StatusUnauthorized, "invalid_api_key", "invalid_request_error",
			"lifeline: missing or wrong client key; send the key the gateway gave you in api-key or Authorization: Bearer", 0)
		return
	}
	x.client = c.name
	release, kind, wait := c.limit.acquire(g.now())
	if release == nil {
		g.metrics.clientLimited.WithLabelValues(c.name, string(kind)).Inc()
		code, msg := limitMessage(c, kind, wait, gen.cfg)
		g.reply(w, x, http.StatusTooManyRequests, code, "rate_limit_exceeded", msg, wait)
		return
	}
	defer release()
	if gen.bodyTimeout > 0 && r.Body != nil && r.Body != http.NoBody {
		r.Body = &deadlineBody{ReadCloser: r.Body, ctl: ctl, deadline: g.now().Add(gen.bodyTimeout)}
	}
	pr, err := failover.ParseRequest(r, gen.maxBody)
	if err != nil {
		re := err.(*failover.RequestError)
		if re.Err != nil {
			x.err = re.Err.Error()
		}
		if re.Allow != "" {
			w.Header()["Allow"] = []string{strings.ReplaceAll(re.Allow, " ", ", ")}
		}
		if re.Status == http.StatusRequestTimeout {
			w.Header()["Connection"] = []string{"close"} // the rest of the body may still be on its way
		}
		g.reply(w, x, re.Status, re.Code, re.Type, re.Message, 0)
		return
	}
	x.api, x.op = pr.Surface.String(), string(pr.Operation)
	if !g.authorize(w, x, gen, c, pr) {
		return
	}
	ctx, cancel := failover.WithClient(r.Context(), c.name), context.CancelFunc(nil)
	if d := clientTimeout(r.Header); d > 0 && pr.Operation != failover.OpRealtime {
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	pr = pr.WithContext(ctx)
	switch {
	case pr.Operation == failover.OpModels:
		g.respond(w, failover.ModelsResponse(r, c.visible, pr.Name), x)
		return
	case pr.Operation == failover.OpRealtime:
		g.serveRealtime(w, x, pr) // realtime.go: Realtime over WebSocket
		return
	case pr.Store != 0:
		g.serveStored(w, x, gen, pr) // stored.go: stored objects and their affinity
		return
	}
	resp, err := g.transport.Send(pr)
	if err != nil {
		g.roundTripError(w, x, ctx, err)
		return
	}
	defer resp.Body.Close()
	g.respond(w, resp, x)
}

// authorize checks what the engine read against what the client's key may do (SPEC.md section 12): an operation it
// is not granted, or a name outside its list, is 403 whether or not the name exists, so a restricted key learns
// nothing about names it may not use; a name no region maps is 404, with the names the client may use.
func (g *Gateway) authorize(w http.ResponseWriter, x *exchange, gen *generation, c *client, pr *failover.Request) bool {
	if !c.ops[pr.Operation] {
		g.reply(w, x, http.StatusForbidden, "operation_not_allowed", "invalid_request_error",
			"lifeline: client "+strconv.Quote(c.name)+" may not use the operation "+strconv.Quote(string(pr.Operation))+
				" (clients[].operations)", 0)
		return false
	}
	if pr.Name == "" || pr.Operation == failover.OpModels {
		return true
	}
	if !c.mayUse(pr.Name) {
		x.name = "forbidden"
		g.reply(w, x, http.StatusForbidden, "model_not_allowed", "invalid_request_error",
			"lifeline: client "+strconv.Quote(c.name)+" may not use this name; it may use: "+strings.Join(c.visible, ", ")+" (clients[].names)", 0)
		return false
	}
	canon, known := gen.knownName(pr.Name)
	if !known {
		x.name = "unknown"
		g.reply(w, x, http.StatusNotFound, "DeploymentNotFound", "invalid_request_error",
			"lifeline: no region serves the requested name; known names: "+strings.Join(c.visible, ", "), 0)
		return false
	}
	x.name = canon
	return true
}

// deadlineBody bounds the time to read a request body (server.body_read_timeout) with the connection's read
// deadline, which unblocks a read that waits for a client that stopped sending.
type deadlineBody struct {
	io.ReadCloser
	ctl      *http.ResponseController
	deadline time.Time
	set      bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	if !b.set {
		b.set = true
		b.ctl.SetReadDeadline(b.deadline)
	}
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.ctl.SetReadDeadline(time.Time{}) // the body is over: the connection's own deadlines apply again
	}
	// After a failure the deadline stays: the server's attempt to drain the rest of the body ends at once too.
	return n, err
}

// clientTimeout is the deadline a client announced: `x-lifeline-timeout` (a Go duration or seconds) or the
// `x-stainless-timeout` seconds that the OpenAI SDKs send. The engine never waits past it; when it runs out the
// client gets 504.
func clientTimeout(h http.Header) time.Duration {
	if v := h["X-Lifeline-Timeout"]; len(v) > 0 {
		if d, err := time.ParseDuration(v[0]); err == nil {
			return d
		}
		return seconds(v[0])
	}
	if v := h["X-Stainless-Timeout"]; len(v) > 0 {
		return seconds(v[0])
	}
	return 0
}

func seconds(s string) time.Duration {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f <= 0 || f > 86400 {
		return 0
	}
	return time.Duration(f * float64(time.Second))
}

// roundTripError maps the engine's few errors to a status: 413 body too large, 400 unreadable body, 504 the
// client's deadline, 503 the gateway is stopping, nothing (499 in the log) when the client went away.
func (g *Gateway) roundTripError(w http.ResponseWriter, x *exchange, ctx context.Context, err error) {
	x.err = err.Error()
	switch {
	case g.hardCtx.Err() != nil:
		g.reply(w, x, http.StatusServiceUnavailable, "shutting_down", "server_error", "lifeline: the gateway is shutting down; retry", time.Second)
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded):
		g.reply(w, x, http.StatusGatewayTimeout, "timeout", "server_error", "lifeline: the request's deadline ran out before a region answered", 0)
	case errors.Is(err, context.Canceled) || ctx.Err() != nil:
		x.status = 499 // the client went away: nobody to answer
	default:
		g.reply(w, x, http.StatusBadGateway, "bad_gateway", "server_error", "lifeline: no region could answer", 0)
	}
}

// reply answers with an error the gateway itself makes, in the OpenAI error shape (failover.WriteError).
func (g *Gateway) reply(w http.ResponseWriter, x *exchange, status int, code, typ, msg string, retryAfter time.Duration) {
	x.status, x.region, x.attempts = status, failover.SelfRegion, "0"
	x.writeDeadline(g.now())
	failover.WriteError(w, status, code, typ, msg, retryAfter)
}
