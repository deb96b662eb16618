package failover

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"syscall"
	"testing"
	"time"
)

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

// realErr makes a real transport error by sending a request to url with a plain client.
func realErr(t *testing.T, url string) error {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{}, Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("GET %s: no error", url)
	}
	return err
}

// TestClassifyTable covers every row of SPEC.md section 5.
func TestClassifyTable(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tlsSrv := httptest.NewTLSServer(http.NotFoundHandler())
	defer tlsSrv.Close()
	h := func(kv ...string) http.Header {
		hd := http.Header{}
		for i := 0; i+1 < len(kv); i += 2 {
			hd.Set(kv[i], kv[i+1])
		}
		return hd
	}
	region := func(o Outcome, retry bool) Verdict {
		return Verdict{Outcome: o, Retry: retry, FailOver: true, Scope: ScopeRegion}
	}
	dep := func(o Outcome, after time.Duration) Verdict {
		return Verdict{Outcome: o, FailOver: true, Scope: ScopeDeployment, RetryAfter: after}
	}
	final := func(o Outcome) Verdict { return Verdict{Outcome: o} }
	cases := []struct {
		row  string
		sig  Signal
		want Verdict
	}{
		// connect refused, DNS, TLS failure, connect timeout: no retry, counts, next region at once.
		{"connect refused (real)", Signal{Err: realErr(t, "http://"+deadAddr(t)+"/")}, region(OutcomeConnectError, false)},
		{"connect refused (errno)", Signal{Err: &net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}}, region(OutcomeConnectError, false)},
		{"DNS", Signal{Err: &net.OpError{Op: "dial", Err: &net.DNSError{Err: "no such host", Name: "x.invalid", IsNotFound: true}}}, region(OutcomeConnectError, false)},
		{"TLS failure (real, unknown authority)", Signal{Err: realErr(t, tlsSrv.URL)}, region(OutcomeConnectError, false)},
		{"TLS failure (typed)", Signal{Err: fmt.Errorf("x: %w", x509.UnknownAuthorityError{})}, region(OutcomeConnectError, false)},
		{"TLS handshake timeout", Signal{Err: errors.New("net/http: TLS handshake timeout")}, region(OutcomeConnectError, false)},
		{"connect timeout", Signal{Err: &net.OpError{Op: "dial", Err: timeoutErr{}}}, region(OutcomeConnectError, false)},
		// no response within timeouts.*, connection reset before the response: retry once, counts, next region.
		{"no response within timeout", Signal{Err: fmt.Errorf("region x: %w", ErrAttemptTimeout)}, region(OutcomeTimeout, true)},
		{"read timeout", Signal{Err: &net.OpError{Op: "read", Err: timeoutErr{}}}, region(OutcomeTimeout, true)},
		{"connection reset", Signal{Err: &net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}}, region(OutcomeReset, true)},
		{"closed before response", Signal{Err: fmt.Errorf("Post: %w", io.EOF)}, region(OutcomeReset, true)},
		{"not a status (HTTP/1.1 000)", Signal{Status: 0}, region(OutcomeReset, true)},
		{"101 nobody asked for", Signal{Status: 101}, region(OutcomeReset, true)},
		{"entra token failure", Signal{Err: &tokenError{identity: "service principal app in tenant t"}}, region(OutcomeAuthError, false)},
		// 500, 502, 503, 504, 408: retry with backoff, counts, next region when attempts are spent.
		{"500", Signal{Status: 500}, region(OutcomeServerError, true)},
		{"502", Signal{Status: 502}, region(OutcomeServerError, true)},
		{"503", Signal{Status: 503}, region(OutcomeServerError, true)},
		{"504", Signal{Status: 504}, region(OutcomeServerError, true)},
		{"408", Signal{Status: 408}, region(OutcomeServerError, true)},
		{"503 with Retry-After", Signal{Status: 503, Header: h("Retry-After", "1")}, Verdict{Outcome: OutcomeServerError, Retry: true, FailOver: true, Scope: ScopeRegion, RetryAfter: time.Second}},
		{"503 with x-should-retry: false", Signal{Status: 503, Header: h("X-Should-Retry", "false")}, region(OutcomeServerError, false)},
		// 429: no retry, no health; the deployment cools down for the time given; next region at once.
		{"429 retry-after-ms", Signal{Status: 429, Header: h("Retry-After-Ms", "1500")}, dep(OutcomeThrottled, 1500*time.Millisecond)},
		{"429 retry-after-ms before Retry-After", Signal{Status: 429, Header: h("Retry-After-Ms", "250", "Retry-After", "9")}, dep(OutcomeThrottled, 250*time.Millisecond)},
		{"429 Retry-After seconds", Signal{Status: 429, Header: h("Retry-After", "7")}, dep(OutcomeThrottled, 7*time.Second)},
		{"429 Retry-After HTTP date", Signal{Status: 429, Header: h("Retry-After", now.Add(90*time.Second).Format(http.TimeFormat)), Now: now}, dep(OutcomeThrottled, 90*time.Second)},
		{"429 without hint", Signal{Status: 429}, dep(OutcomeThrottled, 0)},
		// 404 DeploymentNotFound, 401, 403: no retry; the pair is marked broken; next region at once.
		{"404 DeploymentNotFound", Signal{Status: 404, Body: []byte(`{"error":{"code":"DeploymentNotFound","message":"The API deployment for this resource does not exist."}}`)}, dep(OutcomeDeploymentMissing, 0)},
		{"401", Signal{Status: 401, Body: []byte(`{"error":{"code":"401","message":"Access denied"}}`)}, dep(OutcomeAuthError, 0)},
		{"400 Entra token from another tenant", Signal{Status: 400, Body: []byte(`{"error":{"code":"Tenant provided in token does not match resource token","message":"Token tenant 22222222-2222-2222-2222-222222222222 does not match resource tenant."}}`)}, dep(OutcomeAuthError, 0)},
		{"401 invalid Entra token", Signal{Status: 401, Body: []byte(`{"statusCode":401,"message":"Unauthorized. Access token is missing, invalid, audience is incorrect (https://cognitiveservices.azure.com), or have expired."}`)}, dep(OutcomeAuthError, 0)},
		{"403", Signal{Status: 403, Body: []byte(`{"error":{"code":"AuthenticationTypeDisabled"}}`)}, dep(OutcomeAuthError, 0)},
		// 400 (content filter or bad request), other 4xx: the answer goes to the client as it is.
		{"400 content filter", Signal{Status: 400, Body: []byte(`{"error":{"code":"content_filter","status":400}}`)}, final(OutcomeClientError)},
		{"400 bad request", Signal{Status: 400}, final(OutcomeClientError)},
		{"404 Resource not found", Signal{Status: 404, Body: []byte(`{"error":{"code":"404","message":"Resource not found"}}`)}, final(OutcomeClientError)},
		{"409", Signal{Status: 409}, final(OutcomeClientError)},
		{"413", Signal{Status: 413}, final(OutcomeClientError)},
		{"422", Signal{Status: 422}, final(OutcomeClientError)},
		{"409 with x-should-retry: true", Signal{Status: 409, Header: h("X-Should-Retry", "true")}, Verdict{Outcome: OutcomeClientError, Retry: true, FailOver: true}},
		// the client went away: nothing.
		{"caller canceled", Signal{Err: fmt.Errorf("Post: %w", context.Canceled)}, final(OutcomeCanceled)},
		{"caller deadline", Signal{Err: context.DeadlineExceeded}, final(OutcomeCanceled)},
		{"caller canceled before the abandon point", Signal{Err: context.Canceled, Waited: 4 * time.Second, AbandonAfter: 5 * time.Second}, final(OutcomeCanceled)},
		// the client went away after the region kept it waiting past the abandon point: held against the region.
		{"caller canceled at the abandon point", Signal{Err: context.Canceled, Waited: 5 * time.Second, AbandonAfter: 5 * time.Second}, Verdict{Outcome: OutcomeAbandoned, Scope: ScopeRegion}},
		{"caller deadline past the abandon point", Signal{Err: context.DeadlineExceeded, Waited: time.Minute, AbandonAfter: 5 * time.Second}, Verdict{Outcome: OutcomeAbandoned, Scope: ScopeRegion}},
		{"abandon rule off", Signal{Err: context.Canceled, Waited: time.Hour}, final(OutcomeCanceled)},
		{"a region timeout is not abandonment", Signal{Err: ErrAttemptTimeout, Waited: time.Minute, AbandonAfter: time.Second}, Verdict{Outcome: OutcomeTimeout, Retry: true, FailOver: true, Scope: ScopeRegion}},
		// success.
		{"200", Signal{Status: 200}, final(OutcomeOK)},
		{"200 with x-should-retry: true", Signal{Status: 200, Header: h("X-Should-Retry", "true")}, final(OutcomeOK)},
	}
	for _, c := range cases {
		t.Run(c.row, func(t *testing.T) {
			if c.sig.Header == nil {
				c.sig.Header = http.Header{}
			}
			if got := Classify(c.sig); got != c.want {
				t.Errorf("Classify = %+v, want %+v (err %v)", got, c.want, c.sig.Err)
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cases := []struct {
		name   string
		hdr    map[string]string
		want   time.Duration
		wantOK bool
	}{
		{"none", nil, 0, false},
		{"ms", map[string]string{"retry-after-ms": "10"}, 10 * time.Millisecond, true},
		{"fractional ms", map[string]string{"retry-after-ms": "2.5"}, 2500 * time.Microsecond, true},
		{"x-ms ms", map[string]string{"x-ms-retry-after-ms": "40"}, 40 * time.Millisecond, true},
		{"seconds", map[string]string{"retry-after": "3"}, 3 * time.Second, true},
		{"ms wins", map[string]string{"retry-after-ms": "5", "retry-after": "3"}, 5 * time.Millisecond, true},
		{"bad ms falls back", map[string]string{"retry-after-ms": "soon", "retry-after": "3"}, 3 * time.Second, true},
		{"date", map[string]string{"retry-after": "Fri, 02 Jan 2026 03:05:05 GMT"}, time.Minute, true},
		{"past date", map[string]string{"retry-after": "Fri, 02 Jan 2026 03:00:00 GMT"}, 0, true},
		{"negative", map[string]string{"retry-after": "-1"}, 0, false},
		{"garbage", map[string]string{"retry-after": "tomorrow"}, 0, false},
		{"huge", map[string]string{"retry-after": "1e300"}, maxHint, true},
		{"daily quota", map[string]string{"retry-after": "86400"}, maxHint, true},
		{"NaN", map[string]string{"retry-after-ms": "NaN"}, 0, false},
	}
	for _, c := range cases {
		hd := http.Header{}
		for k, v := range c.hdr {
			hd.Set(k, v)
		}
		got, ok := RetryAfter(hd, now)
		if got != c.want || ok != c.wantOK {
			t.Errorf("%s: RetryAfter = %v, %v; want %v, %v", c.name, got, ok, c.want, c.wantOK)
		}
	}
}

func TestStrings(t *testing.T) {
	for o := OutcomeOK; o <= OutcomeStreamError; o++ {
		if s := o.String(); s == "" || s[0] == 'o' && s != "ok" {
			t.Errorf("Outcome(%d).String() = %q", o, s)
		}
	}
	want := map[State]string{Healthy: "healthy", HalfOpen: "half_open", Open: "open", Disabled: "disabled"}
	for s, w := range want {
		if s.String() != w {
			t.Errorf("%d: %q, want %q", s, s.String(), w)
		}
	}
	if int(Healthy) != 0 || int(HalfOpen) != 1 || int(Open) != 2 || int(Disabled) != 3 {
		t.Error("State values must match lifeline_region_state")
	}
}
