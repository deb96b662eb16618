package sim

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// route is a parsed data-plane request path.
type route struct {
	v1         bool   // /openai/v1/...
	deployment string // from the classic path; for v1 it comes from the body's model
	op         string // "chat/completions", "files/{id}/content", ...
	apiVersion string
}

// parseRoute splits a data-plane path into its shape, deployment and operation. ok is false for paths that are
// not Azure OpenAI routes at all.
func parseRoute(path string, query func(string) string) (route, bool) {
	rest, ok := strings.CutPrefix(path, "/openai/")
	if !ok {
		return route{}, false
	}
	rt := route{apiVersion: query("api-version")}
	if op, ok := strings.CutPrefix(rest, "v1/"); ok {
		rt.v1, rt.op = true, strings.TrimSuffix(op, "/")
		return rt, rt.op != ""
	}
	if d, ok := strings.CutPrefix(rest, "deployments/"); ok {
		name, op, ok := strings.Cut(d, "/")
		if !ok || name == "" || op == "" {
			return route{}, false
		}
		rt.deployment, rt.op = name, strings.TrimSuffix(op, "/")
		return rt, true
	}
	rt.op = strings.TrimSuffix(rest, "/")
	return rt, rt.op != ""
}

// deploymentOps are the operations that run on a deployment (classic: in the path; v1 and responses: body model).
var deploymentOps = map[string]bool{"chat/completions": true, "completions": true, "embeddings": true, "responses": true,
	"images/generations": true, "audio/transcriptions": true, "audio/translations": true, "audio/speech": true}

// recorder counts the status of every answer, and carries out slow_first_byte: the headers go at once and the
// first body byte waits firstByteDelay.
type recorder struct {
	http.ResponseWriter
	region         *Region
	req            *http.Request
	status         int
	firstByteDelay time.Duration
}

func (w *recorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
		w.region.stats.status(code)
	}
	w.ResponseWriter.WriteHeader(code)
	if w.firstByteDelay > 0 {
		http.NewResponseController(w.ResponseWriter).Flush()
	}
}

func (w *recorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if d := w.firstByteDelay; d > 0 && len(b) > 0 {
		w.firstByteDelay = 0
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-w.req.Context().Done():
			t.Stop()
			return 0, w.req.Context().Err()
		}
	}
	return w.ResponseWriter.Write(b)
}

func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// call is one request being answered by a region.
type call struct {
	r     *Region
	w     *recorder
	req   *http.Request
	rt    route
	body  []byte
	gen   *genRequest
	dep   *deployment
	fault *Fault
}

// ServeHTTP answers one data-plane request the way an Azure OpenAI resource does.
func (r *Region) ServeHTTP(rw http.ResponseWriter, req *http.Request) {
	r.stats.requests.Add(1)
	w := &recorder{ResponseWriter: rw, region: r, req: req}
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			// Never let a bug take the simulated region down; answer like Azure's own 500.
			r.stats.panics.Add(1)
			if w.status == 0 {
				writeJSON(w, http.StatusInternalServerError, serverErrorBody(r.sim.uuid()))
			}
		}
	}()
	r.setCommonHeaders(w.Header(), req)
	rt, ok := parseRoute(req.URL.Path, req.URL.Query().Get)
	if !ok {
		writeJSON(w, http.StatusNotFound, resourceNotFound)
		return
	}
	c := &call{r: r, w: w, req: req, rt: rt}
	c.serve()
}

func (c *call) serve() {
	if !c.checkAPIVersion() {
		return
	}
	if c.rt.op == "realtime" && c.rt.deployment == "" && c.req.Method == http.MethodGet {
		c.serveRealtime() // realtime.go: a WebSocket session
		return
	}
	if c.rt.deployment != "" && (!deploymentOps[c.rt.op] || c.rt.op == "responses") {
		writeJSON(c.w, http.StatusNotFound, resourceNotFound)
		return
	}
	// Classic generation runs on /openai/deployments/{d}/...; v1 and responses name the deployment in the body.
	onDeployment := c.rt.v1 || c.rt.deployment != "" || c.rt.op == "responses"
	isGen := deploymentOps[c.rt.op] && onDeployment && c.req.Method == http.MethodPost
	if isGen {
		read := c.readGenRequest
		if multipartOps[c.rt.op] {
			read = c.readMultipart
		}
		if !read() {
			return
		}
		if c.rt.deployment == "" {
			c.rt.deployment = c.gen.Model
		}
	}
	if !c.applyFault() {
		return
	}
	if !c.authorize() {
		return
	}
	if !isGen {
		c.serveResource()
		return
	}
	c.serveGeneration()
}

func (c *call) checkAPIVersion() bool {
	if c.rt.v1 {
		switch c.rt.apiVersion {
		case "", "v1", "preview", "latest":
			return true
		}
		writeJSON(c.w, http.StatusBadRequest, azureError("BadRequest", "API version not supported"))
		return false
	}
	if c.rt.apiVersion == "" {
		writeJSON(c.w, http.StatusNotFound, resourceNotFound)
		return false
	}
	if vs := c.r.sim.cfg.APIVersions; len(vs) > 0 && !slices.Contains(vs, c.rt.apiVersion) {
		writeJSON(c.w, http.StatusBadRequest, azureError("BadRequest", "API version not supported"))
		return false
	}
	return true
}

