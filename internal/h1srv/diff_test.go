package h1srv

import (
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// The differential tests send the same raw bytes to h1srv and to net/http's server, both running
// the same handler, and compare what comes back: statuses, decoded bodies, headers, whether the
// connection stays open, and what the handler saw. Framing may differ (Content-Length or chunked);
// the decoded body may not.

// noteFunc lets a handler record what it saw, to be compared between the servers.
type noteFunc func(format string, args ...any)

// exchangeCase is one exchange: raw bytes in, responses out.
type exchangeCase struct {
	name string
	raw  string // what the client sends, in one write
	// methods lists the method of each request the client expects a final answer to, in order;
	// nil means one GET.
	methods []string
	h       func(note noteFunc) http.HandlerFunc
	// wantStatus lists every status the client reads, 1xx included; wantClosed says whether the
	// server then closes the connection. Both servers must do this.
	wantStatus []int
	wantClosed bool
	// serverError marks an answer made by the server itself (400, 431, ...): only statuses and
	// closing are compared, not bodies and headers.
	serverError    bool
	maxHeaderBytes int
	// known rewrites net/http's outcome where h1srv differs on purpose, or harmlessly; its
	// comment says why.
	known func(std *outcome)
	// check makes further demands of h1srv's outcome.
	check func(t *testing.T, o outcome)
}

type reply struct {
	method  string
	status  int
	header  http.Header
	close   bool // Connection: close, or an HTTP/1.0 answer without keep-alive
	chunked bool
	length  int64 // Content-Length; -1: none
	body    string
	bodyErr string
}

type outcome struct {
	replies []reply
	readErr string // reading a response's head failed
	closed  bool   // the server closed the connection after the replies
	notes   []string
}

// trackedHandler counts the handler calls in progress and keeps their notes.
type trackedHandler struct {
	mu      sync.Mutex
	running int
	notes   []string
	h       http.HandlerFunc
}

func newTracked(c exchangeCase) *trackedHandler {
	th := &trackedHandler{}
	th.h = c.h(func(format string, args ...any) {
		th.mu.Lock()
		defer th.mu.Unlock()
		th.notes = append(th.notes, fmt.Sprintf(format, args...))
	})
	return th
}

func (th *trackedHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	th.mu.Lock()
	th.running++
	th.mu.Unlock()
	defer func() {
		th.mu.Lock()
		th.running--
		th.mu.Unlock()
	}()
	th.h(w, r)
}

func (th *trackedHandler) idle() bool {
	th.mu.Lock()
	defer th.mu.Unlock()
	return th.running == 0
}

// runExchange sends c.raw to addr and reads what comes back.
func runExchange(t *testing.T, addr string, c exchangeCase, th *trackedHandler) outcome {
	conn, br := dial(t, addr)
	go conn.Write([]byte(c.raw)) // may block on a body the server does not read, or fail once it closes
	methods := c.methods
	if methods == nil {
		methods = []string{http.MethodGet}
	}
	var o outcome
	for len(methods) > 0 {
		resp, err := http.ReadResponse(br, &http.Request{Method: methods[0]})
		if err != nil {
			o.readErr = errKind(err)
			break
		}
		body, err := io.ReadAll(resp.Body)
		r := reply{
			method:  methods[0],
			status:  resp.StatusCode,
			header:  resp.Header,
			close:   resp.Close,
			chunked: slices.Contains(resp.TransferEncoding, "chunked"),
			length:  -1,
			body:    string(body),
			bodyErr: errKind(err),
		}
		if _, ok := resp.Header["Content-Length"]; ok {
			r.length = resp.ContentLength
		}
		o.replies = append(o.replies, r)
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			methods = methods[1:]
		}
		if err != nil {
			break
		}
	}
	o.closed = closedByPeer(t, conn, br, 300*time.Millisecond)
	waitFor(t, "handlers to return", th.idle)
	th.mu.Lock()
	o.notes = slices.Clone(th.notes)
	th.mu.Unlock()
	return o
}

