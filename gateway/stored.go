package gateway

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"

	"github.com/lifeline-sre/lifeline/affinity"
	"github.com/lifeline-sre/lifeline/failover"
)

// Stored objects (SPEC.md section 10): responses, conversations, files, batches, fine-tuning jobs and vector
// stores live in the region that created them. Every request that names one goes to that region (affinity); an id
// the gateway has not seen is located by asking every region; a list asks every region and merges the answers.
// docs/gateway.md lists the routes with their affinity rule.

// objectKind is the kind of a stored object.
type objectKind uint8

const (
	objResponse objectKind = iota + 1
	objConversation
	objFile
	objBatch
	objFineTuningJob
	objVectorStore
)

// objectKinds: the path segment of each kind, its operation name (SPEC 12) and how it is named in messages.
var objectKinds = [...]struct {
	seg, op, noun string
	kind          objectKind
}{
	{"responses", "responses", "response", objResponse},
	{"conversations", "conversations", "conversation", objConversation},
	{"files", "files", "file", objFile},
	{"batches", "batches", "batch", objBatch},
	{"fine_tuning/jobs", "fine_tuning", "fine-tuning job", objFineTuningJob},
	{"vector_stores", "vector_stores", "vector store", objVectorStore},
}

func (k objectKind) seg() string  { return objectKinds[k-1].seg }
func (k objectKind) noun() string { return objectKinds[k-1].noun }

// storedMethods are the routes of each kind with their methods, after the kind's segment: "" is the collection,
// "{id}" the object, "{}" an id of a sub-object. Anything else is 404 or 405 here and never reaches a region.
var storedMethods = map[objectKind]map[string]string{
	objResponse:     {"": "POST", "{id}": "GET DELETE", "{id}/cancel": "POST", "{id}/input_items": "GET"},
	objConversation: {"": "POST", "{id}": "GET POST DELETE", "{id}/items": "GET POST", "{id}/items/{}": "GET DELETE"},
	objFile:         {"": "GET POST", "{id}": "GET DELETE", "{id}/content": "GET"},
	objBatch:        {"": "GET POST", "{id}": "GET", "{id}/cancel": "POST"},
	objFineTuningJob: {"": "GET POST", "{id}": "GET DELETE", "{id}/cancel": "POST", "{id}/pause": "POST", "{id}/resume": "POST",
		"{id}/events": "GET", "{id}/checkpoints": "GET"},
	objVectorStore: {"": "GET POST", "{id}": "GET POST DELETE", "{id}/files": "GET POST", "{id}/files/{}": "GET POST DELETE",
		"{id}/file_batches": "POST", "{id}/file_batches/{}": "GET", "{id}/file_batches/{}/cancel": "POST",
		"{id}/file_batches/{}/files": "GET", "{id}/search": "POST"},
}

// storedRoute is a request on a stored-object route.
type storedRoute struct {
	api     string // azure, azure-v1, openai-v1
	kind    objectKind
	id      string // the object in the path; "" for the collection
	pattern string // the route after the kind: "", "{id}", "{id}/files/{}", ...
	path    string // the path the region gets (classic responses and conversations go to /openai/v1)
	v1Moved bool   // a classic route sent to /openai/v1: its dated api-version is dropped
	known   bool   // the route exists (else 404)
	allowed bool   // the method is allowed on it (else 405)
}

// objectRef is one stored object a request names, and where.
type objectRef struct {
	kind  objectKind
	id    string
	field string // "path" or the body field
}

// parseStored recognises the stored-object routes on the three surfaces. ok is false for any other path.
func parseStored(method, path string) (storedRoute, bool) {
	var sr storedRoute
	var rest string
	switch {
	case strings.HasPrefix(path, "/openai/v1/"):
		sr.api, rest = "azure-v1", path[len("/openai/v1/"):]
	case strings.HasPrefix(path, "/v1/"):
		sr.api, rest = "openai-v1", path[len("/v1/"):]
	case strings.HasPrefix(path, "/openai/") && !strings.HasPrefix(path, "/openai/deployments/"):
		sr.api, rest = "azure", path[len("/openai/"):]
	default:
		return sr, false
	}
	for _, k := range objectKinds {
		after, ok := strings.CutPrefix(rest, k.seg)
		if !ok || (after != "" && after[0] != '/') {
			continue
		}
		sr.kind = k.kind
		sr.path = "/openai/" + rest
		if sr.api != "azure" {
			sr.path = "/openai/v1/" + rest
		} else if k.kind == objResponse || k.kind == objConversation {
			sr.path, sr.v1Moved = "/openai/v1/"+rest, true
		}
		if after == "" {
			sr.known = true
		} else {
			sr.parseTail(after[1:])
		}
		if sr.known {
			sr.allowed = strings.Contains(" "+storedMethods[sr.kind][sr.pattern]+" ", " "+method+" ")
		}
		return sr, true
	}
	return sr, false
}

