package gateway

import (
	"crypto/sha256"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lifeline-sre/lifeline/failover"
)

func TestFindUsage(t *testing.T) {
	cases := []struct {
		name, tail string
		want       usage
	}{
		{"chat", `{"choices":[],"usage":{"completion_tokens":5,"prompt_tokens":8,"total_tokens":13}}`, usage{8, 5}},
		{"responses", `"usage":{"input_tokens":3,"output_tokens":4,"total_tokens":7},"user":null}}`, usage{3, 4}},
		{"sse-with-usage-chunk", "data: {\"usage\":null}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":9}}\n\ndata: [DONE]\n\n", usage{2, 9}},
		{"sse-null-only", "data: {\"usage\":null}\n\ndata: [DONE]\n\n", usage{}},
		{"spaced", `{"usage": {"prompt_tokens": 1, "completion_tokens": 2}}`, usage{1, 2}},
		{"none", `{"data":[1,2,3]}`, usage{}},
		{"cut-object", `{"usage":{"prompt_tokens":4,"comple`, usage{4, 0}},
		{"empty", ``, usage{}},
	}
	for _, c := range cases {
		if got := findUsage([]byte(c.tail)); got != c.want {
			t.Errorf("%s: findUsage = %+v, want %+v", c.name, got, c.want)
		}
	}
}

func TestEventsEnd(t *testing.T) {
	cases := []struct {
		in   string
		want int
	}{
		{"data: a\n\n", 9},
		{"data: a\n\ndata: b", 9},
		{"data: a\r\n\r\ndata: b", 11},
		{"data: a", 0},
		{"data: a\n\ndata: b\n\n", 18},
		{"", 0},
	}
	for _, c := range cases {
		if got := eventsEnd([]byte(c.in)); got != c.want {
			t.Errorf("eventsEnd(%q) = %d, want %d", c.in, got, c.want)
		}
	}
}

func TestClientTimeout(t *testing.T) {
	cases := []struct {
		h    http.Header
		want time.Duration
	}{
		{http.Header{"X-Lifeline-Timeout": {"250ms"}}, 250 * time.Millisecond},
		{http.Header{"X-Lifeline-Timeout": {"2"}}, 2 * time.Second},
		{http.Header{"X-Stainless-Timeout": {"600"}}, 600 * time.Second},
		{http.Header{"X-Stainless-Timeout": {"-1"}}, 0},
		{http.Header{"X-Stainless-Timeout": {"lots"}}, 0},
		{http.Header{}, 0},
	}
	for _, c := range cases {
		if got := clientTimeout(c.h); got != c.want {
			t.Errorf("clientTimeout(%v) = %s, want %s", c.h, got, c.want)
		}
	}
}

func TestAuthenticate(t *testing.T) {
	gen := &generation{}
	for _, c := range []struct{ name, key string }{{"a", "key-a"}, {"b", "key-b"}} {
		gen.clients = append(gen.clients, &client{name: c.name, sum: sha(c.key)})
	}
	cases := []struct {
		h    http.Header
		name string
		ok   bool
	}{
		{http.Header{"Api-Key": {"key-a"}}, "a", true},
		{http.Header{"Authorization": {"Bearer key-b"}}, "b", true},
		{http.Header{"Api-Key": {""}, "Authorization": {"Bearer key-b"}}, "b", true},
		{http.Header{"Api-Key": {"key-c"}}, "", false},
		{http.Header{"Authorization": {"key-a"}}, "", false},
		{http.Header{}, "", false},
	}
	for _, c := range cases {
		cl, ok := gen.authenticate(c.h)
		if ok != c.ok || ok && cl.name != c.name {
			t.Errorf("authenticate(%v) = %v %v", c.h, cl, ok)
		}
	}
}