func TestDifferential(t *testing.T) {
	for _, c := range exchangeCases() {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h1h, stdh := newTracked(c), newTracked(c)
			_, h1Addr, _ := startH1(t, h1h, func(s *Server) { s.MaxHeaderBytes = c.maxHeaderBytes })
			stdAddr := startNetHTTP(t, stdh, func(s *http.Server) { s.MaxHeaderBytes = c.maxHeaderBytes })
			var h1, std outcome
			var wg sync.WaitGroup
			wg.Go(func() { h1 = runExchange(t, h1Addr, c, h1h) })
			wg.Go(func() { std = runExchange(t, stdAddr, c, stdh) })
			wg.Wait()
			if c.known != nil {
				c.known(&std)
			}
			expect(t, "h1srv", c, h1)
			expect(t, "net/http", c, std)
			compareOutcomes(t, c, h1, std)
			checkFraming(t, h1)
			if c.check != nil && !t.Failed() {
				c.check(t, h1)
			}
		})
	}
}

func expect(t *testing.T, who string, c exchangeCase, o outcome) {
	t.Helper()
	var got []int
	for _, r := range o.replies {
		got = append(got, r.status)
	}
	if !slices.Equal(got, c.wantStatus) {
		t.Errorf("%s: statuses %v (read error %q), want %v", who, got, o.readErr, c.wantStatus)
	}
	if o.closed != c.wantClosed {
		t.Errorf("%s: closed = %v, want %v", who, o.closed, c.wantClosed)
	}
}

func compareOutcomes(t *testing.T, c exchangeCase, h1, std outcome) {
	t.Helper()
	if h1.readErr != std.readErr {
		t.Errorf("read error: h1srv %q, net/http %q", h1.readErr, std.readErr)
	}
	if !slices.Equal(h1.notes, std.notes) {
		t.Errorf("handler saw:\nh1srv    %q\nnet/http %q", h1.notes, std.notes)
	}
	if len(h1.replies) != len(std.replies) || c.serverError {
		return
	}
	for i := range h1.replies {
		a, b := h1.replies[i], std.replies[i]
		if a.body != b.body {
			t.Errorf("reply %d: body: h1srv %d bytes %.80q, net/http %d bytes %.80q", i, len(a.body), a.body, len(b.body), b.body)
		}
		if a.bodyErr != b.bodyErr {
			t.Errorf("reply %d: body error: h1srv %q, net/http %q", i, a.bodyErr, b.bodyErr)
		}
		if a.close != b.close {
			t.Errorf("reply %d: announces close: h1srv %v, net/http %v", i, a.close, b.close)
		}
		if ha, hb := comparable(a.header), comparable(b.header); !reflect.DeepEqual(ha, hb) {
			t.Errorf("reply %d: headers:\nh1srv    %v\nnet/http %v", i, ha, hb)
		}
	}
}

// comparable drops what may differ between the servers: framing, the Connection header (compared
// as reply.close) and the Date value.
func comparable(h http.Header) http.Header {
	h = h.Clone()
	for _, k := range []string{"Content-Length", "Connection", "Keep-Alive"} {
		delete(h, k)
	}
	if _, ok := h["Date"]; ok {
		h["Date"] = []string{"(date)"}
	}
	return h
}

// checkFraming holds h1srv's replies to the rules of message framing.
func checkFraming(t *testing.T, o outcome) {
	t.Helper()
	for i, r := range o.replies {
		noBodyStatus := r.status < 200 || r.status == http.StatusNoContent || r.status == http.StatusNotModified
		if (noBodyStatus || r.method == http.MethodHead) && (r.chunked || r.body != "") {
			t.Errorf("reply %d (%d to %s): chunked %v, body %q; want no body", i, r.status, r.method, r.chunked, r.body)
		}
		if noBodyStatus && r.length >= 0 {
			t.Errorf("reply %d (%d): Content-Length %d; want none", i, r.status, r.length)
		}
		if r.chunked && r.length >= 0 {
			t.Errorf("reply %d: both chunked and Content-Length", i)
		}
		if !noBodyStatus && r.method != http.MethodHead && !r.chunked && r.length < 0 && !r.close && r.bodyErr == "" {
			t.Errorf("reply %d: a body without framing on a connection kept open", i)
		}
	}
}

func static(f http.HandlerFunc) func(noteFunc) http.HandlerFunc {
	return func(noteFunc) http.HandlerFunc { return f }
}

func text(s string) func(noteFunc) http.HandlerFunc {
	return static(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, s) })
}

// echo answers with the method, path and body, and notes how reading the body went.
func echo(note noteFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		note("%s %s: read %d bytes, err %v, trailer %v", r.Method, r.URL, len(body), err, r.Trailer)
		fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.Path, body)
	}
}

