package sim

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The Responses API (/openai/v1/responses, /openai/responses?api-version=...-preview), written as Azure writes it
// (docs/wire-notes.md, "Responses, streamed and not"): members in the order of Azure's answers, the prompt and
// completion content filters in `content_filters`, a reasoning item first for reasoning models, function calls as
// `function_call` items, a refusal as a `refusal` content part, log probabilities on `output_text` parts when
// `include` asks for them, usage with its details. The streamed form's terminal event carries the same response
// object as the non-streaming answer, so a stream reassembled by its terminal event is that answer.

// responseObject is a response; members in Azure's order.
type responseObject struct {
	ID                   string          `json:"id"`
	Object               string          `json:"object"`
	CreatedAt            int64           `json:"created_at"`
	Status               string          `json:"status"`
	Background           bool            `json:"background"`
	CompletedAt          *int64          `json:"completed_at"`
	ContentFilters       json.RawMessage `json:"content_filters"` // null until the answer is complete
	Conversation         json.RawMessage `json:"conversation,omitempty"`
	Error                json.RawMessage `json:"error"`
	FrequencyPenalty     float64         `json:"frequency_penalty"`
	IncompleteDetails    json.RawMessage `json:"incomplete_details"`
	Instructions         json.RawMessage `json:"instructions"`
	MaxOutputTokens      *int            `json:"max_output_tokens"`
	MaxToolCalls         *int            `json:"max_tool_calls"`
	Model                string          `json:"model"`
	Output               []outputItem    `json:"output"`
	ParallelToolCalls    bool            `json:"parallel_tool_calls"`
	PresencePenalty      float64         `json:"presence_penalty"`
	PreviousResponseID   json.RawMessage `json:"previous_response_id"`
	PromptCacheKey       json.RawMessage `json:"prompt_cache_key"`
	PromptCacheRetention json.RawMessage `json:"prompt_cache_retention"`
	Reasoning            json.RawMessage `json:"reasoning"`
	SafetyIdentifier     json.RawMessage `json:"safety_identifier"`
	ServiceTier          string          `json:"service_tier"`
	Store                bool            `json:"store"`
	Temperature          float64         `json:"temperature"`
	Text                 json.RawMessage `json:"text"`
	ToolChoice           json.RawMessage `json:"tool_choice"`
	Tools                json.RawMessage `json:"tools"`
	TopLogprobs          int             `json:"top_logprobs"`
	TopP                 float64         `json:"top_p"`
	Truncation           string          `json:"truncation"`
	Usage                *responseUsage  `json:"usage"`
	User                 json.RawMessage `json:"user"`
	Metadata             json.RawMessage `json:"metadata"`
}

// outputItem is one item of a response's output: a message, a reasoning item or a function call.
type outputItem interface {
	// itemText is what the item says, for the context of a later turn.
	itemText() string
}

type messageItem struct {
	ID      string        `json:"id"`
	Type    string        `json:"type"` // "message"
	Status  string        `json:"status"`
	Content []contentItem `json:"content"`
	Role    string        `json:"role"`
}

func (m messageItem) itemText() string {
	var b strings.Builder
	for _, p := range m.Content {
		b.WriteString(p.partText())
	}
	return b.String()
}

// contentItem is a part of a message: output text or a refusal.
type contentItem interface{ partText() string }

type outputTextPart struct {
	Type        string            `json:"type"` // "output_text"
	Annotations []struct{}        `json:"annotations"`
	Logprobs    []responseLogprob `json:"logprobs"`
	Text        string            `json:"text"`
}

func (p outputTextPart) partText() string { return p.Text }

type refusalPart struct {
	Type    string `json:"type"` // "refusal"
	Refusal string `json:"refusal"`
}

func (p refusalPart) partText() string { return p.Refusal }

type reasoningItem struct {
	ID      string     `json:"id"`
	Type    string     `json:"type"` // "reasoning"
	Summary []struct{} `json:"summary"`
}

func (reasoningItem) itemText() string { return "" }

type functionCallItem struct {
	ID        string `json:"id"`
	Type      string `json:"type"` // "function_call"
	Status    string `json:"status"`
	Arguments string `json:"arguments"`
	CallID    string `json:"call_id"`
	Name      string `json:"name"`
}

func (f functionCallItem) itemText() string { return f.Name + " " + f.Arguments }

