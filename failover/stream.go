package failover

import (
	"context"
	"errors"
	"io"
	"sync/atomic"
	"time"
)

// errIdle is the cause set on an attempt's context when its body went quiet for StreamIdle;
// errQuietCut when it went quiet for the quiet bound in a deployment seen stalling (quiet.go).
var (
	errIdle     = errors.New("idle")
	errQuietCut = errors.New("quiet in a deployment seen stalling")
)

// maxHeldEvent bounds the bytes of one SSE event the engine holds back until the event is whole.
// Events are held so that the caller never gets half an event (which is what makes a cut stream
// resumable and its error event stand on its own); a larger event (a Responses event carrying a
// whole long answer, a partial image) is passed on in pieces.
const maxHeldEvent = 64 << 10

// bodyGuard is what both response bodies share: the attempt, the idle bound on every read of the
// region, and the one report of the attempt's end.
type bodyGuard struct {
	a       *attempt
	rc      io.ReadCloser
	status  int
	latency time.Duration
	idle    time.Duration
	idleT   *time.Timer
	closed  atomic.Bool
	err     error // sticky

	// Streams only (quiet.go): quiet is the bound on a read once the deployment was seen stalling (0:
	// none); readStart is when the read in progress began (unix nanos, 0: none); longest is the
	// longest read so far.
	quiet     time.Duration
	readStart atomic.Int64
	longest   time.Duration
	// onQuiet, when set, is called (on the timer's goroutine) once per read that has waited the quiet
	// bound in a deployment not seen stalling: the early resume (quiet.go). quietRead is the read it
	// was called for.
	onQuiet   func(read int64)
	quietRead int64
}

func (g *bodyGuard) init(a *attempt, rc io.ReadCloser, status int, lat time.Duration) {
	g.a, g.rc, g.status, g.latency = a, rc, status, lat
	g.idle = a.rt.p.Timeouts.StreamIdle
	g.idleT = time.AfterFunc(time.Hour, g.expire)
	g.idleT.Stop()
}

// read reads from the region within the idle bound.
func (g *bodyGuard) read(p []byte) (int, error) {
	if g.quiet == 0 {
		g.idleT.Reset(g.idle)
		n, err := g.rc.Read(p)
		g.idleT.Stop()
		return n, err
	}
	start := time.Now()
	g.readStart.Store(start.UnixNano())
	g.idleT.Reset(g.quiet)
	n, err := g.rc.Read(p)
	g.readStart.Store(0)
	g.idleT.Stop()
	g.longest = max(g.longest, time.Since(start))
	return n, err
}

// expire runs when a read has waited its bound: the idle timeout, or, for a stream, the quiet bound,
// which ends the read only if the deployment has been seen stalling; otherwise the read waits on.
func (g *bodyGuard) expire() {
	a := g.a
	if g.quiet == 0 {
		a.cancel(errIdle)
		return
	}
	start := g.readStart.Load()
	if start == 0 {
		return // the read ended meanwhile
	}
	now := time.Now()
	waited := now.Sub(time.Unix(0, start))
	if waited >= g.idle {
		a.cancel(errIdle)
		return
	}
	if waited >= g.quiet && a.tg.state.stalled(a.rt.t.clock.Now()) {
		a.cancel(errQuietCut)
		return
	}
	next := g.quiet
	if waited >= g.quiet && g.onQuiet != nil {
		if g.quietRead != start {
			g.quietRead = start
			g.onQuiet(start)
		}
		// An early resume may mark the deployment as seen stalling any moment now: look again soon.
		next = max(g.quiet/4, 100*time.Millisecond)
	}
	g.idleT.Reset(min(g.idle-waited, next))
}

// failure turns a read error into the caller's error and ends the attempt: canceled when the caller
// went away or closed the body, else a *StreamError that counts against the region.
func (g *bodyGuard) failure(err error) error {
	a := g.a
	if a.rt.ctx.Err() != nil || g.closed.Load() || context.Cause(a.ctx) == errHedgeSettled {
		g.finish(OutcomeCanceled, err) // the caller went away, or we no longer want this answer
		return err
	}
	if err == io.EOF {
		err = ErrStreamTruncated
	} else if c := context.Cause(a.ctx); c == errIdle || c == errQuietCut || c == errQuietLost {
		err = ErrStreamIdle
		if c != errIdle {
			err = ErrStreamQuiet
		}
		if c != errQuietLost && g.quiet != 0 {
			a.tg.state.stall(a.rt.t.clock.Now())
		}
	}
	g.err = &StreamError{Region: a.r.cfg.Name, Err: err}
	g.finish(OutcomeStreamError, g.err)
	return g.err
}

