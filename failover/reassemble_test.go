package failover

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/lifeline-sre/lifeline/sim"
	"github.com/tidwall/gjson"
)

// The differential suite of upstream streaming: the same request to a simulated region without streaming, and
// as the engine sends it (its streaming form), read back by reassemble, must give the same JSON byte for byte,
// ids and timestamps aside. The simulator writes both forms as Azure does (docs/wire-notes.md), so this proves
// the reassembly rules on every shape issue 12 names: several choices, tool and function calls, refusals,
// logprobs, content-filter results on the prompt and the completion, usage with its details,
// system_fingerprint and service_tier.

// diffSim is a simulated region with the deployments the cases need.
func diffSim(t *testing.T) *sim.Sim {
	t.Helper()
	deps := append(sim.DefaultDeployments(),
		sim.Deployment{Name: "o4-mini", Model: "o4-mini", Version: "2025-04-16"},
		sim.Deployment{Name: "prefill", Model: "gpt-4o", Version: "2024-11-20", Prefill: true},
	)
	s, err := sim.Start(sim.Config{APIKey: "k", Seed: 3, Regions: []sim.RegionConfig{{Name: "eastus", Deployments: deps}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// simPost sends body to path of the region and returns the answer.
func simPost(t *testing.T, s *sim.Sim, path string, body []byte) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.Region("eastus").URL()+path, bytes.NewReader(body))
	req.Header.Set("api-key", "k")
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// volatile are the members that differ between two answers to the same request: ids and timestamps.
var volatile = regexp.MustCompile(`"(id|call_id|item_id)":"[^"]*"|"(created|created_at|completed_at)":[0-9]+`)

func normalize(b []byte) string {
	return volatile.ReplaceAllStringFunc(string(b), func(m string) string {
		k, _, _ := strings.Cut(m, ":")
		return k + ":_"
	})
}

// differential sends body both ways and compares.
func differential(t *testing.T, s *sim.Sim, op, path, body string) (plain []byte) {
	t.Helper()
	resp, plain := simPost(t, s, path, []byte(body))
	if resp.StatusCode != 200 {
		t.Fatalf("non-streaming answer %d: %s", resp.StatusCode, plain)
	}
	sbody, ok := streamRequest(op, []byte(body))
	if !ok {
		t.Fatalf("streamRequest refused %s", body)
	}
	sresp, stream := simPost(t, s, path, sbody)
	if sresp.StatusCode != 200 || !strings.HasPrefix(sresp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("streamed answer %d %s: %s", sresp.StatusCode, sresp.Header.Get("Content-Type"), stream)
	}
	got, err := reassemble(op, bytes.NewReader(stream), choicesWanted([]byte(body)), 32<<20)
	if err != nil {
		t.Fatalf("reassemble: %v\nstream:\n%s", err, stream)
	}
	if !json.Valid(got) {
		t.Fatalf("reassembled JSON is not valid: %s", got)
	}
	if a, b := normalize(plain), normalize(got); a != b {
		t.Fatalf("reassembled answer differs from the non-streaming one\nnon-streaming: %s\nreassembled:   %s\nstream:\n%s", a, b, stream)
	}
	if op == "responses" {
		responsesStreamConsistent(t, stream, got)
	}
	return plain
}

// responsesStreamConsistent checks a Responses stream the way an SDK that accumulates deltas reads it: every
// event starts with its type and numbers itself in order; each item's text, refusal or arguments deltas add up to
// what its .done events and its output_item.done carry; and the items done, in output order, are the terminal
// response's output. So the deltas a streaming client accumulates and the non-streaming answer agree too.
func responsesStreamConsistent(t *testing.T, stream, final []byte) {
	t.Helper()
	acc := map[string]string{} // item id -> its deltas
	var done []string
	for i, ev := range strings.Split(strings.TrimSpace(string(stream)), "\n\n") {
		data, ok := strings.CutPrefix(ev, "data: ")
		if !ok || !strings.HasPrefix(data, `{"type":"`) {
			t.Fatalf("event %d is not a data event that starts with its type: %s", i, ev)
		}
		e := gjson.Parse(data)
		if e.Get("sequence_number").Int() != int64(i) {
			t.Fatalf("event %d has sequence_number %d", i, e.Get("sequence_number").Int())
		}
		id := e.Get("item_id").Str
		switch typ := e.Get("type").Str; typ {
		case "response.output_text.delta", "response.refusal.delta", "response.function_call_arguments.delta":
			acc[id] += e.Get("delta").Str
		case "response.output_text.done", "response.refusal.done", "response.function_call_arguments.done":
			key := map[string]string{"response.output_text.done": "text", "response.refusal.done": "refusal"}[typ]
			if key == "" {
				key = "arguments"
			}
			if e.Get(key).Str != acc[id] {
				t.Fatalf("%s of %s says %q, its deltas %q", typ, id, e.Get(key).Str, acc[id])
			}
		case "response.output_item.done":
			it := e.Get("item")
			want := it.Get("arguments").Str + it.Get("content.0.text").Str + it.Get("content.0.refusal").Str
			if want != acc[it.Get("id").Str] {
				t.Fatalf("item %s is %q, its deltas %q", it.Get("id").Str, want, acc[it.Get("id").Str])
			}
			if int(e.Get("output_index").Int()) != len(done) {
				t.Fatalf("item done at output_index %d, want %d", e.Get("output_index").Int(), len(done))
			}
			done = append(done, it.Raw)
		}
	}
	if out := gjson.GetBytes(final, "output").Raw; out != "["+strings.Join(done, ",")+"]" {
		t.Fatalf("the items done are not the response's output\nitems:  [%s]\noutput: %s", strings.Join(done, ","), out)
	}
}

const chatPath = "/openai/deployments/%s/chat/completions?api-version=2025-04-01-preview"

func chatAt(dep string) string { return strings.Replace(chatPath, "%s", dep, 1) }

func TestReassembleChatDifferential(t *testing.T) {
	s := diffSim(t)
	tools := `"tools":[{"type":"function","function":{"name":"get_weather"}},{"type":"function","function":{"name":"get_time"}}]`
	cases := []struct {
		name, dep, body string
		check           func(t *testing.T, plain gjson.Result)
	}{
		{"text", "gpt-4o", `{"messages":[{"role":"user","content":"Hello there"}]}`, nil},
		{"empty answer", "gpt-4o", `{"messages":[{"role":"user","content":"sim:tokens=0"}]}`, nil},
		{"several choices", "gpt-4o", `{"n":3,"messages":[{"role":"user","content":"Say something"}]}`, func(t *testing.T, p gjson.Result) {
			if p.Get("choices.#").Int() != 3 || p.Get("choices.1.message.content").Str == p.Get("choices.0.message.content").Str {
				t.Errorf("want 3 different choices: %s", p.Raw)
			}
		}},
		{"several choices of different lengths, cut by max_tokens", "gpt-4o", `{"n":2,"max_tokens":5,"messages":[{"role":"user","content":"sim:tokens=9"}]}`, nil},
		{"one tool call", "gpt-4o", `{"messages":[{"role":"user","content":"Weather?"}],"tool_choice":"required",` + tools + `}`, nil},
		{"parallel tool calls", "gpt-4o", `{"messages":[{"role":"user","content":"sim:tool_calls=3 for Zürich"}],` + tools + `}`, func(t *testing.T, p gjson.Result) {
			if p.Get("choices.0.message.tool_calls.#").Int() != 3 || p.Get("choices.0.finish_reason").Str != "tool_calls" {
				t.Errorf("want 3 calls: %s", p.Raw)
			}
		}},
		{"tool calls with n=2", "gpt-4o", `{"n":2,"messages":[{"role":"user","content":"sim:tool_calls=2"}],` + tools + `}`, nil},
		{"named tool, no parallel calls", "gpt-4o", `{"messages":[{"role":"user","content":"sim:tool_calls=3"}],"parallel_tool_calls":false,"tool_choice":{"type":"function","function":{"name":"get_time"}},` + tools + `}`, nil},
		{"legacy function call", "gpt-4o", `{"messages":[{"role":"user","content":"sim:tool_call"}],"functions":[{"name":"lookup"}]}`, func(t *testing.T, p gjson.Result) {
			if p.Get("choices.0.message.function_call.name").Str != "lookup" || p.Get("choices.0.finish_reason").Str != "function_call" {
				t.Errorf("want a function_call: %s", p.Raw)
			}
		}},
		{"refusal", "gpt-4o", `{"messages":[{"role":"user","content":"sim:refusal"}]}`, func(t *testing.T, p gjson.Result) {
			if p.Get("choices.0.message.refusal").Str == "" || p.Get("choices.0.message.content").Type != gjson.Null {
				t.Errorf("want a refusal: %s", p.Raw)
			}
		}},
		{"logprobs", "gpt-4o", `{"logprobs":true,"top_logprobs":3,"n":2,"messages":[{"role":"user","content":"Grüße"}]}`, func(t *testing.T, p gjson.Result) {
			if p.Get("choices.1.logprobs.content.#").Int() == 0 || p.Get("choices.1.logprobs.content.0.top_logprobs.#").Int() != 3 {
				t.Errorf("want logprobs: %s", p.Raw)
			}
		}},
		{"logprobs of a refusal", "gpt-4o", `{"logprobs":true,"messages":[{"role":"user","content":"sim:refusal"}]}`, nil},
		{"logprobs of a tool call", "gpt-4o", `{"logprobs":true,"messages":[{"role":"user","content":"sim:tool_call"}],` + tools + `}`, nil},
		{"output filter", "gpt-4o", `{"messages":[{"role":"user","content":"sim:output_filter sim:tokens=8"}]}`, func(t *testing.T, p gjson.Result) {
			if p.Get("choices.0.finish_reason").Str != "content_filter" || !p.Get("choices.0.content_filter_results.violence.filtered").Bool() {
				t.Errorf("want the output filter: %s", p.Raw)
			}
		}},
		{"output filter before any token", "gpt-4o", `{"messages":[{"role":"user","content":"sim:output_filter sim:tokens=1"}]}`, nil},
		{"length", "gpt-4o-mini", `{"max_completion_tokens":3,"messages":[{"role":"user","content":"sim:tokens=10"}]}`, nil},
		{"usage details of a reasoning model", "o4-mini", `{"messages":[{"role":"user","content":"Think sim:cached_tokens=300"}]}`, func(t *testing.T, p gjson.Result) {
			if p.Get("usage.completion_tokens_details.reasoning_tokens").Int() == 0 || p.Get("usage.prompt_tokens_details.cached_tokens").Int() != 0 {
				t.Errorf("usage details: %s", p.Raw) // 300 asked, but the prompt is shorter than 128 tokens
			}
		}},
		{"cached prompt tokens", "gpt-4o", `{"messages":[{"role":"user","content":"` + strings.Repeat("long prompt ", 200) + `sim:cached_tokens=512"}]}`, func(t *testing.T, p gjson.Result) {
			if p.Get("usage.prompt_tokens_details.cached_tokens").Int() != 512 {
				t.Errorf("cached tokens: %s", p.Get("usage").Raw)
			}
		}},
		{"service tier", "gpt-4o", `{"service_tier":"flex","messages":[{"role":"user","content":"hi"}]}`, func(t *testing.T, p gjson.Result) {
			if p.Get("service_tier").Str != "flex" || p.Get("system_fingerprint").Str == "" || p.Get("prompt_filter_results.0.content_filter_results.hate.severity").Str != "safe" {
				t.Errorf("envelope: %s", p.Raw)
			}
		}},
		{"prefill", "prefill", `{"messages":[{"role":"user","content":"sim:answers=deterministic go"},{"role":"assistant","content":"You said: "}]}`, nil},
		{"no obfuscation asked", "gpt-4o", `{"messages":[{"role":"user","content":"hi"}]}`, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			plain := differential(t, s, "chat/completions", chatAt(c.dep), c.body)
			if c.check != nil {
				c.check(t, gjson.ParseBytes(plain))
			}
		})
	}
	t.Run("v1 surface", func(t *testing.T) {
		differential(t, s, "chat/completions", "/openai/v1/chat/completions", `{"model":"gpt-4o","n":2,"messages":[{"role":"user","content":"hi"}]}`)
	})
}

func TestReassembleCompletionsDifferential(t *testing.T) {
	s := diffSim(t)
	path := "/openai/deployments/gpt-4o/completions?api-version=2024-10-21"
	for name, body := range map[string]string{
		"text":          `{"prompt":"Once upon a time"}`,
		"several":       `{"prompt":"Once","n":3,"max_tokens":7}`,
		"echo":          `{"prompt":"Echo me","echo":true,"max_tokens":4}`,
		"logprobs":      `{"prompt":"sim:tokens=5","logprobs":3,"n":2}`,
		"echo logprobs": `{"prompt":"sim:tokens=2","logprobs":1,"echo":true}`,
		"output filter": `{"prompt":"sim:output_filter sim:tokens=6"}`,
		"prompt list":   `{"prompt":["one","two"],"max_tokens":3}`,
	} {
		t.Run(name, func(t *testing.T) { differential(t, s, "completions", path, body) })
	}
}

// The rules on hand-written streams: what the simulator does not exercise.
func TestReassembleRules(t *testing.T) {
	stream := func(events ...string) string { return "data: " + strings.Join(events, "\n\ndata: ") + "\n\n" }
	usage := `{"choices":[],"usage":{"completion_tokens":2,"prompt_tokens":1,"total_tokens":3}}`
	cases := []struct {
		name, op, stream string
		n                int
		want             string
		err              error
	}{
		{"no [DONE], no final blank line", "chat/completions",
			"data: " + `{"id":"c1","created":5,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"a"}}]}` + "\n\ndata: " +
				`{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}` + "\n\ndata: " + usage, 1,
			`{"choices":[{"finish_reason":"stop","index":0,"logprobs":null,"message":{"annotations":[],"content":"a","refusal":null,"role":"assistant"}}],"created":5,"id":"c1","model":"m","object":"chat.completion","usage":{"completion_tokens":2,"prompt_tokens":1,"total_tokens":3}}`, nil},
		{"CRLF framing and comments", "chat/completions",
			": keep-alive\r\n\r\ndata: " + `{"choices":[{"index":0,"delta":{"content":"x"},"finish_reason":"length"}]}` + "\r\n\r\ndata: " + usage + "\r\n\r\ndata: [DONE]\r\n\r\n", 1,
			`{"choices":[{"finish_reason":"length","index":0,"logprobs":null,"message":{"annotations":[],"content":"x","refusal":null,"role":"assistant"}}],"object":"chat.completion","usage":{"completion_tokens":2,"prompt_tokens":1,"total_tokens":3}}`, nil},
		{"unknown delta members: strings and lists concatenated", "chat/completions", stream(
			`{"choices":[{"index":0,"delta":{"reasoning_content":"th","annotations":[{"a":1}]},"extra":1}]}`,
			`{"choices":[{"index":0,"delta":{"reasoning_content":"ink","annotations":[{"a":2}]},"extra":2,"finish_reason":"stop"}],"latency":{"x":1}}`,
			usage), 1,
			`{"choices":[{"extra":2,"finish_reason":"stop","index":0,"logprobs":null,"message":{"annotations":[{"a":1},{"a":2}],"content":null,"reasoning_content":"think","refusal":null,"role":"assistant"}}],"latency":{"x":1},"object":"chat.completion","usage":{"completion_tokens":2,"prompt_tokens":1,"total_tokens":3}}`, nil},
		{"content filters at their most severe", "chat/completions", stream(
			`{"choices":[{"index":0,"content_filter_results":{"hate":{"filtered":false,"severity":"low"},"jailbreak":{"detected":false,"filtered":false}},"delta":{"content":"a"}}]}`,
			`{"choices":[{"index":0,"content_filter_results":{"hate":{"filtered":false,"severity":"safe"},"jailbreak":{"detected":true,"filtered":false},"violence":{"filtered":true,"severity":"high"}},"delta":{},"finish_reason":"content_filter"}]}`,
			usage), 1,
			`{"choices":[{"content_filter_results":{"hate":{"filtered":false,"severity":"low"},"jailbreak":{"detected":true,"filtered":false},"violence":{"filtered":true,"severity":"high"}},"finish_reason":"content_filter","index":0,"logprobs":null,"message":{"annotations":[],"content":"a","refusal":null,"role":"assistant"}}],"object":"chat.completion","usage":{"completion_tokens":2,"prompt_tokens":1,"total_tokens":3}}`, nil},
		{"a tool call's name sent on every chunk", "chat/completions", stream(
			`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c","type":"function","function":{"name":"f","arguments":"{\"a\""}}]}}]}`,
			`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"name":"f","arguments":":1}"}}]},"finish_reason":"tool_calls"}]}`,
			usage), 1,
			`{"choices":[{"finish_reason":"tool_calls","index":0,"logprobs":null,"message":{"annotations":[],"content":null,"refusal":null,"role":"assistant","tool_calls":[{"function":{"arguments":"{\"a\":1}","name":"f"},"id":"c","type":"function"}]}}],"object":"chat.completion","usage":{"completion_tokens":2,"prompt_tokens":1,"total_tokens":3}}`, nil},
		{"a choice without a finish_reason", "chat/completions", stream(`{"choices":[{"index":0,"delta":{"content":"a"}}]}`, usage, "[DONE]"), 1, "", errIncomplete},
		{"n=2, one choice", "chat/completions", stream(`{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`, usage), 2, "", errIncomplete},
		{"no usage", "chat/completions", stream(`{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`, "[DONE]"), 1, "", errNoUsage},
		{"broken JSON", "chat/completions", stream(`{"choices":[{"index":0,"delta":{"content":"a`), 1, "", errMalformedEvent},
		{"an index out of range", "chat/completions", stream(`{"choices":[{"index":4096,"delta":{}}]}`), 1, "", errMalformedEvent},
		{"responses: the terminal event", "responses", "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"r\",\"output\":[]}}\n\n" +
			"event: response.completed\ndata: {\"type\":\"response.completed\",\"sequence_number\":3,\"response\":{\"id\":\"r\",\"status\":\"completed\",\"output\":[{\"type\":\"message\"}]}}\n\n", 1,
			`{"id":"r","status":"completed","output":[{"type":"message"}]}`, nil},
		{"responses: output rebuilt from the items", "responses", "data: {\"type\":\"response.output_item.done\",\"output_index\":1,\"item\":{\"id\":\"b\"}}\n\n" +
			"data: {\"type\":\"response.output_item.done\",\"output_index\":0,\"item\":{\"id\":\"a\"}}\n\n" +
			"data: {\"type\":\"response.incomplete\",\"response\":{\"id\":\"r\",\"output\":[],\"status\":\"incomplete\"}}\n\n", 1,
			`{"id":"r","output":[{"id":"a"},{"id":"b"}],"status":"incomplete"}`, nil},
		{"responses: data-only events, type not first, then [DONE] (as Azure captures show)", "responses",
			"data: {\"response\":{\"id\":\"r\",\"output\":[]},\"type\":\"response.created\",\"sequence_number\":0}\n\n" +
				"data: {\"sequence_number\":1,\"type\":\"response.completed\",\"response\":{\"id\":\"r\",\"status\":\"completed\",\"output\":[{\"id\":\"m\"}]}}\n\ndata: [DONE]\n\n", 1,
			`{"id":"r","status":"completed","output":[{"id":"m"}]}`, nil},
		{"responses: cut before the end", "responses", "data: {\"type\":\"response.created\",\"response\":{}}\n\n", 1, "", errIncomplete},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := reassemble(c.op, strings.NewReader(c.stream), c.n, 1<<20)
			if !errors.Is(err, c.err) || string(got) != c.want {
				t.Fatalf("got %s, %v\nwant %s, %v", got, err, c.want, c.err)
			}
		})
	}
	// Error events are the region failing mid-generation.
	for op, s := range map[string]string{
		"chat/completions": stream(`{"error":{"code":"server_error","message":"boom"}}`),
		"responses":        "data: {\"type\":\"error\",\"code\":\"server_error\"}\n\n",
	} {
		var rse *regionStreamError
		if _, err := reassemble(op, strings.NewReader(s), 1, 1<<20); !errors.As(err, &rse) {
			t.Errorf("%s error event: %v", op, err)
		}
	}
	// An error event that refuses the request is the answer: the 400 the request would have got.
	for name, c := range map[string]struct{ op, stream, body string }{
		"responses, nested": {"responses", "data: {\"type\":\"response.created\",\"response\":{}}\n\ndata: {\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"code\":\"context_length_exceeded\",\"message\":\"too long\",\"param\":\"input\"}}\n\n",
			`{"error":{"message":"too long","type":"invalid_request_error","param":"input","code":"context_length_exceeded"}}`},
		"responses, at the top": {"responses", "data: {\"type\":\"error\",\"code\":\"context_length_exceeded\",\"message\":\"m\",\"param\":null}\n\n",
			`{"error":{"message":"m","type":"invalid_request_error","param":null,"code":"context_length_exceeded"}}`},
		"chat": {"chat/completions", stream(`{"error":{"message":"bad","type":"invalid_request_error","param":{"x":1},"code":null}}`),
			`{"error":{"message":"bad","type":"invalid_request_error","param":null,"code":null}}`},
	} {
		var ans *regionAnswer
		_, err := reassemble(c.op, strings.NewReader(c.stream), 1, 1<<20)
		if !errors.As(err, &ans) || string(ans.body) != c.body || !json.Valid(ans.body) {
			t.Errorf("%s: %v %s", name, err, func() []byte {
				if ans != nil {
					return ans.body
				}
				return nil
			}())
		}
	}
	var rse *regionStreamError
	failed := "data: {\"type\":\"response.failed\",\"response\":{\"status\":\"failed\",\"error\":{\"code\":\"server_error\"}}}\n\n"
	if _, err := reassemble("responses", strings.NewReader(failed), 1, 1<<20); !errors.As(err, &rse) {
		t.Errorf("response.failed with a server error: %v", err)
	}
	failed = "data: {\"type\":\"response.failed\",\"response\":{\"status\":\"failed\",\"error\":{\"code\":\"invalid_prompt\"}}}\n\n"
	if got, err := reassemble("responses", strings.NewReader(failed), 1, 1<<20); err != nil || !strings.Contains(string(got), "invalid_prompt") {
		t.Errorf("response.failed for the prompt is the answer: %s %v", got, err)
	}
}

