package sim

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
)

// Content-filter annotations as Azure attaches them (§4.1): nothing filtered.
var (
	promptFilterResults   = json.RawMessage(`[{"prompt_index":0,"content_filter_results":{"hate":{"filtered":false,"severity":"safe"},"jailbreak":{"filtered":false,"detected":false},"self_harm":{"filtered":false,"severity":"safe"},"sexual":{"filtered":false,"severity":"safe"},"violence":{"filtered":false,"severity":"safe"}}}]`)
	filteredChoiceResults = json.RawMessage(`{"hate":{"filtered":false,"severity":"safe"},"protected_material_code":{"filtered":false,"detected":false},"protected_material_text":{"filtered":false,"detected":false},"self_harm":{"filtered":false,"severity":"safe"},"sexual":{"filtered":false,"severity":"safe"},"violence":{"filtered":true,"severity":"medium"}}`)
	choiceFilterResults   = json.RawMessage(`{"hate":{"filtered":false,"severity":"safe"},"protected_material_code":{"filtered":false,"detected":false},"protected_material_text":{"filtered":false,"detected":false},"self_harm":{"filtered":false,"severity":"safe"},"sexual":{"filtered":false,"severity":"safe"},"violence":{"filtered":false,"severity":"safe"}}`)
	emptyObject           = json.RawMessage(`{}`)
	jsonNull              = json.RawMessage(`null`)
	firstChatEvent        = []byte(`{"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":` + string(promptFilterResults) + `}`)
)

// Keys are in alphabetical order, as Azure writes them.
type chatCompletion struct {
	Choices             []chatChoice    `json:"choices"`
	Created             int64           `json:"created"`
	ID                  string          `json:"id"`
	Model               string          `json:"model"`
	Object              string          `json:"object"`
	PromptFilterResults json.RawMessage `json:"prompt_filter_results"`
	ServiceTier         string          `json:"service_tier"`
	SystemFingerprint   string          `json:"system_fingerprint"`
	Usage               *usage          `json:"usage"`
}

type chatChoice struct {
	ContentFilterResults json.RawMessage `json:"content_filter_results"`
	FinishReason         string          `json:"finish_reason"`
	Index                int             `json:"index"`
	Logprobs             json.RawMessage `json:"logprobs"`
	Message              chatMessageOut  `json:"message"`
}

type chatMessageOut struct {
	Annotations  []struct{}      `json:"annotations"`
	Content      json.RawMessage `json:"content"` // a string, or null for refusals and calls
	FunctionCall *toolFunction   `json:"function_call,omitempty"`
	Refusal      json.RawMessage `json:"refusal"`
	Role         string          `json:"role"`
	ToolCalls    []toolCall      `json:"tool_calls,omitempty"`
}

type usage struct {
	CompletionTokens        int                      `json:"completion_tokens"`
	CompletionTokensDetails *completionTokensDetails `json:"completion_tokens_details,omitempty"`
	PromptTokens            int                      `json:"prompt_tokens"`
	PromptTokensDetails     *promptTokensDetails     `json:"prompt_tokens_details,omitempty"`
	TotalTokens             int                      `json:"total_tokens"`
}

type completionTokensDetails struct {
	AcceptedPredictionTokens int `json:"accepted_prediction_tokens"`
	AudioTokens              int `json:"audio_tokens"`
	ReasoningTokens          int `json:"reasoning_tokens"`
	RejectedPredictionTokens int `json:"rejected_prediction_tokens"`
}

type promptTokensDetails struct {
	AudioTokens  int `json:"audio_tokens"`
	CachedTokens int `json:"cached_tokens"`
}

func chatUsage(prompt, completion int) *usage {
	return &usage{
		CompletionTokens:        completion,
		CompletionTokensDetails: &completionTokensDetails{},
		PromptTokens:            prompt,
		PromptTokensDetails:     &promptTokensDetails{},
		TotalTokens:             prompt + completion,
	}
}

type chunkChoice struct {
	ContentFilterResults json.RawMessage `json:"content_filter_results"`
	Delta                chunkDelta      `json:"delta"`
	FinishReason         *string         `json:"finish_reason"`
	Index                int             `json:"index"`
	Logprobs             json.RawMessage `json:"logprobs"`
}

