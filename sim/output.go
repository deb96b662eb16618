package sim

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"unicode/utf8"
)

// What one choice of an answer says, and how it is written: the same plan is written as one JSON body or as a
// stream of events, so that a stream reassembled by its chunks' rules is the JSON the region would have sent.

// Kinds of output.
const (
	outText         = iota // message content
	outRefusal             // message refusal (content null)
	outToolCalls           // message tool_calls (content null)
	outFunctionCall        // message function_call (legacy functions; content null)
)

// choiceOut is what one choice says.
type choiceOut struct {
	kind     int
	words    []string // tokens of the content or the refusal
	calls    []toolCall
	fn       *toolFunction
	finish   string
	filtered bool // the output filter stopped it (finish_reason content_filter)
}

func (o *choiceOut) text() string { return strings.Join(o.words, "") }

// tokens is the choice's completion tokens (reasoning aside).
func (o *choiceOut) tokens() int {
	n := len(o.words)
	for _, c := range o.calls {
		n += tokens(c.Function.Name) + tokens(c.Function.Arguments)
	}
	if o.fn != nil {
		n += tokens(o.fn.Name) + tokens(o.fn.Arguments)
	}
	return n
}

// filterResults is the choice's content_filter_results: what the chunks of its stream carry, merged (every
// category at its most severe): the text's annotations when it has text, the filtered category when the output
// filter stopped it, and nothing ({}) for tool and function calls, as Azure sends them.
func (o *choiceOut) filterResults() json.RawMessage {
	switch {
	case o.filtered:
		return filteredChoiceResults
	case len(o.words) > 0:
		return choiceFilterResults
	}
	return emptyObject
}

// refusalText is what a model that declines says (prompt marker sim:refusal).
const refusalText = "I'm sorry, but I can't assist with that request."

const refusalTrigger = "sim:refusal"

// markerInt reads the number after marker in s ("sim:tokens=12"); ok is false without the marker.
func markerInt(s, marker string) (int, bool) {
	i := strings.Index(s, marker)
	if i < 0 {
		return 0, false
	}
	digits := s[i+len(marker):]
	j := 0
	for j < len(digits) && j < 7 && digits[j] >= '0' && digits[j] <= '9' {
		j++
	}
	v, err := strconv.Atoi(digits[:j])
	return v, err == nil
}

// splitPieces cuts s into pieces of about n bytes on rune boundaries, as a model streams the arguments of a
// call a few characters at a time.
func splitPieces(s string, n int) []string {
	var out []string
	for len(s) > n {
		i := n
		for i < len(s) && !utf8.RuneStart(s[i]) {
			i++
		}
		out = append(out, s[:i])
		s = s[i:]
	}
	if s != "" || len(out) == 0 {
		out = append(out, s)
	}
	return out
}

// Log probabilities: made up, but the same for the same token everywhere.

// tokenLogprob is a token's log probability, in (-2, 0].
func tokenLogprob(token string) float64 {
	h := fnv.New32a()
	h.Write([]byte(token))
	return -float64(h.Sum32()%2000) / 1000
}

// byteList is a token's UTF-8 bytes as the API lists them.
func byteList(s string) []int {
	out := make([]int, len(s))
	for i := 0; i < len(s); i++ {
		out[i] = int(s[i])
	}
	return out
}

type topLogprob struct {
	Bytes   []int   `json:"bytes"`
	Logprob float64 `json:"logprob"`
	Token   string  `json:"token"`
}

type logprobEntry struct {
	Bytes       []int        `json:"bytes"`
	Logprob     float64      `json:"logprob"`
	Token       string       `json:"token"`
	TopLogprobs []topLogprob `json:"top_logprobs"`
}

// chatLogprob is the entry of one token with top alternatives.
func chatLogprob(token string, top int) logprobEntry {
	lp := tokenLogprob(token)
	e := logprobEntry{Bytes: byteList(token), Logprob: lp, Token: token, TopLogprobs: []topLogprob{}}
	for j := 0; j < top; j++ {
		alt, altLP := token, lp
		if j > 0 {
			alt = " " + vocabulary[(len(token)*31+j*7)%len(vocabulary)]
			altLP = lp - 0.5*float64(j)
		}
		e.TopLogprobs = append(e.TopLogprobs, topLogprob{Bytes: byteList(alt), Logprob: altLP, Token: alt})
	}
	return e
}

// chatLogprobs is a choice's logprobs object for tokens, content or refusal.
type chatLogprobs struct {
	Content []logprobEntry `json:"content"`
	Refusal []logprobEntry `json:"refusal"`
}

func (c *call) logprobsOf(o *choiceOut, words []string) json.RawMessage {
	if !c.gen.chatLogprobs() || len(words) == 0 || (o.kind != outText && o.kind != outRefusal) {
		return jsonNull
	}
	top := c.gen.topLogprobs()
	entries := make([]logprobEntry, len(words))
	for i, w := range words {
		entries[i] = chatLogprob(w, top)
	}
	lp := chatLogprobs{Content: entries}
	if o.kind == outRefusal {
		lp = chatLogprobs{Refusal: entries}
	}
	b, _ := json.Marshal(lp)
	return b
}

