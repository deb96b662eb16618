package h1srv

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestKeepAliveMany(t *testing.T) {
	forBoth(t, func(t *testing.T, start func(http.Handler) string) {
		addr := start(echo(func(string, ...any) {}))
		c, br := dial(t, addr)
		rng := rand.New(rand.NewPCG(1, 2))
		for i := range 200 {
			body := strings.Repeat(string(rune('a'+i%26)), rng.IntN(20<<10))
			var req, method string
			switch i % 3 {
			case 0:
				req, method = get(fmt.Sprintf("/%d", i)), "GET"
			case 1:
				req, method = post(fmt.Sprintf("/%d", i), body), "POST"
			default:
				req = fmt.Sprintf("POST /%d HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n%s", i, chunked(body, 3000))
				method = "POST"
			}
			if _, err := io.WriteString(c, req); err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
			resp, got := readReply(t, br, method)
			want := fmt.Sprintf("%s /%d ", method, i)
			if method == "POST" {
				want += body
			}
			if resp.StatusCode != 200 || got != want {
				t.Fatalf("request %d: %d %.60q, want 200 %.60q", i, resp.StatusCode, got, want)
			}
			if resp.Close {
				t.Fatalf("request %d: the server closes the connection", i)
			}
		}
	})
}

// TestExpectContinue: the client hears "100 Continue" when the handler reads the body, not before;
// a handler that answers without reading ends the connection, and says so.
func TestExpectContinue(t *testing.T) {
	const head = "POST /up HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
	t.Run("read", func(t *testing.T) {
		forBoth(t, func(t *testing.T, start func(http.Handler) string) {
			proceed := make(chan struct{})
			addr := start(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/up" {
					<-proceed
				}
				body, err := io.ReadAll(r.Body)
				fmt.Fprintf(w, "got %q %v", body, err)
			}))
			c, br := dial(t, addr)
			io.WriteString(c, head)
			c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			if b, err := br.Peek(1); err == nil {
				t.Fatalf("the server answered %q before the handler read the body", b)
			}
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			close(proceed)
			resp, _ := readReply(t, br, "POST")
			if resp.StatusCode != http.StatusContinue {
				t.Fatalf("status %d, want 100", resp.StatusCode)
			}
			io.WriteString(c, "hello")
			resp, body := readReply(t, br, "POST")
			if resp.StatusCode != 200 || body != `got "hello" <nil>` || resp.Close {
				t.Fatalf("%d %q close %v", resp.StatusCode, body, resp.Close)
			}
			io.WriteString(c, get("/next"))
			if resp, body := readReply(t, br, "GET"); resp.StatusCode != 200 || body != `got "" <nil>` {
				t.Fatalf("next request: %d %q", resp.StatusCode, body)
			}
		})
	})
	t.Run("not-read", func(t *testing.T) {
		forBoth(t, func(t *testing.T, start func(http.Handler) string) {
			addr := start(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, "no", http.StatusForbidden)
			}))
			c, br := dial(t, addr)
			io.WriteString(c, head)
			resp, _ := readReply(t, br, "POST")
			if resp.StatusCode != http.StatusForbidden {
				t.Fatalf("status %d, want 403", resp.StatusCode)
			}
			if !resp.Close {
				t.Error("the response does not say the connection closes")
			}
			if strings.Contains(t.Name(), "/h1srv") {
				// net/http waits for the body it did not ask for before it closes.
				waitClosed(t, c, br, 2*time.Second)
			}
		})
	})
}

