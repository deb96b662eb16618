package failover

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
)

// Stream resume (SPEC.md section 9). When a region fails a chat/completions or completions stream after
// the caller got bytes, the request is restarted in another region and the caller gets the rest in the
// same stream, or, when that cannot be proven consistent, the explicit error event: never a spliced
// answer.
//
//   - replay (default): the new region answers the same request from the start; its output must repeat
//     what the caller already has, character for character (per choice: content, refusal, tool and
//     function calls, and the finish_reason of a finished choice). That part is swallowed; the rest goes
//     on in the stream. Deterministic answers (a seed, temperature 0, an answer cache) make this work;
//     an answer that differs ends the stream with the error event.
//   - prefill: for a deployment marked `prefill: true`, the partial answer is sent as a trailing
//     assistant message (for completions, appended to the prompt) and the region's output is the rest.
//     Other deployments are resumed by replay. A region that rejects the prefill never hides the first
//     region's error: the next region is tried, and if none serves, the caller gets that error.
//   - off: the stream ends with the error event.
//
// The caller waits at most Streams.ResumeTimeout for the splice (no events arrive meanwhile). Every
// chunk of the rest carries the first region's id, created, model and system_fingerprint, so SDK
// accumulators see one stream, and the stream carries the comment `: lifeline resumed <from> -> <to>`
// where the splice is. Responses streams, requests with logprobs, events larger than the engine holds
// and output it cannot compare (audio) are not resumed.

// Resume modes for StreamsPolicy.Resume.
const (
	ResumeReplay  = "replay"
	ResumePrefill = "prefill"
	ResumeOff     = "off"
)

// Resume outcomes: ResumeEvent.Outcome and the outcome label of lifeline_stream_resumes_total.
const (
	ResumeOK          = "ok"          // the stream goes on from the new region
	ResumeDiverged    = "diverged"    // the new region's answer did not repeat what the caller had
	ResumeFailed      = "failed"      // the new region failed (or refused the prefill) before the splice
	ResumeTimedOut    = "timeout"     // Streams.ResumeTimeout passed before the splice
	ResumeNoRegion    = "no_region"   // no other region could take the request
	ResumeUnsupported = "unsupported" // this stream cannot be resumed (ResumeEvent.Reason says why)
)

// maxResumes bounds the resumes of one stream.
const maxResumes = 2

// ResumeEvent is sent for each resume tried.
type ResumeEvent struct {
	Name     string
	From, To string // To is "" when no region was tried
	Mode     string // ResumeReplay or ResumePrefill
	Outcome  string
	Reason   string        // for ResumeUnsupported and failures: why
	Wait     time.Duration // from the failure to the splice, or to giving up
	// Early: the resume started while the first region's stream was still waiting, quiet past the
	// quiet bound (quiet.go); Wait is then from the caller's last event to the splice.
	Early bool
}

// errResumeTimeout ends a resume attempt that did not reach the splice within Streams.ResumeTimeout.
var errResumeTimeout = errors.New("resume took longer than policy.streams.resume_timeout")

// resumable reports whether a stream of this request may be resumed at all, and keeps its log.
func (rt *roundTrip) resumable() bool {
	if rt.p.Streams.Resume == ResumeOff || !rt.in.stream {
		return false
	}
	switch rt.in.op {
	case "chat/completions", "completions":
	default:
		return false
	}
	return true
}

// resumingBody is the caller's body of a resumable stream: the first region's stream, then, after a
// resume, a splicer over another region's.
type resumingBody struct {
	rt      *roundTrip
	cur     io.ReadCloser   // what the caller reads now
	src     *streamBody     // the stream under cur
	track   *choicesTracker // the caller's view: completeness and the log
	region  *region         // the region the caller's stream comes from now
	failed  []*region       // regions that broke this stream
	resumes int
	err     error

	hedge     atomic.Pointer[quietHedge] // the early resume in flight or done (quiet.go)
	hedgeUsed atomic.Bool                // one early resume per stream
}

func (b *resumingBody) Read(p []byte) (int, error) {
	for {
		if b.err != nil {
			return 0, b.err
		}
		n, err := b.cur.Read(p)
		var se *StreamError
		broke := err != nil && errors.As(err, &se)
		if (n > 0 || err != nil && !broke) && b.hedge.Load() != nil {
			if h := b.hedge.Swap(nil); h != nil {
				h.lose() // the first region went on, or the stream ended: the early resume lost
			}
		}
		if !broke {
			if err != nil && err != io.EOF {
				b.err = err
			}
			return n, err
		}
		if err := b.resume(se); err != nil {
			b.err = err
			return n, err
		}
		if n > 0 {
			return n, nil
		}
	}
}