type chunkDelta struct {
	Content      json.RawMessage `json:"content,omitempty"`
	FunctionCall *toolFunction   `json:"function_call,omitempty"`
	Refusal      json.RawMessage `json:"refusal,omitempty"`
	Role         string          `json:"role,omitempty"`
	ToolCalls    []toolCall      `json:"tool_calls,omitempty"`
}

func jsonString(s string) json.RawMessage {
	b, _ := json.Marshal(s)
	return b
}

// chatPrompt reads the messages of a chat request: all their text, the last user message and the prompt tokens.
func chatPrompt(raw json.RawMessage) (all, last string, n int, errBody []byte) {
	all, last, n, _, errBody = readMessages(raw)
	return all, last, n, errBody
}

// readMessages is chatPrompt that also returns the messages.
func readMessages(raw json.RawMessage) (all, last string, n int, msgs []chatMessage, errBody []byte) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", "", 0, nil, openaiError("Missing required parameter: 'messages'.", "invalid_request_error", "messages", "missing_required_parameter")
	}
	if err := json.Unmarshal(raw, &msgs); err != nil {
		return "", "", 0, nil, openaiError("Invalid type for 'messages': expected an array of objects.", "invalid_request_error", "messages", "invalid_type")
	}
	if len(msgs) == 0 {
		return "", "", 0, nil, openaiError("Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.", "invalid_request_error", "messages", "empty_array")
	}
	parts := make([]string, 0, len(msgs))
	n = 3
	for i, m := range msgs {
		text, ok := textOf(m.Content)
		if !ok || m.Role == "" {
			return "", "", 0, nil, openaiError("Invalid value for 'messages["+itoa(i)+"]': each message needs a role and a string or array content.", "invalid_request_error", "messages["+itoa(i)+"]", "invalid_value")
		}
		parts = append(parts, text)
		n += 3 + tokens(text)
		if m.Role == "user" {
			last = text
		}
	}
	if last == "" {
		last = parts[len(parts)-1]
	}
	return joinLines(parts), last, n, msgs, nil
}

// chatPlan is everything a chat answer is made of, planned before it is written either way.
type chatPlan struct {
	prompt       string // all prompt text
	promptTokens int
	outs         []choiceOut
	usage        *usage
	id           string
	created      int64
	model        string
	fingerprint  string
	tier         string
}

func (c *call) serveChat() {
	g := c.gen
	all, last, pt, msgs, errBody := readMessages(g.Messages)
	if errBody != nil {
		writeJSON(c.w, http.StatusBadRequest, errBody)
		return
	}
	if c.filtered(all) || !c.validateSampling() {
		return
	}
	limit := g.MaxCompletionTokens
	if limit == nil {
		limit = g.MaxTokens
	}
	if c.tooLong(pt, limit) {
		return
	}
	n := 1
	if g.N != nil {
		n = *g.N
	}
	if n < 1 || n > 128 {
		writeJSON(c.w, http.StatusBadRequest, openaiError("Invalid value for 'n': must be between 1 and 128.", "invalid_request_error", "n", "invalid_value"))
		return
	}
	p := c.planChat(all, last, pt, msgs, limit, n)
	longest := 0
	for i := range p.outs {
		longest = max(longest, len(p.outs[i].words))
	}
	if !c.admit(pt + n*estimateCompletion(limit, longest)) {
		return
	}
	c.countUsage(pt, p.usage.CompletionTokens)
	if g.Stream {
		c.streamChat(p, longest)
		return
	}
	if !c.waitGeneration(longest, false) {
		return
	}
	writeValue(c.w, http.StatusOK, c.chatJSON(p))
}