// TestExpectContinueGoClient: a handler refuses a request without reading its body. Go's client
// sends the body it was not asked for, into a connection about to close, unless the response says
// that the connection closes.
func TestExpectContinueGoClient(t *testing.T) {
	forBoth(t, func(t *testing.T, start func(http.Handler) string) {
		addr := start(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == "POST" {
				http.Error(w, "no", http.StatusForbidden)
				return
			}
			io.WriteString(w, "ok")
		}))
		var sent atomic.Int64
		tr := &http.Transport{ExpectContinueTimeout: 5 * time.Second}
		defer tr.CloseIdleConnections()
		client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		for i := range 3 {
			req, _ := http.NewRequest("POST", "http://"+addr+"/", &countingReader{r: strings.NewReader(strings.Repeat("x", 1<<20)), n: &sent})
			req.Header.Set("Expect", "100-continue")
			start := time.Now()
			resp, err := client.Do(req)
			if err != nil {
				t.Fatalf("POST %d: %v", i, err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden || time.Since(start) > 2*time.Second {
				t.Fatalf("POST %d: %d after %v", i, resp.StatusCode, time.Since(start))
			}
			resp, err = client.Get("http://" + addr + "/")
			if err != nil {
				t.Fatalf("GET %d: %v", i, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(body) != "ok" {
				t.Fatalf("GET %d: %q", i, body)
			}
		}
		if n := sent.Load(); n != 0 {
			t.Errorf("the client sent %d body bytes nobody asked for", n)
		}
	})
}

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// TestFlushReachesClient: each Flush of a stream reaches the client before the handler goes on.
func TestFlushReachesClient(t *testing.T) {
	forBoth(t, func(t *testing.T, start func(http.Handler) string) {
		next := make(chan struct{})
		addr := start(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			for i := range 3 {
				fmt.Fprintf(w, "data: %d\n\n", i)
				w.(http.Flusher).Flush()
				<-next
			}
		}))
		c, br := dial(t, addr)
		io.WriteString(c, get("/events"))
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Header.Get("Content-Type") != "text/event-stream" || len(resp.TransferEncoding) == 0 {
			t.Errorf("Content-Type %q, Transfer-Encoding %v", resp.Header.Get("Content-Type"), resp.TransferEncoding)
		}
		events := bufio.NewReader(resp.Body)
		for i := range 3 {
			line, err := events.ReadString('\n')
			blank, _ := events.ReadString('\n')
			if want := fmt.Sprintf("data: %d\n", i); line != want || blank != "\n" || err != nil {
				t.Fatalf("event %d: %q %q %v, want %q", i, line, blank, err, want)
			}
			next <- struct{}{}
		}
		if rest, err := io.ReadAll(events); len(rest) != 0 || err != nil {
			t.Fatalf("after the events: %q %v", rest, err)
		}
	})
}

// TestAbortHandler: panic(http.ErrAbortHandler) cuts the response short, silently, and the server
// goes on serving.
func TestAbortHandler(t *testing.T) {
	forBoth(t, func(t *testing.T, start func(http.Handler) string) {
		addr := start(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/abort" {
				io.WriteString(w, "partial")
				w.(http.Flusher).Flush()
				panic(http.ErrAbortHandler)
			}
			io.WriteString(w, "fine")
		}))
		c, br := dial(t, addr)
		io.WriteString(c, get("/abort"))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		if string(body) != "partial" || !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("body %q, err %v; want the partial body and an unexpected EOF", body, err)
		}
		c2, br2 := dial(t, addr)
		io.WriteString(c2, get("/"))
		if _, body := readReply(t, br2, "GET"); body != "fine" {
			t.Fatalf("next connection: %q", body)
		}
	})
}

func TestPanicIsLogged(t *testing.T) {
	var logs syncBuffer
	_, addr, _ := startH1(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/boom":
			panic("boom")
		case "/abort":
			panic(http.ErrAbortHandler)
		}
		io.WriteString(w, "fine")
	}), func(s *Server) { s.ErrorLog = slog.New(slog.NewTextHandler(&logs, nil)) })

	c, br := dial(t, addr)
	io.WriteString(c, get("/abort"))
	if _, err := http.ReadResponse(br, nil); err == nil {
		t.Fatal("a response to an aborted request")
	}
	if s := logs.String(); s != "" {
		t.Errorf("an aborted handler was logged: %s", s)
	}

	c, br = dial(t, addr)
	io.WriteString(c, get("/boom"))
	if _, err := http.ReadResponse(br, nil); err == nil {
		t.Fatal("a response to a request whose handler panicked")
	}
	waitFor(t, "the panic to be logged", func() bool { return strings.Contains(logs.String(), "boom") })
	if s := logs.String(); !strings.Contains(s, "panic") || !strings.Contains(s, "goroutine") {
		t.Errorf("log without the panic's stack: %s", s)
	}

	c, br = dial(t, addr)
	io.WriteString(c, get("/"))
	if _, body := readReply(t, br, "GET"); body != "fine" {
		t.Fatalf("after the panic: %q", body)
	}
}

