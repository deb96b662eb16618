package failover

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/tidwall/gjson"
)

// Reassembly (policy.stream_upstream): a non-streaming chat/completions, completions or responses request is
// sent to its region as a stream, and the stream is read back into exactly the JSON the region would have sent
// without streaming. The rules, per operation, are those by which the SDKs' accumulators merge chunks:
//
//   - chat/completions and completions: one choice per index; its text, refusal and the arguments of its calls
//     are the concatenation of their deltas; its logprobs the concatenation of the chunks' lists; its
//     finish_reason the one its finish chunk carries; its content_filter_results every category its chunks
//     annotated, at its most severe (filtered or detected if any chunk said so, the highest severity). The
//     envelope (id, created, model, system_fingerprint, service_tier, prompt_filter_results) comes from the
//     chunks, usage from the usage chunk; object becomes "chat.completion". Fields only streams have
//     (obfuscation, content_filter_offsets) are left out; a field the engine does not know is kept (strings and
//     lists in deltas are concatenated, anything else keeps its last value).
//   - responses: the response object of the terminal event (response.completed, .incomplete or .failed), which
//     is the whole response; its output is rebuilt from the output_item.done events if it came empty.
//
// Objects the engine builds are written with their keys in alphabetical order, as Azure writes them; objects a
// region sent (usage, annotations, log probabilities, a response) are copied byte for byte.

// Reassembly errors. They are the region's failures: the attempt fails over.
var (
	// errReassemblyTooLarge: the stream needed more memory than the bound of a non-streaming body.
	errReassemblyTooLarge = errors.New("the answer is larger than policy.max_body_bytes")
	// errMalformedEvent: an event whose data is not the JSON object its operation sends.
	errMalformedEvent = errors.New("the region sent an event that is not valid JSON")
	// errIncomplete: the stream ended without what the non-streaming answer needs (a finish_reason for every
	// choice, the usage, a terminal Responses event).
	errIncomplete = errors.New("the stream ended before the answer was complete")
	// errNoUsage: a complete chat/completions or completions stream without its usage chunk: the region
	// ignored stream_options.include_usage, so it cannot give the non-streaming answer by streaming.
	errNoUsage = errors.New("the region streamed no usage")
)

// regionStreamError is an error event in the stream: the region failed mid-generation.
type regionStreamError struct{ data string }

func (e *regionStreamError) Error() string { return "the region sent an error event: " + e.data }

// regionAnswer is an error event that is the region's answer rather than its failure: it refuses the request
// itself (a prompt too long for the context window, an invalid parameter), which the non-streaming request
// would have got as a 400 with the same error. OpenAI reports such errors in a Responses stream after
// response.created (docs/wire-notes.md); the engine gives the caller the 400, so that what a client sees does not
// depend on how the request went, and a name fallback can act on context_length_exceeded.
type regionAnswer struct {
	body []byte // {"error":{...}}
	code string
}

func (e *regionAnswer) Error() string { return "the region refused the request: " + e.code }

// answerOf reads an error event: the error object is the event's `error` member, or the event itself (a Responses
// `error` event carries code, message and param at its top). It is the region's answer when the error is the
// request's fault.
func answerOf(ev gjson.Result) (*regionAnswer, bool) {
	e := ev.Get("error")
	if !e.IsObject() {
		e = ev
	}
	typ, code := e.Get("type").Str, e.Get("code").Str
	if typ != "invalid_request_error" && code != contextTooLong {
		return nil, false
	}
	body := `{"error":{"message":` + jsonOr(e.Get("message")) + `,"type":"invalid_request_error","param":` + jsonOr(e.Get("param")) +
		`,"code":` + jsonOr(e.Get("code")) + `}}`
	return &regionAnswer{body: []byte(body), code: code}, true
}

// jsonOr is v's JSON, or null.
func jsonOr(v gjson.Result) string {
	if !v.Exists() || (v.Type != gjson.String && v.Type != gjson.Null) {
		return "null"
	}
	return v.Raw
}

// assembler merges the events of one stream.
type assembler interface {
	event(ev sseEvent) error
	// result is the non-streaming JSON, or why there is none.
	result() ([]byte, error)
	// held is the memory the assembler keeps, in bytes.
	held() int
}