// endless repeats an event (after a prefix) forever, counting what is read.
type endless struct {
	prefix, event []byte
	off           int
	read          int
}

func (e *endless) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		src := e.event
		if len(e.prefix) > 0 {
			src = e.prefix
		}
		c := copy(p[n:], src[e.off:])
		n += c
		e.off += c
		if e.off == len(src) {
			e.off, e.prefix = 0, nil
		}
	}
	e.read += n
	return n, nil
}

// Memory is bounded by the limit, whatever the region streams: endless content, or one event without end.
func TestReassembleBounded(t *testing.T) {
	const limit = 64 << 10
	for name, src := range map[string]*endless{
		"endless content":    {event: []byte(`data: {"choices":[{"index":0,"delta":{"content":"` + strings.Repeat("x", 500) + `"}}]}` + "\n\n")},
		"endless event":      {prefix: []byte(`data: {"choices":[{"index":0,"delta":{"content":"`), event: []byte("yyyyyyyy")},
		"endless logprobs":   {event: []byte(`data: {"choices":[{"index":0,"delta":{},"logprobs":{"content":[{"token":"a","logprob":-1,"bytes":[97],"top_logprobs":[]}]}}]}` + "\n\n")},
		"endless tool calls": {event: []byte(`data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"` + strings.Repeat("z", 300) + `"}}]}}]}` + "\n\n")},
		"endless responses":  {event: []byte(`data: {"type":"response.output_item.done","output_index":3,"item":{"id":"` + strings.Repeat("i", 300) + `"}}` + "\n\n")},
	} {
		t.Run(name, func(t *testing.T) {
			op := "chat/completions"
			if strings.Contains(name, "responses") {
				op = "responses"
			}
			_, err := reassemble(op, src, 1, limit)
			if !errors.Is(err, errReassemblyTooLarge) {
				t.Fatalf("err %v", err)
			}
			if src.read > 2*limit {
				t.Errorf("read %d bytes for a limit of %d", src.read, limit)
			}
		})
	}
}

