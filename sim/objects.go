package sim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

// Stored objects other than files and fine-tuning jobs: responses (store: true), conversations, batches and vector
// stores. Each lives in the region that created it only, as in Azure; an id a region does not hold is answered
// with a 404 (docs/wire-notes.md lists the bodies and their sources).

// objects is a region's store of responses, conversations, batches and vector stores.
type objects struct {
	r         *Region
	mu        sync.Mutex
	responses map[string]*storedResponse
	convs     map[string]*conversation
	batches   map[string]*batch
	vstores   map[string]*vectorStore
	seq       int
}

func newObjects(r *Region) *objects {
	return &objects{r: r, responses: map[string]*storedResponse{}, convs: map[string]*conversation{},
		batches: map[string]*batch{}, vstores: map[string]*vectorStore{}}
}

// storedResponse is a response kept with store: true.
type storedResponse struct {
	body   json.RawMessage   // the response object as returned
	input  []json.RawMessage // its input items
	prev   string            // previous_response_id
	text   string            // input and output text of this turn, for the context of a follow-up
	tokens int               // tokens of text
}

type conversation struct {
	id       string
	created  int64
	metadata json.RawMessage
	items    []json.RawMessage
	seq      int
}

type batch struct {
	id, endpoint, inputFile, window string
	metadata                        json.RawMessage
	created                         time.Time
	cancelled                       time.Time
	lines                           int
	outputFile                      string
}

type vectorStore struct {
	id       string
	name     string
	created  int64
	metadata json.RawMessage
	files    []string // file ids, in order added
	batches  map[string][]string
	seq      int
}

func objectNotFound(kind, id string) []byte {
	return openaiError(fmt.Sprintf("%s with id '%s' not found.", kind, id), "invalid_request_error", "", "")
}

// serveObject answers the routes of responses, conversations, batches and vector stores; it reports false for any
// other route.
func (c *call) serveObject(parts []string) bool {
	switch parts[0] {
	case "responses":
		if len(parts) >= 2 {
			c.responseRoute(parts[1], strings.Join(parts[2:], "/"))
			return true
		}
	case "conversations":
		c.conversationRoute(parts[1:])
		return true
	case "batches":
		c.batchRoute(parts[1:])
		return true
	case "vector_stores":
		c.vectorStoreRoute(parts[1:])
		return true
	}
	return false
}

// ---- responses ----

// responseContext reads what a Responses request asks of stored state: its previous response (whose context it
// continues), its conversation and whether to store it. It answers the error itself when a reference is unknown.
type responseContext struct {
	prev    string
	conv    string
	store   bool
	history string
	tokens  int
}

func (c *call) readResponseContext() (responseContext, bool) {
	var req struct {
		PreviousResponseID *string          `json:"previous_response_id"`
		Store              *bool            `json:"store"`
		Conversation       json.RawMessage  `json:"conversation"`
		Background         bool             `json:"background"`
		Input              *json.RawMessage `json:"input"`
	}
	json.Unmarshal(c.body, &req)
	rc := responseContext{store: req.Store == nil || *req.Store}
	o := c.r.objects
	if req.PreviousResponseID != nil && *req.PreviousResponseID != "" {
		rc.prev = *req.PreviousResponseID
		o.mu.Lock()
		_, ok := o.responses[rc.prev]
		if ok {
			rc.history, rc.tokens = o.historyLocked(rc.prev)
		}
		o.mu.Unlock()
		if !ok {
			writeJSON(c.w, http.StatusBadRequest, openaiError(fmt.Sprintf("Previous response with id '%s' not found.", rc.prev),
				"invalid_request_error", "previous_response_id", "previous_response_not_found"))
			return rc, false
		}
	}
	if len(req.Conversation) > 0 && string(req.Conversation) != "null" {
		var id string
		if json.Unmarshal(req.Conversation, &id) != nil {
			var obj struct {
				ID string `json:"id"`
			}
			json.Unmarshal(req.Conversation, &obj)
			id = obj.ID
		}
		if rc.prev != "" {
			writeJSON(c.w, http.StatusBadRequest, openaiError("Mutually exclusive parameters: Ensure you are only providing one of: 'previous_response_id' or 'conversation'.",
				"invalid_request_error", "", "mutually_exclusive_parameters"))
			return rc, false
		}
		o.mu.Lock()
		cv := o.convs[id]
		if cv != nil {
			for _, it := range cv.items {
				t := itemText(it)
				rc.history += t + "\n"
				rc.tokens += tokens(t)
			}
		}
		o.mu.Unlock()
		if cv == nil {
			writeJSON(c.w, http.StatusNotFound, objectNotFound("Conversation", id))
			return rc, false
		}
		rc.conv = id
	}
	return rc, true
}

