package failover

import (
	"bytes"
	"context"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/tidwall/gjson"
	"golang.org/x/net/http/httpguts"
)

// Request is a client request read once, by the one parser the gateway and the library share:
// its route and operation, the client-visible name it asks for, the stored objects it names and
// its body. What is logged, authorized and mapped is what the region receives.
type Request struct {
	// HTTP is the client's request: context, headers, query. Its body has been read into Body.
	HTTP      *http.Request
	Surface   Surface
	Operation Operation
	// Route is the route's template, e.g. "POST /openai/v1/responses/{response}/cancel": a
	// constant string, safe in logs and metric labels (never the raw path, which a client controls).
	Route string
	// Name is the client-visible name: from the path (/openai/deployments/{name}/...), the body's
	// `model`, or the realtime query (deployment= or model=). "" when the route names none.
	Name string
	// Objects are the stored objects the request names: path ids first, then body fields.
	Objects []ObjectRef
	// Creates is the kind of object the request creates when it succeeds (0: none).
	Creates ObjectKind
	// Store is the stored-object collection the route is on (responses, conversations, files, batches,
	// fine-tuning jobs, vector stores; 0 for any other route): such a request goes to the region that holds
	// the objects it names (the gateway's affinity, WithPlacement).
	Store ObjectKind
	// Stream reports that the client asked for an SSE answer.
	Stream bool
	// Body is the request body as read (a multipart body as re-encoded from what was parsed);
	// nil when there is none. It is never modified in place.
	Body []byte

	spec *routeSpec
	in   inbound
}

// WithContext returns a shallow copy of r whose HTTP request carries ctx.
func (r *Request) WithContext(ctx context.Context) *Request {
	c := *r
	c.HTTP = r.HTTP.WithContext(ctx)
	return &c
}

// RequestError is a request refused before any region sees it. Status, Code, Type and Message
// make the OpenAI-shaped answer (see WriteError); Err is the cause, when there is one
// (*BodyTooLargeError, *BodyReadError).
type RequestError struct {
	Status  int
	Code    string
	Type    string
	Message string
	// Allow lists the methods the route takes (405 only), for the Allow header.
	Allow string
	Err   error
}

func (e *RequestError) Error() string { return e.Message }
func (e *RequestError) Unwrap() error { return e.Err }

func badRequest(code, msg string) *RequestError {
	return &RequestError{Status: http.StatusBadRequest, Code: code, Type: "invalid_request_error", Message: "lifeline: " + msg}
}

// errUnknownRoute is the answer to a path the gateway does not proxy.
var errUnknownRoute = &RequestError{Status: http.StatusNotFound, Code: "404", Type: "invalid_request_error",
	Message: "lifeline: unknown route; use /openai/deployments/{name}/{op}, /openai/v1/{op} or /v1/{op} with an operation Lifeline knows"}

// Response answers the refusal in the OpenAI error shape, as a response the transport made.
func (e *RequestError) Response(req *http.Request) *http.Response {
	resp := errorResponse(req, e.Status, e.Code, e.Type, e.Message, 0, 0, false)
	if e.Allow != "" {
		resp.Header["Allow"] = []string{strings.ReplaceAll(e.Allow, " ", ", ")}
	}
	return resp
}

const (
	deploymentsPrefix = "/openai/deployments/"
	v1Prefix          = "/openai/v1/"
	plainV1Prefix     = "/v1/"
)

