package sim

import (
	"encoding/json"
	"net/http"
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
	Annotations []struct{}      `json:"annotations"`
	Content     *string         `json:"content"`
	Refusal     json.RawMessage `json:"refusal"`
	Role        string          `json:"role"`
	ToolCalls   []toolCall      `json:"tool_calls,omitempty"`
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

type chatChunk struct {
	Choices           []chunkChoice   `json:"choices"`
	Created           int64           `json:"created"`
	ID                string          `json:"id"`
	Model             string          `json:"model"`
	Object            string          `json:"object"`
	SystemFingerprint string          `json:"system_fingerprint"`
	Usage             json.RawMessage `json:"usage,omitempty"`
}

type chunkChoice struct {
	ContentFilterResults json.RawMessage `json:"content_filter_results"`
	Delta                chunkDelta      `json:"delta"`
	FinishReason         *string         `json:"finish_reason"`
	Index                int             `json:"index"`
	Logprobs             json.RawMessage `json:"logprobs"`
}

type chunkDelta struct {
	Content   *string         `json:"content,omitempty"`
	Refusal   json.RawMessage `json:"refusal,omitempty"`
	Role      string          `json:"role,omitempty"`
	ToolCalls []toolCall      `json:"tool_calls,omitempty"`
}

// chatPrompt reads the messages of a chat request: all their text, the last user message and the prompt tokens.
func chatPrompt(raw json.RawMessage) (all, last string, n int, errBody []byte) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", "", 0, openaiError("Missing required parameter: 'messages'.", "invalid_request_error", "messages", "missing_required_parameter")
	}
	var msgs []chatMessage
	if err := json.Unmarshal(raw, &msgs); err != nil {
		return "", "", 0, openaiError("Invalid type for 'messages': expected an array of objects.", "invalid_request_error", "messages", "invalid_type")
	}
	if len(msgs) == 0 {
		return "", "", 0, openaiError("Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.", "invalid_request_error", "messages", "empty_array")
	}
	parts := make([]string, 0, len(msgs))
	n = 3
	for i, m := range msgs {
		text, ok := textOf(m.Content)
		if !ok || m.Role == "" {
			return "", "", 0, openaiError("Invalid value for 'messages["+itoa(i)+"]': each message needs a role and a string or array content.", "invalid_request_error", "messages["+itoa(i)+"]", "invalid_value")
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
	return joinLines(parts), last, n, nil
}

func (c *call) serveChat() {
	g := c.gen
	all, last, pt, errBody := chatPrompt(g.Messages)
	if errBody != nil {
		writeJSON(c.w, http.StatusBadRequest, errBody)
		return
	}
	if c.filtered(all) {
		return
	}
	limit := g.MaxCompletionTokens
	if limit == nil {
		limit = g.MaxTokens
	}
	n := 1
	if g.N != nil {
		n = *g.N
	}
	if n < 1 || n > 128 {
		writeJSON(c.w, http.StatusBadRequest, openaiError("Invalid value for 'n': must be between 1 and 128.", "invalid_request_error", "n", "invalid_value"))
		return
	}
	a := c.plan(all, last, pt, limit)
	a.choices = n
	if !c.admit(pt + n*estimateCompletion(limit, len(a.words))) {
		return
	}
	c.countUsage(pt, n*len(a.words))
	id := c.r.sim.randomID("chatcmpl-", 29, idAlphabet)
	created := c.r.sim.now().Unix()
	call := c.toolCall(g, all, a)
	if g.Stream {
		if call != nil {
			c.streamToolCall(a, *call, id, created)
			return
		}
		c.streamChat(a, id, created)
		return
	}
	if !c.waitGeneration(len(a.words), false) {
		return
	}
	text := a.text()
	msg := chatMessageOut{Annotations: []struct{}{}, Content: &text, Refusal: jsonNull, Role: "assistant"}
	if call != nil {
		msg.Content, msg.ToolCalls, a.finish = nil, []toolCall{*call}, "tool_calls"
	}
	choices := make([]chatChoice, n)
	for k := range choices {
		choices[k] = chatChoice{ContentFilterResults: a.filterResults(), FinishReason: a.finish, Index: k, Logprobs: jsonNull, Message: msg}
	}
	writeValue(c.w, http.StatusOK, chatCompletion{
		Choices:             choices,
		Created:             created,
		ID:                  id,
		Model:               c.modelName(),
		Object:              "chat.completion",
		PromptFilterResults: promptFilterResults,
		SystemFingerprint:   c.dep.fingerprint,
		Usage:               chatUsage(a.promptTokens, n*len(a.words)),
	})
}

func (c *call) streamChat(a answer, id string, created int64) {
	if !c.waitGeneration(len(a.words), true) {
		return
	}
	s := c.startStream()
	includeUsage := c.gen.StreamOptions != nil && c.gen.StreamOptions.IncludeUsage
	chunk := chatChunk{Created: created, ID: id, Model: c.modelName(), Object: "chat.completion.chunk", SystemFingerprint: c.dep.fingerprint}
	if includeUsage {
		chunk.Usage = jsonNull
	}
	if !s.send(firstChatEvent) {
		return
	}
	empty := ""
	for k := 0; k < a.choices; k++ {
		chunk.Choices = []chunkChoice{{ContentFilterResults: emptyObject, Delta: chunkDelta{Content: &empty, Refusal: jsonNull, Role: "assistant"}, Index: k, Logprobs: jsonNull}}
		if !s.sendValue(chunk) {
			return
		}
	}
	// Content chunks are the bulk of a stream: build them by appending to a prefix and suffixes made once.
	chunk.Choices = []chunkChoice{}
	envelope, _ := json.Marshal(chunk) // {"choices":[],"created":...}
	prefix := append([]byte(`{"choices":[{"content_filter_results":`), choiceFilterResults...)
	prefix = append(prefix, `,"delta":{"content":`...)
	suffixes := make([][]byte, a.choices)
	for k := range suffixes {
		suffixes[k] = append([]byte(`},"finish_reason":null,"index":`+itoa(k)+`,"logprobs":null}]`), envelope[len(`{"choices":[]`):]...)
	}
	gap := c.perToken()
	var buf []byte
	for i := range a.words {
		if i > 0 && !c.sleep(gap) {
			s.abort()
			return
		}
		word, _ := json.Marshal(a.words[i])
		for _, suffix := range suffixes {
			buf = append(append(append(buf[:0], prefix...), word...), suffix...)
			if !s.send(buf) {
				return
			}
		}
	}
	finish, finishResults := a.finish, emptyObject
	if finish == "content_filter" {
		finishResults = filteredChoiceResults
	}
	for k := 0; k < a.choices; k++ {
		chunk.Choices = []chunkChoice{{ContentFilterResults: finishResults, FinishReason: &finish, Index: k, Logprobs: jsonNull}}
		if !s.sendValue(chunk) {
			return
		}
	}
	if includeUsage {
		u, _ := json.Marshal(chatUsage(a.promptTokens, a.choices*len(a.words)))
		chunk.Choices = []chunkChoice{}
		chunk.Usage = u
		if !s.sendValue(chunk) {
			return
		}
	}
	s.done()
}

// Legacy completions.

type textCompletion struct {
	Choices             []textChoice    `json:"choices"`
	Created             int64           `json:"created"`
	ID                  string          `json:"id"`
	Model               string          `json:"model"`
	Object              string          `json:"object"`
	PromptFilterResults json.RawMessage `json:"prompt_filter_results,omitempty"`
	SystemFingerprint   string          `json:"system_fingerprint,omitempty"`
	Usage               json.RawMessage `json:"usage,omitempty"`
}

type textChoice struct {
	ContentFilterResults json.RawMessage `json:"content_filter_results"`
	FinishReason         *string         `json:"finish_reason"`
	Index                int             `json:"index"`
	Logprobs             json.RawMessage `json:"logprobs"`
	Text                 string          `json:"text"`
}

func (c *call) serveCompletions() {
	g := c.gen
	prompts, ok := stringsOf(g.Prompt)
	if !ok {
		writeJSON(c.w, http.StatusBadRequest, openaiError("Missing required parameter: 'prompt'.", "invalid_request_error", "prompt", "missing_required_parameter"))
		return
	}
	all := joinLines(prompts)
	if c.filtered(all) {
		return
	}
	pt := tokens(all)
	limit := g.MaxTokens
	if limit == nil {
		sixteen := 16 // the completions API's documented default
		limit = &sixteen
	}
	a := c.plan(all, prompts[len(prompts)-1], pt, limit)
	if !c.admit(pt + estimateCompletion(limit, len(a.words))) {
		return
	}
	c.countUsage(pt, len(a.words))
	id := c.r.sim.randomID("cmpl-", 29, idAlphabet)
	created := c.r.sim.now().Unix()
	u, _ := json.Marshal(usage{CompletionTokens: len(a.words), PromptTokens: pt, TotalTokens: pt + len(a.words)})
	if !g.Stream {
		if !c.waitGeneration(len(a.words), false) {
			return
		}
		finish := a.finish
		writeValue(c.w, http.StatusOK, textCompletion{
			Choices: []textChoice{{ContentFilterResults: a.filterResults(), FinishReason: &finish, Logprobs: jsonNull, Text: a.text()}},
			Created: created, ID: id, Model: c.modelName(), Object: "text_completion",
			PromptFilterResults: promptFilterResults, SystemFingerprint: c.dep.fingerprint, Usage: u,
		})
		return
	}
	c.streamCompletions(a, textCompletion{Created: created, ID: id, Model: c.modelName(), Object: "text_completion"}, u)
}

// streamCompletions streams a legacy completion: prompt annotations, one chunk per token, finish, usage, [DONE].
func (c *call) streamCompletions(a answer, chunk textCompletion, u json.RawMessage) {
	if !c.waitGeneration(len(a.words), true) {
		return
	}
	s := c.startStream()
	first, _ := json.Marshal(textCompletion{Choices: []textChoice{}, PromptFilterResults: promptFilterResults})
	if !s.send(first) {
		return
	}
	gap := c.perToken()
	for i := range a.words {
		if i > 0 && !c.sleep(gap) {
			s.abort()
			return
		}
		chunk.Choices = []textChoice{{ContentFilterResults: choiceFilterResults, Logprobs: jsonNull, Text: a.words[i]}}
		if !s.sendValue(chunk) {
			return
		}
	}
	finish := a.finish
	chunk.Choices = []textChoice{{ContentFilterResults: emptyObject, FinishReason: &finish, Logprobs: jsonNull}}
	if !s.sendValue(chunk) {
		return
	}
	if c.gen.StreamOptions != nil && c.gen.StreamOptions.IncludeUsage {
		chunk.Choices = []textChoice{}
		chunk.Usage = u
		if !s.sendValue(chunk) {
			return
		}
	}
	s.done()
}
