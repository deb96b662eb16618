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
	"github.com/tidwall/sjson"

	"github.com/lifeline-sre/lifeline/failover"
)

// Responses rebuild (responses.rebuild, opt-in): for every stored response made through the gateway, the items of
// its conversation (input and output, oldest first, as the API returns them) are kept for responses.rebuild_ttl.
// A follow-up whose previous response's region cannot serve is sent, instead of failing with 503, to the regions
// that can, with that history as its input and no previous_response_id; the new response's id is recorded for the
// region that made it, with its own items, so the conversation goes on there. docs/gateway.md#responses-rebuild.

// HeaderRebuilt on an answer says the request was rebuilt from kept items because this region held the previous
// response and could not serve; HeaderRebuildDropped counts the items left out because they cannot move.
const (
	HeaderRebuilt        = "X-Lifeline-Rebuilt-From"
	HeaderRebuildDropped = "X-Lifeline-Rebuild-Dropped"
)

// errCannotRebuild says why kept items cannot be sent to another region.
type errCannotRebuild struct{ why string }

func (e errCannotRebuild) Error() string { return e.why }

// inputItems turns a Responses `input` (a string or a list of items) into a list of items.
func inputItems(body []byte) []string {
	in := gjson.GetBytes(body, "input")
	switch {
	case in.Type == gjson.String:
		b, _ := sjson.SetBytes([]byte(`{"type":"message","role":"user"}`), "content", in.Str)
		return []string{string(b)}
	case in.IsArray():
		var out []string
		for _, it := range in.Array() {
			out = append(out, it.Raw)
		}
		return out
	}
	return nil
}

// joinItems writes items as a JSON array.
func joinItems(groups ...[]string) []byte {
	b := []byte{'['}
	first := true
	for _, g := range groups {
		for _, it := range g {
			if !first {
				b = append(b, ',')
			}
			first = false
			b = append(b, it...)
		}
	}
	return append(b, ']')
}

func splitItems(arr []byte) []string {
	var out []string
	for _, it := range gjson.ParseBytes(arr).Array() {
		out = append(out, it.Raw)
	}
	return out
}

// portable makes kept items fit to send to another region: reasoning items are dropped (their encrypted content
// and ids mean something only to the resource that made them), item ids and statuses are removed (they name items
// stored in the old region), and items that reference other stored objects (item_reference, a file_id) refuse the
// rebuild, because those objects exist only in the old region.
func portable(items []string) (out []string, dropped int, err error) {
	for _, it := range items {
		r := gjson.Parse(it)
		switch typ := r.Get("type").Str; {
		case typ == "reasoning":
			dropped++
			continue
		case typ == "item_reference":
			return nil, 0, errCannotRebuild{"the conversation references stored item " + r.Get("id").Str}
		}
		if strings.Contains(it, `"file_id"`) {
			var fid string
			r.ForEach(func(_, v gjson.Result) bool {
				fid = findFileID(v)
				return fid == ""
			})
			return nil, 0, errCannotRebuild{"the conversation uses file " + fid + ", which is stored in that region only"}
		}
		b := []byte(it)
		b, _ = sjson.DeleteBytes(b, "id")
		b, _ = sjson.DeleteBytes(b, "status")
		out = append(out, string(b))
	}
	return out, dropped, nil
}

func findFileID(v gjson.Result) string {
	if v.IsObject() {
		if f := v.Get("file_id"); f.Type == gjson.String {
			return f.Str
		}
	}
	if v.IsObject() || v.IsArray() {
		var out string
		v.ForEach(func(_, c gjson.Result) bool {
			out = findFileID(c)
			return out == ""
		})
		return out
	}
	return ""
}