// ParseRequest reads req once: its route, operation, name, stored objects and body (at most
// maxBody bytes; memory grows with the bytes received, never with what Content-Length claims).
// A request the engine will not send comes back as a *RequestError: 404 unknown route, 405
// method, 400 unreadable or ambiguous (SPEC.md section 12), 408 body too slow, 413 too large.
func ParseRequest(req *http.Request, maxBody int64) (*Request, error) {
	if maxBody <= 0 {
		maxBody = DefaultMaxBodyBytes
	}
	if req.URL == nil || strings.Contains(req.URL.Path, "//") || escapedSlash(req.URL.RawPath) {
		return nil, errUnknownRoute // an escaped slash (%2F) has no place in a name, an id or an operation
	}
	for k, vs := range req.Header {
		// A header the region's client would refuse to send must not become a failed attempt that counts against
		// the region: it is the client's error, refused here (net/http's server refuses the same).
		if !httpguts.ValidHeaderFieldName(k) {
			return nil, badRequest("invalid_header", "a request header has an invalid name")
		}
		for _, v := range vs {
			if !httpguts.ValidHeaderFieldValue(v) {
				return nil, badRequest("invalid_header", "a request header has an invalid value")
			}
		}
	}
	m, ok, methodOK, allow := matchRoute(req.Method, req.URL.Path)
	if !ok {
		return nil, errUnknownRoute
	}
	if !methodOK {
		return nil, &RequestError{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed", Type: "invalid_request_error",
			Message: "lifeline: " + strings.TrimPrefix(m.route, req.Method+" ") + " takes " + allow, Allow: allow}
	}
	r := &Request{HTTP: req, Surface: m.surface, Operation: m.spec.op, Route: m.route, Objects: m.objects, Store: m.spec.store, spec: m.spec}
	if e := r.readBody(maxBody); e != nil {
		return nil, e
	}
	if e := r.parseQuery(m); e != nil {
		return nil, e
	}
	switch m.spec.name {
	case nameNone:
		r.Name = "" // a body's model here is not a client-visible name (fine-tuning's base model)
	case namePath:
		r.Name = m.name
	case nameBody:
		if r.Name == "" {
			return nil, badRequest("missing_model", "the request body must name a model (\"model\": NAME) on this route")
		}
	case nameQuery:
		if r.Name == "" {
			return nil, badRequest("missing_model", "the realtime route needs the name in its query (deployment= or model=)")
		}
	}
	if m.spec.op == OpModels {
		r.Name = m.model
	}
	if req.Method == http.MethodPost && m.spec.creates != 0 && r.Creates == 0 && !r.in.noStore {
		r.Creates = m.spec.creates
	}
	r.Stream = r.in.stream
	r.in.name = r.Name
	r.in.needDone = r.in.stream && (r.Operation == OpChatCompletions || r.Operation == OpCompletions)
	r.in.setPath(m)
	return r, nil
}

func escapedSlash(raw string) bool {
	for i := 0; i+2 < len(raw); i++ {
		if raw[i] == '%' && (raw[i+1] == '2' && (raw[i+2] == 'f' || raw[i+2] == 'F') || raw[i+1] == '5' && (raw[i+2] == 'c' || raw[i+2] == 'C')) {
			return true
		}
	}
	return false
}

// readBody reads and parses the body: JSON or multipart/form-data on POST, none on other methods.
func (r *Request) readBody(limit int64) *RequestError {
	req := r.HTTP
	h := req.Header
	if len(h["Content-Type"]) > 1 {
		return badRequest("invalid_body", "the request has more than one Content-Type header")
	}
	if ce := h["Content-Encoding"]; len(ce) > 0 && !(len(ce) == 1 && strings.EqualFold(ce[0], "identity")) {
		return badRequest("invalid_body", "compressed request bodies (Content-Encoding) are not accepted; send the body as it is")
	}
	body, err := readBody(req, limit)
	if err != nil {
		var tooLarge *BodyTooLargeError
		if errors.As(err, &tooLarge) {
			return &RequestError{Status: http.StatusRequestEntityTooLarge, Code: "request_too_large", Type: "invalid_request_error",
				Message: "lifeline: request body larger than policy.max_body_bytes (" + strconv.FormatInt(limit, 10) + " bytes)", Err: err}
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return &RequestError{Status: http.StatusRequestTimeout, Code: "request_timeout", Type: "invalid_request_error",
				Message: "lifeline: the request body did not arrive in time", Err: err}
		}
		e := badRequest("invalid_body", "could not read the request body")
		e.Err = err
		return e
	}
	if len(body) == 0 {
		return nil
	}
	if req.Method != http.MethodPost {
		return badRequest("invalid_body", req.Method+" requests take no body")
	}
	r.Body = body
	r.in.body = body
	ct := ""
	if v := h["Content-Type"]; len(v) > 0 {
		ct = v[0]
	}
	if mt, params, err := mime.ParseMediaType(ct); err == nil && strings.HasPrefix(mt, "multipart/") {
		if mt != "multipart/form-data" {
			return badRequest("invalid_body", "a multipart body must be multipart/form-data")
		}
		return r.parseMultipart(params["boundary"])
	} else if err != nil && strings.HasPrefix(strings.ToLower(strings.TrimSpace(ct)), "multipart/") {
		return badRequest("invalid_body", "the multipart Content-Type does not parse")
	}
	return r.parseJSON()
}