// reassemble reads a whole event stream of op (a request that asked for n choices) and returns the JSON the
// region would have sent without streaming. limit bounds the memory it holds: the event being read and the
// answer so far. r returns a *StreamError when the stream broke, went idle or ended truncated.
func reassemble(op string, r io.Reader, n int, limit int) ([]byte, error) {
	var a assembler
	switch op {
	case "chat/completions":
		a = &choicesAssembler{chat: true, want: n}
	case "completions":
		a = &choicesAssembler{want: n}
	case "responses":
		a = &responsesAssembler{}
	default:
		return nil, fmt.Errorf("failover: no reassembly for %q", op)
	}
	var buf []byte
	if limit >= reassembleBufSize {
		// Pooled: every non-streaming request that goes upstream as a stream comes here, and a fresh 16 KB
		// per request was most of what such a request allocated. Nothing the assemblers keep points into it
		// (gjson copies what it parses).
		pb := reassembleBufs.Get().(*[]byte)
		defer reassembleBufs.Put(pb)
		buf = (*pb)[:0]
	} else {
		buf = make([]byte, 0, limit)
	}
	scan := 0 // bytes of buf already searched for an event end
	for {
		if len(buf) == cap(buf) {
			grown := min(2*cap(buf), limit-a.held())
			if grown <= cap(buf) {
				return nil, errReassemblyTooLarge
			}
			buf = append(make([]byte, 0, grown), buf...)
		}
		m, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+m]
		off := 0
		for {
			e := eventEnd(buf, max(scan-2, off))
			if e < 0 {
				break
			}
			if perr := a.event(parseEvent(buf[off:e])); perr != nil {
				return nil, perr
			}
			off, scan = e, e
		}
		if off > 0 {
			buf = buf[:copy(buf, buf[off:])]
			scan -= off
		}
		scan = max(scan, len(buf))
		if a.held()+cap(buf) > limit {
			return nil, errReassemblyTooLarge
		}
		switch {
		case err == io.EOF:
			if len(bytes.TrimSpace(buf)) > 0 {
				// The region ended without a final blank line: what it sent last is its last event.
				if perr := a.event(parseEvent(buf)); perr != nil {
					return nil, perr
				}
			}
			return a.result()
		case err != nil:
			return nil, err
		}
	}
}

// reassembleBufSize is reassemble's first read buffer (it grows for a larger event, up to the limit).
const reassembleBufSize = 16 << 10

var reassembleBufs = sync.Pool{New: func() any { b := make([]byte, reassembleBufSize); return &b }}

// pair is one member of an object being written.
type pair struct {
	key string
	raw string // JSON
}

// appendObject writes pairs as a JSON object, keys in alphabetical order.
func appendObject(dst []byte, pairs []pair) []byte {
	slices.SortStableFunc(pairs, func(a, b pair) int { return strings.Compare(a.key, b.key) })
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

// jsonText writes s as a JSON string.
func jsonText(s string) string { return string(appendJSONString(nil, s)) }

// fields are members whose values the engine does not interpret: kept in first-seen order, merged by rule.
type fields struct {
	keys []string
	vals map[string]*fieldVal
	size int
}

type fieldVal struct {
	mode int // fieldLast, fieldString or fieldList
	raw  string
	str  strings.Builder
	list []string // raw elements
}

const (
	fieldLast = iota
	fieldString
	fieldList
)

// merge folds one more value of key into f: with concat, strings and lists are concatenated (what deltas do);
// anything else keeps its last non-null value.
func (f *fields) merge(key string, v gjson.Result, concat bool) {
	if f.vals == nil {
		f.vals = map[string]*fieldVal{}
	}
	fv := f.vals[key]
	if fv == nil {
		fv = &fieldVal{raw: "null"}
		f.vals[key] = fv
		f.keys = append(f.keys, strings.Clone(key))
		f.size += len(key) + 64
	}
	switch {
	case v.Type == gjson.Null:
	case concat && v.Type == gjson.String:
		if fv.mode != fieldString {
			fv.mode = fieldString
			fv.str.Reset()
		}
		fv.str.WriteString(v.Str)
		f.size += len(v.Str)
	case concat && v.IsArray():
		if fv.mode != fieldList {
			fv.mode, fv.list = fieldList, nil
		}
		v.ForEach(func(_, e gjson.Result) bool {
			fv.list = append(fv.list, strings.Clone(e.Raw))
			f.size += len(e.Raw) + 16
			return true
		})
	case fv.mode == fieldLast && fv.raw == v.Raw:
		// the same value again (an envelope member of every chunk)
	default:
		fv.mode, fv.raw = fieldLast, strings.Clone(v.Raw)
		f.size += len(v.Raw)
	}
}

// value is the merged value of key as JSON, "" when it never came.
func (f *fields) value(key string) string {
	fv := f.vals[key]
	switch {
	case fv == nil:
		return ""
	case fv.mode == fieldString:
		return jsonText(fv.str.String())
	case fv.mode == fieldList:
		return "[" + strings.Join(fv.list, ",") + "]"
	}
	return fv.raw
}

func (f *fields) pairs() []pair {
	out := make([]pair, 0, len(f.keys))
	for _, k := range f.keys {
		out = append(out, pair{k, f.value(k)})
	}
	return out
}

// filterMerge merges content_filter_results: each category at its most severe, categories and their members in
// the order the region first wrote them.
type filterMerge struct {
	seen bool
	last string // the last annotations merged: the same again changes nothing (most chunks repeat them)
	cats []string
	vals map[string]*filterCat
	size int
}

type filterCat struct {
	raw     string   // a category that is not an object (or an "error"): its last value
	keys    []string // members in first-seen order
	members map[string]string
}

var severities = map[string]int{"safe": 0, "low": 1, "medium": 2, "high": 3}

func (m *filterMerge) merge(v gjson.Result) {
	if !v.IsObject() {
		return
	}
	m.seen = true
	if v.Raw == m.last {
		return
	}
	m.last = strings.Clone(v.Raw)
	if m.vals == nil {
		m.vals = map[string]*filterCat{}
	}
	v.ForEach(func(k, cat gjson.Result) bool {
		c := m.vals[k.Str]
		if c == nil {
			c = &filterCat{members: map[string]string{}}
			m.vals[k.Str] = c
			m.cats = append(m.cats, strings.Clone(k.Str))
		}
		if !cat.IsObject() {
			c.raw = strings.Clone(cat.Raw)
			m.size += len(cat.Raw)
			return true
		}
		cat.ForEach(func(mk, mv gjson.Result) bool {
			old, had := c.members[mk.Str]
			if !had {
				c.keys = append(c.keys, strings.Clone(mk.Str))
			}
			c.members[mk.Str] = mergeMember(mk.Str, old, had, mv)
			m.size += len(mk.Str) + len(mv.Raw)
			return true
		})
		return true
	})
}

// mergeMember keeps the most severe of two values of a category member.
func mergeMember(key, old string, had bool, v gjson.Result) string {
	if !had {
		return strings.Clone(v.Raw)
	}
	switch key {
	case "filtered", "detected":
		if old == "true" || v.Type == gjson.True {
			return "true"
		}
		return "false"
	case "severity":
		if severities[gjson.Parse(old).Str] >= severities[v.Str] {
			return old
		}
	}
	if v.Type == gjson.Null {
		return old
	}
	return strings.Clone(v.Raw)
}

func (m *filterMerge) json() string {
	var b []byte
	b = append(b, '{')
	for i, k := range m.cats {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k)
		b = append(b, ':')
		c := m.vals[k]
		if c.raw != "" && len(c.keys) == 0 {
			b = append(b, c.raw...)
			continue
		}
		b = append(b, '{')
		for j, mk := range c.keys {
			if j > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, mk)
			b = append(b, ':')
			b = append(b, c.members[mk]...)
		}
		b = append(b, '}')
	}
	return string(append(b, '}'))
}