// historyLocked is the text and tokens of a chain of responses, oldest first.
func (o *objects) historyLocked(id string) (string, int) {
	var chain []*storedResponse
	for seen := 0; id != "" && seen < 1000; seen++ {
		sr := o.responses[id]
		if sr == nil {
			break
		}
		chain = append(chain, sr)
		id = sr.prev
	}
	var b strings.Builder
	n := 0
	for i := len(chain) - 1; i >= 0; i-- {
		b.WriteString(chain[i].text)
		b.WriteByte('\n')
		n += chain[i].tokens
	}
	return b.String(), n
}

// inputItems turns a Responses `input` (a string or a list of items) into items as input_items lists them.
func (c *call) inputItems(raw json.RawMessage) []json.RawMessage {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		b, _ := json.Marshal(map[string]any{"id": c.r.sim.randomID("msg_", 48, "0123456789abcdef"), "type": "message", "role": "user",
			"status": "completed", "content": []map[string]any{{"type": "input_text", "text": s}}})
		return []json.RawMessage{b}
	}
	var list []map[string]any
	if json.Unmarshal(raw, &list) != nil {
		return nil
	}
	out := make([]json.RawMessage, 0, len(list))
	for _, it := range list {
		if _, ok := it["type"]; !ok {
			it["type"] = "message"
		}
		if _, ok := it["id"]; !ok {
			it["id"] = c.r.sim.randomID("msg_", 48, "0123456789abcdef")
		}
		if s, ok := it["content"].(string); ok && it["type"] == "message" {
			it["content"] = []map[string]any{{"type": "input_text", "text": s}}
		}
		b, _ := json.Marshal(it)
		out = append(out, b)
	}
	return out
}

// itemText is the text of an item's content, for the context of a later turn.
func itemText(raw json.RawMessage) string {
	var it struct {
		Content json.RawMessage `json:"content"`
		Output  string          `json:"output"`
	}
	if json.Unmarshal(raw, &it) != nil {
		return ""
	}
	if t, ok := textOf(it.Content); ok {
		return t
	}
	return it.Output
}

// annotate sets the fields of a response that say what stored state it used.
func (rc responseContext) annotate(resp *responseObject) {
	if rc.prev != "" {
		resp.PreviousResponseID, _ = json.Marshal(rc.prev)
	}
	resp.Store = rc.store
	if rc.conv != "" {
		resp.Conversation, _ = json.Marshal(map[string]string{"id": rc.conv})
	}
}

// keepResponse stores a finished response (store: true) and adds its turn to its conversation.
func (c *call) keepResponse(rc responseContext, resp responseObject) {
	if !rc.store && rc.conv == "" {
		return
	}
	var in json.RawMessage
	var req struct {
		Input json.RawMessage `json:"input"`
	}
	if json.Unmarshal(c.body, &req) == nil {
		in = req.Input
	}
	items := c.inputItems(in)
	var text strings.Builder
	for _, it := range items {
		text.WriteString(itemText(it))
		text.WriteByte('\n')
	}
	outItems := make([]json.RawMessage, 0, len(resp.Output))
	for _, it := range resp.Output {
		text.WriteString(it.itemText())
		b, _ := json.Marshal(it)
		outItems = append(outItems, b)
	}
	body, _ := json.Marshal(resp)
	o := c.r.objects
	o.mu.Lock()
	defer o.mu.Unlock()
	if rc.store {
		o.responses[resp.ID] = &storedResponse{body: body, input: items, prev: rc.prev, text: text.String(), tokens: tokens(text.String())}
	}
	if cv := o.convs[rc.conv]; cv != nil {
		cv.items = append(cv.items, items...)
		cv.items = append(cv.items, outItems...)
	}
}