// parseTail reads what follows the kind: the object's id and the sub-route.
func (sr *storedRoute) parseTail(tail string) {
	segs := strings.Split(tail, "/")
	if !affinity.ValidID(segs[0]) {
		return
	}
	sr.id = segs[0]
	pat := []string{"{id}"}
	for i, s := range segs[1:] {
		switch {
		case s == "":
			return
		case i%2 == 1 && sr.kind != objFineTuningJob: // sub-object ids: items/{}, files/{}, file_batches/{}
			if !affinity.ValidID(s) {
				return
			}
			pat = append(pat, "{}")
		default:
			pat = append(pat, s)
		}
	}
	sr.pattern = strings.Join(pat, "/")
	_, sr.known = storedMethods[sr.kind][sr.pattern]
}

// bodyRefs are the body fields that name stored objects (SPEC 10), with the kind each names.
var bodyRefs = [...]struct {
	field string
	kind  objectKind
}{
	{"previous_response_id", objResponse}, {"conversation", objConversation}, {"file_id", objFile},
	{"input_file_id", objFile}, {"training_file", objFile}, {"validation_file", objFile}, {"file_ids", objFile},
}

// refs are the objects a request names: the path's first, then the body's.
func (sr storedRoute) refs(contentType string, body []byte) []objectRef {
	var out []objectRef
	if sr.id != "" {
		out = append(out, objectRef{sr.kind, sr.id, "path"})
	}
	if len(body) == 0 || strings.HasPrefix(contentType, "multipart/") {
		return out
	}
	for _, f := range bodyRefs {
		v := gjson.GetBytes(body, f.field)
		switch {
		case v.Type == gjson.String && v.Str != "":
			out = append(out, objectRef{f.kind, v.Str, f.field})
		case v.IsObject() && f.kind == objConversation:
			if id := v.Get("id"); id.Type == gjson.String && id.Str != "" {
				out = append(out, objectRef{f.kind, id.Str, f.field})
			}
		case v.IsArray():
			for _, e := range v.Array() {
				if e.Type == gjson.String && e.Str != "" {
					out = append(out, objectRef{f.kind, e.Str, f.field})
				}
			}
		}
	}
	return out
}

// HeaderUnreached names, on a merged list, the regions that could not be asked.
const HeaderUnreached = "X-Lifeline-Unreached-Regions"