// responseLogprob is a token's log probability on an output_text part; the delta and done events carry the
// same without bytes (deltaLogprob).
type responseLogprob struct {
	Token       string               `json:"token"`
	Bytes       []int                `json:"bytes"`
	Logprob     float64              `json:"logprob"`
	TopLogprobs []responseTopLogprob `json:"top_logprobs"`
}

type responseTopLogprob struct {
	Token   string  `json:"token"`
	Bytes   []int   `json:"bytes"`
	Logprob float64 `json:"logprob"`
}

type deltaLogprob struct {
	Token       string            `json:"token"`
	Logprob     float64           `json:"logprob"`
	TopLogprobs []deltaTopLogprob `json:"top_logprobs"`
}

type deltaTopLogprob struct {
	Token   string  `json:"token"`
	Logprob float64 `json:"logprob"`
}

type responseUsage struct {
	InputTokens         int            `json:"input_tokens"`
	InputTokensDetails  map[string]int `json:"input_tokens_details"`
	OutputTokens        int            `json:"output_tokens"`
	OutputTokensDetails map[string]int `json:"output_tokens_details"`
	TotalTokens         int            `json:"total_tokens"`
}

// responsesRequest holds the members of a Responses request that the answer echoes or obeys.
type responsesRequest struct {
	Tools       json.RawMessage `json:"tools"`
	ToolChoice  json.RawMessage `json:"tool_choice"`
	Temperature *float64        `json:"temperature"`
	TopP        *float64        `json:"top_p"`
	Text        json.RawMessage `json:"text"`
	Metadata    json.RawMessage `json:"metadata"`
	User        json.RawMessage `json:"user"`
	Truncation  string          `json:"truncation"`
	Reasoning   struct {
		Effort  json.RawMessage `json:"effort"`
		Summary json.RawMessage `json:"summary"`
	} `json:"reasoning"`
	MaxToolCalls *int `json:"max_tool_calls"`
}

// responseInput reads `input` (a string or a list of items) and `instructions`: all the prompt's text, the last
// user text, the prompt tokens, and whether the input ends with a tool result (function_call_output), which is
// answered with text so that an application's tool loop ends.
func responseInput(g *genRequest) (all, last string, n int, toolResult bool, errBody []byte) {
	if len(g.Input) == 0 || string(g.Input) == "null" {
		return "", "", 0, false, openaiError("Missing required parameter: 'input'.", "invalid_request_error", "input", "missing_required_parameter")
	}
	var s string
	if json.Unmarshal(g.Input, &s) == nil {
		all = g.Instructions + "\n" + s
		return all, s, tokens(all) + 7, false, nil
	}
	bad := openaiError("Invalid value for 'input': expected a string or an array of input items.", "invalid_request_error", "input", "invalid_value")
	var items []struct {
		Type      string          `json:"type"`
		Role      string          `json:"role"`
		Content   json.RawMessage `json:"content"`
		Output    json.RawMessage `json:"output"`
		Name      string          `json:"name"`
		Arguments string          `json:"arguments"`
	}
	if json.Unmarshal(g.Input, &items) != nil || len(items) == 0 {
		return "", "", 0, false, bad
	}
	parts := []string{g.Instructions}
	n = 3 + tokens(g.Instructions)
	for _, it := range items {
		var text string
		switch it.Type {
		case "", "message":
			t, ok := textOf(it.Content)
			if !ok || it.Role == "" {
				return "", "", 0, false, bad
			}
			text = t
			if it.Role == "user" {
				last = t
			}
		case "function_call_output":
			text, _ = textOf(it.Output)
		case "function_call":
			text = it.Name + " " + it.Arguments
		default: // reasoning items, item references...: no text of their own
			continue
		}
		toolResult = it.Type == "function_call_output"
		parts = append(parts, text)
		n += 3 + tokens(text)
	}
	return joinLines(parts), last, n, toolResult, nil
}

// responsePlan is everything a response is made of, planned before it is written either way.
type responsePlan struct {
	resp       responseObject // as created: in progress, no output
	out        choiceOut      // the text or refusal, or the calls
	reasoning  *reasoningItem
	message    messageItem
	calls      []functionCallItem
	logprobs   bool // include asks for message.output_text.logprobs
	top        int
	usage      *responseUsage
	status     string // completed or incomplete
	incomplete json.RawMessage
	filters    json.RawMessage
	tier       string
}

