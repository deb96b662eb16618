package failover

import (
	"bytes"
	"errors"
	"hash/maphash"
	"io"
	"strconv"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
)

// splicer is what the caller reads after a resume: the new region's stream with what the caller
// already has swallowed, the rest rewritten to the first region's identity, after the resume comment.
type splicer struct {
	b        *resumingBody
	src      *streamBody
	meta     chunkMeta // the identity of the caller's chunks
	ver      uint64    // the caller's log version the splicer was made from
	prefill  bool
	comment  []byte
	v        []verifyChoice
	verified bool   // every choice caught up with what the caller has
	held     []byte // rest events made before every choice was verified
	out      []byte // ready for the caller
	buf      []byte // whole events read from src, not yet handled
	eof      bool
	err      error
	segs     []segment

	// Until the caller takes the splicer (adopt), the events it makes are the caller's only
	// potentially: an early resume (quiet.go) may lose to the first region. They are logged at adoption.
	adopted bool
	pending [][]byte
}

// verifyChoice follows one choice of the new stream against what the caller has of it.
type verifyChoice struct {
	target int64  // bytes of the caller's output of this choice
	sum    uint64 // their hash
	finish string // the caller's finish_reason of this choice, if it got one
	pos    int64
	h      maphash.Hash
	ch     string
	done   bool // caught up: what follows is new to the caller
}

func newSplicer(b *resumingBody, src *streamBody, prefill bool, from, to string) *splicer {
	log := b.track.log
	log.mu.Lock()
	defer log.mu.Unlock()
	sp := &splicer{b: b, src: src, meta: log.meta, ver: log.ver, prefill: prefill,
		comment: []byte(": lifeline resumed " + from + " -> " + to + "\n\n"), v: make([]verifyChoice, len(log.choices))}
	for i := range sp.v {
		c := &log.choices[i]
		v := &sp.v[i]
		v.h.SetSeed(log.seed)
		v.target, v.sum, v.finish = c.n, c.h.Sum64(), c.finish
		v.done = prefill || c.n == 0
		if prefill {
			v.ch = c.ch
		}
	}
	return sp
}

// prime reads the new stream up to the splice: until every choice caught up (replay) or the first
// event of the rest (prefill). It returns ResumeOK or what went wrong.
func (sp *splicer) prime() (outcome, why string) {
	for len(sp.out) == 0 {
		if o, w := sp.fill(); o != ResumeOK {
			return o, w
		}
	}
	return ResumeOK, ""
}

// fill reads from the new stream and handles its whole events.
func (sp *splicer) fill() (outcome, why string) {
	if sp.eof {
		return ResumeDiverged, "the region's answer ended before it caught up with the caller's"
	}
	var tmp [4 << 10]byte
	n, err := sp.src.Read(tmp[:])
	sp.buf = append(sp.buf, tmp[:n]...)
	for {
		e := eventEnd(sp.buf, 0)
		if e < 0 {
			break
		}
		if o, w := sp.event(parseEvent(sp.buf[:e])); o != ResumeOK {
			return o, w
		}
		sp.buf = sp.buf[:copy(sp.buf, sp.buf[e:])]
	}
	switch {
	case err == io.EOF:
		sp.eof = true
		if !sp.verified {
			return ResumeDiverged, "the region's answer ended before it caught up with the caller's"
		}
	case err != nil:
		sp.err = err
		if !sp.verified {
			return ResumeFailed, err.Error()
		}
	case sp.src.midEvent:
		return ResumeFailed, "an event larger than the engine holds back"
	}
	return ResumeOK, ""
}

func (sp *splicer) Read(p []byte) (int, error) {
	for len(sp.out) == 0 {
		if sp.err != nil {
			return 0, sp.err
		}
		if sp.eof {
			return 0, io.EOF
		}
		if o, why := sp.fill(); o != ResumeOK {
			// After the splice the new region is on its own: its failures are its stream's.
			sp.err = &StreamError{Region: sp.src.a.r.cfg.Name, Err: errors.New(why)}
		}
	}
	n := copy(p, sp.out)
	sp.out = sp.out[n:]
	if len(sp.out) == 0 {
		sp.out = nil
	}
	return n, nil
}

