package gateway

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"
	"go.opentelemetry.io/otel/trace"

	"github.com/lifeline-sre/lifeline/failover"
)

// Handler returns the client-facing handler: the routes of SPEC.md section 4.
func (g *Gateway) Handler() http.Handler { return http.HandlerFunc(g.serveClient) }

// exchange is one client request as the logs and metrics see it.
type exchange struct {
	id       string
	api      string // which client surface: azure, azure-v1, openai-v1, models; "" for unknown routes
	op       string // a known operation, "other" for the rest: never the raw path, which a client controls
	client   string
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
}

type routeKind uint8

const (
	routeUnknown    routeKind = iota
	routeDeployment           // /openai/deployments/{name}/{op}
	routeV1                   // /openai/v1/{op}, /v1/{op}: name in the body
	routeModels               // the models list
	routeModel                // one model of the list
)

// route tells the client routes apart with prefix checks only. A path with dot segments or empty segments is
// unknown: it must never reach a region as another route (`/openai/deployments/x/../../files`).
func route(path string) (routeKind, string) {
	if strings.Contains(path, "/.") || strings.Contains(path, "//") {
		return routeUnknown, ""
	}
	switch {
	case strings.HasPrefix(path, "/openai/deployments/"):
		name, op, ok := strings.Cut(path[len("/openai/deployments/"):], "/")
		if !ok || name == "" || op == "" {
			return routeUnknown, ""
		}
		return routeDeployment, name
	case path == "/openai/models" || path == "/openai/v1/models" || path == "/v1/models":
		return routeModels, ""
	case path == "/openai/responses":
		return routeV1, "" // the classic surface's Responses API: model in the body, sent on as /openai/v1/responses
	}
	for _, p := range [...]string{"/openai/v1/models/", "/v1/models/", "/openai/models/"} {
		if strings.HasPrefix(path, p) {
			if id := path[len(p):]; id != "" {
				return routeModel, id
			}
			return routeModels, ""
		}
	}
	if (strings.HasPrefix(path, "/openai/v1/") && len(path) > len("/openai/v1/")) ||
		(strings.HasPrefix(path, "/v1/") && len(path) > len("/v1/")) {
		return routeV1, ""
	}
	return routeUnknown, ""
}

// knownOps are the operations logged by name; any other is logged as "other".
var knownOps = [...]string{"chat/completions", "completions", "embeddings", "responses", "images/generations",
	"images/edits", "audio/transcriptions", "audio/translations", "audio/speech"}

// describe names the client surface and the operation of a request for the logs, from constants only.
func describe(kind routeKind, path string) (api, op string) {
	var rest string
	switch kind {
	case routeModels, routeModel:
		return "models", "models"
	case routeDeployment:
		api = "azure"
		_, rest, _ = strings.Cut(path[len("/openai/deployments/"):], "/")
	case routeV1:
		if path == "/openai/responses" {
			return "azure", "responses"
		}
		if strings.HasPrefix(path, "/openai/v1/") {
			api, rest = "azure-v1", path[len("/openai/v1/"):]
		} else {
			api, rest = "openai-v1", path[len("/v1/"):]
		}
	default:
		return "", "other"
	}
	for _, k := range knownOps {
		if rest == k {
			return api, k
		}
	}
	return api, "other"
}

var (
	selfRegion   = []string{failover.SelfRegion}
	zeroAttempts = []string{"0"}
)

