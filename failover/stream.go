package failover

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"sync/atomic"
	"time"
)

// errIdle is the cause set on an attempt's context when its body went quiet for too long.
var errIdle = errors.New("idle")

// doneMarker ends an OpenAI SSE stream of chat/completions or completions.
const doneMarker = "data: [DONE]"

// guardedBody is the body of a response handed to the caller. It bounds the gap a Read
// may wait for the region (timeouts.stream_idle), turns a failure after the headers into a
// *StreamError (never io.EOF), requires data: [DONE] at the end of an SSE chat/completions or
// completions stream, and reports the attempt's end to the breaker and observers once.
type guardedBody struct {
	a        *attempt
	rc       io.ReadCloser
	prefix   []byte
	status   int
	latency  time.Duration
	idle     time.Duration
	idleT    *time.Timer
	needDone bool
	sawDone  atomic.Bool
	tail     [len(doneMarker) - 1]byte
	tailN    int
	done     atomic.Bool
	err      error // sticky stream error
}

func newGuardedBody(a *attempt, resp *http.Response, prefix []byte, lat time.Duration) *guardedBody {
	g := &guardedBody{
		a: a, rc: resp.Body, prefix: prefix, status: resp.StatusCode, latency: lat,
		idle:     a.rt.p.Timeouts.StreamIdle,
		needDone: a.rt.in.needDone && isEventStream(resp.Header) && resp.Header.Get("Content-Encoding") == "",
	}
	g.idleT = time.AfterFunc(time.Hour, func() { a.cancel(errIdle) })
	g.idleT.Stop()
	g.scan(prefix)
	return g
}

func (g *guardedBody) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	if len(g.prefix) > 0 {
		n := copy(p, g.prefix)
		g.prefix = g.prefix[n:]
		if len(g.prefix) == 0 {
			g.prefix = nil // let the peek buffer go: a stream can last minutes
		}
		return n, nil
	}
	g.idleT.Reset(g.idle)
	n, err := g.rc.Read(p)
	g.idleT.Stop()
	if n > 0 {
		g.scan(p[:n])
	}
	switch {
	case err == nil:
		return n, nil
	case err == io.EOF && (!g.needDone || g.sawDone.Load()):
		g.finish(OutcomeOK, nil)
		return n, io.EOF
	case err == io.EOF:
		err = ErrStreamTruncated
	case g.a.rt.ctx.Err() != nil || g.done.Load():
		// The caller went away or closed the body: not the region's fault.
		g.finish(OutcomeCanceled, err)
		return n, err
	case context.Cause(g.a.ctx) == errIdle:
		err = ErrStreamIdle
	}
	g.err = &StreamError{Region: g.a.r.cfg.Name, Err: err}
	g.finish(OutcomeStreamError, g.err)
	return n, g.err
}

// scan looks for data: [DONE], also across read boundaries.
func (g *guardedBody) scan(b []byte) {
	if !g.needDone || g.sawDone.Load() || len(b) == 0 {
		return
	}
	const m = len(doneMarker) - 1
	var joint [2 * m]byte
	j := copy(joint[:], g.tail[:g.tailN])
	j += copy(joint[j:], b[:min(len(b), m)])
	if bytes.Contains(joint[:j], []byte(doneMarker)) || bytes.Contains(b, []byte(doneMarker)) {
		g.sawDone.Store(true)
		return
	}
	if len(b) >= m {
		g.tailN = copy(g.tail[:], b[len(b)-m:])
		return
	}
	g.tailN = copy(g.tail[:], joint[max(0, j-m):j])
}

func (g *guardedBody) Close() error {
	outcome := OutcomeOK
	if g.needDone && !g.sawDone.Load() {
		outcome = OutcomeCanceled // the caller stopped reading before the end
	}
	g.finish(outcome, nil)
	return g.rc.Close()
}

// finish reports the attempt's end once: to the breaker when the stream failed, and to observers.
func (g *guardedBody) finish(o Outcome, err error) {
	if !g.done.CompareAndSwap(false, true) {
		return
	}
	g.idleT.Stop()
	a := g.a
	now := a.rt.t.clock.Now()
	switch o {
	case OutcomeStreamError:
		tr := a.r.h.breaker.record(now, false, true, false)
		a.rt.t.emitState(a.r.cfg.Name, tr, now)
	case OutcomeOK:
		a.r.h.breaker.countSuccess(now)
	}
	a.cancel(nil)
	a.finished(Verdict{Outcome: o}, g.status, g.latency, now.Sub(a.start), err)
}