func (sp *splicer) Close() error { return sp.src.Close() }

// event handles one event of the new stream.
func (sp *splicer) event(ev sseEvent) (outcome, why string) {
	if len(ev.data) == 0 {
		return ResumeOK, ""
	}
	if bytes.Equal(ev.data, doneData) {
		if !sp.verified {
			return ResumeDiverged, "the region's answer ended before it caught up with the caller's"
		}
		sp.emit(ev.data)
		return ResumeOK, ""
	}
	if !gjson.ValidBytes(ev.data) {
		return ResumeFailed, "the region sent an event that is not valid JSON"
	}
	out, keep, outcome, why := sp.rewrite(ev.data)
	if outcome != ResumeOK {
		return outcome, why
	}
	sp.catchUp()
	if keep {
		sp.emit(out)
	}
	return ResumeOK, ""
}

// catchUp marks the splice once every choice caught up: the comment, then what was held.
func (sp *splicer) catchUp() {
	if sp.verified {
		return
	}
	for i := range sp.v {
		if !sp.v[i].done {
			return
		}
	}
	sp.verified = true
	sp.out = append(sp.out, sp.comment...)
	sp.out = append(sp.out, sp.held...)
	sp.held = nil
}

// emit gives an event of the rest to the caller (or holds it until the splice), and logs it as the
// caller's.
func (sp *splicer) emit(data []byte) {
	ev := make([]byte, 0, len(data)+8)
	ev = append(append(append(ev, "data: "...), data...), "\n\n"...)
	if sp.verified {
		sp.out = append(sp.out, ev...)
	} else {
		sp.held = append(sp.held, ev...)
	}
	data = ev[len("data: ") : len(ev)-2]
	if !sp.adopted {
		sp.pending = append(sp.pending, data)
		return
	}
	sp.b.track.event(sseEvent{data: data}, false)
}

// adopt makes the splicer the caller's: the events it made so far are logged as the caller's.
func (sp *splicer) adopt() {
	sp.adopted = true
	for _, data := range sp.pending {
		sp.b.track.event(sseEvent{data: data}, false)
	}
	sp.pending = nil
}