// planChat decides the n choices of a chat answer. With a deployment that continues a prefill (Deployment.Prefill)
// a trailing assistant message is the start of the answer: the choices say the rest of what they would have said.
func (c *call) planChat(all, last string, pt int, msgs []chatMessage, limit *int, n int) chatPlan {
	prompt, prefill := all, ""
	if c.dep.Prefill && len(msgs) > 1 && msgs[len(msgs)-1].Role == "assistant" {
		prefill, _ = textOf(msgs[len(msgs)-1].Content)
		prompt, last, _, _, _ = readMessages(mustMarshal(msgs[:len(msgs)-1]))
	}
	p := chatPlan{prompt: all, promptTokens: pt, outs: make([]choiceOut, n), id: c.r.sim.randomID("chatcmpl-", 29, idAlphabet),
		created: c.r.sim.now().Unix(), model: c.modelName(), fingerprint: c.dep.fingerprint, tier: c.gen.serviceTier()}
	for k := range p.outs {
		o := c.planChoice(prompt, last, limit, k)
		if prefill != "" {
			o.words = continueAfter(o.words, prefill)
		}
		c.decideCalls(&o, all, k)
		p.outs[k] = o
	}
	p.usage = c.usageOf(all, pt, p.outs)
	return p
}

// continueAfter returns the tokens of words that follow prefix, when the text starts with it; otherwise the words.
func continueAfter(words []string, prefix string) []string {
	text := strings.Join(words, "")
	rest, ok := strings.CutPrefix(text, prefix)
	if !ok {
		return words
	}
	if rest == "" {
		return []string{}
	}
	return strings.SplitAfter(rest, " ")
}

func mustMarshal(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}

// chatJSON is the non-streaming answer.
func (c *call) chatJSON(p chatPlan) chatCompletion {
	choices := make([]chatChoice, len(p.outs))
	for k := range p.outs {
		o := &p.outs[k]
		msg := chatMessageOut{Annotations: []struct{}{}, Content: jsonNull, Refusal: jsonNull, Role: "assistant"}
		switch o.kind {
		case outText:
			msg.Content = jsonString(o.text())
		case outRefusal:
			msg.Refusal = jsonString(o.text())
		case outToolCalls:
			msg.ToolCalls = o.calls
		case outFunctionCall:
			msg.FunctionCall = o.fn
		}
		choices[k] = chatChoice{ContentFilterResults: o.filterResults(), FinishReason: o.finish, Index: k,
			Logprobs: c.logprobsOf(o, o.words), Message: msg}
	}
	return chatCompletion{
		Choices: choices, Created: p.created, ID: p.id, Model: p.model, Object: "chat.completion",
		PromptFilterResults: promptFilterResults, ServiceTier: p.tier, SystemFingerprint: p.fingerprint, Usage: p.usage,
	}
}

// chunkWriter writes the chunks of one chat stream: `{"choices":[...]` then the envelope, built once.
type chunkWriter struct {
	s        *sseStream
	envelope []byte // ,"created":...,"id":...,"model":...
	tail     []byte // ,"object":...,"service_tier":...,"system_fingerprint":...(,"usage":null)}
	obf      bool
	buf      []byte
}

func (c *call) newChunkWriter(s *sseStream, p chatPlan) *chunkWriter {
	w := &chunkWriter{s: s, obf: c.gen.obfuscate()}
	w.envelope = append(w.envelope, `,"created":`...)
	w.envelope = strconv.AppendInt(w.envelope, p.created, 10)
	w.envelope = append(append(append(w.envelope, `,"id":`...), jsonString(p.id)...), `,"model":`...)
	w.envelope = append(w.envelope, jsonString(p.model)...)
	w.tail = append(w.tail, `,"object":"chat.completion.chunk","service_tier":`...)
	w.tail = append(append(w.tail, jsonString(p.tier)...), `,"system_fingerprint":`...)
	w.tail = append(w.tail, jsonString(p.fingerprint)...)
	if c.gen.includeUsage() {
		w.tail = append(w.tail, `,"usage":null`...)
	}
	w.tail = append(w.tail, '}')
	return w
}

// send writes one chunk whose choices are the JSON given (an object, or "" for none).
func (w *chunkWriter) send(choice []byte, pad string, usage []byte) bool {
	b := append(w.buf[:0], `{"choices":[`...)
	b = append(append(b, choice...), ']')
	b = append(b, w.envelope...)
	if w.obf {
		b = append(append(append(b, `,"obfuscation":"`...), pad...), '"')
	}
	if usage != nil {
		b = append(b, w.tail[:len(w.tail)-len(`,"usage":null}`)]...)
		b = append(append(append(b, `,"usage":`...), usage...), '}')
	} else {
		b = append(b, w.tail...)
	}
	w.buf = b
	return w.s.send(b)
}

