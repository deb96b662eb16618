package sim

import (
	"encoding/json"
	"net/http"
)

// The Responses API (/openai/v1/responses, /openai/responses?api-version=...-preview).

type responseObject struct {
	ContentFilters     json.RawMessage `json:"content_filters,omitempty"`
	Conversation       json.RawMessage `json:"conversation,omitempty"`
	CreatedAt          int64           `json:"created_at"`
	Error              json.RawMessage `json:"error"`
	ID                 string          `json:"id"`
	IncompleteDetails  json.RawMessage `json:"incomplete_details"`
	Instructions       json.RawMessage `json:"instructions"`
	MaxOutputTokens    *int            `json:"max_output_tokens"`
	Metadata           json.RawMessage `json:"metadata"`
	Model              string          `json:"model"`
	Object             string          `json:"object"`
	Output             []responseItem  `json:"output"`
	ParallelToolCalls  bool            `json:"parallel_tool_calls"`
	PreviousResponseID json.RawMessage `json:"previous_response_id"`
	Reasoning          json.RawMessage `json:"reasoning"`
	Status             string          `json:"status"`
	Store              bool            `json:"store"`
	Temperature        float64         `json:"temperature"`
	Text               json.RawMessage `json:"text"`
	ToolChoice         string          `json:"tool_choice"`
	Tools              []struct{}      `json:"tools"`
	TopP               float64         `json:"top_p"`
	Truncation         string          `json:"truncation"`
	Usage              *responseUsage  `json:"usage"`
	User               json.RawMessage `json:"user"`
}

type responseItem struct {
	Content []responsePart `json:"content"`
	ID      string         `json:"id"`
	Role    string         `json:"role"`
	Status  string         `json:"status"`
	Type    string         `json:"type"`
}

type responsePart struct {
	Annotations []struct{} `json:"annotations"`
	Text        string     `json:"text"`
	Type        string     `json:"type"`
}

type responseUsage struct {
	InputTokens         int            `json:"input_tokens"`
	InputTokensDetails  map[string]int `json:"input_tokens_details"`
	OutputTokens        int            `json:"output_tokens"`
	OutputTokensDetails map[string]int `json:"output_tokens_details"`
	TotalTokens         int            `json:"total_tokens"`
}

// responseInput reads `input` (a string or a list of messages) and `instructions`.
func responseInput(g *genRequest) (all, last string, n int, errBody []byte) {
	if len(g.Input) == 0 || string(g.Input) == "null" {
		return "", "", 0, openaiError("Missing required parameter: 'input'.", "invalid_request_error", "input", "missing_required_parameter")
	}
	var s string
	if json.Unmarshal(g.Input, &s) == nil {
		all = g.Instructions + "\n" + s
		return all, s, tokens(all) + 7, nil
	}
	all, last, n, errBody = chatPrompt(g.Input)
	if errBody != nil {
		return "", "", 0, openaiError("Invalid value for 'input': expected a string or an array of input items.", "invalid_request_error", "input", "invalid_value")
	}
	return g.Instructions + "\n" + all, last, n + tokens(g.Instructions), nil
}

