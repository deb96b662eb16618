package h1srv

import (
	"bufio"
	"errors"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lifeline-sre/lifeline/internal/syncbuf"
)

// startH1 serves h with a Server on a loopback listener until the test ends. It returns the
// server, its address, and what Serve returned once it has.
func startH1(t testing.TB, h http.Handler, configure ...func(*Server)) (*Server, string, <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Handler: h, ErrorLog: slog.New(slog.DiscardHandler)}
	for _, f := range configure {
		f(s)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	t.Cleanup(func() { s.Close() })
	return s, ln.Addr().String(), served
}

// startNetHTTP serves h with net/http's server on a loopback listener until the test ends.
func startNetHTTP(t testing.TB, h http.Handler, configure ...func(*http.Server)) string {
	t.Helper()
	ts := httptest.NewUnstartedServer(h)
	ts.Config.ErrorLog = log.New(io.Discard, "", 0)
	for _, f := range configure {
		f(ts.Config)
	}
	ts.Start()
	t.Cleanup(ts.Close)
	return ts.Listener.Addr().String()
}

// forBoth runs the same test against h1srv and net/http: start serves a handler on the server
// under test and returns its address.
func forBoth(t *testing.T, run func(t *testing.T, start func(http.Handler) string)) {
	t.Helper()
	t.Run("h1srv", func(t *testing.T) {
		run(t, func(h http.Handler) string { _, addr, _ := startH1(t, h); return addr })
	})
	t.Run("net-http", func(t *testing.T) {
		run(t, func(h http.Handler) string { return startNetHTTP(t, h) })
	})
}

// dial opens a raw connection that gives up after 10 seconds and closes when the test ends.
func dial(t testing.TB, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c, bufio.NewReader(c)
}

// readReply reads one response to a request of method and its whole body.
func readReply(t testing.TB, br *bufio.Reader, method string) (*http.Response, string) {
	t.Helper()
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("reading response: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading response body: %v (read %q)", err, body)
	}
	return resp, string(body)
}

// closedByPeer reports whether the server closed c: it waits up to wait for the end of the stream,
// and fails the test if bytes arrive instead.
func closedByPeer(t testing.TB, c net.Conn, br *bufio.Reader, wait time.Duration) bool {
	t.Helper()
	if n := br.Buffered(); n > 0 {
		b, _ := br.Peek(n)
		t.Errorf("unexpected bytes after the responses: %q", b)
		return false
	}
	c.SetReadDeadline(time.Now().Add(wait))
	defer c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var b [64]byte
	n, err := br.Read(b[:])
	if n > 0 {
		t.Errorf("unexpected bytes after the responses: %q", b[:n])
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return true
}

// waitClosed fails the test unless the server closes c within wait.
func waitClosed(t testing.TB, c net.Conn, br *bufio.Reader, wait time.Duration) {
	t.Helper()
	if !closedByPeer(t, c, br, wait) {
		t.Fatalf("connection still open after %v", wait)
	}
}

func errKind(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "unexpected EOF"
	case errors.Is(err, io.EOF):
		return "EOF"
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	}
	return err.Error()
}

// get is a minimal HTTP/1.1 GET.
func get(path string) string { return "GET " + path + " HTTP/1.1\r\nHost: example.com\r\n\r\n" }

// post is an HTTP/1.1 POST with a Content-Length body.
func post(path, body string) string {
	return "POST " + path + " HTTP/1.1\r\nHost: example.com\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
}

type syncBuffer = syncbuf.Buffer

// waitFor polls cond until it holds or a few seconds passed.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// chunked frames body as chunks of at most n bytes, with an empty trailer.
func chunked(body string, n int) string {
	var b strings.Builder
	for len(body) > 0 {
		k := min(n, len(body))
		b.WriteString(strconv.FormatInt(int64(k), 16) + "\r\n" + body[:k] + "\r\n")
		body = body[k:]
	}
	b.WriteString("0\r\n\r\n")
	return b.String()
}