func (c *call) responseRoute(id, sub string) {
	o := c.r.objects
	o.mu.Lock()
	sr := o.responses[id]
	o.mu.Unlock()
	if sr == nil {
		writeJSON(c.w, http.StatusNotFound, objectNotFound("Response", id))
		return
	}
	m := c.req.Method
	switch {
	case sub == "" && m == http.MethodGet:
		writeJSON(c.w, http.StatusOK, sr.body)
	case sub == "" && m == http.MethodDelete:
		o.mu.Lock()
		delete(o.responses, id)
		o.mu.Unlock()
		writeValue(c.w, http.StatusOK, map[string]any{"id": id, "object": "response", "deleted": true})
	case sub == "input_items" && m == http.MethodGet:
		c.writeList(sr.input)
	case sub == "cancel" && m == http.MethodPost:
		writeJSON(c.w, http.StatusBadRequest, openaiError("Only responses created with background set to true can be cancelled.", "invalid_request_error", "", ""))
	default:
		writeJSON(c.w, http.StatusNotFound, resourceNotFound)
	}
}

// writeList answers a cursor list of items with first_id and last_id, paged by after and limit.
func (c *call) writeList(items []json.RawMessage) {
	id := func(b json.RawMessage) string {
		var v struct {
			ID string `json:"id"`
		}
		json.Unmarshal(b, &v)
		return v.ID
	}
	data, more := page(items, id, c.req.URL.Query().Get("after"), c.limit(20))
	out := map[string]any{"object": "list", "data": data, "has_more": more, "first_id": nil, "last_id": nil}
	if data == nil {
		out["data"] = []json.RawMessage{}
	}
	if len(data) > 0 {
		out["first_id"], out["last_id"] = id(data[0]), id(data[len(data)-1])
	}
	writeValue(c.w, http.StatusOK, out)
}

// ---- conversations ----

func (c *call) conversationRoute(parts []string) {
	o := c.r.objects
	m := c.req.Method
	if len(parts) == 0 {
		if m != http.MethodPost {
			writeJSON(c.w, http.StatusNotFound, resourceNotFound)
			return
		}
		var req struct {
			Items    []json.RawMessage `json:"items"`
			Metadata json.RawMessage   `json:"metadata"`
		}
		if !c.readObjectBody(&req) {
			return
		}
		cv := &conversation{id: c.r.sim.randomID("conv_", 48, "0123456789abcdef"), created: c.r.sim.now().Unix(), metadata: orEmpty(req.Metadata)}
		if len(req.Items) > 0 {
			raw, _ := json.Marshal(req.Items)
			cv.items = c.inputItems(raw)
		}
		o.mu.Lock()
		o.convs[cv.id] = cv
		o.mu.Unlock()
		writeValue(c.w, http.StatusOK, cv.json())
		return
	}
	o.mu.Lock()
	cv := o.convs[parts[0]]
	o.mu.Unlock()
	if cv == nil {
		writeJSON(c.w, http.StatusNotFound, objectNotFound("Conversation", parts[0]))
		return
	}
	switch {
	case len(parts) == 1 && m == http.MethodGet:
		writeValue(c.w, http.StatusOK, cv.json())
	case len(parts) == 1 && m == http.MethodPost:
		var req struct {
			Metadata json.RawMessage `json:"metadata"`
		}
		if !c.readObjectBody(&req) {
			return
		}
		o.mu.Lock()
		cv.metadata = orEmpty(req.Metadata)
		o.mu.Unlock()
		writeValue(c.w, http.StatusOK, cv.json())
	case len(parts) == 1 && m == http.MethodDelete:
		o.mu.Lock()
		delete(o.convs, cv.id)
		o.mu.Unlock()
		writeValue(c.w, http.StatusOK, map[string]any{"id": cv.id, "object": "conversation.deleted", "deleted": true})
	case len(parts) == 2 && parts[1] == "items" && m == http.MethodGet:
		o.mu.Lock()
		items := append([]json.RawMessage(nil), cv.items...)
		o.mu.Unlock()
		c.writeList(items)
	case len(parts) == 2 && parts[1] == "items" && m == http.MethodPost:
		var req struct {
			Items json.RawMessage `json:"items"`
		}
		if !c.readObjectBody(&req) {
			return
		}
		items := c.inputItems(req.Items)
		o.mu.Lock()
		cv.items = append(cv.items, items...)
		o.mu.Unlock()
		c.writeList(items)
	case len(parts) == 3 && parts[1] == "items":
		c.conversationItem(cv, parts[2])
	default:
		writeJSON(c.w, http.StatusNotFound, resourceNotFound)
	}
}

