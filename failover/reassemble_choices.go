package failover

import (
	"bytes"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"
)

// choicesAssembler reassembles a chat/completions (chat) or completions stream.
type choicesAssembler struct {
	chat bool
	want int // choices the request asked for

	id, model, created string // JSON values of the first chunk that had them
	top                fields
	choices            []*choiceState
	usage              string
	sawDone            bool
	size               int
}

// choiceState is one choice being reassembled.
type choiceState struct {
	seen    bool
	role    string // JSON
	content strings.Builder
	hasText bool // a content (chat) or text (completions) string came
	refusal strings.Builder
	hasRef  bool
	calls   []*callState
	fn      *callState // legacy function_call
	finish  string     // JSON
	filters filterMerge
	logp    fields // logprobs members, lists concatenated
	hasLogp bool
	delta   fields // delta members the engine does not know
	extra   fields // choice members the engine does not know
}

// callState is one tool (or function) call being reassembled.
type callState struct {
	id, typ, name string
	args          strings.Builder
	extra         fields
	fnExtra       fields
}

// maxCalls bounds the tool calls tracked per choice.
const maxCalls = 128

var (
	doneEvent   = []byte("[DONE]")
	objectStart = []byte("{")
)

func (a *choicesAssembler) held() int {
	n := a.size + a.top.size + len(a.usage)
	for _, c := range a.choices {
		if c != nil {
			n += c.content.Len() + c.refusal.Len() + c.filters.size + c.logp.size + c.delta.size + c.extra.size
			for _, cl := range c.calls {
				n += cl.args.Len() + cl.extra.size + cl.fnExtra.size + 64
			}
		}
	}
	return n
}

func (a *choicesAssembler) event(ev sseEvent) error {
	data := bytes.TrimSpace(ev.data)
	switch {
	case len(data) == 0:
		return nil // a comment or keep-alive
	case bytes.Equal(data, doneEvent):
		a.sawDone = true
		return nil
	case !bytes.HasPrefix(data, objectStart) || !gjson.ValidBytes(data):
		return errMalformedEvent
	}
	chunk := gjson.ParseBytes(data)
	var err error
	chunk.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "error":
			if v.Type != gjson.Null {
				err = &regionStreamError{data: clip(v.Raw)}
				if ans, ok := answerOf(chunk); ok {
					err = ans
				}
			}
		case "choices":
			v.ForEach(func(_, c gjson.Result) bool {
				err = a.choice(c)
				return err == nil
			})
		case "id", "model":
			if v.Type == gjson.String && v.Str != "" && a.first(k.Str) == "" {
				a.setFirst(k.Str, strings.Clone(v.Raw))
			}
		case "created":
			if v.Type == gjson.Number && v.Int() != 0 && a.created == "" {
				a.created = strings.Clone(v.Raw)
			}
		case "usage":
			if v.IsObject() {
				a.usage = strings.Clone(v.Raw)
			}
		case "object", "obfuscation":
			// object is written as the non-streaming one; obfuscation pads stream events only.
		default:
			a.top.merge(k.Str, v, false)
		}
		return err == nil
	})
	return err
}

func (a *choicesAssembler) first(key string) string {
	if key == "id" {
		return a.id
	}
	return a.model
}

func (a *choicesAssembler) setFirst(key, raw string) {
	if key == "id" {
		a.id = raw
	} else {
		a.model = raw
	}
}

// member is one member of a JSON object.
type member struct{ k, v gjson.Result }

// choice folds one chunk choice into its state.
func (a *choicesAssembler) choice(c gjson.Result) error {
	// One pass over the members, then they are folded into the choice their index names.
	var buf [8]member
	members, i := buf[:0], -1
	c.ForEach(func(k, v gjson.Result) bool {
		if k.Str == "index" {
			if v.Type == gjson.Number && v.Num >= 0 && v.Num < maxChoices && v.Num == float64(int(v.Num)) {
				i = int(v.Num)
			}
			return true
		}
		members = append(members, member{k, v})
		return true
	})
	if i < 0 {
		return errMalformedEvent
	}
	for len(a.choices) <= i {
		a.choices = append(a.choices, nil)
	}
	st := a.choices[i]
	if st == nil {
		st = &choiceState{role: `"assistant"`}
		a.choices[i] = st
		a.size += 256
	}
	st.seen = true
	for _, m := range members {
		if err := a.member(st, m.k.Str, m.v); err != nil {
			return err
		}
	}
	return nil
}

// member folds one member of a chunk choice.
func (a *choicesAssembler) member(st *choiceState, k string, v gjson.Result) error {
	switch k {
	case "content_filter_offsets":
	case "delta":
		return a.delta(st, v)
	case "text":
		if v.Type == gjson.String {
			st.content.WriteString(v.Str)
			st.hasText = true
		}
	case "finish_reason":
		if v.Type == gjson.String && v.Str != "" {
			st.finish = strings.Clone(v.Raw)
		}
	case "content_filter_results":
		st.filters.merge(v)
	case "logprobs":
		if v.IsObject() {
			st.hasLogp = true
			v.ForEach(func(lk, lv gjson.Result) bool {
				st.logp.merge(lk.Str, lv, true)
				return true
			})
		}
	default:
		st.extra.merge(k, v, false)
	}
	return nil
}