// rebuild sends a Responses follow-up whose previous response's region (holder) cannot serve to the regions that
// can, from the items kept for that response. It reports false when there is nothing to rebuild from (the caller
// answers 503 then); otherwise it has answered the client.
func (g *Gateway) rebuild(ctx context.Context, w http.ResponseWriter, x *exchange, gen *generation, pr *failover.Request, ref objectRef, holder string) bool {
	body := pr.Body
	kept, ok, err := g.items.Get(ctx, ref.ID)
	if err != nil || !ok {
		return false
	}
	items, dropped, err := portable(splitItems(kept))
	if err != nil {
		var cr errCannotRebuild
		errors.As(err, &cr)
		w.Header().Set("Retry-After", "5")
		g.reply(w, x, http.StatusServiceUnavailable, "object_region_unavailable", "server_error",
			"lifeline: response "+ref.ID+" is stored in region "+holder+", which cannot serve it now, and the conversation cannot be rebuilt elsewhere: "+cr.why, 0)
		return true
	}
	next := inputItems(body)
	nb, err := sjson.DeleteBytes(body, "previous_response_id")
	if err == nil {
		nb, err = sjson.SetRawBytes(nb, "input", joinItems(items, next))
	}
	if err != nil {
		return false
	}
	out, err := withBody(pr, nb)
	if err != nil {
		return false
	}
	resp, err := g.transport.Send(out.WithContext(failover.WithPlacement(ctx, failover.Placement{})))
	if err != nil {
		g.roundTripError(w, x, ctx, err)
		return true
	}
	defer resp.Body.Close()
	w.Header().Set(HeaderRebuilt, holder)
	if dropped > 0 {
		w.Header().Set(HeaderRebuildDropped, strconv.Itoa(dropped))
	}
	if region := resp.Header.Get(failover.HeaderRegion); resp.StatusCode < 300 && region != failover.SelfRegion {
		g.recordCreated(resp, nb, region, gen, nil) // nb's input is the whole history already
	}
	g.log.Info("response rebuilt in another region", "request_id", x.id, "from", holder, "to", resp.Header.Get(failover.HeaderRegion),
		"items", len(items), "dropped", dropped)
	g.respond(w, resp, x)
	return true
}

// recordCreated wraps a created object's answer: its id is recorded for region and, for a stored response while
// responses.rebuild is on, its items (prev, then the request's input, then the output) are kept.
func (g *Gateway) recordCreated(resp *http.Response, reqBody []byte, region string, gen *generation, prev []string) {
	rec := &idRecorder{ReadCloser: resp.Body, g: g, region: region, sse: isSSE(resp.Header)}
	rs := gen.cfg.Responses
	if rs.Rebuild && gjson.GetBytes(reqBody, "store").Type != gjson.False && gjson.GetBytes(reqBody, "model").Exists() {
		rec.keep = &itemsCapture{limit: gen.maxBody, prev: prev, input: inputItems(reqBody), ttl: rs.RebuildTTL.D()}
	}
	resp.Body = rec
}

// itemsCapture keeps a response's whole answer (bounded) to store its conversation's items at the end.
type itemsCapture struct {
	limit int64
	buf   []byte
	over  bool
	prev  []string // the conversation before this response
	input []string
	ttl   time.Duration
}

func (c *itemsCapture) add(p []byte) {
	if c.over {
		return
	}
	if int64(len(c.buf)+len(p)) > c.limit {
		c.over, c.buf = true, nil
		return
	}
	c.buf = append(c.buf, p...)
}

// response is the final response object: the body, or the response of a stream's response.completed event.
func (c *itemsCapture) response(sse bool) []byte {
	if !sse {
		return c.buf
	}
	var last []byte
	for ev := range bytes.SplitSeq(c.buf, []byte("\n\n")) {
		if d := sseData(ev); gjson.GetBytes(d, "type").Str == "response.completed" {
			last = []byte(gjson.GetBytes(d, "response").Raw)
		}
	}
	return last
}

// store keeps the items under the response's id.
func (c *itemsCapture) store(g *Gateway, sse bool) {
	if c.over {
		return
	}
	resp := c.response(sse)
	id := gjson.GetBytes(resp, "id")
	out := gjson.GetBytes(resp, "output")
	if id.Type != gjson.String || !out.IsArray() || gjson.GetBytes(resp, "status").Str != "completed" {
		return
	}
	var output []string
	for _, it := range out.Array() {
		output = append(output, it.Raw)
	}
	g.items.Put(context.Background(), id.Str, joinItems(c.prev, c.input, output), c.ttl)
}

var _ io.ReadCloser = (*idRecorder)(nil)
