package sim

import (
	"encoding/json"
	"strings"
)

// Function calling: a chat request with tools gets tool calls when it asks for them (tool_choice "required" or a
// named function) or when the prompt contains "sim:tool_call" (one call) or "sim:tool_calls=N" (N calls, over the
// tools in turn, unless parallel_tool_calls is false); an answer to a tool result is plain text again, so an
// application's tool loop ends. The legacy `functions` work the same way and answer a `function_call`.

const (
	toolCallTrigger  = "sim:tool_call"
	toolCallsTrigger = "sim:tool_calls="
)

// toolSpec is a tool of a request: chat nests the function ({"type":"function","function":{"name":...}}), the
// Responses API does not ({"type":"function","name":...}).
type toolSpec struct {
	Type     string `json:"type"`
	Name     string `json:"name"`
	Function struct {
		Name string `json:"name"`
	} `json:"function"`
}

func (t toolSpec) name() string {
	if t.Function.Name != "" {
		return t.Function.Name
	}
	return t.Name
}

type functionSpec struct {
	Name string `json:"name"`
}

// toolCall is a call as Azure writes it, keys in alphabetical order; Index is set in stream deltas only.
type toolCall struct {
	Function toolFunction `json:"function"`
	ID       string       `json:"id,omitempty"`
	Index    *int         `json:"index,omitempty"`
	Type     string       `json:"type,omitempty"`
}

type toolFunction struct {
	Arguments string `json:"arguments"`
	Name      string `json:"name,omitempty"`
}

// decideCalls turns choice k into tool calls (or a legacy function call) when the request calls for them.
func (c *call) decideCalls(o *choiceOut, prompt string, k int) {
	g := c.gen
	if o.kind != outText || lastRole(g.Messages) == "tool" || lastRole(g.Messages) == "function" {
		return
	}
	_, last, _, _ := chatPrompt(g.Messages)
	if names := c.toolNames(prompt); len(names) > 0 {
		o.kind, o.finish, o.words, o.filtered = outToolCalls, "tool_calls", nil, false
		for j, name := range names {
			o.calls = append(o.calls, toolCall{Function: toolFunction{Arguments: callArguments(last, j), Name: name},
				ID: c.r.sim.randomID("call_", 24, idAlphabet), Type: "function"})
		}
		return
	}
	if name := c.functionName(prompt); name != "" {
		o.kind, o.finish, o.words, o.filtered = outFunctionCall, "function_call", nil, false
		o.fn = &toolFunction{Arguments: callArguments(last, 0), Name: name}
	}
}

// callArguments are the arguments of call j: made of the prompt, so the same in every region.
func callArguments(last string, j int) string {
	if len(last) > 40 {
		last = last[:40]
	}
	b, _ := json.Marshal(map[string]any{"call": j, "query": strings.Join(strings.Fields(last), " ")})
	return string(b)
}

// toolNames returns the tools the model calls, in order; none when it answers with text.
func (c *call) toolNames(prompt string) []string {
	g := c.gen
	var names []string
	for _, t := range g.Tools {
		if (t.Type == "function" || t.Type == "") && t.name() != "" {
			names = append(names, t.name())
		}
	}
	if len(names) == 0 {
		return nil
	}
	var choice string
	var named struct {
		Name     string `json:"name"` // Responses
		Function struct {
			Name string `json:"name"`
		} `json:"function"` // chat
	}
	n, many := markerInt(prompt, toolCallsTrigger)
	switch {
	case json.Unmarshal(g.ToolChoice, &choice) == nil:
		if choice == "none" || (choice != "required" && !many && !strings.Contains(prompt, toolCallTrigger)) {
			return nil
		}
	case json.Unmarshal(g.ToolChoice, &named) == nil && named.Function.Name != "":
		return []string{named.Function.Name}
	case named.Name != "":
		return []string{named.Name}
	case !many && !strings.Contains(prompt, toolCallTrigger):
		return nil
	}
	n = min(max(n, 1), 16)
	if g.ParallelToolCalls != nil && !*g.ParallelToolCalls {
		n = 1
	}
	out := make([]string, n)
	for j := range out {
		out[j] = names[j%len(names)]
	}
	return out
}

// functionName returns the legacy function the model calls, or "".
func (c *call) functionName(prompt string) string {
	g := c.gen
	if len(g.Functions) == 0 || g.Functions[0].Name == "" {
		return ""
	}
	var choice string
	var named struct {
		Name string `json:"name"`
	}
	switch {
	case json.Unmarshal(g.FunctionCall, &choice) == nil:
		if choice == "none" || !strings.Contains(prompt, toolCallTrigger) {
			return ""
		}
	case json.Unmarshal(g.FunctionCall, &named) == nil && named.Name != "":
		return named.Name
	case !strings.Contains(prompt, toolCallTrigger):
		return ""
	}
	return g.Functions[0].Name
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
