package sim

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/http"
	"strings"
	"time"
)

// genRequest holds the fields of chat/completions, completions, embeddings and responses bodies that the
// simulator reads; everything else is accepted and ignored, as the service does.
type genRequest struct {
	Model               string          `json:"model"`
	Messages            json.RawMessage `json:"messages"`
	Prompt              json.RawMessage `json:"prompt"`
	Input               json.RawMessage `json:"input"`
	Instructions        string          `json:"instructions"`
	Stream              bool            `json:"stream"`
	StreamOptions       *streamOptions  `json:"stream_options"`
	MaxTokens           *int            `json:"max_tokens"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	MaxOutputTokens     *int            `json:"max_output_tokens"`
	Dimensions          *int            `json:"dimensions"`
	EncodingFormat      string          `json:"encoding_format"`
	N                   *int            `json:"n"`
	Tools               []toolSpec      `json:"tools"`
	ToolChoice          json.RawMessage `json:"tool_choice"`
	ParallelToolCalls   *bool           `json:"parallel_tool_calls"`
	Functions           []functionSpec  `json:"functions"`
	FunctionCall        json.RawMessage `json:"function_call"`
	Logprobs            json.RawMessage `json:"logprobs"` // chat: a boolean; completions: a number
	TopLogprobs         *int            `json:"top_logprobs"`
	ServiceTier         string          `json:"service_tier"`
	Echo                bool            `json:"echo"`
	BestOf              *int            `json:"best_of"`
	Include             []string        `json:"include"`
}

type streamOptions struct {
	IncludeUsage       bool  `json:"include_usage"`
	IncludeObfuscation *bool `json:"include_obfuscation"`
}

type chatMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

type contentPart struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

// answer is what the simulated model will say.
type answer struct {
	prompt       string   // all prompt text, for the content filter
	promptTokens int      // as counted for usage
	words        []string // one token each
	finish       string   // "stop", "length" or "content_filter"
	choices      int      // n: the same answer in each choice
}

func (a answer) text() string { return strings.Join(a.words, "") }

// tokens estimates the tokens of a text as the service's tokenizers average: about four characters each.
func tokens(s string) int {
	if s == "" {
		return 0
	}
	return (len(s) + 3) / 4
}

// textOf returns the text of a message content: a string or an array of parts.
func textOf(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", true
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, true
	}
	var parts []contentPart
	if json.Unmarshal(raw, &parts) != nil {
		return "", false
	}
	var b strings.Builder
	for _, p := range parts {
		b.WriteString(p.Text)
	}
	return b.String(), true
}

// stringsOf reads a prompt or input that is a string or an array of strings (token arrays count as their length).
func stringsOf(raw json.RawMessage) ([]string, bool) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, false
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return []string{s}, true
	}
	var list []string
	if json.Unmarshal(raw, &list) == nil {
		return list, len(list) > 0
	}
	var toks []int
	if json.Unmarshal(raw, &toks) == nil && len(toks) > 0 {
		return []string{strings.Repeat("tokn", len(toks))}, true
	}
	var many [][]int
	if json.Unmarshal(raw, &many) == nil && len(many) > 0 {
		out := make([]string, len(many))
		for i, t := range many {
			out[i] = strings.Repeat("tokn", len(t))
		}
		return out, true
	}
	return nil, false
}

// plan decides the answer to a prompt: the first choice's text (completions and responses).
func (c *call) plan(prompt, last string, promptTokens int, limit *int) answer {
	o := c.planChoice(prompt, last, limit, 0)
	return answer{prompt: prompt, promptTokens: promptTokens, words: o.words, finish: o.finish, choices: 1}
}

// planChoice decides what choice k says. A prompt containing "sim:tokens=N" gets an answer of exactly N tokens
// (before max_tokens), which makes latency tests and benchmarks choose their answer length; "sim:refusal" gets
// a refusal; "sim:output_filter" an answer the output filter stops half way.
func (c *call) planChoice(prompt, last string, limit *int, k int) choiceOut {
	o := choiceOut{kind: outText, finish: "stop"}
	n, fixed := markerInt(prompt, "sim:tokens=")
	n = min(n, 100000)
	switch {
	case strings.Contains(prompt, refusalTrigger):
		o.kind, o.words = outRefusal, strings.SplitAfter(refusalText, " ")
	case fixed && c.answerMode(prompt) == AnswersRandom:
		o.words = c.randomWords(n)
	case fixed:
		o.words = make([]string, n)
		for i := range o.words {
			o.words[i] = loremWords[(i+k)%len(loremWords)]
		}
		if n > 0 {
			o.words[0] = strings.TrimPrefix(o.words[0], " ")
		}
	default:
		o.words = c.defaultWords(prompt, last, k)
	}
	if limit != nil && *limit >= 0 && *limit < len(o.words) {
		o.words, o.finish = o.words[:*limit], "length"
	}
	if strings.Contains(prompt, outputFilterTrigger) {
		// The output filter stops the answer halfway: 200 with finish_reason content_filter.
		o.words, o.finish, o.filtered = o.words[:len(o.words)/2], "content_filter", true
	}
	return o
}

// outputFilterTrigger in a prompt makes the answer stop halfway with finish_reason "content_filter" and the
// filtered category in content_filter_results, as the output filter does (200, not 400).
const outputFilterTrigger = "sim:output_filter"

var loremWords = []string{" Lorem", " ipsum", " dolor", " sit", " amet,", " consectetur", " adipiscing", " elit,", " sed",
	" do", " eiusmod", " tempor", " incididunt", " ut", " labore", " et", " dolore", " magna", " aliqua."}

// serveGeneration answers the operations that run on a deployment.
func (c *call) serveGeneration() {
	c.dep = c.r.deployment(c.rt.deployment)
	if c.dep == nil {
		writeJSON(c.w, http.StatusNotFound, deploymentNotFound)
		return
	}
	if want := opKinds[c.rt.op]; modelKind(c.dep.Model) != want.kind {
		writeJSON(c.w, http.StatusBadRequest, azureError("OperationNotSupported", fmt.Sprintf("The %s operation does not work with the specified model, %s. Please choose different model and try again. You can learn more about which models can be used with each operation here: https://go.microsoft.com/fwlink/?linkid=2197993.", want.name, c.dep.Model)))
		return
	}
	if !c.streamingAccepted() {
		return
	}
	switch c.rt.op {
	case "chat/completions":
		c.serveChat()
	case "completions":
		c.serveCompletions()
	case "embeddings":
		c.serveEmbeddings()
	case "responses":
		c.serveResponses()
	case "images/generations":
		c.serveImages()
	case "audio/transcriptions", "audio/translations":
		c.serveTranscription()
	case "audio/speech":
		c.serveSpeech()
	}
}

// streamingAccepted answers the 400s Azure gives to streaming requests it cannot take: stream_options on the
// classic surface before api-version 2024-09-01-preview ("Unrecognized request argument supplied"), and a
// streamed answer from a deployment whose model cannot stream (Deployment.NoStreaming).
func (c *call) streamingAccepted() bool {
	g := c.gen
	if g == nil {
		return true
	}
	if g.StreamOptions != nil && !c.rt.v1 && (c.rt.op == "chat/completions" || c.rt.op == "completions") && c.rt.apiVersion < "2024-09-01" {
		writeJSON(c.w, http.StatusBadRequest, []byte(`{"error":{"code":null,"message":"Unrecognized request argument supplied: stream_options","param":null,"type":"invalid_request_error"}}`))
		return false
	}
	if g.Stream && c.dep.NoStreaming {
		writeJSON(c.w, http.StatusBadRequest, openaiError("Unsupported value: 'stream' does not support true with this model. Supported values are: false.", "invalid_request_error", "stream", "unsupported_value"))
		return false
	}
	return true
}

// opKinds is the kind of model each operation needs, and the operation's name in Azure's error message.
var opKinds = map[string]struct {
	kind int
	name string
}{
	"chat/completions": {kindChat, "chatCompletion"}, "completions": {kindChat, "completion"},
	"responses": {kindChat, "responses"}, "embeddings": {kindEmbedding, "embeddings"},
	"images/generations": {kindImage, "imageGeneration"}, "audio/transcriptions": {kindTranscription, "audioTranscription"},
	"audio/translations": {kindTranscription, "audioTranslation"}, "audio/speech": {kindSpeech, "audioSpeech"},
}

// estimateCompletion is the completion part of Azure's token estimate: max_tokens when the caller set it (the
// service cannot know the answer's length in advance), else the length of the answer.
func estimateCompletion(limit *int, answer int) int {
	if limit != nil && *limit > 0 {
		return *limit
	}
	return answer
}

// admit applies the deployment's quota; it answers 429 itself and reports false when over.
func (c *call) admit(estimate int) bool {
	v := c.dep.quota.admit(estimate, c.r.sim.now())
	h := c.w.Header()
	setRateHeaders(h, v)
	if !v.ok {
		c.r.stats.throttled.Add(1)
		setRetryAfter(h, v.retryAfter)
		writeJSON(c.w, http.StatusTooManyRequests, rateLimitBody(c.rt.op, c.rt.apiVersion, v.kind, v.retryAfter))
		return false
	}
	return true
}

// tooLong answers 400 context_length_exceeded when the prompt, with the completion tokens asked for (limit, when
// set), has more tokens than the deployment's context window, in the words of each operation
// (docs/wire-notes.md).
func (c *call) tooLong(promptTokens int, limit *int) bool {
	w := c.dep.ContextWindow
	asked := 0
	if limit != nil && *limit > 0 {
		asked = *limit
	}
	if w <= 0 || promptTokens+asked <= w {
		return false
	}
	var body []byte
	switch {
	case c.rt.op == "responses":
		body = openaiError("Your input exceeds the context window of this model. Please adjust your input and try again.", "invalid_request_error", "input", "context_length_exceeded")
	case c.rt.op == "completions":
		body = openaiError(fmt.Sprintf("This model's maximum context length is %d tokens, however you requested %d tokens (%d in your prompt; %d for the completion). Please reduce your prompt; or completion length.", w, promptTokens+asked, promptTokens, asked), "invalid_request_error", "", "context_length_exceeded")
	case asked > 0:
		body = openaiError(fmt.Sprintf("This model's maximum context length is %d tokens. However, you requested %d tokens (%d in the messages, %d in the completion). Please reduce the length of the messages or completion.", w, promptTokens+asked, promptTokens, asked), "invalid_request_error", "messages", "context_length_exceeded")
	default:
		body = openaiError(fmt.Sprintf("This model's maximum context length is %d tokens. However, your messages resulted in %d tokens. Please reduce the length of the messages.", w, promptTokens), "invalid_request_error", "messages", "context_length_exceeded")
	}
	writeJSON(c.w, http.StatusBadRequest, body)
	return true
}

// filtered answers the content-filter 400 when the prompt carries the trigger.
func (c *call) filtered(prompt string) bool {
	if strings.Contains(prompt, c.r.sim.trigger) {
		writeJSON(c.w, http.StatusBadRequest, contentFilterBody)
		return true
	}
	return false
}

// waitFirstToken waits the time to first token and then the whole generation for non-streaming answers.
func (c *call) waitGeneration(n int, stream bool) bool {
	d := c.r.ttft
	if !stream {
		d += c.perToken() * time.Duration(n)
	}
	return c.sleep(d)
}

// pacer spaces a stream's tokens at the region's rate on an absolute schedule, so that a stream takes as long
// as the same answer not streamed: sleeping the gap after each token would add every timer's lateness (about
// 12 ms over 16 tokens on a loaded machine), which a client would take for the gateway's cost.
type pacer struct {
	c    *call
	gap  time.Duration
	next time.Time
}

func (c *call) pacer() *pacer { return &pacer{c: c, gap: c.perToken(), next: time.Now()} }

// wait waits until the next token is due; false if the client went away.
func (p *pacer) wait() bool {
	if p.gap <= 0 {
		return true
	}
	p.next = p.next.Add(p.gap)
	return p.c.sleep(time.Until(p.next))
}

func (c *call) perToken() time.Duration {
	if c.r.tps <= 0 {
		return 0
	}
	return time.Duration(float64(time.Second) / c.r.tps)
}

func (c *call) countUsage(prompt, completion int) {
	c.r.stats.promptTokens.Add(int64(prompt))
	c.r.stats.completionTokens.Add(int64(completion))
}

func (c *call) modelName() string {
	return modelWithVersion(c.dep.Model, c.dep.Version)
}

func modelWithVersion(model, version string) string {
	if version == "" || version == "1" || isFineTuned(model) || modelKind(model) == kindEmbedding {
		return model
	}
	return model + "-" + version
}

const (
	kindChat = iota
	kindEmbedding
	kindImage
	kindTranscription
	kindSpeech
	kindRealtime
)

func modelKind(model string) int {
	switch {
	case strings.Contains(model, "embedding") || strings.HasPrefix(model, "text-similarity"):
		return kindEmbedding
	case strings.HasPrefix(model, "dall-e") || strings.HasPrefix(model, "gpt-image"):
		return kindImage
	case strings.HasPrefix(model, "whisper") || strings.Contains(model, "transcribe"):
		return kindTranscription
	case strings.HasPrefix(model, "tts") || strings.Contains(model, "-tts"):
		return kindSpeech
	case strings.Contains(model, "realtime"):
		return kindRealtime
	}
	return kindChat
}

func isFineTuned(model string) bool { return strings.Contains(model, ".ft-") }

func defaultVersion(model string) string {
	switch model {
	case "gpt-4o":
		return "2024-11-20"
	case "gpt-4o-mini":
		return "2024-07-18"
	case "gpt-4.1":
		return "2025-04-14"
	case "gpt-4.1-mini":
		return "2025-04-14"
	case "gpt-4.1-nano":
		return "2025-04-14"
	case "gpt-35-turbo":
		return "0125"
	}
	return "1"
}

func fingerprint(model string) string {
	h := fnv.New64a()
	h.Write([]byte(model))
	return fmt.Sprintf("fp_%010x", h.Sum64()&0xffffffffff)
}