// TestContextCanceledWhenClientLeaves: a handler that writes nothing learns that its client left
// from its context (the watcher starts after watchAfter).
func TestContextCanceledWhenClientLeaves(t *testing.T) {
	forBoth(t, func(t *testing.T, start func(http.Handler) string) {
		entered := make(chan struct{})
		cause := make(chan error, 1)
		addr := start(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			close(entered)
			select {
			case <-r.Context().Done():
				cause <- context.Cause(r.Context())
			case <-time.After(10 * time.Second):
				cause <- nil
			}
		}))
		c, _ := dial(t, addr)
		io.WriteString(c, get("/wait"))
		<-entered
		left := time.Now()
		c.Close()
		select {
		case err := <-cause:
			if err == nil {
				t.Fatal("the request's context did not end")
			}
			if strings.HasPrefix(t.Name(), "TestContextCanceledWhenClientLeaves/h1srv") && err != errClientGone {
				t.Errorf("cause %v, want errClientGone", err)
			}
			if d := time.Since(left); d > 3*time.Second {
				t.Errorf("canceled %v after the client left", d)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the request's context did not end")
		}
	})
}

// TestContextCanceledWhenWriteFails: a failed write ends the request's context at once.
func TestContextCanceledWhenWriteFails(t *testing.T) {
	type result struct {
		werr, ctxErr, cause error
	}
	done := make(chan result, 1)
	_, addr, _ := startH1(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := bytes.Repeat([]byte("x"), 16<<10)
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			if _, err := w.Write(chunk); err != nil {
				done <- result{err, r.Context().Err(), context.Cause(r.Context())}
				return
			}
		}
		done <- result{}
	}))
	c, br := dial(t, addr)
	io.WriteString(c, get("/"))
	if _, err := http.ReadResponse(br, nil); err != nil {
		t.Fatal(err)
	}
	c.Close()
	res := <-done
	if res.werr == nil {
		t.Fatal("writes to a closed connection kept succeeding")
	}
	if res.ctxErr == nil || res.cause != errClientGone {
		t.Errorf("after the failed write: context %v, cause %v; want canceled by errClientGone", res.ctxErr, res.cause)
	}
}

func TestRequestFields(t *testing.T) {
	type ctxKey struct{}
	seen := make(chan string, 1)
	_, addr, _ := startH1(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, hostHeader := r.Header["Host"]
		seen <- fmt.Sprintf("%v|%s|%s|%v", r.Context().Value(ctxKey{}), r.RemoteAddr, r.Host, hostHeader)
	}), func(s *Server) {
		s.BaseContext = func() context.Context { return context.WithValue(context.Background(), ctxKey{}, "base") }
	})
	c, br := dial(t, addr)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: api.example:8443\r\n\r\n")
	readReply(t, br, "GET")
	want := fmt.Sprintf("base|%s|api.example:8443|false", c.LocalAddr())
	if got := <-seen; got != want {
		t.Errorf("handler saw %q, want %q", got, want)
	}
}