func (g *Gateway) serveClient(w http.ResponseWriter, r *http.Request) {
	gen := g.state.Load()
	x := &exchange{start: g.now(), id: g.ids.next()}
	w.Header()["X-Lifeline-Request-Id"] = []string{x.id}
	if g.trace != nil {
		r = g.trace.start(r, x)
	}
	g.metrics.inFlight.Inc()
	g.active.Add(1)
	defer g.active.Add(-1)
	defer g.metrics.inFlight.Dec()
	defer g.finish(r, x)

	client, ok := gen.authenticate(r.Header)
	if !ok {
		g.reply(w, x, http.StatusUnauthorized, "invalid_api_key", "invalid_request_error",
			"lifeline: missing or wrong client key; send the key the gateway gave you in api-key or Authorization: Bearer")
		return
	}
	x.client = client
	if sr, ok := parseStored(r.Method, r.URL.Path); ok && r.URL.RawPath == "" && !strings.Contains(r.URL.Path, "/.") && !strings.Contains(r.URL.Path, "//") {
		g.serveStored(w, r, x, gen, sr) // stored.go: stored objects and their affinity
		return
	}
	if isRealtime(r.URL.Path) {
		g.serveRealtime(w, r, x, gen) // realtime.go: Realtime over WebSocket
		return
	}
	kind, name := route(r.URL.Path)
	if r.URL.RawPath != "" {
		kind = routeUnknown // escaped characters (%2F...) have no place in a name or an operation
	}
	x.api, x.op = describe(kind, r.URL.Path)
	switch kind {
	case routeUnknown:
		g.reply(w, x, http.StatusNotFound, "404", "invalid_request_error",
			"lifeline: unknown route; use /openai/deployments/{name}/{op}, /openai/v1/{op} or /v1/{op}")
		return
	case routeModels, routeModel:
		g.serveModels(w, r, x, gen, kind, name)
		return
	}
	if r.Method != http.MethodPost {
		g.reply(w, x, http.StatusMethodNotAllowed, "method_not_allowed", "invalid_request_error",
			"lifeline: only POST is proxied on this route")
		return
	}
	if r.ContentLength > gen.maxBody {
		g.tooLarge(w, x, gen.maxBody)
		return
	}
	out, cancel, ok := g.outbound(w, r, x, gen, kind, name)
	if cancel != nil {
		defer cancel()
	}
	if !ok {
		return
	}
	resp, err := g.transport.RoundTrip(out)
	if err != nil {
		g.roundTripError(w, x, out.Context(), err)
		return
	}
	defer resp.Body.Close()
	g.respond(w, resp, x)
}

// outbound builds the request for the engine: the client's request without its credential, hop-by-hop headers
// or compression, with a body the engine can read and, for the v1 shape, the name read from the body.
func (g *Gateway) outbound(w http.ResponseWriter, r *http.Request, x *exchange, gen *generation, kind routeKind, name string) (*http.Request, context.CancelFunc, bool) {
	out := *r // on the stack: WithContext below makes the one copy that reaches the heap
	if kind == routeV1 {
		body, err := readBody(r, gen.maxBody)
		switch {
		case err == nil:
		case errors.As(err, new(*failover.BodyTooLargeError)): // new: no allocation unless the read failed
			g.tooLarge(w, x, gen.maxBody)
			return nil, nil, false
		default:
			x.err = err.Error()
			g.reply(w, x, http.StatusBadRequest, "invalid_body", "invalid_request_error", "lifeline: could not read the request body")
			return nil, nil, false
		}
		name = modelOf(r.Header.Get("Content-Type"), body)
		if name == "" {
			g.reply(w, x, http.StatusBadRequest, "missing_model", "invalid_request_error",
				"lifeline: the request body must name a model (\"model\": NAME) on this route")
			return nil, nil, false
		}
		out.Body = io.NopCloser(bytes.NewReader(body))
		out.ContentLength = int64(len(body))
		out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	} else if r.ContentLength == 0 {
		out.Body = nil
	}
	canon, known := gen.names[name]
	if !known {
		x.name = "unknown"
		g.reply(w, x, http.StatusNotFound, "DeploymentNotFound", "invalid_request_error",
			"lifeline: no region serves the requested name; known names: "+strings.Join(gen.cfg.Names(), ", "))
		return nil, nil, false
	}
	x.name = canon
	out.RequestURI = ""
	u := *r.URL
	u.Scheme, u.Host = "http", "lifeline.invalid" // the engine picks the region and rewrites both
	if u.Path == "/openai/responses" {
		// AzureOpenAI clients send Responses to the classic surface with a dated api-version; the regions get
		// the v1 route, which takes no dated version.
		u.Path, u.RawPath = "/openai/v1/responses", ""
		q := u.Query()
		q.Del("api-version")
		u.RawQuery = q.Encode()
	}
	if strings.Contains(u.RawQuery, "api-key") {
		q := u.Query()
		q.Del("api-key")
		u.RawQuery = q.Encode()
	}
	out.URL = &u
	out.Host = ""
	out.Header = r.Header
	stripCredentials(out.Header)
	removeHopHeaders(out.Header)
	delete(out.Header, "Accept-Encoding") // the engine decompresses, so usage can be counted
	ctx, cancel := r.Context(), context.CancelFunc(nil)
	if d := clientTimeout(r.Header); d > 0 {
		ctx, cancel = context.WithTimeout(ctx, d)
	}
	return out.WithContext(ctx), cancel, true
}

// readBody reads a request body of at most limit bytes.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	if r.ContentLength > 0 {
		buf := make([]byte, r.ContentLength)
		if _, err := io.ReadFull(r.Body, buf); err != nil {
			return nil, err
		}
		return buf, nil
	}
	buf, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(buf)) > limit {
		return nil, &failover.BodyTooLargeError{Limit: limit}
	}
	return buf, nil
}