// Legacy completions logprobs: parallel arrays.
type textLogprobs struct {
	TextOffset    []int                `json:"text_offset"`
	TokenLogprobs []float64            `json:"token_logprobs"`
	Tokens        []string             `json:"tokens"`
	TopLogprobs   []map[string]float64 `json:"top_logprobs"`
}

// textLogprobsOf is the logprobs of tokens whose text starts at offset in the choice's text.
func textLogprobsOf(words []string, offset, top int) json.RawMessage {
	lp := textLogprobs{TextOffset: []int{}, TokenLogprobs: []float64{}, Tokens: []string{}, TopLogprobs: []map[string]float64{}}
	for _, w := range words {
		e := chatLogprob(w, top)
		lp.TextOffset = append(lp.TextOffset, offset)
		lp.TokenLogprobs = append(lp.TokenLogprobs, e.Logprob)
		lp.Tokens = append(lp.Tokens, w)
		alts := map[string]float64{}
		for _, t := range e.TopLogprobs {
			alts[t.Token] = t.Logprob
		}
		lp.TopLogprobs = append(lp.TopLogprobs, alts)
		offset += len(w)
	}
	b, _ := json.Marshal(lp)
	return b
}

// usageOf is a chat or completions usage with its details: cached prompt tokens (prompt marker
// sim:cached_tokens=N, in steps of 128 as Azure reports cache hits) and reasoning tokens (reasoning models).
func (c *call) usageOf(prompt string, promptTokens int, outs []choiceOut) *usage {
	completion, reasoning := 0, 0
	for i := range outs {
		completion += outs[i].tokens()
		if isReasoningModel(c.dep.Model) {
			reasoning += reasoningTokens
		}
	}
	u := chatUsage(promptTokens, completion+reasoning)
	u.CompletionTokensDetails.ReasoningTokens = reasoning
	if n, ok := markerInt(prompt, cachedMarker); ok {
		u.PromptTokensDetails.CachedTokens = min(n, promptTokens) / 128 * 128
	}
	return u
}

const cachedMarker = "sim:cached_tokens="

// reasoningTokens is what a reasoning model thinks per choice before it answers.
const reasoningTokens = 64

// isReasoningModel reports the o-series and gpt-5 models, which spend reasoning tokens.
func isReasoningModel(model string) bool {
	for _, p := range [...]string{"o1", "o3", "o4", "gpt-5"} {
		if strings.HasPrefix(model, p) {
			return true
		}
	}
	return false
}

// serviceTier is the tier the answer reports: the one asked for when the service has it, else "default".
func (g *genRequest) serviceTier() string {
	switch g.ServiceTier {
	case "flex", "priority", "scale":
		return g.ServiceTier
	}
	return "default"
}

// obfuscation pads a stream chunk as the service does (stream_options.include_obfuscation, default on), so that
// the size of an event does not give its content away. It is cheap and the same for the same token.
func obfuscation(token string, k int) string {
	const pad = "zRjujFSemAF9d4G5HwxkF8EZi5gjGw66"
	return pad[:1+(len(token)*7+k)%15]
}

func (g *genRequest) obfuscate() bool {
	return g.StreamOptions == nil || g.StreamOptions.IncludeObfuscation == nil || *g.StreamOptions.IncludeObfuscation
}

func (g *genRequest) includeUsage() bool {
	return g.StreamOptions != nil && g.StreamOptions.IncludeUsage
}

// chatLogprobs reports `"logprobs": true` on a chat request.
func (g *genRequest) chatLogprobs() bool { return string(g.Logprobs) == "true" }

func (g *genRequest) topLogprobs() int {
	if g.TopLogprobs == nil {
		return 0
	}
	return min(max(*g.TopLogprobs, 0), 20)
}

// textLogprobs reads `"logprobs": N` of a completions request (-1: none).
func (g *genRequest) textLogprobs() int {
	n, err := strconv.Atoi(string(g.Logprobs))
	if err != nil {
		return -1
	}
	return min(max(n, 0), 5)
}

// validateSampling checks the fields Azure validates before it generates; it answers 400 itself.
func (c *call) validateSampling() bool {
	g := c.gen
	bad := func(param, msg string) bool {
		writeJSON(c.w, 400, openaiError(msg, "invalid_request_error", param, "invalid_value"))
		return false
	}
	switch {
	case g.TopLogprobs != nil && (*g.TopLogprobs < 0 || *g.TopLogprobs > 20):
		return bad("top_logprobs", "Invalid 'top_logprobs': integer must be between 0 and 20.")
	case g.TopLogprobs != nil && c.rt.op == "chat/completions" && !g.chatLogprobs():
		return bad("top_logprobs", "Invalid value for 'top_logprobs': 'logprobs' must be set to true when 'top_logprobs' is used.")
	case c.rt.op == "completions" && len(g.Logprobs) > 0 && string(g.Logprobs) != "null" && (g.textLogprobs() < 0 || string(g.Logprobs) != fmt.Sprint(g.textLogprobs())):
		return bad("logprobs", "Invalid 'logprobs': integer must be between 0 and 5.")
	case c.rt.op == "completions" && g.Stream && g.BestOf != nil && *g.BestOf > 1:
		return bad("best_of", "Invalid value for 'best_of': results cannot be streamed when 'best_of' is greater than 1.")
	}
	return true
}