// TestKnownDifferences pins where h1srv answers otherwise than net/http, on purpose or because
// it cannot tell: the last reply to each exchange, from each server.
func TestKnownDifferences(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "handler") })
	_, h1Addr, _ := startH1(t, h)
	stdAddr := startNetHTTP(t, h)
	type answer struct {
		proto  string
		status int
		body   string
	}
	for _, tc := range []struct {
		name    string
		raw     string
		replies int
		h1, std answer
	}{
		// http.ReadRequest takes the Host header away: h1srv sees only the host it yields. It
		// refuses an empty Host (allowed when the target has no authority), and takes an
		// absolute-form target for a missing Host header.
		{"empty-host", "GET / HTTP/1.1\r\nHost:\r\n\r\n", 1, answer{"HTTP/1.1", 400, ""}, answer{"HTTP/1.1", 200, "handler"}},
		{"absolute-form-without-host", "GET http://abs.example/ HTTP/1.1\r\n\r\n", 1, answer{"HTTP/1.1", 200, "handler"}, answer{"HTTP/1.1", 400, ""}},
		// net/http answers these itself.
		{"options-star", "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", 1, answer{"HTTP/1.1", 200, "handler"}, answer{"HTTP/1.1", 200, ""}},
		{"unknown-expectation", "GET / HTTP/1.1\r\nHost: x\r\nExpect: teapot\r\n\r\n", 1, answer{"HTTP/1.1", 200, "handler"}, answer{"HTTP/1.1", 417, ""}},
		// net/http skips an empty line after a POST's body, for old clients.
		{"empty-line-after-post", post("/", "abc") + "\r\n" + get("/"), 2, answer{"HTTP/1.1", 400, ""}, answer{"HTTP/1.1", 200, "handler"}},
		// net/http answers 501 Not Implemented to a transfer coding it does not know.
		{"unknown-transfer-coding", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 1, answer{"HTTP/1.1", 400, ""}, answer{"HTTP/1.1", 501, ""}},
		// h1srv answers HTTP/1.0 requests as HTTP/1.1 (with an explicit Connection header).
		{"http10-status-line", "GET / HTTP/1.0\r\n\r\n", 1, answer{"HTTP/1.1", 200, "handler"}, answer{"HTTP/1.0", 200, "handler"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, srv := range []struct {
				name, addr string
				want       answer
			}{{"h1srv", h1Addr, tc.h1}, {"net/http", stdAddr, tc.std}} {
				c, br := dial(t, srv.addr)
				io.WriteString(c, tc.raw)
				var got answer
				for range tc.replies {
					resp, err := http.ReadResponse(br, nil)
					if err != nil {
						t.Fatalf("%s: %v", srv.name, err)
					}
					body, _ := io.ReadAll(resp.Body)
					got = answer{resp.Proto, resp.StatusCode, string(body)}
				}
				if got.status != 200 {
					got.body = "" // the servers' own error texts do not matter
				}
				if got != srv.want {
					t.Errorf("%s: %v, want %v", srv.name, got, srv.want)
				}
			}
		})
	}
}

func TestReadHeaderTimeout(t *testing.T) {
	_, addr, _ := startH1(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }),
		func(s *Server) { s.ReadHeaderTimeout = 200 * time.Millisecond })
	t.Run("partial-head", func(t *testing.T) {
		c, br := dial(t, addr)
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n")
		waitClosed(t, c, br, 2*time.Second)
	})
	t.Run("nothing-sent", func(t *testing.T) {
		c, br := dial(t, addr)
		waitClosed(t, c, br, 2*time.Second)
	})
	t.Run("partial-second-head", func(t *testing.T) {
		c, br := dial(t, addr)
		io.WriteString(c, get("/")+"GET / HTTP/1.1\r\n")
		readReply(t, br, "GET")
		waitClosed(t, c, br, 2*time.Second)
	})
	t.Run("slow-but-in-time", func(t *testing.T) {
		c, br := dial(t, addr)
		io.WriteString(c, "GET / HTTP/1.1\r\n")
		time.Sleep(50 * time.Millisecond)
		io.WriteString(c, "Host: x\r\n\r\n")
		if _, body := readReply(t, br, "GET"); body != "ok" {
			t.Fatalf("body %q", body)
		}
	})
	t.Run("body-not-bounded", func(t *testing.T) {
		// ReadHeaderTimeout bounds the head only: a slow body is the handler's business.
		_, addr, _ := startH1(t, echo(func(string, ...any) {}), func(s *Server) { s.ReadHeaderTimeout = 100 * time.Millisecond })
		c, br := dial(t, addr)
		io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab")
		time.Sleep(300 * time.Millisecond)
		io.WriteString(c, "cd")
		if _, body := readReply(t, br, "POST"); body != "POST / abcd" {
			t.Fatalf("body %q", body)
		}
	})
}