// modelOf reads the `model` of a JSON body, or the `model` field of a multipart form, without decoding the rest.
func modelOf(contentType string, body []byte) string {
	if strings.HasPrefix(contentType, "multipart/form-data") {
		return multipartField(body, "model")
	}
	m := gjson.GetBytes(body, "model")
	if m.Type != gjson.String {
		return ""
	}
	return m.Str
}

// multipartField finds a small text field of a multipart body by scanning for its Content-Disposition.
func multipartField(body []byte, field string) string {
	marker := []byte(`name="` + field + `"`)
	i := bytes.Index(body, marker)
	if i < 0 {
		return ""
	}
	rest := body[i+len(marker):]
	start := bytes.Index(rest, []byte("\r\n\r\n"))
	if start < 0 {
		return ""
	}
	rest = rest[start+4:]
	end := bytes.Index(rest, []byte("\r\n--"))
	if end < 0 || end > 512 {
		return ""
	}
	return string(rest[:end])
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

// hopHeaders are meaningful for one connection only (RFC 9110 section 7.6.1).
var hopHeaders = [...]string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

func removeHopHeaders(h http.Header) {
	if c, ok := h["Connection"]; ok {
		for _, v := range c {
			for f := range strings.SplitSeq(v, ",") {
				if f = textproto(strings.TrimSpace(f)); f != "" {
					delete(h, f)
				}
			}
		}
	}
	for _, k := range hopHeaders {
		delete(h, k)
	}
}

func textproto(s string) string { return http.CanonicalHeaderKey(s) }

// roundTripError maps the engine's few errors to a status: 413 body too large, 400 unreadable body, 504 the
// client's deadline, 503 the gateway is stopping, nothing (499 in the log) when the client went away.
func (g *Gateway) roundTripError(w http.ResponseWriter, x *exchange, ctx context.Context, err error) {
	x.err = err.Error()
	var tooLarge *failover.BodyTooLargeError
	switch {
	case errors.As(err, &tooLarge):
		g.tooLarge(w, x, tooLarge.Limit)
	case g.hardCtx.Err() != nil:
		w.Header().Set("Retry-After", "1")
		g.reply(w, x, http.StatusServiceUnavailable, "shutting_down", "server_error", "lifeline: the gateway is shutting down; retry")
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded):
		g.reply(w, x, http.StatusGatewayTimeout, "timeout", "server_error", "lifeline: the request's deadline ran out before a region answered")
	case errors.Is(err, context.Canceled) || ctx.Err() != nil:
		x.status = 499 // the client went away: nobody to answer
	default:
		var bre *failover.BodyReadError
		if errors.As(err, &bre) {
			g.reply(w, x, http.StatusBadRequest, "invalid_body", "invalid_request_error", "lifeline: could not read the request body")
			return
		}
		g.reply(w, x, http.StatusBadGateway, "bad_gateway", "server_error", "lifeline: no region could answer")
	}
}

func (g *Gateway) tooLarge(w http.ResponseWriter, x *exchange, limit int64) {
	g.reply(w, x, http.StatusRequestEntityTooLarge, "request_too_large", "invalid_request_error",
		"lifeline: request body larger than policy.max_body_bytes ("+strconv.FormatInt(limit, 10)+" bytes)")
}

// reply answers with an error the gateway itself makes, in the OpenAI error shape.
func (g *Gateway) reply(w http.ResponseWriter, x *exchange, status int, code, typ, msg string) {
	h := w.Header()
	h["Content-Type"] = []string{"application/json"}
	h[failover.HeaderRegion] = selfRegion
	h[failover.HeaderAttempts] = zeroAttempts
	x.status, x.region, x.attempts = status, failover.SelfRegion, "0"
	body := errorJSON(code, typ, msg)
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(status)
	w.Write(body)
}

func errorJSON(code, typ, msg string) []byte {
	b := make([]byte, 0, 64+len(msg))
	b = append(b, `{"error":{"code":`...)
	b = strconv.AppendQuote(b, code)
	b = append(b, `,"message":`...)
	b = appendJSONString(b, msg)
	b = append(b, `,"type":`...)
	b = strconv.AppendQuote(b, typ)
	return append(b, "}}"...)
}

// appendJSONString appends s as a JSON string (strconv.Quote is not JSON for every input).
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20 || c == '<' || c == '>' || c == '&':
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}