// serveStored answers a request on a stored-object route.
func (g *Gateway) serveStored(w http.ResponseWriter, r *http.Request, x *exchange, gen *generation, sr storedRoute) {
	x.api, x.op = sr.api, objectKinds[sr.kind-1].op
	switch {
	case !sr.known:
		g.reply(w, x, http.StatusNotFound, "404", "invalid_request_error", "lifeline: unknown route")
		return
	case !sr.allowed:
		g.reply(w, x, http.StatusMethodNotAllowed, "method_not_allowed", "invalid_request_error",
			"lifeline: "+r.Method+" is not offered on this route")
		return
	}
	body, err := readBody(r, gen.maxBody)
	switch {
	case err == nil:
	case errors.As(err, new(*failover.BodyTooLargeError)):
		g.tooLarge(w, x, gen.maxBody)
		return
	default:
		x.err = err.Error()
		g.reply(w, x, http.StatusBadRequest, "invalid_body", "invalid_request_error", "lifeline: could not read the request body")
		return
	}
	create := sr.id == "" && r.Method == http.MethodPost
	named := create && sr.kind == objResponse // a Responses create names a model: a client-visible name
	if named {
		name := modelOf(r.Header.Get("Content-Type"), body)
		canon, ok := gen.names[name]
		if !ok {
			x.name = "unknown"
			g.reply(w, x, http.StatusNotFound, "DeploymentNotFound", "invalid_request_error",
				"lifeline: no region serves the requested name; known names: "+strings.Join(gen.cfg.Names(), ", "))
			return
		}
		x.name = canon
	}
	ctx, cancel := r.Context(), context.CancelFunc(func() {})
	if d := clientTimeout(r.Header); d > 0 {
		ctx, cancel = context.WithTimeout(ctx, d)
	}
	defer cancel()
	if sr.id == "" && r.Method == http.MethodGet {
		g.serveList(ctx, w, r, x, gen, sr)
		return
	}
	refs := sr.refs(r.Header.Get("Content-Type"), body)
	holder, ref, ok := g.holder(ctx, w, x, gen, refs)
	if !ok {
		return
	}
	out := storedRequest(ctx, r, sr, body, failover.Placement{Region: holder, Unnamed: !named})
	resp, err := g.transport.RoundTrip(out)
	if err != nil {
		g.roundTripError(w, x, ctx, err)
		return
	}
	defer resp.Body.Close()
	if holder != "" && cannotServe(resp) {
		if named && ref.field == "previous_response_id" && len(refs) == 1 && gen.cfg.Responses.Rebuild {
			resp.Body.Close()
			if g.rebuild(ctx, w, r, x, gen, sr, body, ref, holder) {
				return
			}
		}
		g.holderDown(w, x, ref, holder, resp)
		return
	}
	// A deleted object's id stays in the index: a later request naming it goes to its region, whose 404 is the
	// honest answer, instead of a search that an unreachable region would make inconclusive.
	if region := resp.Header.Get(failover.HeaderRegion); create && resp.StatusCode < 300 && region != failover.SelfRegion {
		prev, whole := g.history(ctx, gen, named, refs)
		if !whole {
			gen = gen.withoutRebuild()
		}
		g.recordCreated(resp, body, region, gen, prev)
	}
	g.respond(w, resp, x)
}

// history is the conversation before a new response, from the items kept for its previous response. whole is
// false when the history is not all known to the gateway (a previous response whose items were not kept, or a
// conversation object, which lives in its region): then nothing is kept for the new response either, so that a
// rebuild never sends a conversation with a hole in it.
func (g *Gateway) history(ctx context.Context, gen *generation, named bool, refs []objectRef) (prev []string, whole bool) {
	if !named || !gen.cfg.Responses.Rebuild {
		return nil, false
	}
	for _, ref := range refs {
		switch ref.field {
		case "previous_response_id":
			kept, ok, err := g.items.Get(ctx, ref.id)
			if err != nil || !ok {
				return nil, false
			}
			prev = splitItems(kept)
		default:
			return nil, false
		}
	}
	return prev, true
}

// withoutRebuild is gen as if responses.rebuild were off.
func (gen *generation) withoutRebuild() *generation {
	c := *gen.cfg
	c.Responses.Rebuild = false
	g2 := *gen
	g2.cfg = &c
	return &g2
}