func (c *call) conversationItem(cv *conversation, itemID string) {
	o := c.r.objects
	o.mu.Lock()
	defer o.mu.Unlock()
	for i, it := range cv.items {
		var v struct {
			ID string `json:"id"`
		}
		json.Unmarshal(it, &v)
		if v.ID != itemID {
			continue
		}
		switch c.req.Method {
		case http.MethodGet:
			writeJSON(c.w, http.StatusOK, it)
		case http.MethodDelete:
			cv.items = append(cv.items[:i:i], cv.items[i+1:]...)
			writeValue(c.w, http.StatusOK, cv.json())
		default:
			writeJSON(c.w, http.StatusNotFound, resourceNotFound)
		}
		return
	}
	writeJSON(c.w, http.StatusNotFound, objectNotFound("Item", itemID))
}

func (cv *conversation) json() map[string]any {
	return map[string]any{"id": cv.id, "object": "conversation", "created_at": cv.created, "metadata": cv.metadata}
}

func orEmpty(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 || string(raw) == "null" {
		return emptyObject
	}
	return raw
}

// readObjectBody reads a JSON body (an empty body is an empty object); it answers 400 itself.
func (c *call) readObjectBody(v any) bool {
	body, ok := c.readBody(c.r.sim.maxBody)
	if !ok {
		return false
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return true
	}
	if err := json.Unmarshal(body, v); err != nil {
		writeJSON(c.w, http.StatusBadRequest, openaiError(badJSONMessage, "invalid_request_error", "", ""))
		return false
	}
	return true
}

// ---- batches ----

// batchEndpoints are the endpoints a batch may run.
var batchEndpoints = map[string]bool{"/v1/chat/completions": true, "/chat/completions": true, "/v1/embeddings": true,
	"/embeddings": true, "/v1/responses": true, "/v1/completions": true}

func (c *call) batchRoute(parts []string) {
	o := c.r.objects
	m := c.req.Method
	now := c.r.sim.now()
	switch {
	case len(parts) == 0 && m == http.MethodPost:
		c.createBatch()
		return
	case len(parts) == 0 && m == http.MethodGet:
		o.mu.Lock()
		list := make([]*batch, 0, len(o.batches))
		for _, b := range o.batches {
			list = append(list, b)
		}
		o.mu.Unlock()
		sort.Slice(list, func(i, j int) bool {
			return list[i].created.After(list[j].created) || list[i].created.Equal(list[j].created) && list[i].id > list[j].id
		})
		items, more := page(list, func(b *batch) string { return b.id }, c.req.URL.Query().Get("after"), c.limit(20))
		data := make([]map[string]any, 0, len(items))
		for _, b := range items {
			data = append(data, c.batchJSON(b, now))
		}
		out := map[string]any{"object": "list", "data": data, "has_more": more, "first_id": nil, "last_id": nil}
		if len(items) > 0 {
			out["first_id"], out["last_id"] = items[0].id, items[len(items)-1].id
		}
		writeValue(c.w, http.StatusOK, out)
		return
	case len(parts) == 0:
		writeJSON(c.w, http.StatusNotFound, resourceNotFound)
		return
	}
	o.mu.Lock()
	b := o.batches[parts[0]]
	o.mu.Unlock()
	if b == nil {
		writeJSON(c.w, http.StatusNotFound, azureError("notFound", fmt.Sprintf("Batch with id '%s' was not found.", parts[0])))
		return
	}
	switch {
	case len(parts) == 1 && m == http.MethodGet:
		writeValue(c.w, http.StatusOK, c.batchJSON(b, now))
	case len(parts) == 2 && parts[1] == "cancel" && m == http.MethodPost:
		o.mu.Lock()
		state := o.batchState(b, now)
		ok := state == "validating" || state == "in_progress"
		if ok {
			b.cancelled = now
		}
		o.mu.Unlock()
		if !ok {
			writeJSON(c.w, http.StatusConflict, azureError("conflict", fmt.Sprintf("Cannot cancel a batch with status '%s'.", state)))
			return
		}
		writeValue(c.w, http.StatusOK, c.batchJSON(b, now))
	default:
		writeJSON(c.w, http.StatusNotFound, resourceNotFound)
	}
}