// readBody buffers a request body of at most limit bytes. Memory grows with the bytes that
// arrive: a Content-Length only caps the buffer, it never sizes it beyond bodyChunk up front.
func readBody(req *http.Request, limit int64) ([]byte, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return nil, nil
	}
	defer req.Body.Close()
	cl := req.ContentLength
	if cl == 0 {
		cl = -1 // a client request's 0 with a body means unknown (servers give such requests http.NoBody)
	}
	if cl > limit {
		return nil, &BodyTooLargeError{Limit: limit}
	}
	size := min(int64(4<<10), limit)
	if cl >= 0 {
		size = min(cl, bodyChunk)
	}
	buf := make([]byte, 0, size)
	for {
		if len(buf) == cap(buf) {
			// Full: look for one more byte before growing, so that a body that ends here costs nothing more.
			var one [1]byte
			n, err := io.ReadAtLeast(req.Body, one[:], 1)
			if n == 0 {
				if err == io.EOF {
					if cl > 0 && int64(len(buf)) < cl {
						return nil, &BodyReadError{Err: io.ErrUnexpectedEOF}
					}
					return buf, nil
				}
				return nil, &BodyReadError{Err: err}
			}
			switch {
			case int64(len(buf))+1 > limit:
				return nil, &BodyTooLargeError{Limit: limit}
			case cl >= 0 && int64(len(buf))+1 > cl:
				return nil, &BodyReadError{Err: errors.New("body longer than its Content-Length")}
			}
			next := min(max(2*int64(cap(buf)), 512), limit)
			if cl > 0 {
				next = min(next, cl)
			}
			nb := make([]byte, len(buf), next)
			copy(nb, buf)
			buf = append(nb, one[0])
			continue
		}
		n, err := req.Body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			if cl > 0 && int64(len(buf)) < cl {
				return nil, &BodyReadError{Err: io.ErrUnexpectedEOF}
			}
			return buf, nil
		}
		if err != nil {
			return nil, &BodyReadError{Err: err}
		}
	}
}

// bodyChunk is the most a body buffer starts with, whatever its Content-Length says.
const bodyChunk = 32 << 10

// parseQuery checks the query, takes the realtime name from it, and decides what regions get:
// never a credential (api-key=), no dated api-version on a route sent to the v1 surface.
func (r *Request) parseQuery(m matched) *RequestError {
	raw := r.HTTP.URL.RawQuery
	r.in.query = raw
	if raw == "" {
		return nil
	}
	q, err := url.ParseQuery(raw)
	if err != nil {
		return badRequest("invalid_query", "the query string does not parse")
	}
	changed := false
	for k := range q {
		if strings.EqualFold(k, "api-key") {
			delete(q, k)
			changed = true
		}
	}
	if m.spec.toV1 {
		delete(q, "api-version")
		changed = true
	}
	if m.spec.name == nameQuery {
		key := "model"
		if m.surface == SurfaceAzure {
			key = "deployment"
		}
		for k := range q {
			if strings.EqualFold(k, key) && k != key {
				return badRequest("ambiguous_model", "the query names its model with a case variant of "+strconv.Quote(key))
			}
		}
		switch v := q[key]; len(v) {
		case 0:
		case 1:
			r.Name = v[0]
			r.in.queryName = key
		default:
			return badRequest("ambiguous_model", "the query names more than one "+strconv.Quote(key))
		}
	}
	if changed {
		r.in.query = q.Encode()
	}
	return nil
}