func TestIdleTimeout(t *testing.T) {
	_, addr, _ := startH1(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }),
		func(s *Server) { s.IdleTimeout = 300 * time.Millisecond })
	c, br := dial(t, addr)
	for range 5 { // busy for longer than the idle timeout, never idle that long
		io.WriteString(c, get("/"))
		readReply(t, br, "GET")
		time.Sleep(100 * time.Millisecond)
	}
	start := time.Now()
	waitClosed(t, c, br, 3*time.Second)
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("closed after %v idle, before the idle timeout", d)
	}
}

// shutdownServer starts a server whose handler, on /block, tells entered and waits for release.
func shutdownServer(t *testing.T) (s *Server, addr string, served <-chan error, entered <-chan struct{}, release func()) {
	in := make(chan struct{}, 10)
	out := make(chan struct{})
	release = sync.OnceFunc(func() { close(out) })
	s, addr, served = startH1(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/stream" {
			io.WriteString(w, "head")
			w.(http.Flusher).Flush()
		}
		if r.URL.Path != "/" {
			in <- struct{}{}
			<-out
		}
		io.WriteString(w, "done")
	}))
	t.Cleanup(release)
	return s, addr, served, in, release
}

func TestShutdownClosesIdleConnections(t *testing.T) {
	s, addr, served, _, _ := shutdownServer(t)
	idle, idleBR := dial(t, addr)
	io.WriteString(idle, get("/"))
	readReply(t, idleBR, "GET")
	fresh, freshBR := dial(t, addr)
	time.Sleep(50 * time.Millisecond) // let the server take the fresh connection
	start := time.Now()
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Shutdown took %v", d)
	}
	waitClosed(t, idle, idleBR, time.Second)
	waitClosed(t, fresh, freshBR, time.Second)
	if err := <-served; err != http.ErrServerClosed {
		t.Errorf("Serve: %v, want ErrServerClosed", err)
	}
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Error("the listener still accepts")
	}
}