// requestInfo notes what the handler sees of the request.
func requestInfo(note noteFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		_, hostHeader := r.Header["Host"]
		note("host %q, Host header %v, url %q, uri %q, proto %s, remote set %v, content length %d, close %v",
			r.Host, hostHeader, r.URL, r.RequestURI, r.Proto, r.RemoteAddr != "", r.ContentLength, r.Close)
		io.WriteString(w, "ok")
	}
}

func writeSizes(sizes ...int) func(noteFunc) http.HandlerFunc {
	return static(func(w http.ResponseWriter, r *http.Request) {
		for i, n := range sizes {
			w.Write([]byte(strings.Repeat(string(rune('a'+i%26)), n)))
		}
	})
}

func wantLength(n int64) func(*testing.T, outcome) {
	return func(t *testing.T, o outcome) {
		if r := o.replies[0]; r.length != n || r.chunked {
			t.Errorf("Content-Length %d, chunked %v; want Content-Length %d", r.length, r.chunked, n)
		}
	}
}

func wantChunked(t *testing.T, o outcome) {
	if r := o.replies[0]; !r.chunked {
		t.Errorf("chunked %v, Content-Length %d; want chunked", r.chunked, r.length)
	}
}

func repeatGet(n int) (raw string, methods []string, statuses []int) {
	for i := range n {
		raw += get(fmt.Sprintf("/%d", i))
		methods = append(methods, http.MethodGet)
		statuses = append(statuses, 200)
	}
	return raw, methods, statuses
}

const h10 = "GET / HTTP/1.0\r\n\r\n"
const h10KeepAlive = "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"

