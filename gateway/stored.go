package gateway

import (
	"bytes"
	"context"
	"io"
	"net/http"
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

// kindSeg is the path segment of a kind of stored object (as regions are asked for one: GET /openai/v1/SEG/ID).
func kindSeg(k failover.ObjectKind) string {
	switch k {
	case failover.ObjectResponse:
		return "responses"
	case failover.ObjectConversation:
		return "conversations"
	case failover.ObjectFile:
		return "files"
	case failover.ObjectBatch:
		return "batches"
	case failover.ObjectFineTuningJob:
		return "fine_tuning/jobs"
	}
	return "vector_stores"
}

// kindNoun names a kind of stored object in messages.
func kindNoun(k failover.ObjectKind) string { return strings.ReplaceAll(k.String(), "_", " ") }

// objectRef is one stored object a request names, and where (the request model reads them: path ids, then the
// body fields of SPEC.md section 10).
type objectRef = failover.ObjectRef

// HeaderUnreached names, on a merged list, the regions that could not be asked.
const HeaderUnreached = "X-Lifeline-Unreached-Regions"

// serveStored answers a request on a stored-object route, which the request model has read and the client's key
// is granted: a list asks every region; a request that names objects goes to the region that holds them.
func (g *Gateway) serveStored(w http.ResponseWriter, x *exchange, gen *generation, pr *failover.Request) {
	ctx, r := pr.HTTP.Context(), pr.HTTP
	pathID := ""
	if len(pr.Objects) > 0 && pr.Objects[0].Field == "path" {
		pathID = pr.Objects[0].ID
	}
	create := pathID == "" && r.Method == http.MethodPost
	named := pr.Name != "" // a Responses create names a model: a client-visible name
	if pathID == "" && r.Method == http.MethodGet {
		g.serveList(ctx, w, x, gen, pr)
		return
	}
	refs := pr.Objects
	holder, ref, ok := g.holder(ctx, w, x, gen, refs)
	if !ok {
		return
	}
	resp, err := g.transport.Send(pr.WithContext(failover.WithPlacement(ctx, failover.Placement{Region: holder, Unnamed: !named})))
	if err != nil {
		g.roundTripError(w, x, ctx, err)
		return
	}
	defer resp.Body.Close()
	if holder != "" && cannotServe(resp) {
		if named && ref.Field == "previous_response_id" && len(refs) == 1 && gen.cfg.Responses.Rebuild {
			resp.Body.Close()
			if g.rebuild(ctx, w, x, gen, pr, ref, holder) {
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
		g.recordCreated(resp, pr.Body, region, gen, prev)
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
		switch ref.Field {
		case "previous_response_id":
			kept, ok, err := g.items.Get(ctx, ref.ID)
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

// withBody is the gateway's own request made from pr with another body (a rebuilt Responses follow-up), read by
// the request model like any request.
func withBody(pr *failover.Request, body []byte) (*failover.Request, error) {
	req := pr.HTTP.Clone(pr.HTTP.Context())
	req.Body, req.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	return failover.ParseRequest(req, int64(len(body))+1)
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
		"lifeline: "+kindNoun(ref.Kind)+" "+ref.ID+" is stored in region "+holder+", which cannot serve it now ("+why+
			"); it exists only there, so the request was not sent elsewhere; retry after "+retry+"s", 0)
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
		if !affinity.ValidID(ref.ID) {
			continue // the region will reject it; no id that long or odd is ever looked up or stored
		}
		region, unreached := g.whereIs(ctx, gen, ref)
		switch {
		case region == "" && len(unreached) > 0:
			w.Header().Set("Retry-After", "5")
			w.Header().Set(HeaderUnreached, strings.Join(unreached, ","))
			g.reply(w, x, http.StatusServiceUnavailable, "object_region_unavailable", "server_error",
				"lifeline: "+kindNoun(ref.Kind)+" "+ref.ID+" is not known to the regions that answered, and "+
					strings.Join(unreached, ", ")+" could not be asked; it may be stored there; retry later", 0)
			return "", ref, false
		case region == "":
			continue
		case holder == "":
			holder, first = region, ref
		case holder != region:
			g.reply(w, x, http.StatusConflict, "objects_in_different_regions", "invalid_request_error",
				"lifeline: "+kindNoun(first.Kind)+" "+first.ID+" is stored in region "+holder+" and "+kindNoun(ref.Kind)+" "+ref.ID+
					" in region "+region+"; one request cannot use both", 0)
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
	if r, ok, err := g.index.Lookup(ctx, ref.ID); err == nil && ok && gen.hasRegion(r) {
		return r, nil
	}
	type found struct {
		region    string
		unreached []string
	}
	v, _, _ := g.locating.Do(ref.ID, func() (any, error) {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), locateTimeout)
		defer cancel()
		regions := gen.cfg.Regions
		answers := make(chan found, len(regions))
		for _, rc := range regions {
			go func() {
				status := g.ask(lctx, rc.Name, kindSeg(ref.Kind)+"/"+ref.ID)
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
				g.index.Record(lctx, ref.ID, a.region)
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
func (g *Gateway) serveList(ctx context.Context, w http.ResponseWriter, x *exchange, gen *generation, pr *failover.Request) {
	r := pr.HTTP
	regions := gen.cfg.Regions
	answers := make([]listAnswer, len(regions))
	done := make(chan struct{}, len(regions))
	for i, rc := range regions {
		go func() {
			defer func() { done <- struct{}{} }()
			answers[i] = g.listIn(ctx, pr, rc.Name, gen.maxBody)
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
			"lifeline: no region could answer the list ("+strings.Join(unreached, ", ")+")", 0)
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
func (g *Gateway) listIn(ctx context.Context, pr *failover.Request, region string, limit int64) listAnswer {
	a := listAnswer{region: region}
	resp, err := g.transport.Send(pr.WithContext(failover.WithPlacement(ctx, failover.Placement{Region: region, Unnamed: true})))
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
		b = failover.AppendJSONString(b, items[0].Get("id").Str)
		b = append(b, `,"last_id":`...)
		b = failover.AppendJSONString(b, items[len(items)-1].Get("id").Str)
	} else {
		b = append(b, `null,"last_id":null`...)
	}
	return append(b, '}')
}