func (b *resumingBody) Close() error {
	if h := b.hedge.Swap(nil); h != nil {
		h.lose()
	}
	err := b.cur.Close()
	if b.cur != io.ReadCloser(b.src) {
		b.src.Close()
	}
	return err
}

// cannotResume says why the stream cannot be resumed now ("" if it can).
func (b *resumingBody) cannotResume() string {
	switch {
	case b.rt.ctx.Err() != nil:
		return "the caller went away"
	case b.src.midEvent:
		return "the caller holds part of an event larger than the engine holds back"
	case b.track.log == nil:
		return "no log"
	case b.track.log.broken != "":
		return b.track.log.broken
	case b.resumes >= maxResumes:
		return "resumed " + strconv.Itoa(maxResumes) + " times already"
	}
	return ""
}

// resume restarts the request in another region after se broke the caller's stream. It returns nil
// when the stream goes on, else the error the caller gets (se, with what the resume came to).
func (b *resumingBody) resume(se *StreamError) error {
	rt := b.rt
	b.failed = append(b.failed, b.region)
	if why := b.cannotResume(); why != "" {
		if h := b.hedge.Swap(nil); h != nil {
			h.lose()
		}
		if rt.ctx.Err() == nil {
			rt.t.obs.Resume(ResumeEvent{Name: rt.name, From: se.Region, Outcome: ResumeUnsupported, Reason: why})
			se.Resume = "not resumed: " + why
		}
		return se
	}
	start := time.Now()
	if h := b.hedge.Swap(nil); h != nil {
		sp, ev := h.claim()
		switch {
		case sp != nil && b.adopt(sp, h, ev):
			return nil
		case ev.Outcome == ResumeDiverged:
			ev.Wait = time.Since(time.Unix(0, h.read))
			rt.t.obs.Resume(ev)
			se.Resume = ev.Outcome + " in " + ev.To + ": " + ev.Reason
			return se
		case ev.Outcome == ResumeFailed:
			b.failed = append(b.failed, h.tried...) // they failed this request already
		}
	}
	deadline := start.Add(rt.p.Streams.ResumeTimeout)
	last := ResumeEvent{Name: rt.name, From: se.Region, Outcome: ResumeNoRegion, Reason: "no other region could take the request"}
	for _, r := range b.plan() {
		if time.Now().After(deadline) {
			last = ResumeEvent{Name: rt.name, From: se.Region, To: r.cfg.Name, Outcome: ResumeTimedOut, Reason: errResumeTimeout.Error()}
			break
		}
		ev, sp := b.try(r, se.Region, deadline, nil)
		if ev.Outcome == "" {
			continue // out of service: not tried
		}
		ev.Wait = time.Since(start)
		rt.t.obs.Resume(ev)
		if sp != nil {
			sp.adopt()
			b.cur, b.src, b.region = sp, sp.src, r
			b.resumes++
			return nil
		}
		last = ev
		if ev.Outcome == ResumeDiverged || ev.Outcome == ResumeTimedOut || rt.ctx.Err() != nil {
			break // another region would answer differently too, or the caller has waited long enough
		}
	}
	if last.Outcome == ResumeNoRegion {
		last.Wait = time.Since(start)
		rt.t.obs.Resume(last)
	}
	se.Resume = last.Outcome
	if last.To != "" {
		se.Resume += " in " + last.To
	}
	if last.Reason != "" {
		se.Resume += ": " + last.Reason
	}
	return se
}

// plan is the regions a resume may go to, in the order a new request would try them, without those
// that broke this stream.
func (b *resumingBody) plan() []*region { return b.planWithout(b.failed...) }

// planWithout is the regions a resume may go to, without those given.
func (b *resumingBody) planWithout(without ...*region) []*region {
	rt := b.rt
	var buf [maxCandidates]*region
	all := rt.t.order(buf[:0], rt.tab.names[rt.name], rt.p, rt.name, rt.t.clock.Now())
	out := make([]*region, 0, len(all))
	for _, r := range all {
		if !slices.Contains(without, r) {
			out = append(out, r)
		}
	}
	return out
}

// adopt makes an early resume's result the caller's stream, if the caller has nothing more than
// when it was made (else the result is dropped, and false).
func (b *resumingBody) adopt(sp *splicer, h *quietHedge, ev ResumeEvent) bool {
	if sp.ver != b.track.log.ver {
		sp.Close()
		return false
	}
	sp.adopt()
	ev.Wait = time.Since(time.Unix(0, h.read))
	b.rt.t.obs.Resume(ev)
	b.cur, b.src, b.region = sp, sp.src, h.tried[len(h.tried)-1]
	b.resumes++
	return true
}