// rewrite takes one chunk of the new stream: what the caller has is cut out, the rest gets the first
// region's identity. keep is false when nothing of it is new to the caller.
func (sp *splicer) rewrite(data []byte) (out []byte, keep bool, outcome, why string) {
	root := gjson.ParseBytes(data)
	choices := root.Get("choices").Array()
	type edit struct {
		path string
		del  bool
		text string
		raw  string
	}
	var edits []edit
	kept := 0
	dropChoice := make([]bool, len(choices))
	for j, c := range choices {
		i := int(c.Get("index").Int())
		if i < 0 || i >= len(sp.v) {
			return nil, false, ResumeDiverged, "a choice index the caller never had"
		}
		segs, ok := choiceSegments(c, sp.segs[:0])
		sp.segs = segs
		if !ok {
			return nil, false, ResumeFailed, "output the engine cannot compare"
		}
		v := &sp.v[i]
		pre := "choices." + strconv.Itoa(j) + "."
		anyKept := false
		for _, s := range segs {
			act, cut, o, w := v.take(s)
			if o != ResumeOK {
				return nil, false, o, w
			}
			switch act {
			case segDrop:
				edits = append(edits, edit{path: pre + s.path, del: true})
				if s.name && s.tool >= 0 {
					tp := pre + "delta.tool_calls." + strconv.Itoa(s.tool) + "."
					edits = append(edits, edit{path: tp + "id", del: true}, edit{path: tp + "type", del: true})
				}
			case segTrim:
				edits = append(edits, edit{path: pre + s.path, text: s.text[cut:]})
				anyKept = true
			default:
				anyKept = true
			}
		}
		fr := c.Get("finish_reason")
		if fr.Type == gjson.String && fr.Str != "" {
			switch {
			case !v.done || v.pos != v.target && v.finish != "":
				return nil, false, ResumeDiverged, "the region's answer ended before it caught up with the caller's"
			case v.finish != "" && fr.Str != v.finish:
				return nil, false, ResumeDiverged, "the region's answer ended differently"
			case v.finish != "":
				edits = append(edits, edit{path: pre + "finish_reason", raw: "null"}) // the caller has it
			default:
				anyKept = true
			}
		}
		if v.finish != "" && anyKept && len(segs) > 0 {
			return nil, false, ResumeDiverged, "the region's answer goes on where the caller's had ended"
		}
		if len(segs) == 0 && !(fr.Type == gjson.String && fr.Str != "") && v.done && v.finish == "" {
			anyKept = true // a chunk of annotations after the splice
		}
		if !anyKept {
			dropChoice[j] = true
			continue
		}
		kept++
	}
	if kept == 0 {
		if u := root.Get("usage"); !u.Exists() || u.Type == gjson.Null || len(choices) > 0 {
			return nil, false, ResumeOK, ""
		}
	}
	out = append([]byte(nil), data...)
	var err error
	for _, e := range edits {
		switch {
		case e.del:
			out, err = sjson.DeleteBytes(out, e.path)
		case e.raw != "":
			out, err = sjson.SetRawBytes(out, e.path, []byte(e.raw))
		default:
			out, err = sjson.SetBytes(out, e.path, e.text)
		}
		if err != nil {
			return nil, false, ResumeFailed, err.Error()
		}
	}
	for j := len(choices) - 1; j >= 0; j-- {
		if dropChoice[j] {
			if out, err = sjson.DeleteBytes(out, "choices."+strconv.Itoa(j)); err != nil {
				return nil, false, ResumeFailed, err.Error()
			}
		}
	}
	if m := sp.meta; m.set {
		for _, f := range [...]struct {
			key string
			raw []byte
		}{{"id", m.id}, {"created", m.created}, {"model", m.model}, {"system_fingerprint", m.fingerprint}} {
			if f.raw == nil {
				out, err = sjson.DeleteBytes(out, f.key)
			} else {
				out, err = sjson.SetRawBytes(out, f.key, f.raw)
			}
			if err != nil {
				return nil, false, ResumeFailed, err.Error()
			}
		}
	}
	return out, true, ResumeOK, ""
}

// What a segment of the new stream is to the caller.
const (
	segKeep = iota // new to the caller
	segDrop        // the caller has it
	segTrim        // the caller has its start: the text from cut on is new
)

// take checks one segment of the new stream against what the caller has of the choice.
func (v *verifyChoice) take(s segment) (act, cut int, outcome, why string) {
	m := ""
	if s.field != v.ch {
		m = marker(s.field)
	}
	v.ch = s.field
	if v.done {
		return segKeep, 0, ResumeOK, ""
	}
	total := int64(len(m) + len(s.text))
	if v.pos+total <= v.target {
		v.h.WriteString(m)
		v.h.WriteString(s.text)
		v.pos += total
		if v.pos == v.target {
			if o, w := v.check(); o != ResumeOK {
				return 0, 0, o, w
			}
		}
		return segDrop, 0, ResumeOK, ""
	}
	need := v.target - v.pos
	if need < int64(len(m)) {
		return 0, 0, ResumeDiverged, "the region's answer differs from the caller's"
	}
	cut = int(need) - len(m)
	v.h.WriteString(m)
	v.h.WriteString(s.text[:cut])
	v.pos = v.target
	if o, w := v.check(); o != ResumeOK {
		return 0, 0, o, w
	}
	return segTrim, cut, ResumeOK, ""
}

func (v *verifyChoice) check() (outcome, why string) {
	if v.h.Sum64() != v.sum {
		return ResumeDiverged, "the region's answer differs from the caller's"
	}
	v.done = true
	return ResumeOK, ""
}