// FuzzReassemble: whatever a region streams, reassembly returns JSON or an error, never panics, and stays in its
// bound.
func FuzzReassemble(f *testing.F) {
	for _, seed := range []string{
		"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"},\"finish_reason\":\"stop\"}]}\n\ndata: {\"choices\":[],\"usage\":{}}\n\n",
		"data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"function\":{\"arguments\":\"{\"}}]}}]}\n\n",
		"event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"output\":[]}}\n\n",
		"data: {\"choices\":[{\"index\":-1}]}\n\n", "data: [DONE]\n\n", ": x\r\n\r\n", "data: {\"error\":1}\n\n",
		"data: {\"choices\":[{\"index\":0,\"content_filter_results\":{\"a\":{\"severity\":\"high\"},\"b\":3},\"logprobs\":{\"content\":null}}]}\n\n",
	} {
		f.Add([]byte(seed), uint8(0))
		f.Add([]byte(seed), uint8(1))
		f.Add([]byte(seed), uint8(2))
	}
	f.Fuzz(func(t *testing.T, stream []byte, which uint8) {
		op := [...]string{"chat/completions", "completions", "responses"}[which%3]
		out, err := reassemble(op, bytes.NewReader(stream), 2, 4<<10)
		if err == nil && !json.Valid(out) {
			t.Fatalf("%s: invalid JSON %q from %q", op, out, stream)
		}
	})
}