func (c *call) serveResponses() {
	g := c.gen
	rc, ok := c.readResponseContext() // previous_response_id, conversation, store (objects.go)
	if !ok {
		return
	}
	all, last, pt, toolResult, errBody := responseInput(g)
	if errBody != nil {
		writeJSON(c.w, http.StatusBadRequest, errBody)
		return
	}
	all, pt = rc.history+all, pt+rc.tokens
	if strings.Contains(all, c.r.sim.trigger) {
		writeJSON(c.w, http.StatusBadRequest, responsesFilterBody(all))
		return
	}
	if c.tooLong(pt, nil) {
		return
	}
	if g.TopLogprobs != nil && (*g.TopLogprobs < 0 || *g.TopLogprobs > 20) {
		writeJSON(c.w, http.StatusBadRequest, openaiError("Invalid 'top_logprobs': integer must be between 0 and 20.", "invalid_request_error", "top_logprobs", "invalid_value"))
		return
	}
	var req responsesRequest
	json.Unmarshal(c.body, &req)
	p := c.planResponse(&req, all, last, pt, toolResult, rc)
	if !c.admit(pt + estimateCompletion(g.MaxOutputTokens, p.usage.OutputTokens)) {
		return
	}
	c.countUsage(pt, p.usage.OutputTokens)
	if g.Stream {
		c.streamResponse(p, rc)
		return
	}
	if !c.waitGeneration(p.usage.OutputTokens, false) {
		return
	}
	resp := c.finishResponse(p)
	c.keepResponse(rc, resp)
	writeValue(c.w, http.StatusOK, resp)
}

// planResponse decides the answer.
func (c *call) planResponse(req *responsesRequest, all, last string, pt int, toolResult bool, rc responseContext) responsePlan {
	g := c.gen
	hex := "0123456789abcdef"
	reasoningModel := isReasoningModel(c.dep.Model)
	resp := responseObject{
		ID: c.r.sim.randomID("resp_", 48, hex), Object: "response", CreatedAt: c.r.sim.now().Unix(), Status: "in_progress",
		ContentFilters: jsonNull, Error: jsonNull, IncompleteDetails: jsonNull, Instructions: jsonNull,
		MaxOutputTokens: g.MaxOutputTokens, MaxToolCalls: req.MaxToolCalls, Model: c.modelName(), Output: []outputItem{},
		ParallelToolCalls: g.ParallelToolCalls == nil || *g.ParallelToolCalls, PreviousResponseID: jsonNull,
		PromptCacheKey: jsonNull, PromptCacheRetention: jsonNull, SafetyIdentifier: jsonNull, ServiceTier: "auto",
		Store: true, Temperature: 1, Text: orRaw(req.Text, `{"format":{"type":"text"}}`), ToolChoice: orRaw(g.ToolChoice, `"auto"`),
		Tools: orRaw(req.Tools, `[]`), TopP: 1, Truncation: "disabled", User: orRaw(req.User, "null"), Metadata: orRaw(req.Metadata, "{}"),
	}
	if g.ServiceTier != "" {
		resp.ServiceTier = g.ServiceTier
	}
	if req.Temperature != nil {
		resp.Temperature = *req.Temperature
	}
	if req.TopP != nil {
		resp.TopP = *req.TopP
	}
	if req.Truncation != "" {
		resp.Truncation = req.Truncation
	}
	if g.TopLogprobs != nil {
		resp.TopLogprobs = *g.TopLogprobs
	}
	effort := req.Reasoning.Effort
	if len(effort) == 0 || string(effort) == "null" {
		effort = jsonNull
		if reasoningModel {
			effort = json.RawMessage(`"medium"`)
		}
	}
	resp.Reasoning = json.RawMessage(`{"effort":` + string(effort) + `,"summary":` + string(orRaw(req.Reasoning.Summary, "null")) + `}`)
	if g.Instructions != "" {
		resp.Instructions = jsonString(g.Instructions)
	}
	rc.annotate(&resp)

	p := responsePlan{resp: resp, tier: g.serviceTier(), top: c.gen.topLogprobs(), status: "completed", incomplete: jsonNull}
	for _, inc := range g.Include {
		p.logprobs = p.logprobs || inc == "message.output_text.logprobs"
	}
	p.out = c.planChoice(all, last, g.MaxOutputTokens, 0)
	if !toolResult && p.out.kind == outText {
		for j, name := range c.toolNames(all) {
			p.calls = append(p.calls, functionCallItem{ID: c.r.sim.randomID("fc_", 48, hex), Type: "function_call", Status: "completed",
				Arguments: callArguments(last, j), CallID: c.r.sim.randomID("call_", 24, idAlphabet), Name: name})
		}
	}
	reasoning := 0
	if reasoningModel {
		p.reasoning = &reasoningItem{ID: c.r.sim.randomID("rs_", 48, hex), Type: "reasoning", Summary: []struct{}{}}
		reasoning = reasoningTokens
	}
	outTokens := reasoning
	completion := ""
	if len(p.calls) > 0 {
		p.out = choiceOut{kind: outToolCalls, finish: "stop"}
		for _, f := range p.calls {
			outTokens += tokens(f.Name) + tokens(f.Arguments)
			completion += f.Arguments
		}
	} else {
		outTokens += len(p.out.words)
		completion = p.out.text()
		p.message = messageItem{ID: c.r.sim.randomID("msg_", 48, hex), Type: "message", Status: "completed", Role: "assistant", Content: []contentItem{}}
		switch {
		case p.out.filtered:
			p.status, p.incomplete, p.message.Status = "incomplete", json.RawMessage(`{"reason":"content_filter"}`), "incomplete"
		case p.out.finish == "length":
			p.status, p.incomplete, p.message.Status = "incomplete", json.RawMessage(`{"reason":"max_output_tokens"}`), "incomplete"
		}
	}
	p.usage = &responseUsage{InputTokens: pt, InputTokensDetails: map[string]int{"cached_tokens": 0},
		OutputTokens: outTokens, OutputTokensDetails: map[string]int{"reasoning_tokens": reasoning}, TotalTokens: pt + outTokens}
	if n, ok := markerInt(all, cachedMarker); ok {
		p.usage.InputTokensDetails["cached_tokens"] = min(n, pt) / 128 * 128
	}
	p.filters = responseFilters(all, completion, p.out.filtered)
	return p
}