// bodyKeys are the top-level body fields the engine reads. A case variant of one of them
// (`Model`, `STREAM`) is refused: a region whose parser folds case would read it.
var bodyKeys = [...]string{"model", "stream", "store", "previous_response_id", "conversation", "file_id", "input_file_id",
	"training_file", "validation_file", "file_ids"}

// parseJSON reads a JSON body: one object, no duplicate top-level key, no case variant of a key
// the engine reads, a string `model`, a boolean `stream`, and the stored objects it names.
func (r *Request) parseJSON() *RequestError {
	body := r.Body
	if !gjson.ValidBytes(body) {
		return badRequest("invalid_json", "the request body is not valid JSON")
	}
	if !utf8.Valid(body) {
		// Parsers differ on what invalid UTF-8 means (replaced, kept, refused): refuse it, as JSON (RFC 8259) does.
		return badRequest("invalid_json", "the request body is not valid UTF-8")
	}
	root := gjson.Parse(unsafe.String(unsafe.SliceData(body), len(body))) // read-only view: results must not outlive body
	if !root.IsObject() {
		return badRequest("invalid_json", "the request body must be a JSON object")
	}
	var (
		e     *RequestError
		small [16]string
		keys  = small[:0]
		seen  map[string]struct{}
	)
	root.ForEach(func(k, v gjson.Result) bool {
		key := k.Str
		if dup(&keys, &seen, key) {
			e = badRequest("ambiguous_body", "the JSON body has a top-level key more than once") // (never echo what a client sent)
			return false
		}
		e = r.readKey(key, v)
		return e == nil
	})
	return e
}

// dup records key and reports whether it was seen before. Few keys are compared in a slice;
// many (a hostile body) in a map, so that the check stays linear.
func dup(keys *[]string, seen *map[string]struct{}, key string) bool {
	if *seen != nil {
		if _, ok := (*seen)[key]; ok {
			return true
		}
		(*seen)[key] = struct{}{}
		return false
	}
	for _, k := range *keys {
		if k == key {
			return true
		}
	}
	if len(*keys) < cap(*keys) {
		*keys = append(*keys, key)
		return false
	}
	*seen = make(map[string]struct{}, 64)
	for _, k := range *keys {
		(*seen)[k] = struct{}{}
	}
	(*seen)[key] = struct{}{}
	return false
}

// readKey reads one top-level field of a JSON body.
func (r *Request) readKey(key string, v gjson.Result) *RequestError {
	switch key {
	case "model":
		if v.Type != gjson.String {
			return badRequest("invalid_model", "\"model\" must be a string")
		}
		r.Name = strings.Clone(v.Str)
		if r.spec.name == nameBody {
			if v.Index <= 0 || v.Index+len(v.Raw) > len(r.Body) || string(r.Body[v.Index:v.Index+len(v.Raw)]) != v.Raw {
				return badRequest("invalid_json", "the body's \"model\" could not be located") // gjson always indexes ForEach values
			}
			r.in.modelAt, r.in.modelEnd = v.Index, v.Index+len(v.Raw)
		}
	case "stream":
		switch v.Type {
		case gjson.True:
			r.in.stream = true
		case gjson.False, gjson.Null:
		default:
			return badRequest("invalid_stream", "\"stream\" must be true or false")
		}
	case "store":
		r.in.noStore = v.Type == gjson.False
	case "previous_response_id":
		r.addObject(ObjectResponse, key, v)
	case "conversation":
		if v.IsObject() {
			v = v.Get("id")
		}
		r.addObject(ObjectConversation, key, v)
	case "file_id", "input_file_id", "training_file", "validation_file":
		r.addObject(ObjectFile, key, v)
	case "file_ids":
		v.ForEach(func(_, id gjson.Result) bool {
			r.addObject(ObjectFile, key, id)
			return true
		})
	default:
		for _, k := range bodyKeys {
			if strings.EqualFold(key, k) {
				return badRequest("ambiguous_body", "the JSON body has a case variant of the key "+strconv.Quote(k))
			}
		}
	}
	return nil
}