// storedRequest is the request the engine gets: the client's, without its credential and hop-by-hop headers, on the
// region's path, placed in one region or any.
func storedRequest(ctx context.Context, r *http.Request, sr storedRoute, body []byte, pl failover.Placement) *http.Request {
	u := &url.URL{Scheme: "http", Host: "lifeline.invalid", Path: sr.path, RawQuery: r.URL.RawQuery}
	if sr.v1Moved || strings.Contains(u.RawQuery, "api-key") {
		q := u.Query()
		q.Del("api-key")
		if sr.v1Moved {
			q.Del("api-version")
		}
		u.RawQuery = q.Encode()
	}
	h := r.Header.Clone()
	stripCredentials(h)
	removeHopHeaders(h)
	delete(h, "Accept-Encoding")
	out := &http.Request{Method: r.Method, URL: u, Header: h, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Host: u.Host}
	if len(body) > 0 {
		out.Body = io.NopCloser(bytes.NewReader(body))
		out.ContentLength = int64(len(body))
		out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
	return out.WithContext(failover.WithPlacement(ctx, pl))
}

// cannotServe reports an answer that means the holding region could not serve: the engine's own 503 (the region is
// out of service, disabled or unreachable) or a 5xx of the region after the engine's retries.
func cannotServe(resp *http.Response) bool {
	if resp.Header.Get(failover.HeaderRegion) == failover.SelfRegion {
		return resp.StatusCode == http.StatusServiceUnavailable
	}
	return resp.StatusCode >= 500
}

// holderDown answers 503 naming the object and its region, with Retry-After: the request never goes to a region
// where the object does not exist.
func (g *Gateway) holderDown(w http.ResponseWriter, x *exchange, ref objectRef, holder string, resp *http.Response) {
	why := "it is out of service"
	if resp.Header.Get(failover.HeaderRegion) != failover.SelfRegion {
		why = "it answered " + strconv.Itoa(resp.StatusCode)
	} else if msg := gjson.GetBytes(readSmall(resp.Body), "error.message").Str; msg != "" {
		if i := strings.Index(msg, "("); i >= 0 && strings.HasSuffix(msg, ")") {
			why = msg[i+1 : len(msg)-1]
		}
	}
	retry := resp.Header.Get("Retry-After")
	if retry == "" {
		retry = "1"
	}
	w.Header().Set("Retry-After", retry)
	if ms := resp.Header.Get("Retry-After-Ms"); ms != "" {
		w.Header().Set("Retry-After-Ms", ms)
	}
	w.Header().Set("X-Should-Retry", "true")
	x.err = "holder " + holder + " cannot serve"
	g.reply(w, x, http.StatusServiceUnavailable, "object_region_unavailable", "server_error",
		"lifeline: "+ref.kind.noun()+" "+ref.id+" is stored in region "+holder+", which cannot serve it now ("+why+
			"); it exists only there, so the request was not sent elsewhere; retry after "+retry+"s")
}

func readSmall(r io.Reader) []byte {
	b, _ := io.ReadAll(io.LimitReader(r, 16<<10))
	return b
}

// holder finds the one region that holds every object refs names: from the index, else by asking the regions. ""
// with ok means no object is named, or none exists anywhere (the request then goes where the engine sends it, and
// that region gives the honest 404). When it answers the client itself, ok is false.
func (g *Gateway) holder(ctx context.Context, w http.ResponseWriter, x *exchange, gen *generation, refs []objectRef) (string, objectRef, bool) {
	holder, first := "", objectRef{}
	for _, ref := range refs {
		if !affinity.ValidID(ref.id) {
			continue // the region will reject it; no id that long or odd is ever looked up or stored
		}
		region, unreached := g.whereIs(ctx, gen, ref)
		switch {
		case region == "" && len(unreached) > 0:
			w.Header().Set("Retry-After", "5")
			w.Header().Set(HeaderUnreached, strings.Join(unreached, ","))
			g.reply(w, x, http.StatusServiceUnavailable, "object_region_unavailable", "server_error",
				"lifeline: "+ref.kind.noun()+" "+ref.id+" is not known to the regions that answered, and "+
					strings.Join(unreached, ", ")+" could not be asked; it may be stored there; retry later")
			return "", ref, false
		case region == "":
			continue
		case holder == "":
			holder, first = region, ref
		case holder != region:
			g.reply(w, x, http.StatusConflict, "objects_in_different_regions", "invalid_request_error",
				"lifeline: "+first.kind.noun()+" "+first.id+" is stored in region "+holder+" and "+ref.kind.noun()+" "+ref.id+
					" in region "+region+"; one request cannot use both")
			return "", ref, false
		}
	}
	return holder, first, true
}

// locateTimeout bounds the search for an object the index does not know.
const locateTimeout = 10 * time.Second

// whereIs returns the region that holds ref: from the index, else by asking every configured region in parallel
// (a 404 is an answer: not there) and remembering the answer. unreached lists the regions that could not answer
// when the object was found nowhere else.
func (g *Gateway) whereIs(ctx context.Context, gen *generation, ref objectRef) (region string, unreached []string) {
	if r, ok, err := g.index.Lookup(ctx, ref.id); err == nil && ok && gen.hasRegion(r) {
		return r, nil
	}
	type found struct {
		region    string
		unreached []string
	}
	v, _, _ := g.locating.Do(ref.id, func() (any, error) {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), locateTimeout)
		defer cancel()
		regions := gen.cfg.Regions
		answers := make(chan found, len(regions))
		for _, rc := range regions {
			go func() {
				status := g.ask(lctx, rc.Name, ref.kind.seg()+"/"+ref.id)
				switch {
				case status == http.StatusOK:
					answers <- found{region: rc.Name}
				case status == http.StatusNotFound:
					answers <- found{}
				default:
					answers <- found{unreached: []string{rc.Name}}
				}
			}()
		}
		var out found
		for range regions {
			a := <-answers
			if a.region != "" && out.region == "" {
				out.region = a.region
				g.index.Record(lctx, ref.id, a.region)
			}
			out.unreached = append(out.unreached, a.unreached...)
		}
		return out, nil
	})
	f := v.(found)
	if f.region != "" {
		return f.region, nil
	}
	return "", f.unreached
}