func (c *call) createBatch() {
	var req struct {
		InputFileID      string          `json:"input_file_id"`
		Endpoint         string          `json:"endpoint"`
		CompletionWindow string          `json:"completion_window"`
		Metadata         json.RawMessage `json:"metadata"`
	}
	if !c.readObjectBody(&req) {
		return
	}
	switch {
	case req.InputFileID == "":
		writeJSON(c.w, http.StatusBadRequest, openaiError("Missing required parameter: 'input_file_id'.", "invalid_request_error", "input_file_id", "missing_required_parameter"))
		return
	case !batchEndpoints[req.Endpoint]:
		writeJSON(c.w, http.StatusBadRequest, openaiError(fmt.Sprintf("Invalid value for 'endpoint': '%s' is not a supported batch endpoint.", req.Endpoint), "invalid_request_error", "endpoint", "invalid_value"))
		return
	case req.CompletionWindow != "24h":
		writeJSON(c.w, http.StatusBadRequest, openaiError("Invalid value for 'completion_window': only '24h' is supported.", "invalid_request_error", "completion_window", "invalid_value"))
		return
	}
	f := c.r.store.file(req.InputFileID)
	if f == nil {
		writeJSON(c.w, http.StatusBadRequest, azureError("invalidPayload", fmt.Sprintf("The file '%s' does not exist or has been deleted.", req.InputFileID)))
		return
	}
	if f.Purpose != "batch" {
		writeJSON(c.w, http.StatusBadRequest, azureError("invalidPayload", fmt.Sprintf("The file '%s' has purpose '%s'; a batch needs purpose 'batch'.", f.ID, f.Purpose)))
		return
	}
	b := &batch{id: "batch_" + c.r.sim.uuid(), endpoint: req.Endpoint, inputFile: req.InputFileID, window: req.CompletionWindow,
		metadata: req.Metadata, created: c.r.sim.now(), lines: strings.Count(strings.TrimSpace(string(f.content)), "\n") + 1}
	if len(b.metadata) == 0 {
		b.metadata = jsonNull
	}
	o := c.r.objects
	o.mu.Lock()
	o.batches[b.id] = b
	o.mu.Unlock()
	writeValue(c.w, c.created(), c.batchJSON(b, b.created))
}

// batchState is a batch's status at now: validating, in_progress, finalizing and completed over the simulator's
// job duration (the fine-tuning duration), or cancelling then cancelled. Call with o.mu held.
func (o *objects) batchState(b *batch, now time.Time) string {
	dur := o.r.sim.ftDur
	if !b.cancelled.IsZero() {
		if now.Sub(b.cancelled) < dur/8 {
			return "cancelling"
		}
		return "cancelled"
	}
	switch el := now.Sub(b.created); {
	case el < dur/8:
		return "validating"
	case el < dur*3/4:
		return "in_progress"
	case el < dur:
		return "finalizing"
	}
	return "completed"
}

func (c *call) batchJSON(b *batch, now time.Time) map[string]any {
	o := c.r.objects
	o.mu.Lock()
	state := o.batchState(b, now)
	dur := c.r.sim.ftDur
	unix := func(d time.Duration) int64 { return b.created.Add(d).Unix() }
	out := map[string]any{
		"id": b.id, "object": "batch", "endpoint": b.endpoint, "errors": nil, "input_file_id": b.inputFile,
		"completion_window": b.window, "status": state, "output_file_id": nil, "error_file_id": nil,
		"created_at": b.created.Unix(), "in_progress_at": nil, "expires_at": unix(24 * time.Hour), "finalizing_at": nil,
		"completed_at": nil, "failed_at": nil, "expired_at": nil, "cancelling_at": nil, "cancelled_at": nil,
		"request_counts": map[string]int{"total": b.lines, "completed": 0, "failed": 0}, "metadata": b.metadata,
	}
	if state != "validating" && b.cancelled.IsZero() || !b.cancelled.IsZero() && b.cancelled.Sub(b.created) >= dur/8 {
		out["in_progress_at"] = unix(dur / 8)
	}
	switch state {
	case "finalizing", "completed":
		out["finalizing_at"] = unix(dur * 3 / 4)
		out["request_counts"] = map[string]int{"total": b.lines, "completed": b.lines, "failed": 0}
	case "cancelling", "cancelled":
		out["cancelling_at"] = b.cancelled.Unix()
		if state == "cancelled" {
			out["cancelled_at"] = b.cancelled.Add(dur / 8).Unix()
		}
	}
	o.mu.Unlock()
	if state == "completed" {
		out["completed_at"] = unix(dur)
		out["output_file_id"] = c.batchOutput(b)
	}
	return out
}