// responsesAssembler reassembles a Responses API stream: the terminal event carries the whole response.
type responsesAssembler struct {
	response string   // the response object of the terminal event
	status   string   // its type: response.completed, response.incomplete, response.failed
	items    []string // output_item.done items by output_index, for a terminal event that came without them
	size     int
}

func (a *responsesAssembler) held() int { return a.size + len(a.response) }

func (a *responsesAssembler) event(ev sseEvent) error {
	data := bytes.TrimSpace(ev.data)
	if len(data) == 0 || a.response != "" {
		return nil
	}
	if data[0] != '{' || !gjson.ValidBytes(data) {
		return errMalformedEvent
	}
	typ := string(ev.name)
	if t := gjson.GetBytes(data, "type"); t.Type == gjson.String {
		typ = t.Str
	}
	switch typ {
	case "error":
		if ans, ok := answerOf(gjson.ParseBytes(data)); ok {
			return ans
		}
		return &regionStreamError{data: clip(string(data))}
	case "response.output_item.done":
		i := gjson.GetBytes(data, "output_index")
		item := gjson.GetBytes(data, "item")
		if i.Type != gjson.Number || i.Int() < 0 || i.Int() >= maxOutputItems || !item.IsObject() {
			return errMalformedEvent
		}
		for len(a.items) <= int(i.Int()) {
			a.items = append(a.items, "")
		}
		a.items[i.Int()] = item.Raw
		a.size += len(item.Raw) + 16
	case "response.completed", "response.incomplete", "response.failed":
		r := gjson.GetBytes(data, "response")
		if !r.IsObject() {
			return errMalformedEvent
		}
		a.response, a.status = r.Raw, typ
	}
	return nil
}

// maxOutputItems bounds the output items tracked of one response.
const maxOutputItems = 1024

func (a *responsesAssembler) result() ([]byte, error) {
	if a.response == "" {
		return nil, errIncomplete
	}
	r := gjson.Parse(a.response)
	if a.status == "response.failed" && r.Get("error.code").Str == "server_error" {
		// The region failed mid-generation, as a 500 would have said: another region may well answer.
		return nil, &regionStreamError{data: clip(r.Get("error").Raw)}
	}
	out := r.Get("output")
	if !out.IsArray() || len(out.Array()) > 0 || len(a.items) == 0 {
		return []byte(a.response), nil
	}
	// The terminal event came with an empty output: put back the items the stream completed.
	var list []byte
	list = append(list, '[')
	n := 0
	for _, it := range a.items {
		if it == "" {
			continue
		}
		if n > 0 {
			list = append(list, ',')
		}
		list = append(list, it...)
		n++
	}
	list = append(list, ']')
	b := make([]byte, 0, len(a.response)+len(list))
	b = append(b, a.response[:out.Index]...)
	b = append(b, list...)
	return append(b, a.response[out.Index+len(out.Raw):]...), nil
}