// finish reports the attempt's end once.
func (g *bodyGuard) finish(o Outcome, err error) {
	g.idleT.Stop()
	v := Verdict{Outcome: o}
	if o == OutcomeStreamError {
		v.Scope = ScopeRegion
	}
	if g.a.end(v, g.status, g.latency, err) {
		g.a.cancel(nil)
	}
}

// jsonBody is the body of a delivered response that is not an event stream: it bounds each read by
// timeouts.stream_idle, turns a failure into a *StreamError (never io.EOF), and ends the attempt at
// EOF (ok), on a failure (stream_error) or when the caller closes it (ok: the region answered).
type jsonBody struct{ bodyGuard }

func newJSONBody(a *attempt, rc io.ReadCloser, status int, lat time.Duration) *jsonBody {
	b := &jsonBody{}
	b.init(a, rc, status, lat)
	return b
}

func (b *jsonBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	n, err := b.read(p)
	switch {
	case err == nil:
		return n, nil
	case err == io.EOF:
		b.finish(OutcomeOK, nil)
		return n, io.EOF
	}
	return n, b.failure(err)
}

func (b *jsonBody) Close() error {
	b.closed.Store(true)
	b.finish(OutcomeOK, nil)
	return b.rc.Close()
}

// streamBody is the body of a delivered event stream. It passes whole events to the caller as they
// arrive (holding back the start of an event until its end comes, up to maxHeldEvent), follows them
// with a tracker to know whether the stream is complete (SPEC.md section 9), and ends the attempt
// once: ok when the stream ended complete, stream_error when it ended truncated, went idle or broke
// (the caller then gets a *StreamError, never io.EOF), canceled when the caller closed it before the
// end.
type streamBody struct {
	bodyGuard
	track tracker

	// buf[off:ready] is ready for the caller; buf[ready:] is the start of an event not yet whole.
	buf        []byte
	peek       *[]byte // the pooled first-bytes buffer while buf may still be it (attempt.deliver)
	off, ready int
	midEvent   bool  // the caller got part of an event whose end has not come
	skipToEnd  bool  // the bytes up to the next event end belong to an event passed on in pieces
	pending    error // a read error to act on once the bytes before it are given out
	ended      bool
}

func newStreamBody(a *attempt, rc io.ReadCloser, status int, lat time.Duration, first []byte, tk tracker) *streamBody {
	b := &streamBody{track: tk}
	b.init(a, rc, status, lat)
	b.quiet = a.rt.quietBound(a.tg)
	b.feed(first)
	return b
}

// feed takes the first bytes the region sent, read before the body was made.
func (b *streamBody) feed(first []byte) {
	if len(first) > 0 {
		b.buf = first
		b.scanHeld(0)
	}
}

func (b *streamBody) Read(p []byte) (int, error) {
	for {
		if b.off < b.ready {
			n := copy(p, b.buf[b.off:b.ready])
			b.off += n
			if b.off == b.ready {
				b.compact()
			}
			return n, nil
		}
		if b.err != nil {
			return 0, b.err
		}
		if b.ended {
			return 0, io.EOF
		}
		if b.pending != nil {
			if err := b.end(b.pending); err != nil {
				return 0, err
			}
			continue
		}
		if len(b.buf) == 0 && len(p) >= 512 {
			if n := b.readInto(p); n > 0 {
				return n, nil
			}
			continue
		}
		b.readHeld()
	}
}

// readInto reads from the region straight into p (nothing is held) and returns how many bytes of p
// are whole events for the caller; the start of an unfinished event moves to the held buffer.
func (b *streamBody) readInto(p []byte) int {
	n, err := b.read(p)
	if err != nil {
		b.pending = err
	}
	cut := lastEventEnd(p[:n], 0)
	b.events(p[:cut])
	if cut < n {
		b.buf = append(b.buf[:0], p[cut:n]...)
		b.off, b.ready = 0, 0
	}
	return cut
}

