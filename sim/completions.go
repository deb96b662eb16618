package sim

import (
	"encoding/json"
	"net/http"
)

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

// textPlan is a completions answer: n choices, each its tokens, with the prompt first when echo is set.
type textPlan struct {
	outs   []choiceOut
	echo   string // the prompt, echoed at the start of every choice
	top    int    // logprobs N; -1: none
	usage  json.RawMessage
	header textCompletion // created, id, model, object, system_fingerprint
}

func (c *call) serveCompletions() {
	g := c.gen
	prompts, ok := stringsOf(g.Prompt)
	if !ok {
		writeJSON(c.w, http.StatusBadRequest, openaiError("Missing required parameter: 'prompt'.", "invalid_request_error", "prompt", "missing_required_parameter"))
		return
	}
	all := joinLines(prompts)
	if c.filtered(all) || !c.validateSampling() {
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
	pt := tokens(all)
	limit := g.MaxTokens
	if limit == nil {
		sixteen := 16 // the completions API's documented default
		limit = &sixteen
	}
	if c.tooLong(pt, limit) {
		return
	}
	p := textPlan{outs: make([]choiceOut, n), top: g.textLogprobs()}
	if g.Echo {
		p.echo = all
	}
	longest, completion := 0, 0
	for k := range p.outs {
		p.outs[k] = c.planChoice(all, prompts[len(prompts)-1], limit, k)
		if p.outs[k].kind == outRefusal { // completions have no refusal field: the model says it
			p.outs[k].kind = outText
		}
		longest = max(longest, len(p.outs[k].words))
		completion += len(p.outs[k].words)
	}
	if !c.admit(pt + n*estimateCompletion(limit, longest)) {
		return
	}
	c.countUsage(pt, completion)
	p.usage, _ = json.Marshal(usage{CompletionTokens: completion, PromptTokens: pt, TotalTokens: pt + completion})
	p.header = textCompletion{Created: c.r.sim.now().Unix(), ID: c.r.sim.randomID("cmpl-", 29, idAlphabet), Model: c.modelName(),
		Object: "text_completion", SystemFingerprint: c.dep.fingerprint}
	if g.Stream {
		c.streamCompletions(p, longest)
		return
	}
	if !c.waitGeneration(longest, false) {
		return
	}
	out := p.header
	out.PromptFilterResults, out.Usage = promptFilterResults, p.usage
	for k := range p.outs {
		o := &p.outs[k]
		finish := o.finish
		words := o.words
		if p.echo != "" {
			words = append([]string{p.echo}, words...)
		}
		out.Choices = append(out.Choices, textChoice{ContentFilterResults: o.filterResults(), FinishReason: &finish, Index: k,
			Logprobs: p.logprobs(words, 0), Text: p.echo + o.text()})
	}
	writeValue(c.w, http.StatusOK, out)
}

// logprobs is the logprobs of tokens starting at offset, or null when the request asked for none.
func (p *textPlan) logprobs(words []string, offset int) json.RawMessage {
	if p.top < 0 || len(words) == 0 {
		return jsonNull
	}
	return textLogprobsOf(words, offset, p.top)
}

// streamCompletions streams a legacy completion: prompt annotations, the echoed prompt, one chunk per token
// (choices interleaved), a finish chunk per choice, usage, [DONE].
func (c *call) streamCompletions(p textPlan, longest int) {
	if !c.waitGeneration(longest, true) {
		return
	}
	s := c.startStream()
	first, _ := json.Marshal(textCompletion{Choices: []textChoice{}, PromptFilterResults: promptFilterResults})
	if !s.send(first) {
		return
	}
	chunk := p.header
	offsets := make([]int, len(p.outs))
	if p.echo != "" {
		for k := range p.outs {
			// The echoed prompt is not the model's output: it carries no annotations of its own.
			chunk.Choices = []textChoice{{ContentFilterResults: emptyObject, Index: k, Logprobs: p.logprobs([]string{p.echo}, 0), Text: p.echo}}
			offsets[k] = len(p.echo)
			if !s.sendValue(chunk) {
				return
			}
		}
	}
	pace := c.pacer()
	for i := 0; i < longest; i++ {
		if i > 0 && !pace.wait() {
			s.abort()
			return
		}
		for k := range p.outs {
			o := &p.outs[k]
			if i >= len(o.words) {
				continue
			}
			w := o.words[i]
			chunk.Choices = []textChoice{{ContentFilterResults: choiceFilterResults, Index: k, Logprobs: p.logprobs([]string{w}, offsets[k]), Text: w}}
			offsets[k] += len(w)
			if !s.sendValue(chunk) {
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
		chunk.Choices = []textChoice{{ContentFilterResults: cf, FinishReason: &finish, Index: k, Logprobs: jsonNull}}
		if !s.sendValue(chunk) {
			return
		}
	}
	if c.gen.includeUsage() {
		chunk.Choices = []textChoice{}
		chunk.Usage = p.usage
		if !s.sendValue(chunk) {
			return
		}
	}
	s.done()
}