// delta folds a chat delta into the choice's message.
func (a *choicesAssembler) delta(st *choiceState, d gjson.Result) error {
	var err error
	d.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "role":
			if v.Type == gjson.String {
				st.role = strings.Clone(v.Raw)
			}
		case "content":
			if v.Type == gjson.String {
				st.content.WriteString(v.Str)
				st.hasText = true
			}
		case "refusal":
			if v.Type == gjson.String {
				st.refusal.WriteString(v.Str)
				st.hasRef = true
			}
		case "tool_calls":
			v.ForEach(func(_, tc gjson.Result) bool {
				err = st.toolCall(tc)
				return err == nil
			})
		case "function_call":
			if v.IsObject() {
				if st.fn == nil {
					st.fn = &callState{}
				}
				st.fn.function(v)
			}
		default:
			st.delta.merge(k.Str, v, true)
		}
		return err == nil
	})
	return err
}

// toolCall folds one tool call delta: its id, type and name come once, its arguments in pieces.
func (st *choiceState) toolCall(tc gjson.Result) error {
	idx := tc.Get("index")
	i := len(st.calls) - 1
	if idx.Type == gjson.Number {
		i = int(idx.Int())
	}
	if i < 0 || i >= maxCalls {
		return errMalformedEvent
	}
	for len(st.calls) <= i {
		st.calls = append(st.calls, &callState{})
	}
	cl := st.calls[i]
	tc.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "index":
		case "id":
			if v.Type == gjson.String && v.Str != "" && cl.id == "" {
				cl.id = strings.Clone(v.Str)
			}
		case "type":
			if v.Type == gjson.String && v.Str != "" {
				cl.typ = strings.Clone(v.Str)
			}
		case "function":
			cl.function(v)
		default:
			cl.extra.merge(k.Str, v, false)
		}
		return true
	})
	return nil
}

// function folds a function object: its name comes once, its arguments in pieces.
func (cl *callState) function(f gjson.Result) {
	f.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "name":
			if v.Type == gjson.String && v.Str != "" && cl.name == "" {
				cl.name = strings.Clone(v.Str)
			}
		case "arguments":
			if v.Type == gjson.String {
				cl.args.WriteString(v.Str)
			}
		default:
			cl.fnExtra.merge(k.Str, v, false)
		}
		return true
	})
}

func (a *choicesAssembler) result() ([]byte, error) {
	if len(a.choices) < a.want {
		return nil, errIncomplete
	}
	for _, st := range a.choices {
		if st == nil || st.finish == "" {
			return nil, errIncomplete
		}
	}
	if a.usage == "" {
		return nil, errNoUsage
	}
	object := `"text_completion"`
	if a.chat {
		object = `"chat.completion"`
	}
	top := append(a.top.pairs(), pair{"object", object}, pair{"usage", a.usage})
	for key, v := range map[string]string{"id": a.id, "model": a.model, "created": a.created} {
		if v != "" {
			top = append(top, pair{key, v})
		}
	}
	var choices []byte
	choices = append(choices, '[')
	for i, st := range a.choices {
		if i > 0 {
			choices = append(choices, ',')
		}
		choices = appendObject(choices, a.choicePairs(i, st))
	}
	choices = append(choices, ']')
	top = append(top, pair{"choices", string(choices)})
	return appendObject(make([]byte, 0, a.held()+256), top), nil
}

// choicePairs are the members of choice i.
func (a *choicesAssembler) choicePairs(i int, st *choiceState) []pair {
	p := append(st.extra.pairs(), pair{"index", strconv.Itoa(i)}, pair{"finish_reason", st.finish})
	if st.filters.seen {
		p = append(p, pair{"content_filter_results", st.filters.json()})
	}
	logprobs := "null"
	if st.hasLogp {
		logprobs = string(appendObjectOrdered(nil, st.logp.pairs()))
	}
	p = append(p, pair{"logprobs", logprobs})
	if !a.chat {
		return append(p, pair{"text", jsonText(st.content.String())})
	}
	return append(p, pair{"message", string(appendObject(nil, st.messagePairs()))})
}

// messagePairs are the members of a chat choice's message: those of Azure's non-streaming answer (annotations,
// content, refusal, role), the calls, and any other delta member.
func (st *choiceState) messagePairs() []pair {
	p := st.delta.pairs()
	if st.delta.value("annotations") == "" {
		p = append(p, pair{"annotations", "[]"})
	}
	content, refusal := "null", "null"
	if st.hasText {
		content = jsonText(st.content.String())
	}
	if st.hasRef {
		refusal = jsonText(st.refusal.String())
	}
	p = append(p, pair{"content", content}, pair{"refusal", refusal}, pair{"role", st.role})
	if len(st.calls) > 0 {
		var b []byte
		b = append(b, '[')
		for i, cl := range st.calls {
			if i > 0 {
				b = append(b, ',')
			}
			cp := append(cl.extra.pairs(), pair{"function", cl.functionJSON()})
			if cl.id != "" {
				cp = append(cp, pair{"id", jsonText(cl.id)})
			}
			if cl.typ != "" {
				cp = append(cp, pair{"type", jsonText(cl.typ)})
			}
			b = appendObject(b, cp)
		}
		p = append(p, pair{"tool_calls", string(append(b, ']'))})
	}
	if st.fn != nil {
		p = append(p, pair{"function_call", st.fn.functionJSON()})
	}
	return p
}

func (cl *callState) functionJSON() string {
	p := append(cl.fnExtra.pairs(), pair{"arguments", jsonText(cl.args.String())})
	if cl.name != "" {
		p = append(p, pair{"name", jsonText(cl.name)})
	}
	return string(appendObject(nil, p))
}

// appendObjectOrdered writes pairs as a JSON object in the order given (the region's own).
func appendObjectOrdered(dst []byte, pairs []pair) []byte {
	dst = append(dst, '{')
	for i, p := range pairs {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, p.key)
		dst = append(dst, ':')
		dst = append(dst, p.raw...)
	}
	return append(dst, '}')
}

// clip shortens a region's text for an error message.
func clip(s string) string {
	if len(s) > 256 {
		return s[:256] + "..."
	}
	return s
}
