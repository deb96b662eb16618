package failover

import (
	"net/http"
)

// Name fallbacks (SPEC.md section 9): Config.Fallbacks lists, per client-visible name, other names to
// try in order when no region can serve it (every region failed, is out of service or is throttled
// beyond a short wait), or when a region answers 400 context_length_exceeded. The answer of a
// fallback carries x-lifeline-name with the name that served. When no fallback serves either, the
// caller gets the answer for the name it asked for.

// Reasons of a FallbackEvent.
const (
	FallbackUnavailable   = "unavailable"             // no region could serve the name
	FallbackContextLength = "context_length_exceeded" // a region answered 400 context_length_exceeded
)

// HeaderName is set on an answer that a fallback name served: the name that served.
const HeaderName = "X-Lifeline-Name"

// FallbackEvent is sent when a request moves on from a name to its fallback.
type FallbackEvent struct {
	From, To string // client-visible names
	Reason   string // FallbackUnavailable or FallbackContextLength
}

// contextTooLong is the error code of a request too long for the model's context.
const contextTooLong = "context_length_exceeded"

// fallBack tries the fallback names of the name asked for, in order. res is the outcome for that name:
// final with a 400 context_length_exceeded, or not final (no region could serve).
func (rt *roundTrip) fallBack(res attemptResult, final bool) (*http.Response, error) {
	var held *http.Response // the answer for the name asked for, if no fallback does better
	reason := FallbackContextLength
	if final {
		held = res.resp
	} else {
		var err error
		if held, err = rt.exhausted(); err != nil {
			return nil, err
		}
		reason = FallbackUnavailable
	}
	from := rt.in.name
	for _, fb := range rt.tab.fallbacks[rt.in.name] {
		cands := rt.tab.names[fb]
		if len(cands) == 0 {
			continue
		}
		rt.resetPass()
		rt.name = fb
		rt.t.obs.NameFallback(FallbackEvent{From: from, To: fb, Reason: reason})
		res, final := rt.serveName(cands)
		switch {
		case final && res.err != nil: // the caller went away
			held.Body.Close()
			return nil, res.err
		case final && !res.tooLong:
			held.Body.Close()
			res.resp.Header.Set(HeaderName, fb)
			return res.resp, nil
		case final:
			res.resp.Body.Close()
			reason = FallbackContextLength
		default:
			reason = FallbackUnavailable
			if rt.ctx.Err() != nil {
				held.Body.Close()
				return nil, rt.ctx.Err()
			}
		}
		from = fb
	}
	rt.discardKept()
	return held, nil
}
