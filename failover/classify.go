package failover

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tidwall/gjson"
)

// Outcome is what one attempt against a region came to. Its String is the metric label value.
type Outcome uint8

const (
	OutcomeOK                Outcome = iota // the region answered with a status below 400 (or a pass-through)
	OutcomeConnectError                     // connect refused, DNS, TLS failure, connect timeout
	OutcomeTimeout                          // no response within timeouts.*
	OutcomeReset                            // the connection broke before a response
	OutcomeServerError                      // 500, 502, 503, 504, 408 (and other 5xx)
	OutcomeThrottled                        // 429: the deployment in that region cools down
	OutcomeDeploymentMissing                // 404 DeploymentNotFound
	OutcomeAuthError                        // 401, 403 from a region, or no token could be had
	OutcomeClientError                      // 400 and other 4xx: the answer goes to the client as it is
	OutcomeCanceled                         // the caller went away
	OutcomeStreamError                      // the body failed after a good status
	OutcomeAbandoned                        // the caller went away after the region kept it waiting too long
)

var outcomeNames = [...]string{
	OutcomeOK:                "ok",
	OutcomeConnectError:      "connect_error",
	OutcomeTimeout:           "timeout",
	OutcomeReset:             "reset",
	OutcomeServerError:       "server_error",
	OutcomeThrottled:         "throttled",
	OutcomeDeploymentMissing: "deployment_missing",
	OutcomeAuthError:         "auth_error",
	OutcomeClientError:       "client_error",
	OutcomeCanceled:          "canceled",
	OutcomeStreamError:       "stream_error",
	OutcomeAbandoned:         "abandoned",
}

func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return "outcome(" + strconv.Itoa(int(o)) + ")"
}

// Scope is what a failure is held against.
type Scope uint8

const (
	ScopeNone       Scope = iota // nothing: the region answered, or the caller went away
	ScopeRegion                  // the region's health (breaker)
	ScopeDeployment              // one deployment in one region (cool-down or broken pair)
)

func (s Scope) String() string {
	switch s {
	case ScopeRegion:
		return "region"
	case ScopeDeployment:
		return "deployment"
	}
	return "none"
}

// Verdict is the decision for one outcome: SPEC.md section 5 as data.
type Verdict struct {
	Outcome Outcome
	// Retry: worth another attempt in the same region, if attempts remain.
	Retry bool
	// FailOver: try the next region (after in-region retries, if Retry is set).
	FailOver bool
	// Scope is what the failure counts against; ScopeRegion feeds the breaker.
	Scope Scope
	// RetryAfter is the server's hint (retry-after-ms, then Retry-After); for 429 the cool-down.
	RetryAfter time.Duration
}

// Final reports whether the response goes to the client as it is (success, or an answer that
// no other region would change).
func (v Verdict) Final() bool { return !v.Retry && !v.FailOver }

// Signal is everything Classify looks at for one attempt.
type Signal struct {
	Err    error       // transport error; nil when a response arrived
	Status int         // response status when Err is nil
	Header http.Header // response headers
	Body   []byte      // the start of an error body (404s are told apart by it); may be nil
	Now    time.Time   // for a Retry-After given as an HTTP date
	// Waited is how long the attempt had waited for the region without an answer, and AbandonAfter
	// the wait from which a caller giving up counts against the region (0: never). See
	// BreakerPolicy.AbandonedAfter.
	Waited, AbandonAfter time.Duration
}

// ErrAttemptTimeout marks an attempt that got no response within the configured timeouts.
var ErrAttemptTimeout = errors.New("failover: region did not answer in time")

// Classify maps one attempt's outcome to a Verdict: the table of SPEC.md section 5.
// It is the only place where that table lives.
func Classify(s Signal) Verdict {
	if s.Err != nil {
		v := classifyErr(s.Err)
		if v.Outcome == OutcomeCanceled && s.AbandonAfter > 0 && s.Waited >= s.AbandonAfter {
			// The caller is gone, so nothing is retried; the region kept it waiting far past its usual
			// latency, which is what a region that accepts requests and never answers looks like.
			return Verdict{Outcome: OutcomeAbandoned, Scope: ScopeRegion}
		}
		return v
	}
	v := classifyStatus(s)
	if v.Outcome == OutcomeThrottled || v.Outcome == OutcomeServerError {
		v.RetryAfter, _ = RetryAfter(s.Header, s.Now)
	}
	switch s.Header.Get("X-Should-Retry") {
	case "true":
		if v.Final() && s.Status >= 400 {
			v.Retry, v.FailOver = true, true
		}
	case "false":
		v.Retry = false
	}
	return v
}

