package continuity

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// client is the application: HTTP/1.1 to the peer (as an SDK's client), one connection per request in flight.
type client struct {
	http    *http.Client
	timeout time.Duration
	retries int
}

func newClient(p Plan) (*client, error) {
	var conf *tls.Config
	if p.CA != "" {
		pem, err := os.ReadFile(p.CA)
		if err != nil {
			return nil, fmt.Errorf("ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca %s: no certificate in it", p.CA)
		}
		conf = &tls.Config{RootCAs: pool}
	}
	tr := &http.Transport{
		TLSClientConfig:     conf,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}
	return &client{http: &http.Client{Transport: tr}, timeout: p.Timeout.D(), retries: p.Retries}, nil
}

// outcome is how one attempt ended, as an application sees it.
type outcome struct {
	ok     bool
	status int
	region string // the peer's region header
	noDone bool   // a complete stream without data: [DONE]
	err    string // why it failed, short
	// for the retry decision, as openai-go makes it
	answered    bool // a status line arrived (else: a connection error or a timeout)
	shouldRetry string
	retryAfter  time.Duration
}

// maxLine bounds one SSE line and a JSON answer.
const maxLine = 1 << 20

// attempt sends one request and reads the whole answer.
func (c *client) attempt(ctx context.Context, url string, headers map[string]string, body []byte, stream bool, regionHeader string) outcome {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(string(body)))
	if err != nil {
		return outcome{err: err.Error()}
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return outcome{err: short(ctx, err)}
	}
	defer resp.Body.Close()
	o := outcome{status: resp.StatusCode, answered: true, region: resp.Header.Get(regionHeader),
		shouldRetry: resp.Header.Get("x-should-retry"), retryAfter: retryAfter(resp.Header)}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		o.err = fmt.Sprintf("HTTP %d %s", resp.StatusCode, errorCode(b))
		return o
	}
	if !stream || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		b, err := io.ReadAll(io.LimitReader(resp.Body, maxLine))
		if err != nil {
			o.err = "body: " + short(ctx, err)
			return o
		}
		var v struct {
			Choices []struct {
				FinishReason *string `json:"finish_reason"`
			} `json:"choices"`
		}
		if err := json.Unmarshal(b, &v); err != nil || len(v.Choices) == 0 || v.Choices[0].FinishReason == nil || *v.Choices[0].FinishReason == "" {
			o.err = "200 without a finished choice"
			return o
		}
		o.ok = true
		return o
	}
	return readStream(ctx, resp.Body, o)
}

// readStream reads an SSE answer: complete when every event parsed, a finish_reason arrived and no error event
// did; [DONE] is noted (SDKs end a stream at its end either way).
func readStream(ctx context.Context, body io.Reader, o outcome) outcome {
	r := bufio.NewReaderSize(body, 16<<10)
	finished, done, event := false, false, ""
	for {
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			o.err = "an SSE line longer than 16 KiB"
			return o
		}
		s := strings.TrimRight(string(line), "\r\n")
		switch {
		case strings.HasPrefix(s, "event:"):
			event = strings.TrimSpace(s[len("event:"):])
		case strings.HasPrefix(s, "data:"):
			data := strings.TrimSpace(s[len("data:"):])
			if event == "error" {
				o.err = "error event: " + errMessage([]byte(data))
				return o
			}
			if data == "[DONE]" {
				done = true
				continue
			}
			var v struct {
				Choices []struct {
					FinishReason *string `json:"finish_reason"`
				} `json:"choices"`
				Error json.RawMessage `json:"error"`
			}
			if json.Unmarshal([]byte(data), &v) != nil {
				o.err = "an event that is not JSON"
				return o
			}
			if len(v.Error) > 0 && string(v.Error) != "null" {
				o.err = "error event: " + errMessage([]byte(data))
				return o
			}
			for _, ch := range v.Choices {
				if ch.FinishReason != nil && *ch.FinishReason != "" {
					finished = true
				}
			}
		case s == "":
			event = ""
		}
		if err != nil {
			if err != io.EOF {
				o.err = "stream broken: " + short(ctx, err)
				return o
			}
			break
		}
	}
	if !finished {
		o.err = "stream ended without finish_reason"
		return o
	}
	o.ok, o.noDone = true, !done
	return o
}

// call is one request as an application makes it: the attempt, then the retries openai-go makes by default
// (connection errors, 408, 409, 429 and 5xx unless x-should-retry says otherwise; after the Retry-After hint when
// it is under a minute, else 0.5 s doubling up to 8 s, less up to a quarter of jitter). A stream that broke after
// its 200 is not retried (SDKs cannot). The whole call, retries included, is bounded by the client's timeout.
func (c *client) call(ctx context.Context, url string, headers map[string]string, body []byte, stream bool, regionHeader string) (first, last outcome, attempts int) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	for n := 0; ; n++ {
		o := c.attempt(ctx, url, headers, body, stream, regionHeader)
		if n == 0 {
			first = o
		}
		attempts = n + 1
		if o.ok || n >= c.retries || ctx.Err() != nil || !sdkRetries(o) {
			return first, o, attempts
		}
		d := o.retryAfter
		if d <= 0 || d > time.Minute {
			d = time.Duration(0.5 * float64(time.Second) * math.Pow(2, float64(n)))
			d = min(d, 8*time.Second)
			d -= time.Duration(rand.Int64N(int64(d / 4)))
		}
		select {
		case <-ctx.Done():
			return first, o, attempts
		case <-time.After(d):
		}
	}
}

func sdkRetries(o outcome) bool {
	if !o.answered {
		return true
	}
	if o.status == http.StatusOK {
		return false // a stream or body that broke after its 200
	}
	switch o.shouldRetry {
	case "true":
		return true
	case "false":
		return false
	}
	return o.status == 408 || o.status == 409 || o.status == 429 || o.status >= 500
}

// retryAfter reads retry-after-ms, then retry-after (seconds or an HTTP date), as openai-go does.
func retryAfter(h http.Header) time.Duration {
	if v, err := strconv.ParseFloat(h.Get("retry-after-ms"), 64); err == nil {
		return time.Duration(v * float64(time.Millisecond))
	}
	ra := h.Get("retry-after")
	if v, err := strconv.ParseFloat(ra, 64); err == nil {
		return time.Duration(v * float64(time.Second))
	}
	if t, err := http.ParseTime(ra); err == nil {
		return time.Until(t)
	}
	return 0
}

func errorCode(b []byte) string {
	var v struct {
		Error struct {
			Code    any    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(b, &v) == nil && v.Error.Code != nil {
		return fmt.Sprint(v.Error.Code)
	}
	return ""
}

// errMessage is the message of an error event or body ({"error":{"message":...}}), or the data itself.
func errMessage(b []byte) string {
	var v struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
		Message string `json:"message"`
	}
	if json.Unmarshal(b, &v) == nil {
		if v.Error.Message != "" {
			return clip(v.Error.Message, 200)
		}
		if v.Message != "" {
			return clip(v.Message, 200)
		}
	}
	return clip(string(b), 200)
}

func short(ctx context.Context, err error) string {
	if ctx.Err() != nil {
		return "client timeout"
	}
	s := err.Error()
	switch {
	case strings.Contains(s, "connection reset"):
		return "connection reset"
	case strings.Contains(s, "connection refused"):
		return "connection refused"
	case strings.Contains(s, "unexpected EOF"), errors.Is(err, io.ErrUnexpectedEOF):
		return "unexpected EOF"
	}
	return clip(s, 80)
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