func (r *Request) addObject(kind ObjectKind, field string, v gjson.Result) {
	if v.Type == gjson.String && v.Str != "" {
		r.Objects = append(r.Objects, ObjectRef{Kind: kind, ID: strings.Clone(v.Str), Field: field})
	}
}

// maxParts bounds the parts of a multipart body.
const maxParts = 1000

// parseMultipart reads a multipart/form-data body with mime/multipart and re-encodes it from
// what was read, with the same boundary: each part with a canonical Content-Disposition (name,
// and filename for a file) and its Content-Type. The region receives exactly the fields that
// were read here; at most one `model` field, and no part that cannot be read.
func (r *Request) parseMultipart(boundary string) *RequestError {
	in := r.Body
	mr := multipart.NewReader(bytes.NewReader(in), boundary)
	out := bytes.NewBuffer(make([]byte, 0, len(in)+256))
	mw := multipart.NewWriter(out)
	if boundary == "" || mw.SetBoundary(boundary) != nil {
		return badRequest("invalid_body", "the multipart boundary is missing or invalid")
	}
	models, streams := 0, 0
	for n := 0; ; n++ {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil || n >= maxParts {
			return badRequest("invalid_body", "the multipart body does not parse")
		}
		name, file, hdr, e := partHeader(p.Header)
		if e != nil {
			return e
		}
		pw, _ := mw.CreatePart(hdr)
		at := out.Len()
		if _, err := io.Copy(pw, p); err != nil {
			return badRequest("invalid_body", "the multipart body does not parse")
		}
		value := out.Bytes()[at:]
		for _, k := range bodyKeys {
			if strings.EqualFold(name, k) && name != k {
				return badRequest("ambiguous_body", "the multipart body has a case variant of the field "+strconv.Quote(k))
			}
		}
		switch name {
		case "model":
			if models++; models > 1 || file {
				return badRequest("ambiguous_model", "the multipart body must have one \"model\" field, as a field, not a file")
			}
			r.Name = string(value)
			if r.spec.name == nameBody {
				r.in.modelAt, r.in.modelEnd = at, out.Len()
			}
		case "stream":
			if streams++; streams > 1 {
				return badRequest("ambiguous_body", "the multipart body has more than one \"stream\" field")
			}
			switch string(value) {
			case "true":
				r.in.stream = true
			case "false":
			default:
				return badRequest("invalid_stream", "the \"stream\" field must be true or false")
			}
		}
	}
	if err := mw.Close(); err != nil {
		return badRequest("invalid_body", "the multipart body does not parse")
	}
	r.Body = out.Bytes()
	r.in.body = r.Body
	r.in.multipart = true
	return nil
}

// partHeader reads a part's headers strictly: one form-data Content-Disposition with a plain
// name (and a filename for a file), an optional valid Content-Type, no transfer encoding. It
// returns the header the re-encoded part gets.
func partHeader(h textproto.MIMEHeader) (name string, file bool, out textproto.MIMEHeader, e *RequestError) {
	bad := func(msg string) (string, bool, textproto.MIMEHeader, *RequestError) {
		return "", false, nil, badRequest("invalid_body", "multipart part: "+msg)
	}
	cd := h["Content-Disposition"]
	if len(cd) != 1 {
		return bad("it needs exactly one Content-Disposition header")
	}
	disp, params, err := mime.ParseMediaType(cd[0])
	if err != nil || disp != "form-data" {
		return bad("its Content-Disposition must be form-data with a name")
	}
	name, ok := params["name"]
	if !ok || !plainParam(name) {
		return bad("its field name must be plain text")
	}
	filename, file := params["filename"]
	if file && !plainParam(filename) {
		return bad("its filename must be plain text")
	}
	for k := range params {
		if k != "name" && k != "filename" {
			return bad("its Content-Disposition has a parameter other than name and filename")
		}
	}
	if strings.Contains(cd[0], "*") {
		return bad("its Content-Disposition uses an extended (*) parameter")
	}
	if te := h["Content-Transfer-Encoding"]; len(te) > 0 {
		switch strings.ToLower(te[0]) {
		case "binary", "8bit", "7bit":
		default:
			return bad("its Content-Transfer-Encoding is not accepted")
		}
	}
	disposition := `form-data; name="` + name + `"`
	if file {
		disposition += `; filename="` + filename + `"`
	}
	out = textproto.MIMEHeader{"Content-Disposition": {disposition}}
	if ct := h["Content-Type"]; len(ct) > 0 {
		if len(ct) > 1 {
			return bad("it has more than one Content-Type")
		}
		if _, _, err := mime.ParseMediaType(ct[0]); err != nil {
			return bad("its Content-Type does not parse")
		}
		out["Content-Type"] = ct[:1]
	}
	return name, file, out, nil
}