// A connection accepted just before Shutdown, whose request is already waiting in its socket, is served and then
// closed, as net/http does: closing it would lose a request the client believes sent (a load balancer connects and
// sends at once, and does not retry a POST). Shutdown catches the connection before its goroutine has read anything.
func TestShutdownServesAWaitingRequest(t *testing.T) {
	s, addr, served, _, _ := shutdownServer(t)
	hold := make(chan struct{})
	wait := func() { <-hold }
	testHookServe.Store(&wait)
	t.Cleanup(func() { testHookServe.Store(nil) })
	c, br := dial(t, addr)
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
	time.Sleep(100 * time.Millisecond) // the request reaches the server's socket; its goroutine waits on hold
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	for !s.shutdown.Load() {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // Shutdown has looked at the connection (it closed it, before the fix)
	close(hold)
	resp, body := readReply(t, br, "POST")
	if resp.StatusCode != 200 || body != "done" {
		t.Errorf("%d %q, want 200 done", resp.StatusCode, body)
	}
	if !resp.Close {
		t.Error("the response does not say the connection closes")
	}
	waitClosed(t, c, br, time.Second)
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if err := <-served; err != http.ErrServerClosed {
		t.Errorf("Serve: %v", err)
	}
}

// A silent connection, and an idle one after its request, are closed at once (the first test); one that sent only
// part of a request head before Shutdown gets until server.read_header_timeout to finish it, then is served.
func TestShutdownWaitsForAHeadStarted(t *testing.T) {
	s, addr, served, _, _ := shutdownServer(t)
	c, br := dial(t, addr)
	io.WriteString(c, "GET / HTTP/1.1\r\n")
	time.Sleep(100 * time.Millisecond)
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	time.Sleep(100 * time.Millisecond)
	io.WriteString(c, "Host: x\r\n\r\n")
	resp, body := readReply(t, br, "GET")
	if resp.StatusCode != 200 || body != "done" || !resp.Close {
		t.Errorf("%d %q close=%v, want 200 done and a close", resp.StatusCode, body, resp.Close)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	<-served
}

func TestShutdownWaitsForRequestsInFlight(t *testing.T) {
	for _, path := range []string{"/block", "/stream"} {
		t.Run(path, func(t *testing.T) {
			s, addr, served, entered, release := shutdownServer(t)
			c, br := dial(t, addr)
			io.WriteString(c, get(path)+get("/"))
			<-entered
			shut := make(chan error, 1)
			go func() { shut <- s.Shutdown(context.Background()) }()
			select {
			case err := <-shut:
				t.Fatalf("Shutdown returned %v with a request in flight", err)
			case <-time.After(100 * time.Millisecond):
			}
			release()
			resp, body := readReply(t, br, "GET")
			want := "done"
			if path == "/stream" {
				want = "headdone"
			} else if !resp.Close {
				t.Error("the last response does not say the connection closes")
			}
			if body != want {
				t.Errorf("body %q, want %q", body, want)
			}
			waitClosed(t, c, br, time.Second) // the pipelined request is not served
			if err := <-shut; err != nil {
				t.Errorf("Shutdown: %v", err)
			}
			if err := <-served; err != http.ErrServerClosed {
				t.Errorf("Serve: %v", err)
			}
		})
	}
}

func TestShutdownContextEnds(t *testing.T) {
	s, addr, _, entered, release := shutdownServer(t)
	c, br := dial(t, addr)
	io.WriteString(c, get("/block"))
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); err != context.DeadlineExceeded {
		t.Fatalf("Shutdown: %v, want context.DeadlineExceeded", err)
	}
	s.Close()
	waitClosed(t, c, br, time.Second)
	release()
}

func TestClose(t *testing.T) {
	s, addr, served, entered, release := shutdownServer(t)
	busy, busyBR := dial(t, addr)
	io.WriteString(busy, get("/block"))
	<-entered
	idle, idleBR := dial(t, addr)
	io.WriteString(idle, get("/"))
	readReply(t, idleBR, "GET")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, busy, busyBR, time.Second)
	waitClosed(t, idle, idleBR, time.Second)
	if err := <-served; err != http.ErrServerClosed {
		t.Errorf("Serve: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := s.Serve(ln); err != http.ErrServerClosed {
		t.Errorf("Serve after Close: %v", err)
	}
	release()
}

func TestH2CHandOff(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %s", r.Proto, r.Method, body)
	})
	h2 := NewHandOffListener(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	h2srv := &http.Server{Handler: h, Protocols: &p}
	go h2srv.Serve(h2)
	t.Cleanup(func() { h2srv.Close() })
	_, addr, _ := startH1(t, h, func(s *Server) { s.Fallback = h2.Deliver })

	var cp http.Protocols
	cp.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &cp}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	for _, body := range []string{"", "hello over h2c"} {
		resp, err := client.Post("http://"+addr+"/", "text/plain", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := "HTTP/2.0 POST " + body; resp.ProtoMajor != 2 || string(got) != want {
			t.Errorf("%s %q, want %q", resp.Proto, got, want)
		}
	}

	// HTTP/1.1 on the same listener stays with h1srv.
	c, br := dial(t, addr)
	io.WriteString(c, post("/", "one"))
	if _, body := readReply(t, br, "POST"); body != "HTTP/1.1 POST one" {
		t.Errorf("HTTP/1.1: %q", body)
	}
}

// TestH2CPrefaceReplayed: the fallback gets every byte the client sent, however it was split.
func TestH2CPrefaceReplayed(t *testing.T) {
	got := make(chan net.Conn, 1)
	_, addr, _ := startH1(t, http.NotFoundHandler(), func(s *Server) {
		s.Fallback = func(c net.Conn) { got <- c }
		s.ReadHeaderTimeout = 2 * time.Second
	})
	c, _ := dial(t, addr)
	io.WriteString(c, h2Preface[:5])
	time.Sleep(50 * time.Millisecond)
	io.WriteString(c, h2Preface[5:]+"frames")
	var fc net.Conn
	select {
	case fc = <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("no hand-off")
	}
	defer fc.Close()
	fc.SetDeadline(time.Now().Add(5 * time.Second))
	want := h2Preface + "frames"
	buf := make([]byte, len(want))
	if _, err := io.ReadFull(fc, buf); err != nil || string(buf) != want {
		t.Fatalf("fallback read %q %v, want %q", buf, err, want)
	}
	// The connection stays open for the fallback, and its deadline is not the server's.
	time.Sleep(2100 * time.Millisecond)
	io.WriteString(fc, "pong")
	reply := make([]byte, 4)
	if _, err := io.ReadFull(c, reply); err != nil || string(reply) != "pong" {
		t.Fatalf("client read %q %v", reply, err)
	}
	io.WriteString(c, "more")
	if _, err := io.ReadFull(fc, buf[:4]); err != nil || string(buf[:4]) != "more" {
		t.Fatalf("fallback read %q %v", buf[:4], err)
	}
}