// batchOutput is the output file of a completed batch, made when first asked for: one line per input line.
func (c *call) batchOutput(b *batch) string {
	o := c.r.objects
	o.mu.Lock()
	id := b.outputFile
	o.mu.Unlock()
	if id != "" {
		return id
	}
	in := c.r.store.file(b.inputFile)
	var lines []string
	if in != nil {
		for _, line := range strings.Split(strings.TrimSpace(string(in.content)), "\n") {
			var req struct {
				CustomID string `json:"custom_id"`
			}
			json.Unmarshal([]byte(line), &req)
			out, _ := json.Marshal(map[string]any{"id": "batch_req_" + c.r.sim.randomID("", 32, "0123456789abcdef"), "custom_id": req.CustomID,
				"response": map[string]any{"status_code": 200, "request_id": c.r.sim.uuid(), "body": map[string]any{"object": "chat.completion",
					"choices": []map[string]any{{"index": 0, "finish_reason": "stop", "message": map[string]any{"role": "assistant",
						"content": "Hello from " + c.r.display + " (batch)."}}}}}, "error": nil})
			lines = append(lines, string(out))
		}
	}
	f := c.r.store.addFile(b.id+"_output.jsonl", "batch_output", []byte(strings.Join(lines, "\n")+"\n"))
	o.mu.Lock()
	defer o.mu.Unlock()
	if b.outputFile == "" {
		b.outputFile = f.ID
	}
	return b.outputFile
}

// ---- vector stores ----

func (c *call) vectorStoreRoute(parts []string) {
	o := c.r.objects
	m := c.req.Method
	if len(parts) == 0 {
		switch m {
		case http.MethodPost:
			c.createVectorStore()
		case http.MethodGet:
			o.mu.Lock()
			list := make([]*vectorStore, 0, len(o.vstores))
			for _, v := range o.vstores {
				list = append(list, v)
			}
			o.mu.Unlock()
			sort.Slice(list, func(i, j int) bool { return list[i].seq > list[j].seq })
			items, more := page(list, func(v *vectorStore) string { return v.id }, c.req.URL.Query().Get("after"), c.limit(20))
			data := make([]map[string]any, 0, len(items))
			for _, v := range items {
				data = append(data, c.vectorStoreJSON(v))
			}
			out := map[string]any{"object": "list", "data": data, "has_more": more, "first_id": nil, "last_id": nil}
			if len(items) > 0 {
				out["first_id"], out["last_id"] = items[0].id, items[len(items)-1].id
			}
			writeValue(c.w, http.StatusOK, out)
		default:
			writeJSON(c.w, http.StatusNotFound, resourceNotFound)
		}
		return
	}
	o.mu.Lock()
	v := o.vstores[parts[0]]
	o.mu.Unlock()
	if v == nil {
		writeJSON(c.w, http.StatusNotFound, objectNotFound("Vector store", parts[0]))
		return
	}
	switch {
	case len(parts) == 1 && m == http.MethodGet:
		writeValue(c.w, http.StatusOK, c.vectorStoreJSON(v))
	case len(parts) == 1 && m == http.MethodPost:
		var req struct {
			Name     *string         `json:"name"`
			Metadata json.RawMessage `json:"metadata"`
		}
		if !c.readObjectBody(&req) {
			return
		}
		o.mu.Lock()
		if req.Name != nil {
			v.name = *req.Name
		}
		if len(req.Metadata) > 0 {
			v.metadata = req.Metadata
		}
		o.mu.Unlock()
		writeValue(c.w, http.StatusOK, c.vectorStoreJSON(v))
	case len(parts) == 1 && m == http.MethodDelete:
		o.mu.Lock()
		delete(o.vstores, v.id)
		o.mu.Unlock()
		writeValue(c.w, http.StatusOK, map[string]any{"id": v.id, "object": "vector_store.deleted", "deleted": true})
	case len(parts) == 2 && parts[1] == "search" && m == http.MethodPost:
		c.searchVectorStore(v)
	case len(parts) >= 2 && parts[1] == "files":
		c.vectorStoreFiles(v, parts[2:])
	case len(parts) >= 2 && parts[1] == "file_batches":
		c.vectorStoreBatches(v, parts[2:])
	default:
		writeJSON(c.w, http.StatusNotFound, resourceNotFound)
	}
}