func classifyStatus(s Signal) Verdict {
	switch st := s.Status; {
	case st < 200:
		// Not a final status: "HTTP/1.1 000" (net/http reads it as 0), or a 101 Switching Protocols that the engine
		// never asked for (it sends no Upgrade). A broken answer, never passed on: a server cannot even write it to
		// the client. (A Realtime session reads its 101 before classifying.)
		return Verdict{Outcome: OutcomeReset, Retry: true, FailOver: true, Scope: ScopeRegion}
	case st < 400:
		return Verdict{Outcome: OutcomeOK}
	case st == http.StatusTooManyRequests:
		return Verdict{Outcome: OutcomeThrottled, FailOver: true, Scope: ScopeDeployment}
	case st == http.StatusRequestTimeout || st >= 500:
		return Verdict{Outcome: OutcomeServerError, Retry: true, FailOver: true, Scope: ScopeRegion}
	case st == http.StatusUnauthorized || st == http.StatusForbidden:
		return Verdict{Outcome: OutcomeAuthError, FailOver: true, Scope: ScopeDeployment}
	case st == http.StatusBadRequest && ErrorCode(s.Body) == TenantMismatchCode:
		// A token from another tenant than the resource's: Azure says 400, but the region's credential is wrong.
		return Verdict{Outcome: OutcomeAuthError, FailOver: true, Scope: ScopeDeployment}
	case st == http.StatusNotFound && ErrorCode(s.Body) == "DeploymentNotFound":
		return Verdict{Outcome: OutcomeDeploymentMissing, FailOver: true, Scope: ScopeDeployment}
	default:
		return Verdict{Outcome: OutcomeClientError}
	}
}

func classifyErr(err error) Verdict {
	var (
		dns    *net.DNSError
		op     *net.OpError
		tlsRec tls.RecordHeaderError
		tlsAl  tls.AlertError
		cv     *tls.CertificateVerificationError
		ua     x509.UnknownAuthorityError
		hn     x509.HostnameError
		ci     x509.CertificateInvalidError
		tok    *tokenError
	)
	switch {
	case errors.Is(err, errHedgeSettled), errors.Is(err, errResumeTimeout):
		return Verdict{Outcome: OutcomeCanceled}
	case errors.Is(err, errRegionOpened):
		// Its region's breaker opened while it waited: go on to the next region at once.
		return Verdict{Outcome: OutcomeTimeout, FailOver: true, Scope: ScopeRegion}
	case errors.Is(err, errLostBySilence):
		// It lost a hedge by staying silent past the delay: held against the region like a timeout.
		return Verdict{Outcome: OutcomeTimeout, FailOver: true, Scope: ScopeRegion}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return Verdict{Outcome: OutcomeCanceled}
	case errors.Is(err, ErrAttemptTimeout):
		return Verdict{Outcome: OutcomeTimeout, Retry: true, FailOver: true, Scope: ScopeRegion}
	case errors.As(err, &tok):
		return Verdict{Outcome: OutcomeAuthError, FailOver: true, Scope: ScopeRegion}
	case errors.As(err, &dns), errors.As(err, &tlsRec), errors.As(err, &tlsAl), errors.As(err, &cv),
		errors.As(err, &ua), errors.As(err, &hn), errors.As(err, &ci),
		errors.As(err, &op) && (op.Op == "dial" || op.Op == "proxyconnect"),
		errors.Is(err, syscall.ECONNREFUSED), isTLSHandshakeTimeout(err):
		return Verdict{Outcome: OutcomeConnectError, FailOver: true, Scope: ScopeRegion}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return Verdict{Outcome: OutcomeTimeout, Retry: true, FailOver: true, Scope: ScopeRegion}
	}
	// Reset, EOF before the response, HTTP/2 stream errors, anything else from the connection.
	return Verdict{Outcome: OutcomeReset, Retry: true, FailOver: true, Scope: ScopeRegion}
}

func isTLSHandshakeTimeout(err error) bool {
	return strings.Contains(err.Error(), "TLS handshake timeout")
}

// maxHint bounds a server's Retry-After so that arithmetic on it cannot overflow.
const maxHint = 24 * time.Hour

// RetryAfter reads a server's retry hint: `retry-after-ms` (milliseconds, may be fractional),
// then `x-ms-retry-after-ms`, then `Retry-After` (seconds or an HTTP date, relative to now).
// It reports false when no usable hint is present. Hints are capped at 24h.
func RetryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	if h == nil {
		return 0, false
	}
	for _, k := range [...]string{"Retry-After-Ms", "X-Ms-Retry-After-Ms"} {
		if v := h.Get(k); v != "" {
			if d, ok := parseNumber(v, float64(time.Millisecond)); ok {
				return d, true
			}
		}
	}
	v := h.Get("Retry-After")
	if v == "" {
		return 0, false
	}
	if d, ok := parseNumber(v, float64(time.Second)); ok {
		return d, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	d := t.Sub(now)
	if d < 0 {
		d = 0
	}
	return min(d, maxHint), true
}

func parseNumber(v string, unit float64) (time.Duration, bool) {
	f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || math.IsNaN(f) || f < 0 || math.IsInf(f, 0) {
		return 0, false
	}
	if f*unit >= float64(maxHint) {
		return maxHint, true
	}
	return time.Duration(f * unit), true
}

// ErrorCode returns `error.code` of an OpenAI/Azure error body ("DeploymentNotFound", "429",
// "content_filter"), or "" when the body has none. A numeric code is returned as its text.
// TenantMismatchCode is the error code of Azure's 400 to an Entra token from another tenant than the resource's
// (docs/wire-notes.md).
const TenantMismatchCode = "Tenant provided in token does not match resource token"

func ErrorCode(body []byte) string {
	if len(body) == 0 {
		return ""
	}
	r := gjson.GetBytes(body, "error.code")
	switch r.Type {
	case gjson.String:
		return r.Str
	case gjson.Number:
		return r.Raw
	}
	return ""
}

// readPrefix reads up to n bytes of r; io.EOF is not an error.
func readPrefix(r io.Reader, n int) ([]byte, error) {
	buf := make([]byte, n)
	m, err := io.ReadFull(r, buf)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		err = nil
	}
	return buf[:m], err
}