// choice writes one chunk choice.
func choiceJSON(cc chunkChoice) []byte {
	b, _ := json.Marshal(cc)
	return b
}

// streamChat writes the answer as Azure streams it: the prompt annotations, a first chunk per choice (the role,
// and the first call of a tool call), the content one token per chunk (choices interleaved, each with its
// annotations and logprobs), the arguments of calls a few characters at a time, a finish chunk per choice, the
// usage chunk when asked for, [DONE].
func (c *call) streamChat(p chatPlan, longest int) {
	if !c.waitGeneration(longest, true) {
		return
	}
	s := c.startStream()
	if !s.send(firstChatEvent) {
		return
	}
	w := c.newChunkWriter(s, p)
	steps := make([][]chunkChoice, len(p.outs))
	rounds := 0
	for k := range p.outs {
		steps[k] = c.chatSteps(&p.outs[k], k)
		rounds = max(rounds, len(steps[k]))
	}
	pace := c.pacer()
	for i := 0; i < rounds; i++ {
		if i > 1 && !pace.wait() { // the first round is the role chunks
			s.abort()
			return
		}
		for k := range steps {
			if i >= len(steps[k]) {
				continue
			}
			if !w.send(choiceJSON(steps[k][i]), obfuscation(p.outs[k].finish, i+k), nil) {
				return
			}
		}
	}
	for k := range p.outs {
		o := &p.outs[k]
		finish, cf := o.finish, emptyObject
		if o.filtered {
			cf = filteredChoiceResults
		}
		if !w.send(choiceJSON(chunkChoice{ContentFilterResults: cf, FinishReason: &finish, Index: k, Logprobs: jsonNull}), obfuscation(finish, k), nil) {
			return
		}
	}
	if c.gen.includeUsage() {
		u, _ := json.Marshal(p.usage)
		if !w.send(nil, obfuscation("usage", len(p.outs)), u) {
			return
		}
	}
	s.done()
}

// chatSteps are the chunks of one choice before its finish chunk: its first chunk, then one per token or piece.
func (c *call) chatSteps(o *choiceOut, k int) []chunkChoice {
	first := chunkChoice{ContentFilterResults: emptyObject, Index: k, Logprobs: jsonNull,
		Delta: chunkDelta{Content: jsonNull, Refusal: jsonNull, Role: "assistant"}}
	switch o.kind {
	case outText:
		first.Delta.Content = jsonString("")
	case outRefusal:
		first.Delta.Refusal = jsonString("")
	}
	steps := []chunkChoice{first}
	switch o.kind {
	case outText, outRefusal:
		for _, word := range o.words {
			st := chunkChoice{ContentFilterResults: choiceFilterResults, Index: k, Logprobs: c.logprobsOf(o, []string{word})}
			if o.kind == outText {
				st.Delta.Content = jsonString(word)
			} else {
				st.Delta.Refusal = jsonString(word)
			}
			steps = append(steps, st)
		}
	case outToolCalls:
		for j, call := range o.calls {
			idx := j
			head := toolCall{Function: toolFunction{Arguments: "", Name: call.Function.Name}, ID: call.ID, Index: &idx, Type: call.Type}
			if j == 0 {
				steps[0].Delta.ToolCalls = []toolCall{head}
			} else {
				steps = append(steps, chunkChoice{ContentFilterResults: emptyObject, Index: k, Logprobs: jsonNull, Delta: chunkDelta{ToolCalls: []toolCall{head}}})
			}
			for _, piece := range splitPieces(call.Function.Arguments, 8) {
				steps = append(steps, chunkChoice{ContentFilterResults: emptyObject, Index: k, Logprobs: jsonNull,
					Delta: chunkDelta{ToolCalls: []toolCall{{Function: toolFunction{Arguments: piece}, Index: &idx}}}})
			}
		}
	case outFunctionCall:
		steps[0].Delta.FunctionCall = &toolFunction{Arguments: "", Name: o.fn.Name}
		for _, piece := range splitPieces(o.fn.Arguments, 8) {
			steps = append(steps, chunkChoice{ContentFilterResults: emptyObject, Index: k, Logprobs: jsonNull,
				Delta: chunkDelta{FunctionCall: &toolFunction{Arguments: piece}}})
		}
	}
	return steps
}