// ask sends GET /openai/v1/{path} to one region only and returns the status (0 when no answer came).
func (g *Gateway) ask(ctx context.Context, region, path string) int {
	req, _ := http.NewRequestWithContext(failover.WithPlacement(ctx, failover.Placement{Region: region, Unnamed: true}),
		http.MethodGet, "http://lifeline.invalid/openai/v1/"+path, nil)
	resp, err := g.transport.RoundTrip(req)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.Header.Get(failover.HeaderRegion) == failover.SelfRegion {
		return 0 // the engine answered: the region could not
	}
	return resp.StatusCode
}

func (gen *generation) hasRegion(name string) bool {
	for _, r := range gen.cfg.Regions {
		if r.Name == name {
			return true
		}
	}
	return false
}

func isSSE(h http.Header) bool { return strings.HasPrefix(h.Get("Content-Type"), "text/event-stream") }

// idRecorder reads the id of a created object from the start of its answer as it passes to the client, and
// records it for the region that answered, before the client has the whole answer (so a follow-up finds it).
type idRecorder struct {
	io.ReadCloser
	g      *Gateway
	region string
	sse    bool
	buf    []byte
	done   bool
	keep   *itemsCapture // responses.rebuild: the whole answer, for its items; nil: off
}

// idPrefixLimit bounds what is kept to find the id: Azure puts it near the start.
const idPrefixLimit = 64 << 10

func (r *idRecorder) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	if r.keep != nil {
		r.keep.add(p[:n])
		if err == io.EOF {
			r.keep.store(r.g, r.sse)
			r.keep = nil
		}
	}
	if !r.done {
		if room := idPrefixLimit - len(r.buf); room > 0 {
			r.buf = append(r.buf, p[:min(n, room)]...)
		}
		if r.sse {
			if i := bytes.Index(r.buf, []byte("\n\n")); i >= 0 {
				r.record(sseData(r.buf[:i]), "response.id")
			}
		} else if err != nil {
			r.record(r.buf, "id")
		}
		if len(r.buf) >= idPrefixLimit {
			r.record(r.buf, "id")
		}
	}
	return n, err
}

func (r *idRecorder) record(b []byte, path string) {
	r.done = true
	if id := gjson.GetBytes(b, path); id.Type == gjson.String {
		r.g.index.Record(context.Background(), id.Str, r.region)
	}
	r.buf = nil
}

// sseData is the data of one SSE event.
func sseData(ev []byte) []byte {
	var out []byte
	for line := range bytes.SplitSeq(ev, []byte("\n")) {
		if d, ok := bytes.CutPrefix(line, []byte("data:")); ok {
			out = append(out, bytes.TrimPrefix(d, []byte(" "))...)
		}
	}
	return out
}

// listAnswer is one region's answer to a list request.
type listAnswer struct {
	region  string
	data    []gjson.Result
	hasMore bool
	header  http.Header
	ok      bool
}