// readGenRequest reads and parses a JSON generation request; it answers the error itself when it fails.
func (c *call) readGenRequest() bool {
	ct := c.req.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if ct == "" || err != nil || mt != "application/json" {
		shown := ct
		if shown == "" {
			shown = "none"
		}
		writeJSON(c.w, http.StatusUnsupportedMediaType, openaiError(
			"Unsupported content type: '"+shown+"'. This API method only accepts 'application/json' requests, but you specified the header 'Content-Type: "+shown+"'. Please try again with a supported content type.",
			"invalid_request_error", "", "unsupported_content_type"))
		return false
	}
	body, ok := c.readBody(c.r.sim.maxBody)
	if !ok {
		return false
	}
	c.body = body
	var g genRequest
	if err := json.Unmarshal(body, &g); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			writeJSON(c.w, http.StatusBadRequest, openaiError(
				"Invalid type for '"+te.Field+"': expected "+jsonKind(te.Type.Kind().String())+", but got "+te.Value+" instead.",
				"invalid_request_error", te.Field, "invalid_type"))
			return false
		}
		writeJSON(c.w, http.StatusBadRequest, openaiError(badJSONMessage, "invalid_request_error", "", ""))
		return false
	}
	if c.rt.v1 || c.rt.op == "responses" {
		if g.Model == "" {
			writeJSON(c.w, http.StatusBadRequest, openaiError("Missing required parameter: 'model'.", "invalid_request_error", "model", "missing_required_parameter"))
			return false
		}
	}
	c.gen = &g
	return true
}

// readBody reads at most limit bytes, answering 413 beyond it.
func (c *call) readBody(limit int64) ([]byte, bool) {
	if c.req.ContentLength > limit {
		writeJSON(c.w, http.StatusRequestEntityTooLarge, tooLargeBody(limit))
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.w, c.req.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeJSON(c.w, http.StatusRequestEntityTooLarge, tooLargeBody(limit))
			return nil, false
		}
		writeJSON(c.w, http.StatusBadRequest, openaiError(badJSONMessage, "invalid_request_error", "", ""))
		return nil, false
	}
	return body, true
}

// authorize checks api-key and Authorization as Azure does and answers 401/403 itself.
func (c *call) authorize() bool {
	s := c.r.sim
	if key := c.req.Header.Get("api-key"); key != "" {
		if c.r.noLocal {
			writeJSON(c.w, http.StatusForbidden, azureError("AuthenticationTypeDisabled", "Key based authentication is disabled for this resource."))
			return false
		}
		if s.keyOK(key) {
			return true
		}
		writeJSON(c.w, http.StatusUnauthorized, accessDenied)
		return false
	}
	authz := c.req.Header.Get("Authorization")
	token, isBearer := cutBearer(authz)
	if !isBearer {
		writeJSON(c.w, http.StatusUnauthorized, accessDenied)
		return false
	}
	if s.cfg.VerifyToken != nil && s.cfg.VerifyToken(token) {
		return true
	}
	if s.cfg.Entra != nil && looksLikeJWT(token) {
		return c.verifyEntra(s.cfg.Entra, token)
	}
	if c.rt.v1 && s.keyOK(token) {
		if c.r.noLocal {
			writeJSON(c.w, http.StatusForbidden, azureError("AuthenticationTypeDisabled", "Key based authentication is disabled for this resource."))
			return false
		}
		return true
	}
	writeJSON(c.w, http.StatusUnauthorized, tokenInvalidBody)
	return false
}

func cutBearer(h string) (string, bool) {
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		t := strings.TrimSpace(h[7:])
		return t, t != ""
	}
	return "", false
}

func (s *Sim) keyOK(key string) bool {
	if s.cfg.APIKey == "" {
		return key != ""
	}
	return key == s.cfg.APIKey
}

// setCommonHeaders sets the headers every Azure OpenAI answer carries.
func (r *Region) setCommonHeaders(h http.Header, req *http.Request) {
	id := r.sim.uuid()
	h.Set("apim-request-id", id)
	h.Set("x-request-id", r.sim.uuid())
	if cid := req.Header.Get("x-ms-client-request-id"); cid != "" && len(cid) <= 128 {
		h.Set("x-ms-client-request-id", cid)
	} else {
		h.Set("x-ms-client-request-id", id)
	}
	h.Set("x-ms-region", r.display)
	h.Set("azureml-model-session", r.session)
	if r.sim.cfg.Now != nil { // a region whose clock is off says so in Date, as a real server would
		h.Set("Date", r.sim.now().UTC().Format(http.TimeFormat))
	}
	h.Set("access-control-allow-origin", "*")
	h.Set("cache-control", "no-cache, must-revalidate")
	h.Set("x-accel-buffering", "no")
	h.Set("x-content-type-options", "nosniff")
	h.Set("strict-transport-security", "max-age=31536000; includeSubDomains; preload")
}

// setRateHeaders sets x-ratelimit-remaining-*; unlimited quotas report the nominal default of a standard deployment.
func setRateHeaders(h http.Header, v quotaVerdict) {
	req, tok := v.remainingRequests, v.remainingTokens
	if v.unlimitedRequests {
		req = 1000
	}
	if v.unlimitedTokens {
		tok = 1000000
	}
	h.Set("x-ratelimit-remaining-requests", strconv.Itoa(req))
	h.Set("x-ratelimit-remaining-tokens", strconv.Itoa(tok))
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}

func writeValue(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, azureError("InternalServerError", "The simulator failed to encode its answer."))
		return
	}
	writeJSON(w, status, b)
}

func jsonKind(goKind string) string {
	switch goKind {
	case "bool":
		return "a boolean"
	case "string":
		return "a string"
	case "slice", "array":
		return "an array"
	case "struct", "map", "ptr":
		return "an object"
	default:
		return "a number"
	}
}