// part is the message's content part for words: output text (with its log probabilities when asked for) or a
// refusal.
func (p *responsePlan) part(words []string) contentItem {
	text := strings.Join(words, "")
	if p.out.kind == outRefusal {
		return refusalPart{Type: "refusal", Refusal: text}
	}
	lp := []responseLogprob{}
	if p.logprobs {
		for _, w := range words {
			e := chatLogprob(w, p.top)
			r := responseLogprob{Token: e.Token, Bytes: e.Bytes, Logprob: e.Logprob, TopLogprobs: []responseTopLogprob{}}
			for _, t := range e.TopLogprobs {
				r.TopLogprobs = append(r.TopLogprobs, responseTopLogprob{Token: t.Token, Bytes: t.Bytes, Logprob: t.Logprob})
			}
			lp = append(lp, r)
		}
	}
	return outputTextPart{Type: "output_text", Annotations: []struct{}{}, Logprobs: lp, Text: text}
}

// items is the output of the finished response.
func (p *responsePlan) items() []outputItem {
	out := []outputItem{}
	if p.reasoning != nil {
		out = append(out, *p.reasoning)
	}
	if len(p.calls) > 0 {
		for _, f := range p.calls {
			out = append(out, f)
		}
		return out
	}
	m := p.message
	m.Content = []contentItem{p.part(p.out.words)}
	return append(out, m)
}

// finishResponse is the response as it ends: output, usage, content filters, status.
func (c *call) finishResponse(p responsePlan) responseObject {
	r := p.resp
	done := c.r.sim.now().Unix()
	r.CompletedAt, r.Status, r.Output, r.Usage = &done, p.status, p.items(), p.usage
	r.ContentFilters, r.IncompleteDetails, r.ServiceTier = p.filters, p.incomplete, p.tier
	return r
}