func (c *call) createVectorStore() {
	var req struct {
		Name     string          `json:"name"`
		FileIDs  []string        `json:"file_ids"`
		Metadata json.RawMessage `json:"metadata"`
	}
	if !c.readObjectBody(&req) {
		return
	}
	if !c.filesExist(req.FileIDs) {
		return
	}
	o := c.r.objects
	o.mu.Lock()
	o.seq++
	v := &vectorStore{id: c.r.sim.randomID("vs_", 24, idAlphabet), name: req.Name, created: c.r.sim.now().Unix(),
		metadata: orEmpty(req.Metadata), files: append([]string(nil), req.FileIDs...), batches: map[string][]string{}, seq: o.seq}
	o.vstores[v.id] = v
	o.mu.Unlock()
	writeValue(c.w, http.StatusOK, c.vectorStoreJSON(v))
}

// filesExist answers 400 (as for a batch's input file) when one of ids is not a file of this region.
func (c *call) filesExist(ids []string) bool {
	for _, id := range ids {
		if c.r.store.file(id) == nil {
			writeJSON(c.w, http.StatusBadRequest, azureError("invalidPayload", fmt.Sprintf("The file '%s' does not exist or has been deleted.", id)))
			return false
		}
	}
	return true
}

func (c *call) vectorStoreJSON(v *vectorStore) map[string]any {
	o := c.r.objects
	o.mu.Lock()
	defer o.mu.Unlock()
	size := 0
	for _, id := range v.files {
		if f := c.r.store.file(id); f != nil {
			size += f.Bytes
		}
	}
	n := len(v.files)
	return map[string]any{"id": v.id, "object": "vector_store", "created_at": v.created, "name": v.name, "usage_bytes": size,
		"file_counts": map[string]int{"in_progress": 0, "completed": n, "failed": 0, "cancelled": 0, "total": n},
		"status":      "completed", "expires_after": nil, "expires_at": nil, "last_active_at": v.created, "metadata": v.metadata}
}