func TestH2CWithoutFallback(t *testing.T) {
	_, addr, _ := startH1(t, http.NotFoundHandler())
	c, br := dial(t, addr)
	io.WriteString(c, h2Preface)
	waitClosed(t, c, br, 2*time.Second)
}

// TestManyClients: 50 clients each send 50 requests with bodies on one kept-alive connection.
func TestManyClients(t *testing.T) {
	_, addr, _ := startH1(t, echo(func(string, ...any) {}))
	var wg sync.WaitGroup
	var served atomic.Int64
	for client := range 50 {
		wg.Go(func() {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(30 * time.Second))
			br := bufio.NewReader(c)
			for i := range 50 {
				body := strings.Repeat(fmt.Sprintf("%d.%d;", client, i), 1+(client*i)%500)
				if _, err := io.WriteString(c, post(fmt.Sprintf("/%d/%d", client, i), body)); err != nil {
					t.Error(err)
					return
				}
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Errorf("client %d request %d: %v", client, i, err)
					return
				}
				got, err := io.ReadAll(resp.Body)
				if want := fmt.Sprintf("POST /%d/%d %s", client, i, body); err != nil || string(got) != want {
					t.Errorf("client %d request %d: %.40q %v", client, i, got, err)
					return
				}
				served.Add(1)
			}
		})
	}
	wg.Wait()
	if n := served.Load(); n != 50*50 {
		t.Errorf("served %d requests, want %d", n, 50*50)
	}
}

// plainListener hides the connections' SyscallConn, as TLS or a limiting listener would.
type plainListener struct{ net.Listener }

func (l plainListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return struct{ net.Conn }{c}, nil
}

func TestWrappedConnections(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Handler: echo(func(string, ...any) {}), MaxHeaderBytes: 1 << 10, IdleTimeout: 300 * time.Millisecond,
		ErrorLog: slog.New(slog.DiscardHandler)}
	go s.Serve(plainListener{ln})
	defer s.Close()
	addr := ln.Addr().String()

	c, br := dial(t, addr)
	for i := range 3 {
		io.WriteString(c, post("/", fmt.Sprint(i)))
		if _, body := readReply(t, br, "POST"); body != fmt.Sprintf("POST / %d", i) {
			t.Fatalf("request %d: %q", i, body)
		}
	}
	waitClosed(t, c, br, 3*time.Second) // idle timeout

	c, br = dial(t, addr)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("b", 16<<10)+"\r\n\r\n")
	if resp, _ := readReply(t, br, "GET"); resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("status %d, want 431", resp.StatusCode)
	}
}

func TestHandlerSeesWriteErrors(t *testing.T) {
	errs := make(chan error, 4)
	_, addr, _ := startH1(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
		_, err := w.Write([]byte("x"))
		errs <- err
		_, err = w.Write(nil)
		errs <- err
	}))
	c, br := dial(t, addr)
	io.WriteString(c, get("/"))
	readReply(t, br, "GET")
	if err := <-errs; err != http.ErrBodyNotAllowed {
		t.Errorf("Write to a 204: %v, want ErrBodyNotAllowed", err)
	}
	if err := <-errs; err != nil {
		t.Errorf("empty Write to a 204: %v", err)
	}
}

func TestInvalidWriteHeaderPanics(t *testing.T) {
	got := make(chan any, 1)
	_, addr, _ := startH1(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() { got <- recover() }()
		w.WriteHeader(42)
	}))
	c, br := dial(t, addr)
	io.WriteString(c, get("/"))
	readReply(t, br, "GET")
	if v := <-got; v == nil {
		t.Error("WriteHeader(42) did not panic")
	}
}