// serveList answers a list (GET of a collection) from every region, merged: newest first, at most `limit` when
// the client gave one, `has_more` when any region has more. x-lifeline-region names the regions that answered and
// X-Lifeline-Unreached-Regions those that could not be asked. Every id listed is remembered for its region.
func (g *Gateway) serveList(ctx context.Context, w http.ResponseWriter, r *http.Request, x *exchange, gen *generation, sr storedRoute) {
	regions := gen.cfg.Regions
	answers := make([]listAnswer, len(regions))
	done := make(chan struct{}, len(regions))
	for i, rc := range regions {
		go func() {
			defer func() { done <- struct{}{} }()
			answers[i] = g.listIn(ctx, r, sr, rc.Name, gen.maxBody)
		}()
	}
	for range regions {
		<-done
	}
	var merged []gjson.Result
	var asked, unreached []string
	more := false
	var first *listAnswer
	for i := range answers {
		a := &answers[i]
		if !a.ok {
			unreached = append(unreached, a.region)
			continue
		}
		if first == nil {
			first = a
		}
		asked = append(asked, a.region)
		more = more || a.hasMore
		for _, d := range a.data {
			if id := d.Get("id"); id.Type == gjson.String {
				g.index.Record(ctx, id.Str, a.region)
			}
		}
		merged = append(merged, a.data...)
	}
	if first == nil {
		w.Header().Set("Retry-After", "5")
		w.Header().Set(HeaderUnreached, strings.Join(unreached, ","))
		g.reply(w, x, http.StatusServiceUnavailable, "service_unavailable", "server_error",
			"lifeline: no region could answer the list ("+strings.Join(unreached, ", ")+")")
		return
	}
	sortNewestFirst(merged)
	if n, err := strconv.Atoi(r.URL.Query().Get("limit")); err == nil && n > 0 && len(merged) > n {
		merged, more = merged[:n], true
	}
	body := listJSON(merged, more)
	h := w.Header()
	for _, k := range []string{"Content-Type", "Apim-Request-Id", "X-Request-Id", "X-Ms-Region"} {
		if v := first.header.Get(k); v != "" {
			h.Set(k, v)
		}
	}
	h.Set("Content-Type", "application/json")
	if len(unreached) > 0 {
		h.Set(HeaderUnreached, strings.Join(unreached, ","))
	}
	h[failover.HeaderRegion] = []string{strings.Join(asked, ",")}
	h[failover.HeaderAttempts] = []string{strconv.Itoa(len(regions))}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	x.status, x.region, x.attempts = http.StatusOK, strings.Join(asked, ","), strconv.Itoa(len(regions))
	w.WriteHeader(http.StatusOK)
	w.Write(body)
}

// listIn asks one region for the list.
func (g *Gateway) listIn(ctx context.Context, r *http.Request, sr storedRoute, region string, limit int64) listAnswer {
	a := listAnswer{region: region}
	resp, err := g.transport.RoundTrip(storedRequest(ctx, r, sr, nil, failover.Placement{Region: region, Unnamed: true}))
	if err != nil {
		return a
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get(failover.HeaderRegion) == failover.SelfRegion {
		return a
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil || int64(len(b)) > limit || !gjson.ValidBytes(b) {
		return a
	}
	data := gjson.GetBytes(b, "data")
	if !data.IsArray() {
		return a
	}
	a.data, a.hasMore, a.header, a.ok = data.Array(), gjson.GetBytes(b, "has_more").Bool(), resp.Header, true
	return a
}

// sortNewestFirst orders list items by created_at, newest first (a stable insertion sort: lists are pages).
func sortNewestFirst(items []gjson.Result) {
	at := func(r gjson.Result) int64 { return r.Get("created_at").Int() }
	for i := 1; i < len(items); i++ {
		for j := i; j > 0 && at(items[j]) > at(items[j-1]); j-- {
			items[j], items[j-1] = items[j-1], items[j]
		}
	}
}

// listJSON writes a list in the OpenAI shape, with first_id and last_id.
func listJSON(items []gjson.Result, more bool) []byte {
	b := []byte(`{"object":"list","data":[`)
	for i, it := range items {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, it.Raw...)
	}
	b = append(b, `],"has_more":`...)
	b = strconv.AppendBool(b, more)
	b = append(b, `,"first_id":`...)
	if len(items) > 0 {
		b = appendJSONString(b, items[0].Get("id").Str)
		b = append(b, `,"last_id":`...)
		b = appendJSONString(b, items[len(items)-1].Get("id").Str)
	} else {
		b = append(b, `null,"last_id":null`...)
	}
	return append(b, '}')
}