// testGateway is a Gateway with just what copyEvents needs.
func testGateway(t *testing.T) *Gateway {
	m, err := newMetrics(prometheus.NewRegistry(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	g := &Gateway{metrics: m, now: time.Now}
	g.hardCtx, g.hardStop = t.Context(), func() {}
	return g
}

// TestCopyEventsHoldsBackPartialEvents: whole events go out as they complete; when the body fails, the incomplete
// event is dropped and the stream ends with an error event standing on its own.
func TestCopyEventsHoldsBackPartialEvents(t *testing.T) {
	g := testGateway(t)
	body := io.MultiReader(
		strings.NewReader("data: {\"a\":1}\n\ndata: {\"b\""),
		iotest.ErrReader(&failover.StreamError{Region: "eastus", Err: errors.New("connection reset")}),
	)
	rec := httptest.NewRecorder()
	x := &exchange{start: time.Now(), region: "eastus"}
	g.copyEvents(rec, iotest.OneByteReader(body), x, streamBufs.Get().(*copyBuf))
	got := rec.Body.String()
	want := "data: {\"a\":1}\n\ndata: {\"error\":{\"code\":\"stream_error\","
	if !strings.HasPrefix(got, want) || !strings.HasSuffix(got, "}}\n\n") || strings.Contains(got, `{"b"`) {
		t.Errorf("stream = %q", got)
	}
	if !rec.Flushed {
		t.Error("events were not flushed")
	}
	// An idle cut names the idle timeout.
	rec = httptest.NewRecorder()
	g.copyEvents(rec, io.MultiReader(strings.NewReader("data: x\n\n"), iotest.ErrReader(&failover.StreamError{Region: "eastus", Err: failover.ErrStreamIdle})), x, streamBufs.Get().(*copyBuf))
	if !strings.Contains(rec.Body.String(), "stream_idle_timeout") || !strings.Contains(rec.Body.String(), "timeouts.stream_idle") {
		t.Errorf("idle stream = %q", rec.Body.String())
	}
	// A cut after the quiet bound keeps the code, and does not blame stream_idle.
	rec = httptest.NewRecorder()
	g.copyEvents(rec, io.MultiReader(strings.NewReader("data: x\n\n"), iotest.ErrReader(&failover.StreamError{Region: "eastus", Err: failover.ErrStreamQuiet})), x, streamBufs.Get().(*copyBuf))
	if b := rec.Body.String(); !strings.Contains(b, "stream_idle_timeout") || strings.Contains(b, "timeouts.stream_idle") || !strings.Contains(b, "seen stalling") {
		t.Errorf("quiet stream = %q", b)
	}
}

// flushLog is a ResponseWriter that records what each Flush sent.
type flushLog struct {
	*httptest.ResponseRecorder
	sent    int
	flushes []string
	flushed chan struct{} // if set, gets a value per Flush
}

func (f *flushLog) Flush() {
	b := f.Body.String()
	f.flushes = append(f.flushes, b[f.sent:])
	f.sent = len(b)
	f.ResponseRecorder.Flush()
	if f.flushed != nil {
		f.flushed <- struct{}{}
	}
}

// blockingReader returns its chunks one Read at a time, then blocks until release is closed.
type blockingReader struct {
	chunks  []string
	release chan struct{}
}

func (r *blockingReader) Read(p []byte) (int, error) {
	if len(r.chunks) == 0 {
		<-r.release
		return 0, io.EOF
	}
	n := copy(p, r.chunks[0])
	r.chunks = r.chunks[1:]
	return n, nil
}

// TestCopyEventsHeadersGoOutAtOnce: the headers reach the client before the first whole event does, so it
// knows the stream started; when the first read already holds whole events, they share the headers' write.
func TestCopyEventsHeadersGoOutAtOnce(t *testing.T) {
	g := testGateway(t)
	// The region sent part of an event, then nothing for a while: the headers go out alone.
	br := &blockingReader{chunks: []string{"data: {\"a\""}, release: make(chan struct{})}
	fl := &flushLog{ResponseRecorder: httptest.NewRecorder(), flushed: make(chan struct{}, 8)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		g.copyEvents(fl, br, &exchange{start: time.Now()}, streamBufs.Get().(*copyBuf))
	}()
	select {
	case <-fl.flushed: // while the region is still silent
	case <-time.After(5 * time.Second):
		t.Fatal("the headers were not flushed while the first event was incomplete")
	}
	close(br.release)
	<-done
	if len(fl.flushes) == 0 || fl.flushes[0] != "" {
		t.Fatalf("first flush = %q, want the headers alone", fl.flushes)
	}
	// Whole events in the first read: one flush carries them with the headers.
	fl = &flushLog{ResponseRecorder: httptest.NewRecorder()}
	g.copyEvents(fl, strings.NewReader("data: {\"a\":1}\n\ndata: [DONE]\n\n"), &exchange{start: time.Now()}, streamBufs.Get().(*copyBuf))
	if len(fl.flushes) == 0 || fl.flushes[0] != "data: {\"a\":1}\n\ndata: [DONE]\n\n" {
		t.Fatalf("flushes = %q, want the events in the first", fl.flushes)
	}
}

// TestCopyEventsHugeEvent: an event larger than the buffer goes out in pieces, and a failure after a piece
// closes the broken event before the error event.
func TestCopyEventsHugeEvent(t *testing.T) {
	g := testGateway(t)
	huge := "data: " + strings.Repeat("x", 3*streamBufSize)
	rec := httptest.NewRecorder()
	g.copyEvents(rec, io.MultiReader(strings.NewReader(huge), iotest.ErrReader(errors.New("reset"))), &exchange{start: time.Now()}, streamBufs.Get().(*copyBuf))
	got := rec.Body.String()
	sent := huge[:3*streamBufSize] // whole buffers go out; the last 6 bytes are still held back at the failure
	if !strings.HasPrefix(got, sent) || !strings.HasPrefix(got[len(sent):], "\n\ndata: {\"error\"") {
		t.Errorf("huge event: %d bytes, tail %q", len(got), got[max(0, len(got)-200):])
	}
}

func FuzzFindUsage(f *testing.F) {
	f.Add([]byte(`{"usage":{"prompt_tokens":1,"completion_tokens":2}}`))
	f.Add([]byte(`"usage":"usage":{`))
	f.Fuzz(func(t *testing.T, tail []byte) {
		findUsage(tail)
		eventsEnd(tail)
	})
}

func sha(s string) [32]byte { return sha256.Sum256([]byte(s)) }