// plainParam reports whether a form name or filename can be written back quoted without
// escapes: printable, without quotes or backslashes.
func plainParam(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c == 0x7f || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// inbound is what the attempt path needs of a parsed request.
type inbound struct {
	name string // client-visible name; "" when the route names none
	body []byte
	// JSON body: byte range of the `model` string value, quotes included. Multipart body: byte
	// range of the `model` field's content. -1 (or equal) when the body's model is not rewritten.
	modelAt, modelEnd int
	multipart         bool
	stream            bool   // the client asked for a streamed answer
	needDone          bool   // an SSE answer must end with data: [DONE]
	noStore           bool   // "store": false
	deployment        bool   // the name is in the path: /openai/deployments/{deployment}/{op}
	op                string // the path after the name (deployments) or after the surface prefix: "chat/completions", "responses"
	path              string // when !deployment: the path regions get (after their prefix)
	query             string // the query regions get
	queryName         string // realtime: the query parameter that holds the name
}

// setPath decides the path regions get.
func (in *inbound) setPath(m matched) {
	switch {
	case m.spec.name == namePath:
		in.deployment, in.op = true, m.op
	case m.surface != SurfaceAzure || m.spec.toV1:
		in.op, in.path = m.rest, v1Prefix+m.rest
	default:
		in.op, in.path = m.rest, "/openai/"+m.rest
	}
}

// rewriteBody returns the body with `model` set to the region's deployment (quoted holds it as
// a JSON string). It returns the body itself when nothing changes.
func (in *inbound) rewriteBody(deployment string, quoted []byte) []byte {
	if in.modelEnd <= in.modelAt {
		return in.body
	}
	old := in.body[in.modelAt:in.modelEnd]
	repl := quoted
	if in.multipart {
		repl = []byte(deployment)
	}
	if bytes.Equal(old, repl) {
		return in.body
	}
	out := make([]byte, 0, len(in.body)-len(old)+len(repl))
	out = append(out, in.body[:in.modelAt]...)
	out = append(out, repl...)
	return append(out, in.body[in.modelEnd:]...)
}

// targetPath is the path a region receives for this request.
func (in *inbound) targetPath(prefix, deployment string) string {
	if in.deployment {
		return prefix + deploymentsPrefix + deployment + "/" + in.op
	}
	return prefix + in.path
}

// targetQuery is the query a region receives: the realtime name replaced by its deployment.
func (in *inbound) targetQuery(deployment string) string {
	if in.queryName == "" || deployment == "" {
		return in.query
	}
	q, _ := url.ParseQuery(in.query)
	q.Set(in.queryName, deployment)
	return q.Encode()
}

// AppendJSONString appends s as a JSON string (with <, > and & escaped, as encoding/json does).
func AppendJSONString(dst []byte, s string) []byte { return appendJSONString(dst, s) }

// appendJSONString appends s as a JSON string.
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < 0x20 || c == '<' || c == '>' || c == '&':
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}

// regionURL is a region's endpoint split for cheap per-attempt URLs.
type regionURL struct {
	scheme, host, prefix string
}

func parseRegionURL(endpoint string) (regionURL, error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return regionURL{}, err
	}
	return regionURL{scheme: u.Scheme, host: u.Host, prefix: strings.TrimRight(u.Path, "/")}, nil
}