// try sends the request to r for a resume and reads its stream up to the splice. It returns the
// splicer to read on from, or nil and what happened (no Outcome when r could not be tried).
// An early resume (h not nil) runs while the caller's stream may still go on: it takes r only if r
// is available now, without noting why not (the caller's goroutine owns those notes), and can be
// cancelled through h.
func (b *resumingBody) try(r *region, from string, deadline time.Time, h *quietHedge) (ResumeEvent, *splicer) {
	rt := b.rt
	ev := ResumeEvent{Name: rt.name, From: from, To: r.cfg.Name, Mode: ResumeReplay}
	tg := r.targets[rt.name]
	var tk ticket
	ok := false
	if h == nil {
		tk, ok = rt.admit(r, tg)
	} else {
		var to *region
		to, tk = rt.firstAvailable([]*region{r}, nil, rt.t.clock.Now())
		ok = to != nil
	}
	if !ok {
		return ev, nil // Outcome "": not tried
	}
	a := rt.newAttempt(r, tg, tk, false)
	a.resumeFrom = from
	if h != nil {
		h.tried = append(h.tried, r)
		if !h.bind(a) {
			a.cancel(errHedgeSettled)
		}
	}
	log := b.track.log
	log.mu.Lock()
	text, ok := log.prefillText()
	log.mu.Unlock()
	if ok && rt.p.Streams.Resume == ResumePrefill && r.cfg.Prefill[rt.name] {
		if tf := prefillTransform(rt.in.op, text); tf != nil {
			ev.Mode, a.transform = ResumePrefill, tf
		}
	}
	var src atomic.Pointer[streamBody]
	timer := time.AfterFunc(time.Until(deadline), func() {
		if sb := src.Load(); sb != nil {
			sb.closed.Store(true) // our bound, not the region's failure
		}
		a.cancel(errResumeTimeout)
	})
	defer timer.Stop()
	res := a.run()
	if res.resp == nil {
		ev.Outcome, ev.Reason = ResumeFailed, res.verdict.Outcome.String()
		if context.Cause(a.ctx) == errResumeTimeout {
			ev.Outcome, ev.Reason = ResumeTimedOut, errResumeTimeout.Error()
		}
		return ev, nil
	}
	sb, ok := res.resp.Body.(*streamBody)
	if res.resp.StatusCode != http.StatusOK || !ok {
		// A region that refuses the request (a prefill it does not take) never hides the first region's error.
		res.resp.Body.Close()
		ev.Outcome, ev.Reason = ResumeFailed, "the region answered "+strconv.Itoa(res.resp.StatusCode)
		return ev, nil
	}
	src.Store(sb)
	if h != nil {
		h.bindStream(sb)
	}
	if context.Cause(a.ctx) == errResumeTimeout {
		sb.closed.Store(true)
	}
	sp := newSplicer(b, sb, ev.Mode == ResumePrefill, from, r.cfg.Name)
	if outcome, why := sp.prime(); outcome != ResumeOK {
		sb.Close()
		if context.Cause(a.ctx) == errResumeTimeout {
			outcome, why = ResumeTimedOut, errResumeTimeout.Error()
		}
		ev.Outcome, ev.Reason = outcome, why
		return ev, nil
	}
	ev.Outcome = ResumeOK
	return ev, sp
}

// prefillTransform returns the body change of a prefill for op, or nil when the request cannot take one.
func prefillTransform(op, text string) func([]byte) ([]byte, error) {
	switch op {
	case "chat/completions":
		msg := appendJSONString([]byte(`{"role":"assistant","content":`), text)
		msg = append(msg, '}')
		return func(body []byte) ([]byte, error) { return sjson.SetRawBytes(body, "messages.-1", msg) }
	case "completions":
		return func(body []byte) ([]byte, error) {
			p := gjson.GetBytes(body, "prompt")
			if p.Type != gjson.String {
				return nil, errors.New("prompt is not a string")
			}
			return sjson.SetBytes(body, "prompt", p.Str+text)
		}
	}
	return nil
}

// transformBody applies tf to the body of an outgoing request.
func transformBody(out *http.Request, tf func([]byte) ([]byte, error)) error {
	var body []byte
	if out.GetBody != nil {
		rc, err := out.GetBody()
		if err != nil {
			return err
		}
		body, err = io.ReadAll(rc)
		if err != nil {
			return err
		}
	}
	nb, err := tf(body)
	if err != nil {
		return err
	}
	out.ContentLength = int64(len(nb))
	out.Body = io.NopCloser(bytes.NewReader(nb))
	out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(nb)), nil }
	return nil
}

// wantsLogprobs reports whether a chat/completions or completions request asks for logprobs.
func wantsLogprobs(body []byte) bool {
	if !bytes.Contains(body, []byte(`"logprobs"`)) {
		return false
	}
	lp := gjson.GetBytes(body, "logprobs")
	return lp.Type == gjson.True || lp.Type == gjson.Number && lp.Num > 0
}