// Content filters as Azure reports them on a response: one entry for the prompt, one for the completion.
const (
	responsePromptResults     = `{"hate":{"filtered":false,"severity":"safe"},"jailbreak":{"filtered":false,"detected":false},"self_harm":{"filtered":false,"severity":"safe"},"sexual":{"filtered":false,"severity":"safe"},"violence":{"filtered":false,"severity":"safe"}}`
	responseCompletionResults = `{"hate":{"filtered":false,"severity":"safe"},"protected_material_code":{"filtered":false,"detected":false},"protected_material_text":{"filtered":false,"detected":false},"self_harm":{"filtered":false,"severity":"safe"},"sexual":{"filtered":false,"severity":"safe"},"violence":{"filtered":false,"severity":"safe"}}`
	responseFilteredResults   = `{"hate":{"filtered":false,"severity":"safe"},"protected_material_code":{"filtered":false,"detected":false},"protected_material_text":{"filtered":false,"detected":false},"self_harm":{"filtered":false,"severity":"safe"},"sexual":{"filtered":false,"severity":"safe"},"violence":{"filtered":true,"severity":"medium"}}`
)

func contentFilterEntry(blocked bool, source, results string, end int) string {
	return `{"blocked":` + strconv.FormatBool(blocked) + `,"source_type":"` + source + `","content_filter_raw":[],"content_filter_results":` + results +
		`,"content_filter_offsets":{"start_offset":0,"end_offset":` + strconv.Itoa(end) + `,"check_offset":0}}`
}

func responseFilters(prompt, completion string, filtered bool) json.RawMessage {
	results := responseCompletionResults
	if filtered {
		results = responseFilteredResults
	}
	return json.RawMessage(`[` + contentFilterEntry(false, "prompt", responsePromptResults, utf8.RuneCountInString(prompt)) + `,` +
		contentFilterEntry(filtered, "completion", results, utf8.RuneCountInString(completion)) + `]`)
}

// responsesFilterBody is the 400 of a Responses request whose prompt the content filter blocks: the error names
// the blocked category in content_filters (not innererror, as chat does).
func responsesFilterBody(prompt string) []byte {
	results := `{"hate":{"filtered":false,"severity":"safe"},"jailbreak":{"filtered":false,"detected":false},"self_harm":{"filtered":false,"severity":"safe"},"sexual":{"filtered":false,"severity":"safe"},"violence":{"filtered":true,"severity":"medium"}}`
	return []byte(`{"error":{"message":"The response was filtered due to the prompt triggering Azure OpenAI’s content management policy. Please modify your prompt and retry. To learn more about our content filtering policies please read our documentation: https://go.microsoft.com/fwlink/?linkid=2198766","type":"invalid_request_error","param":"prompt","code":"content_filter","content_filters":[` +
		contentFilterEntry(true, "prompt", results, utf8.RuneCountInString(prompt)) + `]}}`)
}

func orRaw(v json.RawMessage, def string) json.RawMessage {
	if len(v) == 0 || string(v) == "null" {
		return json.RawMessage(def)
	}
	return v
}

// eventWriter writes the events of one Responses stream: `{"type":...,"sequence_number":...,...}`, type first
// as Azure writes it.
type eventWriter struct {
	s   *sseStream
	seq int
	obf bool
	buf []byte
}

// emit writes one event with its members in the order given (key, value, key, value...).
func (w *eventWriter) emit(typ string, kv ...any) bool {
	b := append(w.buf[:0], `{"type":`...)
	b = append(b, jsonString(typ)...)
	b = append(b, `,"sequence_number":`...)
	b = strconv.AppendInt(b, int64(w.seq), 10)
	for i := 0; i+1 < len(kv); i += 2 {
		v, err := json.Marshal(kv[i+1])
		if err != nil {
			return false
		}
		b = append(append(append(append(b, ',', '"'), kv[i].(string)...), '"', ':'), v...)
	}
	b = append(b, '}')
	w.buf = b
	w.seq++
	return w.s.send(b)
}

// delta writes a delta event, padded as the service pads them (stream_options.include_obfuscation).
func (w *eventWriter) delta(typ string, k int, kv ...any) bool {
	if w.obf {
		kv = append(kv, "obfuscation", obfuscation(typ, k))
	}
	return w.emit(typ, kv...)
}

