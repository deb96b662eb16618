package failover

import (
	"bytes"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
)

// shape is the path shape of a client request.
type shape uint8

const (
	shapeOther      shape = iota // no client-visible name: sent as it is to any region
	shapeDeployment              // /openai/deployments/{name}/{op}
	shapeV1                      // /openai/v1/{op} or /v1/{op} with "model" in the body
)

// inbound is a client request, read once: the name it asks for and where that name sits.
type inbound struct {
	shape shape
	name  string // client-visible name; "" for shapeOther or a v1 body without model
	op    string // path after the name (deployment shape) or after v1/ (v1 shape)
	path  string // shapeOther: the path to send
	body  []byte
	// JSON body: byte range of the `model` string value, quotes included.
	// Multipart body: byte range of the `model` field's content.
	modelAt, modelEnd int
	multipart         bool
	slowModel         bool // JSON `model` found but not by byte range: rewrite with sjson
	stream            bool // the client asked for a streamed answer
	needDone          bool // an SSE answer must end with data: [DONE]
}

const (
	deploymentsPrefix = "/openai/deployments/"
	v1Prefix          = "/openai/v1/"
	plainV1Prefix     = "/v1/"
)

// parseInbound reads the client-visible name from the path or body.
func parseInbound(req *http.Request, body []byte) inbound {
	in := inbound{body: body, modelAt: -1}
	p := req.URL.Path
	switch {
	case strings.HasPrefix(p, deploymentsPrefix):
		rest := p[len(deploymentsPrefix):]
		name, op, ok := strings.Cut(rest, "/")
		if !ok || name == "" {
			in.path = p
			return in
		}
		in.shape, in.name, in.op = shapeDeployment, name, op
	case strings.HasPrefix(p, v1Prefix):
		in.shape, in.op = shapeV1, p[len(v1Prefix):]
	case strings.HasPrefix(p, plainV1Prefix):
		in.shape, in.op = shapeV1, p[len(plainV1Prefix):]
	default:
		in.path = p
		return in
	}
	in.readBody(req.Header.Get("Content-Type"))
	in.needDone = in.stream && (in.op == "chat/completions" || in.op == "completions")
	return in
}

// readBody finds `model` and `stream` without decoding the whole body.
func (in *inbound) readBody(contentType string) {
	if len(in.body) == 0 {
		return
	}
	if strings.HasPrefix(contentType, "multipart/") {
		in.multipart = true
		_, params, err := mime.ParseMediaType(contentType)
		if err != nil || params["boundary"] == "" {
			return
		}
		at, end, ok := multipartField(in.body, params["boundary"], "model")
		if ok {
			in.modelAt, in.modelEnd = at, end
			if in.shape == shapeV1 {
				in.name = string(in.body[at:end])
			}
		}
		in.stream = multipartHasTrue(in.body, params["boundary"], "stream")
		return
	}
	if in.shape == shapeV1 {
		in.findModel()
	}
	// Most bodies never mention "stream": a SIMD substring search spares them a second JSON walk.
	in.stream = bytes.Contains(in.body, []byte(`"stream"`)) && gjson.GetBytes(in.body, "stream").Type == gjson.True
}

// findModel locates the JSON `model` string, the client-visible name on the v1 surface. (On the
// deployment surface the name is in the path and regions ignore the body's model.)
func (in *inbound) findModel() {
	m := gjson.GetBytes(in.body, "model")
	if m.Type == gjson.String {
		if m.Index > 0 && m.Index+len(m.Raw) <= len(in.body) && string(in.body[m.Index:m.Index+len(m.Raw)]) == m.Raw {
			in.modelAt, in.modelEnd = m.Index, m.Index+len(m.Raw)
		} else {
			in.slowModel = true
		}
		in.name = m.Str
	}
}