func exchangeCases() []exchangeCase {
	get2 := []string{"GET", "GET"}
	manyRaw, manyMethods, manyStatus := repeatGet(30)
	huge := strings.Repeat("x", 1<<20)
	return []exchangeCase{
		// Requests and their bodies.
		{name: "get", raw: get("/"), h: text("hello"), wantStatus: []int{200}, check: wantLength(5)},
		{name: "post-content-length", raw: post("/p", "hello world"), methods: []string{"POST"}, h: echo, wantStatus: []int{200}},
		{name: "post-chunked", methods: []string{"POST"}, h: echo, wantStatus: []int{200},
			raw: "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked("hello chunked world", 5)},
		{name: "post-chunked-trailer", methods: []string{"POST", "GET"}, h: echo, wantStatus: []int{200, 200},
			raw: "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n5\r\nhello\r\n0\r\nX-Sum: 42\r\n\r\n" + get("/next")},
		{name: "pipelined", raw: get("/1") + get("/2") + get("/3"), methods: []string{"GET", "GET", "GET"}, h: echo, wantStatus: []int{200, 200, 200}},
		{name: "pipelined-post-get", raw: post("/p", "abc") + get("/g"), methods: []string{"POST", "GET"}, h: echo, wantStatus: []int{200, 200}},
		{name: "pipelined-many", raw: manyRaw, methods: manyMethods, h: echo, wantStatus: manyStatus},
		{name: "pipelined-large-post-get", raw: post("/p", strings.Repeat("b", 100<<10)) + get("/g"), methods: []string{"POST", "GET"}, h: echo, wantStatus: []int{200, 200}},
		{name: "get-with-body", raw: "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc" + get("/2"), methods: get2, h: echo, wantStatus: []int{200, 200}},
		{name: "lf-line-ends", raw: "GET /lf HTTP/1.1\nHost: x\n\n", h: echo, wantStatus: []int{200}},
		{name: "http11-minor-2", raw: "GET / HTTP/1.2\r\nHost: x\r\n\r\n", h: requestInfo, wantStatus: []int{200}},
		{name: "request-info", raw: "GET /a/b?c=d HTTP/1.1\r\nHost: example.com:8080\r\nX-A: 1\r\n\r\n", h: requestInfo, wantStatus: []int{200}},
		{name: "absolute-uri", raw: "GET http://origin.example/p?q=1 HTTP/1.1\r\nHost: other.example\r\n\r\n", h: requestInfo, wantStatus: []int{200}},
		{name: "http10-no-host", raw: h10, h: requestInfo, wantStatus: []int{200}, wantClosed: true},
		{name: "obs-fold", raw: "GET / HTTP/1.1\r\nHost: x\r\nX-Fold: a\r\n b\r\n\r\n", h: static(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, r.Header.Get("X-Fold"))
		}), wantStatus: []int{200}},

		// What the handler writes.
		{name: "empty-handler", raw: get("/"), h: static(func(http.ResponseWriter, *http.Request) {}), wantStatus: []int{200}, check: wantLength(0)},
		{name: "no-content", raw: get("/") + get("/"), methods: get2, wantStatus: []int{204, 204}, h: func(note noteFunc) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Kind", "none")
				w.WriteHeader(http.StatusNoContent)
				_, err := w.Write([]byte("x"))
				note("write: %v", err)
			}
		}},
		{name: "no-content-declared-length", raw: get("/") + get("/"), methods: get2, wantStatus: []int{204, 204}, h: static(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "5")
			w.WriteHeader(http.StatusNoContent)
		})},
		{name: "not-modified", raw: get("/") + get("/"), methods: get2, wantStatus: []int{304, 304}, h: func(note noteFunc) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("ETag", `"v1"`)
				w.WriteHeader(http.StatusNotModified)
				_, err := w.Write([]byte("x"))
				note("write: %v", err)
			}
		}},
		{name: "head", raw: "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", methods: []string{"HEAD"}, h: text("hello world"), wantStatus: []int{200}, check: wantLength(11)},
		{name: "head-large", raw: "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n" + get("/"), methods: []string{"HEAD", "GET"}, h: writeSizes(50<<10, 50<<10), wantStatus: []int{200, 200}},
		{name: "head-declared-length", raw: "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n" + get("/"), methods: []string{"HEAD", "GET"}, wantStatus: []int{200, 200},
			h: static(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", "5")
				if r.Method != http.MethodHead {
					io.WriteString(w, "hello")
				}
			})},
		{name: "head-flush", raw: "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n" + get("/"), methods: []string{"HEAD", "GET"}, wantStatus: []int{200, 200},
			h: static(func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "<html>")
				w.(http.Flusher).Flush()
				io.WriteString(w, "</html>")
			})},
		{name: "small-body", raw: get("/"), h: writeSizes(100), wantStatus: []int{200}, check: wantLength(100)},
		{name: "small-body-many-writes", raw: get("/"), h: writeSizes(100, 200, 300, 400), wantStatus: []int{200}, check: wantLength(1000)},
		{name: "body-5k", raw: get("/") + get("/"), methods: get2, h: writeSizes(5000), wantStatus: []int{200, 200}, check: wantChunked},
		{name: "body-100k", raw: get("/") + get("/"), methods: get2, h: writeSizes(100 << 10), wantStatus: []int{200, 200}, check: wantChunked},
		{name: "body-many-small-writes", raw: get("/"), h: static(func(w http.ResponseWriter, r *http.Request) {
			for i := range 3000 {
				fmt.Fprintf(w, "%d,", i)
			}
		}), wantStatus: []int{200}, check: wantChunked},
		{name: "body-after-empty-writes", raw: get("/"), h: static(func(w http.ResponseWriter, r *http.Request) {
			w.Write(nil)
			w.Write([]byte{})
			io.WriteString(w, "x")
		}), wantStatus: []int{200}},
		{name: "declared-length", raw: get("/") + get("/"), methods: get2, wantStatus: []int{200, 200}, check: wantLength(11),
			h: static(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", "11")
				io.WriteString(w, "hello ")
				io.WriteString(w, "world")
			})},
		{name: "declared-length-large", raw: get("/") + get("/"), methods: get2, wantStatus: []int{200, 200}, check: wantLength(100 << 10),
			h: static(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", "102400")
				for range 100 {
					w.Write(make([]byte, 1024))
				}
			})},
		{name: "declared-length-short", raw: get("/") + get("/"), wantStatus: []int{200}, wantClosed: true,
			h: static(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", "10")
				io.WriteString(w, "hello")
			})},
		{name: "declared-length-overflow", raw: get("/"), wantStatus: []int{200},
			// net/http counts the refused byte as written and closes the connection; h1srv sent
			// exactly the declared length, and keeps it.
			known: func(std *outcome) { std.closed = false },
			h: func(note noteFunc) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Length", "5")
					_, err1 := io.WriteString(w, "hello")
					n, err2 := io.WriteString(w, "!")
					note("writes: %v, %d %v", err1, n, err2)
				}
			}},
		{name: "declared-length-overflow-at-once", raw: get("/") + get("/"), wantStatus: []int{200}, wantClosed: true,
			h: func(note noteFunc) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Length", "5")
					_, err := io.WriteString(w, "hello world")
					note("write: %v", err)
				}
			}},
		{name: "invalid-declared-length", raw: get("/") + get("/"), methods: get2, wantStatus: []int{200, 200}, check: wantLength(2),
			h: static(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", "abc")
				io.WriteString(w, "hi")
			})},
		{name: "sniff-html", raw: get("/"), h: text("<!DOCTYPE html><html><body>hi</body></html>"), wantStatus: []int{200}},
		{name: "sniff-png", raw: get("/"), h: text("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), wantStatus: []int{200}},
		{name: "sniff-json-is-text", raw: get("/"), h: text(`{"a":1}`), wantStatus: []int{200}},
		{name: "sniff-after-flush", raw: get("/"), wantStatus: []int{200}, h: static(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "%PDF-1.4 ...")
			w.(http.Flusher).Flush()
			io.WriteString(w, "more")
		})},
		{name: "no-sniff-when-encoded", raw: get("/"), wantStatus: []int{200}, h: static(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Encoding", "gzip")
			w.Write([]byte{0x1f, 0x8b, 8, 0})
		})},
		{name: "explicit-content-type", raw: get("/"), wantStatus: []int{200}, h: static(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, "<html>")
		})},
		{name: "suppressed-content-type-and-date", raw: get("/"), wantStatus: []int{200}, h: static(func(w http.ResponseWriter, r *http.Request) {
			w.Header()["Content-Type"] = nil
			w.Header()["Date"] = nil
			io.WriteString(w, "<html>")
		})},
		{name: "flush-empty", raw: get("/") + get("/"), methods: get2, wantStatus: []int{200, 200}, h: static(func(w http.ResponseWriter, r *http.Request) {
			w.(http.Flusher).Flush()
		})},
		{name: "flush-between-writes", raw: get("/") + get("/"), methods: get2, wantStatus: []int{200, 200}, h: static(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "data: 1\n\n")
			w.(http.Flusher).Flush()
			io.WriteString(w, "data: 2\n\n")
			http.NewResponseController(w).Flush()
		})},
		{name: "handler-connection-close", raw: get("/") + get("/"), wantStatus: []int{200}, wantClosed: true, h: static(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Connection", "close")
			io.WriteString(w, "bye")
		})},
		{name: "handler-connection-close-streaming", raw: get("/") + get("/"), wantStatus: []int{200}, wantClosed: true, h: static(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Connection", "close")
			io.WriteString(w, "a")
			w.(http.Flusher).Flush()
			io.WriteString(w, "b")
		})},
		{name: "request-connection-close", raw: "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" + get("/"), h: requestInfo, wantStatus: []int{200}, wantClosed: true},
		{name: "request-connection-close-in-list", raw: "GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, close\r\n\r\n" + get("/"), h: requestInfo, wantStatus: []int{200}, wantClosed: true},
		{name: "http10", raw: h10 + h10, h: text("hello"), wantStatus: []int{200}, wantClosed: true},
		{name: "http10-keep-alive", raw: h10KeepAlive + h10KeepAlive, methods: get2, h: requestInfo, wantStatus: []int{200, 200}},
		{name: "http10-keep-alive-no-content", raw: h10KeepAlive + h10KeepAlive, methods: get2, wantStatus: []int{204, 204}, h: static(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusNoContent)
		})},
		{name: "http10-keep-alive-head", raw: "HEAD / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" + h10KeepAlive, methods: []string{"HEAD", "GET"},
			h: text("hello"), wantStatus: []int{200, 200}},
		{name: "http10-keep-alive-stream", raw: h10KeepAlive + h10KeepAlive, wantStatus: []int{200}, wantClosed: true, h: static(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "a")
			w.(http.Flusher).Flush()
			io.WriteString(w, "b")
		})},
		{name: "http10-keep-alive-large", raw: h10KeepAlive + h10KeepAlive, wantStatus: []int{200}, wantClosed: true, h: writeSizes(70 << 10)},
		{name: "http10-post", raw: "POST / HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc", methods: []string{"POST"}, h: echo, wantStatus: []int{200}, wantClosed: true},
		{name: "http10-transfer-encoding-ignored", raw: "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc", methods: []string{"POST"}, h: echo, wantStatus: []int{200}, wantClosed: true},
		{name: "early-hints", raw: get("/") + get("/"), methods: get2, wantStatus: []int{103, 200, 103, 200}, h: static(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Link", "</style.css>; rel=preload; as=style")
			w.WriteHeader(http.StatusEarlyHints)
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, "ok")
		})},
		{name: "early-hints-twice", raw: get("/"), wantStatus: []int{103, 103, 201}, h: static(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Link", "</a.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			w.Header().Add("Link", "</b.js>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			w.WriteHeader(http.StatusCreated)
		})},
		{name: "handler-transfer-encoding", raw: get("/") + get("/"), methods: get2, wantStatus: []int{200, 200},
			// net/http chunks the body and does not sniff its type; h1srv frames it with a length, sniffs.
			known: func(std *outcome) {
				for _, r := range std.replies {
					r.header.Set("Content-Type", "text/plain; charset=utf-8")
				}
			},
			h: static(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Transfer-Encoding", "chunked")
				io.WriteString(w, "hello")
			})},
		{name: "header-changed-after-write-header", raw: get("/"), wantStatus: []int{200}, h: static(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Early", "1")
			w.WriteHeader(http.StatusOK)
			w.Header().Set("X-Late", "1")
			io.WriteString(w, "x")
		})},
		{name: "write-header-twice", raw: get("/"), wantStatus: []int{201}, h: static(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusCreated)
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, "x")
		})},
		{name: "unknown-status", raw: get("/"), wantStatus: []int{599}, h: static(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(599)
		})},
		{name: "error-status-with-body", raw: get("/") + get("/"), methods: get2, wantStatus: []int{503, 503}, h: static(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
		})},

		// Requests the server answers itself.
		{name: "missing-host", raw: "GET / HTTP/1.1\r\n\r\n", h: text("no"), wantStatus: []int{400}, wantClosed: true, serverError: true},
		{name: "two-hosts", raw: "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", h: text("no"), wantStatus: []int{400}, wantClosed: true, serverError: true},
		{name: "two-hosts-http10", raw: "GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", h: text("no"), wantStatus: []int{400}, wantClosed: true, serverError: true},
		{name: "malformed-host", raw: "GET / HTTP/1.1\r\nHost: exa mple.com\r\n\r\n", h: text("no"), wantStatus: []int{400}, wantClosed: true, serverError: true},
		{name: "malformed-host-brackets", raw: "GET / HTTP/1.1\r\nHost: <script>\r\n\r\n", h: text("no"), wantStatus: []int{400}, wantClosed: true, serverError: true},
		{name: "malformed-request-line", raw: "GARBAGE\r\n\r\n", h: text("no"), wantStatus: []int{400}, wantClosed: true, serverError: true},
		{name: "malformed-proto", raw: "GET / FOO/1.1\r\nHost: x\r\n\r\n", h: text("no"), wantStatus: []int{400}, wantClosed: true, serverError: true},
		{name: "http09", raw: "GET /\r\n\r\n", h: text("no"), wantStatus: []int{400}, wantClosed: true, serverError: true},
		{name: "malformed-second-request", raw: get("/") + "BAD\r\n\r\n", h: text("ok"), wantStatus: []int{200, 400}, methods: get2, wantClosed: true, serverError: true},
		{name: "http2-version", raw: "GET / HTTP/2.0\r\nHost: x\r\n\r\n", h: text("no"), wantStatus: []int{505}, wantClosed: true, serverError: true},
		{name: "http0-version", raw: "GET / HTTP/0.9\r\nHost: x\r\n\r\n", h: text("no"), wantStatus: []int{505}, wantClosed: true, serverError: true},
		{name: "space-before-colon", raw: "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\nContent-Length: 3\r\n\r\nabc", methods: []string{"POST"},
			h: echo, wantStatus: []int{400}, wantClosed: true, serverError: true},
		{name: "invalid-header-name", raw: "GET / HTTP/1.1\r\nHost: x\r\nFoo Bar: x\r\n\r\n", h: text("no"), wantStatus: []int{400}, wantClosed: true, serverError: true},
		{name: "control-character-in-header-value", raw: "GET / HTTP/1.1\r\nHost: x\r\nFoo: a\x01b\r\n\r\n", h: text("no"), wantStatus: []int{400}, wantClosed: true, serverError: true},
		{name: "delete-in-header-value", raw: "GET / HTTP/1.1\r\nHost: x\r\nFoo: a\x7fb\r\n\r\n", h: text("no"), wantStatus: []int{400}, wantClosed: true, serverError: true},
		{name: "header-value-control-byte", raw: "GET / HTTP/1.1\r\nHost: x\r\nX: a\x01b\r\n\r\n", h: text("no"), wantStatus: []int{400}, wantClosed: true, serverError: true},
		{name: "header-too-large", raw: "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("b", 16<<10) + "\r\n\r\n", maxHeaderBytes: 1 << 10,
			h: text("no"), wantStatus: []int{431}, wantClosed: true, serverError: true},
		{name: "header-too-large-default-limit", raw: "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("b", 1<<20+8<<10) + "\r\n\r\n",
			h: text("no"), wantStatus: []int{431}, wantClosed: true, serverError: true},
		{name: "header-within-limit", raw: "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("b", 2<<10) + "\r\n\r\n" + get("/"), methods: get2, maxHeaderBytes: 1 << 10,
			h: text("yes"), wantStatus: []int{200, 200}},

		// Request framing (request smuggling).
		{name: "content-length-and-chunked", methods: []string{"POST", "GET"}, h: echo, wantStatus: []int{200, 200},
			raw: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked("hello", 5) + get("/smuggled")},
		{name: "invalid-content-length", raw: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\nabc", methods: []string{"POST"}, h: echo, wantStatus: []int{400}, wantClosed: true, serverError: true},
		{name: "negative-content-length", raw: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -3\r\n\r\nabc", methods: []string{"POST"}, h: echo, wantStatus: []int{400}, wantClosed: true, serverError: true},
		{name: "signed-content-length", raw: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\nabc", methods: []string{"POST"}, h: echo, wantStatus: []int{400}, wantClosed: true, serverError: true},
		{name: "conflicting-content-lengths", raw: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", methods: []string{"POST"}, h: echo, wantStatus: []int{400}, wantClosed: true, serverError: true},
		{name: "repeated-content-length", raw: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc" + get("/"), methods: []string{"POST", "GET"}, h: echo, wantStatus: []int{200, 200}},
		{name: "unsupported-transfer-encoding", raw: "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nabc", methods: []string{"POST"}, h: echo, wantStatus: []int{400}, wantClosed: true, serverError: true,
			// net/http answers 501 Not Implemented to a transfer coding it does not know; h1srv 400.
			known: func(std *outcome) { std.replies[0].status = 400 }},
		{name: "transfer-encoding-twice", raw: "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", methods: []string{"POST"}, h: echo, wantStatus: []int{400}, wantClosed: true, serverError: true,
			known: func(std *outcome) { std.replies[0].status = 400 }}, // as above
		{name: "bad-chunk-size", raw: "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n" + get("/"), methods: []string{"POST"}, h: echo, wantStatus: []int{200}, wantClosed: true},
		{name: "unread-small-body", raw: post("/", "abc") + get("/2"), methods: []string{"POST", "GET"}, h: text("ok"), wantStatus: []int{200, 200}},
		{name: "unread-chunked-body", raw: "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(strings.Repeat("c", 10<<10), 1000) + get("/2"), methods: []string{"POST", "GET"}, h: text("ok"), wantStatus: []int{200, 200}},
		{name: "partly-read-body", raw: post("/", strings.Repeat("p", 50<<10)) + get("/2"), methods: []string{"POST", "GET"}, wantStatus: []int{200, 200}, h: static(func(w http.ResponseWriter, r *http.Request) {
			r.Body.Read(make([]byte, 100))
			io.WriteString(w, "ok")
		})},
		{name: "unread-huge-body", raw: post("/", huge) + get("/2"), methods: []string{"POST", "GET"}, h: text("ok"), wantStatus: []int{200}, wantClosed: true},
		{name: "unread-huge-body-streaming", raw: post("/", huge) + get("/2"), methods: []string{"POST", "GET"}, wantStatus: []int{200}, wantClosed: true,
			// net/http reads the unread body when the head goes out, at the first Flush, and can
			// say then that the connection will close; h1srv leaves the body to the handler
			// while it streams, and learns only at the end.
			known: func(std *outcome) { std.replies[0].close = false },
			h: static(func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "a")
				w.(http.Flusher).Flush()
			})},
	}
}