func (c *call) vectorStoreFileJSON(v *vectorStore, id string) map[string]any {
	size := 0
	if f := c.r.store.file(id); f != nil {
		size = f.Bytes
	}
	return map[string]any{"id": id, "object": "vector_store.file", "usage_bytes": size, "created_at": v.created,
		"vector_store_id": v.id, "status": "completed", "last_error": nil, "attributes": map[string]any{},
		"chunking_strategy": map[string]any{"type": "static", "static": map[string]int{"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400}}}
}

func (c *call) vectorStoreFiles(v *vectorStore, parts []string) {
	o := c.r.objects
	m := c.req.Method
	switch {
	case len(parts) == 0 && m == http.MethodPost:
		var req struct {
			FileID string `json:"file_id"`
		}
		if !c.readObjectBody(&req) || !c.filesExist([]string{req.FileID}) {
			return
		}
		o.mu.Lock()
		if !containsString(v.files, req.FileID) {
			v.files = append(v.files, req.FileID)
		}
		o.mu.Unlock()
		writeValue(c.w, http.StatusOK, c.vectorStoreFileJSON(v, req.FileID))
	case len(parts) == 0 && m == http.MethodGet:
		o.mu.Lock()
		ids := append([]string(nil), v.files...)
		o.mu.Unlock()
		c.writeFileList(v, ids)
	case len(parts) == 1:
		o.mu.Lock()
		has := containsString(v.files, parts[0])
		o.mu.Unlock()
		if !has {
			writeJSON(c.w, http.StatusNotFound, objectNotFound("Vector store file", parts[0]))
			return
		}
		switch m {
		case http.MethodGet:
			writeValue(c.w, http.StatusOK, c.vectorStoreFileJSON(v, parts[0]))
		case http.MethodDelete:
			o.mu.Lock()
			for i, id := range v.files {
				if id == parts[0] {
					v.files = append(v.files[:i:i], v.files[i+1:]...)
					break
				}
			}
			o.mu.Unlock()
			writeValue(c.w, http.StatusOK, map[string]any{"id": parts[0], "object": "vector_store.file.deleted", "deleted": true})
		default:
			writeJSON(c.w, http.StatusNotFound, resourceNotFound)
		}
	default:
		writeJSON(c.w, http.StatusNotFound, resourceNotFound)
	}
}

func (c *call) writeFileList(v *vectorStore, ids []string) {
	items := make([]json.RawMessage, 0, len(ids))
	for _, id := range ids {
		b, _ := json.Marshal(c.vectorStoreFileJSON(v, id))
		items = append(items, b)
	}
	c.writeList(items)
}

func (c *call) vectorStoreBatches(v *vectorStore, parts []string) {
	o := c.r.objects
	m := c.req.Method
	batchJSON := func(id string, n int, status string) map[string]any {
		return map[string]any{"id": id, "object": "vector_store.files_batch", "created_at": v.created, "vector_store_id": v.id,
			"status": status, "file_counts": map[string]int{"in_progress": 0, "completed": n, "failed": 0, "cancelled": 0, "total": n}}
	}
	if len(parts) == 0 {
		if m != http.MethodPost {
			writeJSON(c.w, http.StatusNotFound, resourceNotFound)
			return
		}
		var req struct {
			FileIDs []string `json:"file_ids"`
		}
		if !c.readObjectBody(&req) || !c.filesExist(req.FileIDs) {
			return
		}
		id := c.r.sim.randomID("vsfb_", 24, idAlphabet)
		o.mu.Lock()
		v.batches[id] = req.FileIDs
		for _, f := range req.FileIDs {
			if !containsString(v.files, f) {
				v.files = append(v.files, f)
			}
		}
		o.mu.Unlock()
		writeValue(c.w, http.StatusOK, batchJSON(id, len(req.FileIDs), "completed"))
		return
	}
	o.mu.Lock()
	files, ok := v.batches[parts[0]]
	o.mu.Unlock()
	if !ok {
		writeJSON(c.w, http.StatusNotFound, objectNotFound("Vector store file batch", parts[0]))
		return
	}
	switch {
	case len(parts) == 1 && m == http.MethodGet:
		writeValue(c.w, http.StatusOK, batchJSON(parts[0], len(files), "completed"))
	case len(parts) == 2 && parts[1] == "cancel" && m == http.MethodPost:
		writeValue(c.w, http.StatusOK, batchJSON(parts[0], len(files), "cancelled"))
	case len(parts) == 2 && parts[1] == "files" && m == http.MethodGet:
		c.writeFileList(v, files)
	default:
		writeJSON(c.w, http.StatusNotFound, resourceNotFound)
	}
}

// searchVectorStore answers with the lines of the store's files that contain a word of the query.
func (c *call) searchVectorStore(v *vectorStore) {
	var req struct {
		Query string `json:"query"`
	}
	if !c.readObjectBody(&req) {
		return
	}
	o := c.r.objects
	o.mu.Lock()
	ids := append([]string(nil), v.files...)
	o.mu.Unlock()
	data := []map[string]any{}
	words := strings.Fields(strings.ToLower(req.Query))
	for _, id := range ids {
		f := c.r.store.file(id)
		if f == nil {
			continue
		}
		for _, line := range strings.Split(string(f.content), "\n") {
			low := strings.ToLower(line)
			for _, w := range words {
				if strings.Contains(low, w) {
					data = append(data, map[string]any{"file_id": id, "filename": f.Filename, "score": 0.5, "attributes": map[string]any{},
						"content": []map[string]string{{"type": "text", "text": line}}})
					break
				}
			}
		}
	}
	writeValue(c.w, http.StatusOK, map[string]any{"object": "vector_store.search_results.page", "search_query": req.Query,
		"data": data, "has_more": false, "next_page": nil})
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