func (c *call) serveResponses() {
	g := c.gen
	rc, ok := c.readResponseContext() // previous_response_id, conversation, store (objects.go)
	if !ok {
		return
	}
	all, last, pt, errBody := responseInput(g)
	if errBody != nil {
		writeJSON(c.w, http.StatusBadRequest, errBody)
		return
	}
	all, pt = rc.history+all, pt+rc.tokens
	if c.filtered(all) {
		return
	}
	a := c.plan(all, last, pt, g.MaxOutputTokens)
	if !c.admit(pt + estimateCompletion(g.MaxOutputTokens, len(a.words))) {
		return
	}
	c.countUsage(pt, len(a.words))
	resp := responseObject{
		CreatedAt: c.r.sim.now().Unix(), Error: jsonNull, ID: c.r.sim.randomID("resp_", 48, "0123456789abcdef"),
		IncompleteDetails: jsonNull, Instructions: jsonNull, MaxOutputTokens: g.MaxOutputTokens, Metadata: emptyObject,
		Model: c.modelName(), Object: "response", Output: []responseItem{}, ParallelToolCalls: true,
		PreviousResponseID: jsonNull, Reasoning: json.RawMessage(`{"effort":null,"summary":null}`), Status: "in_progress",
		Store: true, Temperature: 1, Text: json.RawMessage(`{"format":{"type":"text"}}`), ToolChoice: "auto",
		Tools: []struct{}{}, TopP: 1, Truncation: "disabled", User: jsonNull,
	}
	if g.Instructions != "" {
		resp.Instructions, _ = json.Marshal(g.Instructions)
	}
	rc.annotate(&resp)
	item := responseItem{Content: []responsePart{}, ID: c.r.sim.randomID("msg_", 48, "0123456789abcdef"), Role: "assistant", Status: "in_progress", Type: "message"}
	finalUsage := &responseUsage{
		InputTokens: pt, InputTokensDetails: map[string]int{"cached_tokens": 0},
		OutputTokens: len(a.words), OutputTokensDetails: map[string]int{"reasoning_tokens": 0}, TotalTokens: pt + len(a.words),
	}
	status := "completed"
	if a.finish == "length" {
		status = "incomplete"
	}
	text := a.text()
	if !g.Stream {
		if !c.waitGeneration(len(a.words), false) {
			return
		}
		item.Status, item.Content = "completed", []responsePart{{Annotations: []struct{}{}, Text: text, Type: "output_text"}}
		resp.Status, resp.Output, resp.Usage = status, []responseItem{item}, finalUsage
		if status == "incomplete" {
			resp.IncompleteDetails = json.RawMessage(`{"reason":"max_output_tokens"}`)
		}
		c.keepResponse(rc, resp)
		writeValue(c.w, http.StatusOK, resp)
		return
	}
	c.streamResponse(a, resp, item, finalUsage, status, rc)
}

func (c *call) streamResponse(a answer, resp responseObject, item responseItem, u *responseUsage, status string, rc responseContext) {
	if !c.waitGeneration(len(a.words), true) {
		return
	}
	s := c.startStream()
	seq := 0
	emit := func(typ string, fields map[string]any) bool {
		fields["type"] = typ
		fields["sequence_number"] = seq
		seq++
		b, err := json.Marshal(fields)
		if err != nil {
			return false
		}
		return s.sendEvent(typ, b)
	}
	if !emit("response.created", map[string]any{"response": resp}) || !emit("response.in_progress", map[string]any{"response": resp}) {
		return
	}
	if !emit("response.output_item.added", map[string]any{"output_index": 0, "item": item}) {
		return
	}
	emptyPart := responsePart{Annotations: []struct{}{}, Type: "output_text"}
	if !emit("response.content_part.added", map[string]any{"item_id": item.ID, "output_index": 0, "content_index": 0, "part": emptyPart}) {
		return
	}
	gap := c.perToken()
	for i, w := range a.words {
		if i > 0 && !c.sleep(gap) {
			s.abort()
			return
		}
		if !emit("response.output_text.delta", map[string]any{"item_id": item.ID, "output_index": 0, "content_index": 0, "delta": w, "logprobs": []struct{}{}}) {
			return
		}
	}
	text := a.text()
	part := responsePart{Annotations: []struct{}{}, Text: text, Type: "output_text"}
	if !emit("response.output_text.done", map[string]any{"item_id": item.ID, "output_index": 0, "content_index": 0, "text": text, "logprobs": []struct{}{}}) ||
		!emit("response.content_part.done", map[string]any{"item_id": item.ID, "output_index": 0, "content_index": 0, "part": part}) {
		return
	}
	item.Status, item.Content = "completed", []responsePart{part}
	if !emit("response.output_item.done", map[string]any{"output_index": 0, "item": item}) {
		return
	}
	resp.Status, resp.Output, resp.Usage = status, []responseItem{item}, u
	if !s.end() {
		return
	}
	name := "response.completed"
	if status == "incomplete" {
		name = "response.incomplete"
		resp.IncompleteDetails = json.RawMessage(`{"reason":"max_output_tokens"}`)
	}
	c.keepResponse(rc, resp)
	emit(name, map[string]any{"response": resp})
}