// rewriteBody returns the body with `model` set to the region's deployment (quoted holds it as
// a JSON string). It returns the body itself when nothing changes.
func (in *inbound) rewriteBody(deployment string, quoted []byte) []byte {
	if in.shape != shapeV1 {
		return in.body
	}
	if in.slowModel {
		return rewriteModelSlow(in.body, deployment)
	}
	if in.modelAt < 0 {
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

// rewriteModelSlow is the fallback for JSON whose `model` could not be located by byte range.
func rewriteModelSlow(body []byte, deployment string) []byte {
	out, err := sjson.SetBytes(body, "model", deployment)
	if err != nil {
		return body
	}
	return out
}

// targetPath is the path a region receives for this request.
func (in *inbound) targetPath(prefix, deployment string) string {
	switch in.shape {
	case shapeDeployment:
		return prefix + deploymentsPrefix + deployment + "/" + in.op
	case shapeV1:
		return prefix + v1Prefix + in.op
	}
	return prefix + in.path
}

// appendJSONString appends s as a JSON string.
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}

// multipartField finds the content of the form field `name` in a multipart body:
// the byte range between the part's blank line and the next delimiter.
func multipartField(body []byte, boundary, name string) (at, end int, ok bool) {
	delim := []byte("--" + boundary)
	want := []byte(`name="` + name + `"`)
	i := bytes.Index(body, delim)
	if i < 0 {
		return 0, 0, false
	}
	// Like mime/multipart, accept bare LF line endings when the first delimiter line uses them.
	nl := []byte("\r\n")
	if rest := body[i+len(delim):]; len(rest) > 0 && rest[0] == '\n' {
		nl = nl[1:]
	}
	next := append(append([]byte(nil), nl...), delim...)
	for i >= 0 {
		partStart := i + len(delim)
		if bytes.HasPrefix(body[partStart:], []byte("--")) {
			return 0, 0, false // closing delimiter
		}
		n := bytes.Index(body[partStart:], next)
		if n < 0 {
			return 0, 0, false
		}
		n += partStart
		part := body[partStart:n]
		if hdrEnd, sep := headerEnd(part); hdrEnd >= 0 && headerHasName(part[:hdrEnd], want) {
			return partStart + hdrEnd + sep, n, true
		}
		i = n + len(nl)
	}
	return 0, 0, false
}

// headerEnd finds the blank line that ends a part's headers and the length of that separator.
func headerEnd(part []byte) (int, int) {
	crlf, lf := bytes.Index(part, []byte("\r\n\r\n")), bytes.Index(part, []byte("\n\n"))
	switch {
	case crlf >= 0 && (lf < 0 || crlf < lf):
		return crlf, 4
	case lf >= 0:
		return lf, 2
	}
	return -1, 0
}

// headerHasName reports whether a part's headers carry a Content-Disposition with want
// (`name="model"`) as its name parameter.
func headerHasName(hdr, want []byte) bool {
	for line := range bytes.SplitSeq(hdr, []byte("\n")) {
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok || !bytes.EqualFold(bytes.TrimSpace(k), []byte("Content-Disposition")) {
			continue
		}
		for param := range bytes.SplitSeq(v, []byte(";")) {
			if bytes.Equal(bytes.TrimSpace(param), want) {
				return true
			}
		}
	}
	return false
}

func multipartHasTrue(body []byte, boundary, name string) bool {
	at, end, ok := multipartField(body, boundary, name)
	return ok && string(bytes.TrimSpace(body[at:end])) == "true"
}

// readBody buffers a request body up to limit bytes.
func readBody(req *http.Request, limit int64) ([]byte, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return nil, nil
	}
	defer req.Body.Close()
	if req.ContentLength > limit {
		return nil, &BodyTooLargeError{Limit: limit}
	}
	if req.ContentLength > 0 {
		// Known length: one exact allocation, then make sure nothing follows.
		buf := make([]byte, req.ContentLength)
		if _, err := io.ReadFull(req.Body, buf); err != nil {
			return nil, &BodyReadError{Err: err}
		}
		var one [1]byte
		if n, _ := req.Body.Read(one[:]); n > 0 {
			return nil, &BodyReadError{Err: io.ErrUnexpectedEOF}
		}
		return buf, nil
	}
	buf, err := io.ReadAll(io.LimitReader(req.Body, limit+1))
	if err != nil {
		return nil, &BodyReadError{Err: err}
	}
	if int64(len(buf)) > limit {
		return nil, &BodyTooLargeError{Limit: limit}
	}
	return buf, nil
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
