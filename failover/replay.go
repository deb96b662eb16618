package failover

import (
	"hash/maphash"
	"strconv"
	"sync"

	"github.com/tidwall/gjson"
)

// What a caller received of a chat/completions or completions stream, kept so that a stream a region
// breaks can be resumed in another region (policy.streams.resume) without a spliced answer: the first
// chunk's id, created, model and system_fingerprint, and per choice the hash and length of its output
// as text (content, refusal, tool calls and function calls, each change of field marked), its
// finish_reason and, for a prefill, choice 0's content itself. Memory stays constant per choice (a
// prefill keeps the text, up to maxPrefillText).

// maxPrefillText bounds the content kept for a prefill; a longer answer is resumed by replay.
const maxPrefillText = 1 << 20

// replayLog is the log of what the caller got.
type replayLog struct {
	// mu guards what follows against an early resume (quiet.go), which reads the log on its own
	// goroutine while the caller's stream waits; ver counts the events logged.
	mu       sync.Mutex
	ver      uint64
	seed     maphash.Seed
	meta     chunkMeta
	choices  []choiceLog
	broken   string // why the stream cannot be resumed ("": it can)
	keepText bool   // keep choice 0's content, for a prefill
}

// chunkMeta is the raw JSON of the identity fields of a stream's chunks (nil: absent).
type chunkMeta struct {
	set                             bool
	id, created, model, fingerprint []byte
}

// choiceLog is one choice of the answer as the caller has it.
type choiceLog struct {
	h      maphash.Hash
	n      int64  // bytes written to h
	ch     string // field of the last segment
	finish string
	text   []byte // choice 0's content, when kept
	other  bool   // output in a field other than content: no prefill
}

func newReplayLog(n int, keepText bool) *replayLog {
	l := &replayLog{seed: maphash.MakeSeed(), keepText: keepText, choices: make([]choiceLog, n)}
	for i := range l.choices {
		l.choices[i].h.SetSeed(l.seed)
	}
	return l
}

// segment is one piece of a choice's output in one chunk: the field it belongs to (c content, r
// refusal, z reasoning, t<i>/a<i> tool call i's name/arguments, fn/fa function_call's), its text, and
// the path of that field in the choice's JSON.
type segment struct {
	field string
	text  string
	path  string
	tool  int // position of the tool call in tool_calls, -1 when the segment is not a tool call's
	name  bool
}

// choiceSegments reads the output of one choice of a chunk. ok is false when the choice has output
// the log cannot follow (a field it does not know).
func choiceSegments(c gjson.Result, dst []segment) ([]segment, bool) {
	if t := c.Get("text"); t.Exists() { // completions
		if t.Type == gjson.String {
			dst = append(dst, segment{field: "c", text: t.Str, path: "text", tool: -1})
		}
		return dst, true
	}
	ok := true
	c.Get("delta").ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "role":
		case "content", "refusal", "reasoning_content":
			if v.Type == gjson.String {
				f := map[string]string{"content": "c", "refusal": "r", "reasoning_content": "z"}[k.Str]
				dst = append(dst, segment{field: f, text: v.Str, path: "delta." + k.Str, tool: -1})
			} else if v.Type != gjson.Null {
				ok = false
			}
		case "tool_calls":
			j := 0
			v.ForEach(func(_, tc gjson.Result) bool {
				idx := strconv.FormatInt(tc.Get("index").Int(), 10)
				p := "delta.tool_calls." + strconv.Itoa(j) + ".function."
				if n := tc.Get("function.name"); n.Type == gjson.String {
					dst = append(dst, segment{field: "t" + idx, text: n.Str, path: p + "name", tool: j, name: true})
				}
				if a := tc.Get("function.arguments"); a.Type == gjson.String {
					dst = append(dst, segment{field: "a" + idx, text: a.Str, path: p + "arguments", tool: j})
				}
				j++
				return true
			})
		case "function_call":
			if n := v.Get("name"); n.Type == gjson.String {
				dst = append(dst, segment{field: "fn", text: n.Str, path: "delta.function_call.name", tool: -1})
			}
			if a := v.Get("arguments"); a.Type == gjson.String {
				dst = append(dst, segment{field: "fa", text: a.Str, path: "delta.function_call.arguments", tool: -1})
			}
		default:
			if v.Type != gjson.Null && !(v.IsArray() && len(v.Array()) == 0) {
				ok = false // audio, or a field this version does not know: cannot be proven the same
			}
		}
		return ok
	})
	return dst, ok
}

// marker is what a change of field adds to a choice's output.
func marker(field string) string { return "\x00" + field + "\x00" }

// write adds one segment to the choice's output.
func (c *choiceLog) write(s segment, keep bool) {
	if s.field != c.ch {
		c.h.WriteString(marker(s.field))
		c.n += int64(len(s.field) + 2)
		c.ch = s.field
	}
	c.h.WriteString(s.text)
	c.n += int64(len(s.text))
	if s.field != "c" {
		c.other = true
	}
	if keep && s.field == "c" {
		if len(c.text)+len(s.text) > maxPrefillText {
			c.other, c.text = true, nil // too long to prefill
			return
		}
		c.text = append(c.text, s.text...)
	}
}

// chunk logs one chunk the caller got.
func (l *replayLog) chunk(data []byte) {
	if l.broken != "" {
		return
	}
	if !gjson.ValidBytes(data) {
		l.broken = "the region sent an event that is not valid JSON"
		return
	}
	root := gjson.ParseBytes(data)
	if !l.meta.set {
		if id := root.Get("id"); id.Type == gjson.String && id.Str != "" {
			l.meta = chunkMeta{set: true, id: rawOf(root, "id"), created: rawOf(root, "created"),
				model: rawOf(root, "model"), fingerprint: rawOf(root, "system_fingerprint")}
		}
	}
	var buf [4]segment
	root.Get("choices").ForEach(func(_, c gjson.Result) bool {
		i := int(c.Get("index").Int())
		if i < 0 || i >= len(l.choices) {
			l.broken = "a choice index the request did not ask for"
			return false
		}
		segs, ok := choiceSegments(c, buf[:0])
		if !ok {
			l.broken = "output the engine cannot compare (audio or an unknown field)"
			return false
		}
		cl := &l.choices[i]
		for _, s := range segs {
			cl.write(s, l.keepText && i == 0)
		}
		if fr := c.Get("finish_reason"); fr.Type == gjson.String && fr.Str != "" {
			cl.finish = fr.Str
		}
		return true
	})
}

func rawOf(root gjson.Result, path string) []byte {
	if v := root.Get(path); v.Exists() {
		return []byte(v.Raw)
	}
	return nil
}

// prefillText returns choice 0's content for a prefill, or false when the answer is not content only.
func (l *replayLog) prefillText() (string, bool) {
	if len(l.choices) != 1 || l.choices[0].other || l.choices[0].finish != "" || !l.keepText {
		return "", false
	}
	return string(l.choices[0].text), true
}
