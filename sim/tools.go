package sim

import (
	"encoding/json"
	"strings"
)

// Function calling: a chat request with tools gets a tool call when it asks for one (tool_choice "required" or a
// named function) or when the prompt contains "sim:tool_call"; an answer to a tool result is plain text again, so
// an application's tool loop ends.

const toolCallTrigger = "sim:tool_call"

type toolSpec struct {
	Type     string `json:"type"`
	Function struct {
		Name string `json:"name"`
	} `json:"function"`
}

type toolCall struct {
	Index    *int         `json:"index,omitempty"` // streaming deltas only
	ID       string       `json:"id,omitempty"`
	Type     string       `json:"type,omitempty"`
	Function toolFunction `json:"function"`
}

type toolFunction struct {
	Name      string `json:"name,omitempty"`
	Arguments string `json:"arguments"`
}

// toolCall decides whether the model calls a tool, and which.
func (c *call) toolCall(g *genRequest, prompt string, a answer) *toolCall {
	if len(g.Tools) == 0 || lastRole(g.Messages) == "tool" {
		return nil
	}
	name := g.Tools[0].Function.Name
	var choice string
	var named struct {
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	}
	switch {
	case json.Unmarshal(g.ToolChoice, &choice) == nil:
		if choice == "none" || (choice != "required" && !strings.Contains(prompt, toolCallTrigger)) {
			return nil
		}
	case json.Unmarshal(g.ToolChoice, &named) == nil && named.Function.Name != "":
		name = named.Function.Name
	case !strings.Contains(prompt, toolCallTrigger):
		return nil
	}
	if name == "" {
		return nil
	}
	return &toolCall{ID: c.r.sim.randomID("call_", 24, idAlphabet), Type: "function", Function: toolFunction{Name: name, Arguments: "{}"}}
}

func lastRole(raw json.RawMessage) string {
	var msgs []struct {
		Role string `json:"role"`
	}
	if json.Unmarshal(raw, &msgs) != nil || len(msgs) == 0 {
		return ""
	}
	return msgs[len(msgs)-1].Role
}

// streamToolCall streams a tool call as Azure does: the role and the call's id and name, the arguments, the finish
// chunk with finish_reason "tool_calls", the usage chunk when asked, [DONE].
func (c *call) streamToolCall(a answer, tc toolCall, id string, created int64) {
	if !c.waitGeneration(1, true) {
		return
	}
	s := c.startStream()
	chunk := chatChunk{Created: created, ID: id, Model: c.modelName(), Object: "chat.completion.chunk", SystemFingerprint: c.dep.fingerprint}
	includeUsage := c.gen.StreamOptions != nil && c.gen.StreamOptions.IncludeUsage
	if includeUsage {
		chunk.Usage = jsonNull
	}
	zero := 0
	first := tc
	first.Index, first.Function.Arguments = &zero, ""
	args := toolCall{Index: &zero, Function: toolFunction{Arguments: tc.Function.Arguments}}
	finish := "tool_calls"
	steps := []chunkChoice{
		{ContentFilterResults: emptyObject, Delta: chunkDelta{Role: "assistant", Refusal: jsonNull, ToolCalls: []toolCall{first}}, Logprobs: jsonNull},
		{ContentFilterResults: emptyObject, Delta: chunkDelta{ToolCalls: []toolCall{args}}, Logprobs: jsonNull},
		{ContentFilterResults: emptyObject, FinishReason: &finish, Logprobs: jsonNull},
	}
	if !s.send(firstChatEvent) {
		return
	}
	for _, step := range steps {
		chunk.Choices = []chunkChoice{step}
		if !s.sendValue(chunk) {
			return
		}
	}
	if includeUsage {
		chunk.Choices = []chunkChoice{}
		chunk.Usage, _ = json.Marshal(chatUsage(a.promptTokens, len(a.words)))
		if !s.sendValue(chunk) {
			return
		}
	}
	s.done()
}