// readHeld reads from the region after the held bytes, and makes ready the events it completes. An
// event that outgrows maxHeldEvent is made ready as it is: it goes to the caller in pieces.
func (b *streamBody) readHeld() {
	if len(b.buf) == cap(b.buf) {
		if len(b.buf) >= maxHeldEvent {
			b.passPiece()
			return
		}
		nb := make([]byte, len(b.buf), min(max(2*cap(b.buf), 4<<10), maxHeldEvent))
		copy(nb, b.buf)
		b.buf = nb
		b.givePeek()
	}
	from := len(b.buf)
	n, err := b.read(b.buf[from:cap(b.buf)])
	b.buf = b.buf[:from+n]
	if err != nil {
		b.pending = err
	}
	b.scanHeld(from - 2)
}

// scanHeld makes ready the whole events held in buf (a terminator may start at from at the earliest).
func (b *streamBody) scanHeld(from int) {
	cut := lastEventEnd(b.buf, max(from, b.ready))
	if cut > b.ready {
		b.events(b.buf[b.ready:cut])
		b.ready = cut
	}
}

// passPiece gives out the held start of an event too large to hold; the tracker sees that piece.
func (b *streamBody) passPiece() {
	if !b.skipToEnd {
		b.track.event(parseEvent(b.buf[b.ready:]), true)
	}
	b.ready = len(b.buf)
	b.midEvent, b.skipToEnd = true, true
}

// events feeds whole events to the tracker.
func (b *streamBody) events(p []byte) {
	if len(p) > 0 {
		b.midEvent = false
	}
	for len(p) > 0 {
		e := eventEnd(p, 0)
		if e < 0 {
			e = len(p)
		}
		if b.skipToEnd {
			b.skipToEnd = false // the end of an event the tracker saw the start of
		} else {
			b.track.event(parseEvent(p[:e]), false)
		}
		p = p[e:]
	}
}

// compact drops what the caller has read, keeping the start of an unfinished event. A buffer left
// empty goes: a stream can wait minutes for its next event, and until a read ends mid-event the
// next reads go straight into the caller's buffer (Read). The first bytes' buffer (streamPeek) is
// let go this way once the caller has them.
func (b *streamBody) compact() {
	rest := copy(b.buf, b.buf[b.ready:])
	b.buf = b.buf[:rest]
	b.off, b.ready = 0, 0
	if rest == 0 {
		b.buf = nil
		b.givePeek()
	}
}

// givePeek gives the first-bytes buffer back to its pool once buf no longer uses it.
func (b *streamBody) givePeek() {
	if b.peek != nil {
		peekBufs.Put(b.peek)
		b.peek = nil
	}
}

// end acts on the region's read error once every whole event before it was given out.
func (b *streamBody) end(err error) error {
	b.pending = nil
	if err == io.EOF && len(b.buf) > b.ready {
		// The region ended without a final blank line: what it sent last is its last event. It goes to
		// the caller, terminated, only if it completes the stream.
		tail := b.buf[b.ready:]
		if !b.skipToEnd {
			b.track.event(parseEvent(tail), false)
		}
		if !b.track.complete() {
			b.buf = b.buf[:b.ready]
			return b.failure(err)
		}
		if tail[len(tail)-1] != '\n' {
			b.buf = append(b.buf, '\n')
		}
		b.buf = append(b.buf, '\n')
		b.ready = len(b.buf)
		b.ended = true
		b.learn()
		b.finish(OutcomeOK, nil)
		return nil
	}
	if err == io.EOF && b.track.complete() {
		b.ended = true
		b.learn()
		b.finish(OutcomeOK, nil)
		return io.EOF
	}
	return b.failure(err)
}

// learn tells the deployment that one of its streams ended complete, and its longest wait (quiet.go).
func (b *streamBody) learn() {
	if b.quiet != 0 {
		b.a.tg.state.streamEnded(b.longest)
	}
}

func (b *streamBody) Close() error {
	b.closed.Store(true)
	o := OutcomeCanceled // the caller stopped reading before the end
	if b.ended || b.track.complete() {
		o = OutcomeOK
	}
	b.finish(o, nil)
	return b.rc.Close()
}