// streamResponse writes the answer as Azure streams it: response.created and .in_progress (no output, no usage,
// content_filters null), each output item added and done (a reasoning item, then the message with its content
// part and its text or refusal one token per event, or the function calls with their arguments a few
// characters at a time), and the terminal event (response.completed, or response.incomplete) with the whole
// response.
func (c *call) streamResponse(p responsePlan, rc responseContext) {
	if !c.waitGeneration(p.usage.OutputTokens, true) {
		return
	}
	w := &eventWriter{s: c.startStream(), obf: c.gen.obfuscate()}
	if !w.emit("response.created", "response", p.resp) || !w.emit("response.in_progress", "response", p.resp) {
		return
	}
	idx := 0
	if p.reasoning != nil {
		if !w.emit("response.output_item.added", "output_index", idx, "item", *p.reasoning) ||
			!w.emit("response.output_item.done", "output_index", idx, "item", *p.reasoning) {
			return
		}
		idx++
	}
	pace := c.pacer()
	for _, f := range p.calls {
		added := f
		added.Status, added.Arguments = "in_progress", ""
		if !w.emit("response.output_item.added", "output_index", idx, "item", added) {
			return
		}
		for k, piece := range splitPieces(f.Arguments, 8) {
			if k > 0 && !pace.wait() {
				w.s.abort()
				return
			}
			if !w.delta("response.function_call_arguments.delta", k, "item_id", f.ID, "output_index", idx, "delta", piece) {
				return
			}
		}
		if !w.emit("response.function_call_arguments.done", "item_id", f.ID, "output_index", idx, "arguments", f.Arguments) ||
			!w.emit("response.output_item.done", "output_index", idx, "item", f) {
			return
		}
		idx++
	}
	if len(p.calls) == 0 && !c.streamMessage(w, &p, idx) {
		return
	}
	resp := c.finishResponse(p)
	if !w.s.end() {
		return
	}
	c.keepResponse(rc, resp)
	name := "response.completed"
	if resp.Status == "incomplete" {
		name = "response.incomplete"
	}
	w.emit(name, "response", resp)
}

// streamMessage writes the message item: added, its content part added, the text (or refusal) deltas, done.
func (c *call) streamMessage(w *eventWriter, p *responsePlan, idx int) bool {
	m := p.message
	m.Status, m.Content = "in_progress", []contentItem{}
	if !w.emit("response.output_item.added", "output_index", idx, "item", m) ||
		!w.emit("response.content_part.added", "item_id", m.ID, "output_index", idx, "content_index", 0, "part", p.part(nil)) {
		return false
	}
	deltaName, doneName, doneKey := "response.output_text.delta", "response.output_text.done", "text"
	if p.out.kind == outRefusal {
		deltaName, doneName, doneKey = "response.refusal.delta", "response.refusal.done", "refusal"
	}
	pace := c.pacer()
	for i, word := range p.out.words {
		if i > 0 && !pace.wait() {
			w.s.abort()
			return false
		}
		ok := false
		if p.out.kind == outRefusal {
			ok = w.delta(deltaName, i, "item_id", m.ID, "output_index", idx, "content_index", 0, "delta", word)
		} else {
			ok = w.delta(deltaName, i, "item_id", m.ID, "output_index", idx, "content_index", 0, "delta", word, "logprobs", p.deltaLogprobs(word))
		}
		if !ok {
			return false
		}
	}
	part := p.part(p.out.words)
	var done bool
	if p.out.kind == outRefusal {
		done = w.emit(doneName, "item_id", m.ID, "output_index", idx, "content_index", 0, doneKey, part.partText())
	} else {
		done = w.emit(doneName, "item_id", m.ID, "output_index", idx, "content_index", 0, doneKey, part.partText(), "logprobs", p.doneLogprobs())
	}
	if !done || !w.emit("response.content_part.done", "item_id", m.ID, "output_index", idx, "content_index", 0, "part", part) {
		return false
	}
	m.Status, m.Content = p.message.Status, []contentItem{part}
	return w.emit("response.output_item.done", "output_index", idx, "item", m)
}

// deltaLogprobs is the logprobs member of a text delta: its token's entry when asked for, else [].
func (p *responsePlan) deltaLogprobs(word string) []deltaLogprob {
	if !p.logprobs {
		return []deltaLogprob{}
	}
	e := chatLogprob(word, p.top)
	d := deltaLogprob{Token: e.Token, Logprob: e.Logprob, TopLogprobs: []deltaTopLogprob{}}
	for _, t := range e.TopLogprobs {
		d.TopLogprobs = append(d.TopLogprobs, deltaTopLogprob{Token: t.Token, Logprob: t.Logprob})
	}
	return []deltaLogprob{d}
}

func (p *responsePlan) doneLogprobs() []deltaLogprob {
	out := []deltaLogprob{}
	for _, w := range p.out.words {
		out = append(out, p.deltaLogprobs(w)...)
	}
	return out
}