// BenchmarkReassemble: the cost of reading a streamed answer back into JSON (a simulated region's 200-token
// answer as Azure streams it, chat/completions and Responses), against the bytes of the non-streaming answer it
// replaces.
func BenchmarkReassemble(b *testing.B) {
	s, err := sim.Start(sim.Config{APIKey: "k", Regions: sim.DefaultRegions("eastus")})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for _, c := range []struct{ op, path, body string }{
		{"chat/completions", chatAt("gpt-4o"), `{"messages":[{"role":"user","content":"sim:tokens=200"}]}`},
		{"responses", "/openai/v1/responses", `{"model":"gpt-4o","input":"sim:tokens=200"}`},
	} {
		b.Run(strings.ReplaceAll(c.op, "/", "-"), func(b *testing.B) {
			get := func(body []byte) []byte {
				req, _ := http.NewRequest(http.MethodPost, s.Region("eastus").URL()+c.path, bytes.NewReader(body))
				req.Header.Set("api-key", "k")
				req.Header.Set("Content-Type", "application/json")
				resp, err := s.Client().Do(req)
				if err != nil {
					b.Fatal(err)
				}
				defer resp.Body.Close()
				out, _ := io.ReadAll(resp.Body)
				return out
			}
			plain := get([]byte(c.body))
			sbody, _ := streamRequest(c.op, []byte(c.body))
			stream := get(sbody)
			b.SetBytes(int64(len(stream)))
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime()
			for i := 0; i < b.N; i++ {
				if _, err := reassemble(c.op, bytes.NewReader(stream), 1, 32<<20); err != nil {
					b.Fatal(err)
				}
			}
			// CPU time is steadier than wall time on a shared machine.
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
			b.ReportMetric(float64(len(stream))/float64(len(plain)), "stream/json-bytes")
		})
	}
}

