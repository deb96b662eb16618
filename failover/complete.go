package failover

import (
	"bytes"

	"github.com/tidwall/gjson"
)

// Completeness (SPEC.md section 9): a chat/completions or completions stream is complete when every
// choice has a finish_reason and the stream ended cleanly, whether or not `data: [DONE]` followed; a
// Responses stream is complete at response.completed, response.incomplete or response.failed. Any
// other stream is complete when it ends cleanly. A stream that ends before it is complete is
// truncated: it fails its attempt (stream_error) and is never passed off as a finished answer.

// tracker follows the events of one stream to tell whether it is complete.
type tracker interface {
	// event is called with each whole event, in order. partial is set for the first piece of an event
	// too large to hold, which is all of it the tracker sees.
	event(ev sseEvent, partial bool)
	complete() bool
}

// maxChoices bounds the `n` the engine tracks; a request asking for more is tracked up to it.
const maxChoices = 128

// newTracker returns the tracker for a stream of op, for a request asking for n choices.
func newTracker(op string, n int) tracker {
	switch op {
	case "chat/completions", "completions":
		return &choicesTracker{want: min(max(n, 1), maxChoices)}
	case "responses":
		return &responsesTracker{}
	}
	return endTracker{}
}

// endTracker: a stream with no end marker of its own is complete when it ends cleanly.
type endTracker struct{}

func (endTracker) event(sseEvent, bool) {}
func (endTracker) complete() bool       { return true }

// choicesTracker follows a chat/completions or completions stream: which choices have a
// finish_reason, and whether data: [DONE] came.
type choicesTracker struct {
	want     int
	finished []bool // by choice index
	nDone    int
	sawDone  bool
	log      *replayLog // what the caller got, for a resume; nil when the stream cannot be resumed
}

var doneData = []byte("[DONE]")

func (t *choicesTracker) event(ev sseEvent, partial bool) {
	if len(ev.data) == 0 {
		return
	}
	if bytes.Equal(ev.data, doneData) {
		t.sawDone = true
		return
	}
	if partial || ev.data[0] != '{' {
		if t.log != nil {
			t.log.mu.Lock()
			t.log.broken = "an event the engine could not read whole"
			t.log.ver++
			t.log.mu.Unlock()
		}
		return
	}
	if t.log != nil {
		t.log.mu.Lock()
		t.log.chunk(ev.data)
		t.log.ver++
		t.log.mu.Unlock()
	}
	gjson.GetBytes(ev.data, "choices").ForEach(func(_, c gjson.Result) bool {
		fr := c.Get("finish_reason")
		if fr.Type != gjson.String || fr.Str == "" {
			return true
		}
		i := int(c.Get("index").Int())
		if i < 0 || i >= t.want {
			return true
		}
		if t.finished == nil {
			t.finished = make([]bool, t.want)
		}
		if !t.finished[i] {
			t.finished[i] = true
			t.nDone++
		}
		return true
	})
}

func (t *choicesTracker) complete() bool { return t.sawDone || t.nDone >= t.want }

// responsesTracker follows a Responses API stream to its terminal event.
type responsesTracker struct{ done bool }

var (
	responsesDoneEvents = [...]string{"response.completed", "response.incomplete", "response.failed"}
	typePrefix          = []byte(`"type"`)
)

func (t *responsesTracker) event(ev sseEvent, _ bool) {
	if t.done {
		return
	}
	name := ev.name
	if len(name) == 0 && bytes.Contains(ev.data, typePrefix) {
		// Without an `event:` line the type is in the data (also in the first piece of a large event:
		// `type` comes first in every Responses event).
		name = []byte(gjson.GetBytes(ev.data, "type").Str)
	}
	for _, d := range responsesDoneEvents {
		if string(name) == d {
			t.done = true
			return
		}
	}
}

func (t *responsesTracker) complete() bool { return t.done }

// choicesWanted reads `n` of a chat/completions or completions request body (1 when absent).
func choicesWanted(body []byte) int {
	if !bytes.Contains(body, []byte(`"n"`)) {
		return 1
	}
	n := gjson.GetBytes(body, "n")
	if n.Type != gjson.Number || n.Int() < 1 {
		return 1
	}
	return int(min(n.Int(), maxChoices))
}