// The Responses API has no `n` and no system_fingerprint; everything else issue 12 names it has, in its own
// shape: function calls as function_call items, a refusal as a refusal content part, log probabilities on
// output_text parts (include: message.output_text.logprobs), a reasoning item and reasoning tokens for reasoning
// models, the prompt and completion content filters in `content_filters`, usage with its details, service_tier.
func TestReassembleResponsesDifferential(t *testing.T) {
	s := diffSim(t)
	tools := `"tools":[{"type":"function","name":"get_weather","parameters":{"type":"object"}},{"type":"function","name":"get_time"}]`
	cases := []struct {
		name, path, body string
		check            func(t *testing.T, p gjson.Result)
	}{
		{"text", "", `{"model":"gpt-4o","input":"Hello there"}`, func(t *testing.T, p gjson.Result) {
			if p.Get("output.0.content.0.type").Str != "output_text" || p.Get("output.0.content.0.text").Str == "" || p.Get("status").Str != "completed" {
				t.Errorf("want a text answer: %s", p.Raw)
			}
		}},
		{"instructions and input items", "", `{"model":"gpt-4o","input":[{"role":"user","content":"hi"},{"type":"message","role":"assistant","content":[{"type":"output_text","text":"Hello"}]},{"role":"user","content":[{"type":"input_text","text":"again"}]}],"instructions":"Be brief."}`, nil},
		{"empty answer", "", `{"model":"gpt-4o","input":"sim:tokens=0"}`, nil},
		{"incomplete: max_output_tokens", "", `{"model":"gpt-4o","input":"sim:tokens=9","max_output_tokens":4}`, func(t *testing.T, p gjson.Result) {
			if p.Get("status").Str != "incomplete" || p.Get("incomplete_details.reason").Str != "max_output_tokens" || p.Get("usage.output_tokens").Int() != 4 {
				t.Errorf("want incomplete: %s", p.Raw)
			}
		}},
		{"function call", "", `{"model":"gpt-4o","input":"Weather in Zürich?","tool_choice":"required",` + tools + `}`, func(t *testing.T, p gjson.Result) {
			if p.Get("output.#").Int() != 1 || p.Get("output.0.type").Str != "function_call" || p.Get("output.0.name").Str != "get_weather" ||
				!gjson.Valid(p.Get("output.0.arguments").Str) || !strings.HasPrefix(p.Get("output.0.call_id").Str, "call_") {
				t.Errorf("want a function call: %s", p.Raw)
			}
		}},
		{"parallel function calls", "", `{"model":"gpt-4o","input":"sim:tool_calls=3 for Zürich",` + tools + `}`, func(t *testing.T, p gjson.Result) {
			if p.Get("output.#").Int() != 3 || p.Get("output.2.type").Str != "function_call" || p.Get("output.1.name").Str != "get_time" {
				t.Errorf("want 3 calls: %s", p.Raw)
			}
		}},
		{"named function, no parallel calls", "", `{"model":"gpt-4o","input":"sim:tool_calls=3","parallel_tool_calls":false,"tool_choice":{"type":"function","name":"get_time"},` + tools + `}`, func(t *testing.T, p gjson.Result) {
			if p.Get("output.#").Int() != 1 || p.Get("output.0.name").Str != "get_time" || p.Get("parallel_tool_calls").Bool() {
				t.Errorf("want one call of get_time: %s", p.Raw)
			}
		}},
		{"answer to a function result", "", `{"model":"gpt-4o","input":[{"role":"user","content":"sim:tool_call weather"},{"type":"function_call","call_id":"call_1","name":"get_weather","arguments":"{}"},{"type":"function_call_output","call_id":"call_1","output":"sunny"}],` + tools + `}`, func(t *testing.T, p gjson.Result) {
			if p.Get("output.0.type").Str != "message" {
				t.Errorf("a function result is answered with text: %s", p.Raw)
			}
		}},
		{"refusal", "", `{"model":"gpt-4o","input":"sim:refusal"}`, func(t *testing.T, p gjson.Result) {
			if p.Get("output.0.content.0.type").Str != "refusal" || p.Get("output.0.content.0.refusal").Str == "" {
				t.Errorf("want a refusal part: %s", p.Raw)
			}
		}},
		{"logprobs", "", `{"model":"gpt-4o","input":"Grüße","include":["message.output_text.logprobs"],"top_logprobs":3}`, func(t *testing.T, p gjson.Result) {
			lp := p.Get("output.0.content.0.logprobs")
			if lp.Get("#").Int() == 0 || lp.Get("0.top_logprobs.#").Int() != 3 || !lp.Get("0.bytes").IsArray() || p.Get("top_logprobs").Int() != 3 {
				t.Errorf("want logprobs: %s", p.Raw)
			}
		}},
		{"logprobs of a refusal", "", `{"model":"gpt-4o","input":"sim:refusal","include":["message.output_text.logprobs"]}`, nil},
		{"output filter", "", `{"model":"gpt-4o","input":"sim:output_filter sim:tokens=8"}`, func(t *testing.T, p gjson.Result) {
			cf := p.Get("content_filters")
			if p.Get("status").Str != "incomplete" || p.Get("incomplete_details.reason").Str != "content_filter" ||
				cf.Get("1.source_type").Str != "completion" || !cf.Get("1.blocked").Bool() || !cf.Get("1.content_filter_results.violence.filtered").Bool() {
				t.Errorf("want the output filter: %s", p.Raw)
			}
		}},
		{"content filters of prompt and completion", "", `{"model":"gpt-4o","input":"hi"}`, func(t *testing.T, p gjson.Result) {
			cf := p.Get("content_filters")
			if cf.Get("#").Int() != 2 || cf.Get("0.source_type").Str != "prompt" || cf.Get("0.content_filter_results.jailbreak.detected").Type != gjson.False ||
				cf.Get("1.content_filter_results.protected_material_text.detected").Type != gjson.False || cf.Get("1.blocked").Type != gjson.False {
				t.Errorf("content filters: %s", cf.Raw)
			}
		}},
		{"reasoning model: reasoning item and usage details", "", `{"model":"o4-mini","input":"` + strings.Repeat("long prompt ", 200) + `sim:cached_tokens=512"}`, func(t *testing.T, p gjson.Result) {
			u := p.Get("usage")
			if p.Get("output.0.type").Str != "reasoning" || p.Get("output.1.type").Str != "message" || u.Get("output_tokens_details.reasoning_tokens").Int() == 0 ||
				u.Get("input_tokens_details.cached_tokens").Int() != 512 || p.Get("reasoning.effort").Str != "medium" {
				t.Errorf("want a reasoning item and usage details: %s", p.Raw)
			}
		}},
		{"reasoning model with a function call", "", `{"model":"o4-mini","input":"sim:tool_call","reasoning":{"effort":"low"},` + tools + `}`, nil},
		{"service tier", "", `{"model":"gpt-4o","input":"hi","service_tier":"priority"}`, func(t *testing.T, p gjson.Result) {
			if p.Get("service_tier").Str != "priority" {
				t.Errorf("service tier: %s", p.Raw)
			}
		}},
		{"echoed settings", "", `{"model":"gpt-4o","input":"hi","temperature":0.2,"top_p":0.5,"metadata":{"k":"v"},"text":{"format":{"type":"json_object"}},"store":false,"user":"u1"}`, func(t *testing.T, p gjson.Result) {
			if p.Get("temperature").Float() != 0.2 || p.Get("metadata.k").Str != "v" || p.Get("store").Bool() || p.Get("text.format.type").Str != "json_object" {
				t.Errorf("echo: %s", p.Raw)
			}
		}},
		{"classic surface", "/openai/responses?api-version=2025-04-01-preview", `{"model":"gpt-4o","input":"hi"}`, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := c.path
			if path == "" {
				path = "/openai/v1/responses"
			}
			plain := differential(t, s, "responses", path, c.body)
			if c.check != nil {
				c.check(t, gjson.ParseBytes(plain))
			}
		})
	}
	// A previous response continues in both forms the same way (the stored chain is the region's).
	t.Run("previous_response_id", func(t *testing.T) {
		first := differential(t, s, "responses", "/openai/v1/responses", `{"model":"gpt-4o","input":"My name is Ada."}`)
		id := gjson.GetBytes(first, "id").Str
		next := differential(t, s, "responses", "/openai/v1/responses", `{"model":"gpt-4o","input":"Name?","previous_response_id":"`+id+`"}`)
		if gjson.GetBytes(next, "previous_response_id").Str != id || gjson.GetBytes(next, "usage.input_tokens").Int() <= gjson.GetBytes(first, "usage.input_tokens").Int() {
			t.Errorf("chained: %s", next)
		}
	})
}
