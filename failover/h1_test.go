package failover

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The tests below put a real server on a loopback socket around a real h1Transport: an
// httptest server where net/http's behaviour is what is wanted, and a raw TCP server that
// writes exact bytes where the test must script the region (interim answers, a close at a
// chosen moment, a stall).

// h1Wait bounds every wait for something another goroutine or the kernel does.
const h1Wait = 5 * time.Second

// newTestH1 builds an h1Transport for rawURL whose dials are counted. Dialer.Control runs
// before connect, in RoundTrip's goroutine, so the count is exact when RoundTrip returns.
func newTestH1(t testing.TB, rawURL string, to Timeouts, tlsConf *tls.Config) (*h1Transport, *atomic.Int64) {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	tr := newH1Transport(u.Scheme, u.Host, to, tlsConf)
	dials := new(atomic.Int64)
	tr.dialer.Control = func(string, string, syscall.RawConn) error {
		dials.Add(1)
		return nil
	}
	t.Cleanup(tr.CloseIdleConnections)
	return tr, dials
}

func h1Timeouts() Timeouts { return Timeouts{Connect: h1Wait} }

// idleConns returns the pooled connections, oldest first.
func idleConns(tr *h1Transport) []*h1Conn {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return slices.Clone(tr.idle)
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(h1Wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// h1Server is an httptest server that counts the connections it accepted and saw close.
type h1Server struct {
	*httptest.Server
	opened, closed atomic.Int64
}

func newH1Server(t testing.TB, h http.HandlerFunc, startTLS, http2 bool) *h1Server {
	t.Helper()
	s := &h1Server{Server: httptest.NewUnstartedServer(h)}
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			s.opened.Add(1)
		case http.StateClosed, http.StateHijacked:
			s.closed.Add(1)
		}
	}
	if startTLS {
		s.EnableHTTP2 = http2
		s.StartTLS()
	} else {
		s.Start()
	}
	t.Cleanup(s.Close)
	return s
}

// trust is a client TLS config that trusts s's certificate.
func (s *h1Server) trust() *tls.Config {
	return &tls.Config{RootCAs: s.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs}
}

// rawServer is a TCP server whose connections a test scripts byte by byte; serve gets the
// connection's number (from 1) and returns when the test is done with it.
type rawServer struct {
	ln       net.Listener
	accepted atomic.Int64
	mu       sync.Mutex
	conns    []net.Conn
	wg       sync.WaitGroup
}

func newRawServer(t *testing.T, serve func(n int, c net.Conn, br *bufio.Reader)) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{ln: ln}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n := int(s.accepted.Add(1))
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				serve(n, c, bufio.NewReader(c))
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for _, c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *rawServer) url() string { return "http://" + s.ln.Addr().String() }

// readRawRequest reads one request and its whole body.
func readRawRequest(br *bufio.Reader) (*http.Request, []byte, error) {
	req, err := http.ReadRequest(br)
	if err != nil {
		return nil, nil, err
	}
	body, err := io.ReadAll(req.Body)
	return req, body, err
}

func writeRaw(c net.Conn, status int, body string) error {
	_, err := fmt.Fprintf(c, "HTTP/1.1 %d %s\r\nContent-Length: %d\r\n\r\n%s", status, http.StatusText(status), len(body), body)
	return err
}

// waitEOF blocks until the peer closes c and reports how many bytes arrived meanwhile.
func waitEOF(br *bufio.Reader) int64 {
	n, _ := io.Copy(io.Discard, br)
	return n
}

func newH1Request(t testing.TB, ctx context.Context, method, rawURL string, body []byte) *http.Request {
	t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, rawURL, r)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// h1Do sends a request and reads the whole answer.
func h1Do(t testing.TB, tr *h1Transport, method, rawURL string, body []byte) (*http.Response, string) {
	t.Helper()
	resp, err := tr.RoundTrip(newH1Request(t, context.Background(), method, rawURL, body))
	if err != nil {
		t.Fatalf("%s %s: %v", method, rawURL, err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, rawURL, err)
	}
	return resp, string(b)
}

// h1Get is h1Do for goroutines other than the test's: a GET whose failure is returned.
func h1Get(tr *h1Transport, rawURL string) error {
	req, err := http.NewRequest("GET", rawURL, nil)
	if err != nil {
		return err
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}

// TestH1KeepAlive: sequential requests share one connection, whether the answer has a
// Content-Length or is chunked (with a trailer); reading the body to the end pools the
// connection before Close.
func TestH1KeepAlive(t *testing.T) {
	const body = `{"id":"chatcmpl-1","choices":[]}`
	for _, tc := range []struct {
		name    string
		chunked bool
		handler http.HandlerFunc
	}{
		{"content-length", false, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			io.WriteString(w, body)
		}},
		{"chunked", true, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Trailer", "X-Sum")
			io.WriteString(w, body[:10])
			w.(http.Flusher).Flush()
			io.WriteString(w, body[10:])
			w.Header().Set("X-Sum", "42")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newH1Server(t, tc.handler, false, false)
			tr, dials := newTestH1(t, srv.URL, h1Timeouts(), nil)
			for i := range 5 {
				resp, err := tr.RoundTrip(newH1Request(t, context.Background(), "GET", srv.URL+"/x", nil))
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				if got := resp.TransferEncoding; tc.chunked != slices.Equal(got, []string{"chunked"}) {
					t.Fatalf("request %d: Transfer-Encoding %q, chunked %v", i, got, tc.chunked)
				}
				b, err := io.ReadAll(resp.Body)
				if err != nil || string(b) != body {
					t.Fatalf("request %d: body %q, %v", i, b, err)
				}
				if n := len(idleConns(tr)); n != 1 {
					t.Fatalf("request %d: %d idle connections after EOF, before Close; want 1", i, n)
				}
				if n, err := resp.Body.Read(make([]byte, 1)); n != 0 || err != io.EOF {
					t.Fatalf("request %d: Read after EOF = %d, %v", i, n, err)
				}
				if tc.chunked && resp.Trailer.Get("X-Sum") != "42" {
					t.Fatalf("request %d: trailer %v", i, resp.Trailer)
				}
				resp.Body.Close()
			}
			if d, o := dials.Load(), srv.opened.Load(); d != 1 || o != 1 {
				t.Fatalf("dials %d, server connections %d; want 1 and 1", d, o)
			}
		})
	}
}

// TestH1BodyClosedEarly: a body closed before its end closes the connection, which is then
// not reused, whether the rest was still on the wire or already buffered.
func TestH1BodyClosedEarly(t *testing.T) {
	for _, tc := range []struct {
		name string
		size int
		read int
	}{
		{"large, partly read", 1 << 20, 10},
		{"small, unread", 11, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			payload := strings.Repeat("x", tc.size)
			srv := newH1Server(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", strconv.Itoa(len(payload)))
				io.WriteString(w, payload)
			}, false, false)
			tr, dials := newTestH1(t, srv.URL, h1Timeouts(), nil)
			resp, err := tr.RoundTrip(newH1Request(t, context.Background(), "GET", srv.URL, nil))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(resp.Body, make([]byte, tc.read)); err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if n := len(idleConns(tr)); n != 0 {
				t.Fatalf("%d idle connections after an early Close; want 0", n)
			}
			eventually(t, "the server to see the connection close", func() bool { return srv.closed.Load() == 1 })
			if _, got := h1Do(t, tr, "GET", srv.URL, nil); got != payload {
				t.Fatalf("second body has %d bytes, want %d", len(got), len(payload))
			}
			if d := dials.Load(); d != 2 {
				t.Fatalf("dials %d, want 2", d)
			}
		})
	}
}

// splitHead returns the request line and the header lines of a raw request head.
func splitHead(raw string) (line string, fields [][2]string) {
	head, _, _ := strings.Cut(raw, "\r\n\r\n")
	lines := strings.Split(head, "\r\n")
	for _, l := range lines[1:] {
		k, v, _ := strings.Cut(l, ":")
		fields = append(fields, [2]string{k, strings.TrimSpace(v)})
	}
	return lines[0], fields
}

func fieldValues(fields [][2]string, name string) []string {
	var vs []string
	for _, f := range fields {
		if strings.EqualFold(f[0], name) {
			vs = append(vs, f[1])
		}
	}
	return vs
}

// TestH1RequestEncoding: the exact head on the wire: method, escaped path and raw query,
// Host from req.Host, the caller's headers, no hop-by-hop ones, one Content-Length.
func TestH1RequestEncoding(t *testing.T) {
	type got struct {
		head string
		body []byte
	}
	seen := make(chan got, 1)
	srv := newRawServer(t, func(_ int, c net.Conn, br *bufio.Reader) {
		var raw bytes.Buffer
		req, err := http.ReadRequest(bufio.NewReader(io.TeeReader(br, &raw)))
		if err != nil {
			return
		}
		body, _ := io.ReadAll(req.Body)
		seen <- got{raw.String(), body}
		writeRaw(c, 200, "ok")
	})
	tr, _ := newTestH1(t, srv.url(), h1Timeouts(), nil)
	body := []byte(`{"messages":[{"role":"user","content":"hi"}]}`)
	req := &http.Request{
		Method: "PATCH",
		URL: &url.URL{Scheme: "http", Host: srv.ln.Addr().String(), Path: "/v1/a b/c/d", RawPath: "/v1/a%20b/c%2Fd",
			RawQuery: "api-version=2024-10-21&q=%20x"},
		Host: "override.example:8443",
		Header: http.Header{
			"Content-Type": {"application/json"}, "X-Multi": {"a", "b"}, "X-Padded": {"  v  "},
			"Connection": {"keep-alive, X-Foo"}, "Transfer-Encoding": {"chunked"}, "Te": {"trailers"},
			"Upgrade": {"websocket"}, "Keep-Alive": {"timeout=5"}, "Expect": {"100-continue"},
			"Proxy-Connection": {"keep-alive"}, "Trailer": {"X-T"}, "Content-Length": {"999"},
			"Host": {"header.example"},
		},
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
	}
	resp, err := tr.RoundTrip(req.WithContext(context.Background()))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	g := <-seen
	line, fields := splitHead(g.head)
	if want := "PATCH /v1/a%20b/c%2Fd?api-version=2024-10-21&q=%20x HTTP/1.1"; line != want {
		t.Errorf("request line %q, want %q", line, want)
	}
	for name, want := range map[string][]string{
		"Host": {"override.example:8443"}, "Content-Length": {strconv.Itoa(len(body))},
		"Content-Type": {"application/json"}, "X-Multi": {"a", "b"}, "X-Padded": {"v"}, "User-Agent": {"lifeline"},
	} {
		if vs := fieldValues(fields, name); !slices.Equal(vs, want) {
			t.Errorf("%s: %q, want %q", name, vs, want)
		}
	}
	for _, name := range []string{"Connection", "Transfer-Encoding", "Te", "Upgrade", "Keep-Alive", "Expect",
		"Proxy-Connection", "Trailer"} {
		if vs := fieldValues(fields, name); vs != nil {
			t.Errorf("hop-by-hop %s forwarded: %q", name, vs)
		}
	}
	if !bytes.Equal(g.body, body) {
		t.Errorf("body %q, want %q", g.body, body)
	}
}

// TestH1HostAndUserAgent: the Host header comes from req.Host, else the URL, else the
// region; a caller's User-Agent is kept.
func TestH1HostAndUserAgent(t *testing.T) {
	type seenReq struct{ host, ua string }
	seen := make(chan seenReq, 1)
	srv := newH1Server(t, func(w http.ResponseWriter, r *http.Request) {
		seen <- seenReq{r.Host, r.UserAgent()}
	}, false, false)
	addr := strings.TrimPrefix(srv.URL, "http://")
	tr, _ := newTestH1(t, srv.URL, h1Timeouts(), nil)
	for _, tc := range []struct {
		name      string
		host      string
		urlHost   string
		ua        string
		wantHost  string
		wantAgent string
	}{
		{"req.Host wins", "api.example", addr, "", "api.example", "lifeline"},
		{"URL host", "", "url.example:1234", "", "url.example:1234", "lifeline"},
		{"region host", "", "", "", addr, "lifeline"},
		{"caller's agent", "", addr, "OpenAI/Go 3.95.0", addr, "OpenAI/Go 3.95.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := &http.Request{Method: "GET", URL: &url.URL{Scheme: "http", Host: tc.urlHost, Path: "/"},
				Host: tc.host, Header: http.Header{}}
			if tc.ua != "" {
				req.Header.Set("User-Agent", tc.ua)
			}
			resp, err := tr.RoundTrip(req.WithContext(context.Background()))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if g := <-seen; g.host != tc.wantHost || g.ua != tc.wantAgent {
				t.Fatalf("Host %q, User-Agent %q; want %q, %q", g.host, g.ua, tc.wantHost, tc.wantAgent)
			}
		})
	}
}

// TestH1RequestBodies: bodies of every size around h1InlineBody (in the header write, or a
// write of their own) arrive intact, all on one connection.
func TestH1RequestBodies(t *testing.T) {
	srv := newH1Server(t, func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		sum := sha256.Sum256(b)
		fmt.Fprintf(w, "%s %d %d %s", r.Method, r.ContentLength, len(b), hex.EncodeToString(sum[:]))
	}, false, false)
	tr, dials := newTestH1(t, srv.URL, h1Timeouts(), nil)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, size := range []int{0, 1, h1InlineBody - 1, h1InlineBody, h1InlineBody + 1, 1<<20 + 3} {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			body := make([]byte, size)
			for i := range body {
				body[i] = byte(rng.Uint32())
			}
			sum := sha256.Sum256(body)
			_, got := h1Do(t, tr, "POST", srv.URL+"/echo", body)
			if want := fmt.Sprintf("POST %d %d %s", size, size, hex.EncodeToString(sum[:])); got != want {
				t.Fatalf("server saw %q, want %q", got, want)
			}
		})
	}
	if d := dials.Load(); d != 1 {
		t.Fatalf("dials %d, want 1", d)
	}
}

// TestH1BodylessPostWithLength: a request without a body says Content-Length: 0 whatever
// req.ContentLength claims; a region would otherwise wait for bytes that never come.
func TestH1BodylessPostWithLength(t *testing.T) {
	srv := newH1Server(t, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%d", r.ContentLength)
	}, false, false)
	tr, _ := newTestH1(t, srv.URL, h1Timeouts(), nil)
	for _, body := range []io.ReadCloser{nil, http.NoBody} {
		ctx, cancel := context.WithTimeout(context.Background(), h1Wait)
		req := newH1Request(t, ctx, "POST", srv.URL, nil)
		req.Body, req.ContentLength = body, 5
		resp, err := tr.RoundTrip(req)
		if err != nil {
			cancel()
			t.Fatalf("body %v: %v", body, err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		if string(got) != "0" {
			t.Fatalf("body %v: server saw Content-Length %s, want 0", body, got)
		}
	}
}

// TestH1RejectsInvalidRequest: a request that would corrupt the head is refused before
// anything is written, and the pooled connection stays clean for the next request.
func TestH1RejectsInvalidRequest(t *testing.T) {
	var mu sync.Mutex
	var paths []string
	srv := newH1Server(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.RequestURI())
		mu.Unlock()
	}, false, false)
	tr, dials := newTestH1(t, srv.URL, h1Timeouts(), nil)
	h1Do(t, tr, "GET", srv.URL+"/first", nil)
	for _, tc := range []struct {
		name   string
		modify func(*http.Request)
	}{
		{"header name with space", func(r *http.Request) { r.Header["Bad Name"] = []string{"v"} }},
		{"header name with CRLF", func(r *http.Request) { r.Header["X-A\r\nX-Evil"] = []string{"v"} }},
		{"header value with CRLF", func(r *http.Request) { r.Header["X-A"] = []string{"v\r\nX-Evil: 1"} }},
		{"header value with LF", func(r *http.Request) { r.Header["X-A"] = []string{"v\nX-Evil: 1"} }},
		{"header value with NUL", func(r *http.Request) { r.Header["X-A"] = []string{"v\x00"} }},
		{"method with space", func(r *http.Request) { r.Method = "GET /evil" }},
		{"method with CRLF", func(r *http.Request) { r.Method = "GET\r\n" }},
		{"Host with CRLF", func(r *http.Request) { r.Host = "a.example\r\nX-Evil: 1" }},
		{"query with CRLF", func(r *http.Request) { r.URL.RawQuery = "a=1 HTTP/1.1\r\nX-Evil: 1\r\n\r\nGET /smuggled?b=2" }},
		{"opaque with CRLF", func(r *http.Request) { r.URL.Opaque = "/x\r\nX-Evil: 1" }},
		{"body of unknown length", func(r *http.Request) {
			r.Method, r.Body, r.ContentLength = "POST", io.NopCloser(strings.NewReader("x")), -1
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := newH1Request(t, context.Background(), "GET", srv.URL+"/invalid", nil)
			tc.modify(req)
			resp, err := tr.RoundTrip(req)
			if err == nil {
				resp.Body.Close()
				t.Fatal("RoundTrip succeeded, want an error")
			}
		})
	}
	h1Do(t, tr, "GET", srv.URL+"/last", nil)
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(paths, []string{"/first", "/last"}) {
		t.Fatalf("server saw %q, want only /first and /last", paths)
	}
	if d := dials.Load(); d != 1 {
		t.Fatalf("dials %d, want 1: an invalid request must leave the pooled connection alone", d)
	}
}

var peekSupported = slices.Contains([]string{"linux", "darwin", "freebsd", "netbsd", "openbsd"}, runtime.GOOS)

// TestH1IdleCloseFoundByPeek: a region that closes a keep-alive connection after its
// answer: the close is seen before reuse, nothing is written to the dead connection, and the
// next request goes out on a new one.
func TestH1IdleCloseFoundByPeek(t *testing.T) {
	if !peekSupported {
		t.Skip("no idle peek on " + runtime.GOOS)
	}
	lateBytes := make(chan int64, 1)
	srv := newRawServer(t, func(n int, c net.Conn, br *bufio.Reader) {
		if _, _, err := readRawRequest(br); err != nil {
			return
		}
		writeRaw(c, 200, fmt.Sprintf("conn %d", n))
		if n == 1 {
			c.(*net.TCPConn).CloseWrite() // FIN, but keep reading to see whether anything else comes
			lateBytes <- waitEOF(br)
		}
	})
	tr, dials := newTestH1(t, srv.url(), h1Timeouts(), nil)
	if _, got := h1Do(t, tr, "GET", srv.url(), nil); got != "conn 1" {
		t.Fatalf("first answer %q", got)
	}
	idle := idleConns(tr)
	if len(idle) != 1 {
		t.Fatalf("%d idle connections, want 1", len(idle))
	}
	eventually(t, "the FIN to reach the pooled connection", func() bool { return !peekIdle(idle[0].raw) })
	if _, got := h1Do(t, tr, "GET", srv.url(), nil); got != "conn 2" {
		t.Fatalf("second answer %q, want it from a new connection", got)
	}
	if n := <-lateBytes; n != 0 {
		t.Fatalf("%d bytes written to the connection the region had closed", n)
	}
	if d := dials.Load(); d != 2 {
		t.Fatalf("dials %d, want 2", d)
	}
}

// resendServer answers the first request on connection 1, then reads the second one and
// closes without answering, as a region does whose idle timeout fires while the request is
// on its way. Later connections close without answering if failAll, else echo the body.
type resendServer struct {
	*rawServer
	mu   sync.Mutex
	seen map[int][]string // bodies (or paths, for bodyless requests) by connection
}

func newResendServer(t *testing.T, failAll bool) *resendServer {
	s := &resendServer{seen: map[int][]string{}}
	s.rawServer = newRawServer(t, func(n int, c net.Conn, br *bufio.Reader) {
		for i := 0; ; i++ {
			req, body, err := readRawRequest(br)
			if err != nil {
				return
			}
			what := string(body)
			if len(body) == 0 {
				what = req.URL.Path
			}
			s.mu.Lock()
			s.seen[n] = append(s.seen[n], what)
			s.mu.Unlock()
			if (n == 1 && i == 1) || (n > 1 && failAll) {
				return // close, unanswered
			}
			writeRaw(c, 200, what)
		}
	})
	return s
}

func (s *resendServer) requests() map[int][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[int][]string{}
	for n, v := range s.seen {
		out[n] = slices.Clone(v)
	}
	return out
}

// TestH1ResendOnReusedConn: a reused connection that the region closes after reading the
// request, before any byte of the answer: the request is sent once more, on a new
// connection, when its body can be replayed; never twice, never a body it cannot replay.
func TestH1ResendOnReusedConn(t *testing.T) {
	for _, tc := range []struct {
		name      string
		failAll   bool
		method    string
		body      []byte
		noGetBody bool
		wantErr   bool
		wantSeen  map[int][]string
	}{
		{"post with GetBody", false, "POST", []byte("two"), false, false,
			map[int][]string{1: {"one", "two"}, 2: {"two"}}},
		{"get without body", false, "GET", nil, false, false,
			map[int][]string{1: {"one", "/second"}, 2: {"/second"}}},
		{"body without GetBody", false, "POST", []byte("two"), true, true,
			map[int][]string{1: {"one", "two"}}},
		{"new connection fails too", true, "POST", []byte("two"), false, true,
			map[int][]string{1: {"one", "two"}, 2: {"two"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newResendServer(t, tc.failAll)
			tr, dials := newTestH1(t, srv.url(), h1Timeouts(), nil)
			h1Do(t, tr, "POST", srv.url()+"/first", []byte("one"))
			req := newH1Request(t, context.Background(), tc.method, srv.url()+"/second", tc.body)
			if tc.noGetBody {
				req.GetBody = nil
			}
			resp, err := tr.RoundTrip(req)
			if tc.wantErr {
				if err == nil {
					resp.Body.Close()
					t.Fatal("RoundTrip succeeded, want an error")
				}
				if errors.Is(err, errNothingRead) {
					t.Errorf("error %v still carries the internal errNothingRead mark", err)
				}
			} else {
				if err != nil {
					t.Fatalf("RoundTrip: %v", err)
				}
				got, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if want := tc.wantSeen[2][0]; string(got) != want {
					t.Fatalf("answer %q, want %q", got, want)
				}
			}
			if d, want := dials.Load(), int64(len(tc.wantSeen)); d != want {
				t.Errorf("dials %d, want %d", d, want)
			}
			if got := srv.requests(); fmt.Sprint(got) != fmt.Sprint(tc.wantSeen) {
				t.Errorf("server saw %v, want %v", got, tc.wantSeen)
			}
		})
	}
}

// TestH1NoResendOnFreshConn: the same failure on a connection dialed for the request is the
// region's answer to it, not a stale connection: it is returned, not retried.
func TestH1NoResendOnFreshConn(t *testing.T) {
	srv := newRawServer(t, func(_ int, c net.Conn, br *bufio.Reader) {
		readRawRequest(br) // and close, unanswered
	})
	tr, dials := newTestH1(t, srv.url(), h1Timeouts(), nil)
	resp, err := tr.RoundTrip(newH1Request(t, context.Background(), "POST", srv.url(), []byte("x")))
	if err == nil {
		resp.Body.Close()
		t.Fatal("RoundTrip succeeded, want an error")
	}
	if errors.Is(err, errNothingRead) {
		t.Errorf("error %v still carries the internal errNothingRead mark", err)
	}
	if d := dials.Load(); d != 1 {
		t.Fatalf("dials %d, want 1", d)
	}
}

// TestH1NotReusedAfterClose: an answer that ends the connection (Connection: close, or a
// body delimited by the close) leaves nothing in the pool.
func TestH1NotReusedAfterClose(t *testing.T) {
	t.Run("Connection: close", func(t *testing.T) {
		srv := newH1Server(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Connection", "close")
			io.WriteString(w, "bye")
		}, false, false)
		tr, dials := newTestH1(t, srv.URL, h1Timeouts(), nil)
		for i := range 2 {
			if resp, got := h1Do(t, tr, "GET", srv.URL, nil); got != "bye" || !resp.Close {
				t.Fatalf("request %d: body %q, Close %v", i, got, resp.Close)
			}
			if n := len(idleConns(tr)); n != 0 {
				t.Fatalf("request %d: %d idle connections, want 0", i, n)
			}
		}
		if d, o := dials.Load(), srv.opened.Load(); d != 2 || o != 2 {
			t.Fatalf("dials %d, server connections %d; want 2 and 2", d, o)
		}
	})
	t.Run("body until close", func(t *testing.T) {
		srv := newRawServer(t, func(_ int, c net.Conn, br *bufio.Reader) {
			if _, _, err := readRawRequest(br); err == nil {
				io.WriteString(c, "HTTP/1.1 200 OK\r\n\r\nuntil close")
			}
		})
		tr, dials := newTestH1(t, srv.url(), h1Timeouts(), nil)
		for i := range 2 {
			if _, got := h1Do(t, tr, "GET", srv.url(), nil); got != "until close" {
				t.Fatalf("request %d: body %q", i, got)
			}
			if n := len(idleConns(tr)); n != 0 {
				t.Fatalf("request %d: %d idle connections, want 0", i, n)
			}
		}
		if d := dials.Load(); d != 2 {
			t.Fatalf("dials %d, want 2", d)
		}
	})
}

// TestH1InterimResponses: 100 Continue and 103 Early Hints before the answer are skipped
// and leave the connection reusable; 101 is an error.
func TestH1InterimResponses(t *testing.T) {
	const interim = "HTTP/1.1 100 Continue\r\n\r\n" +
		"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
	srv := newRawServer(t, func(_ int, c net.Conn, br *bufio.Reader) {
		for {
			req, _, err := readRawRequest(br)
			if err != nil {
				return
			}
			if req.URL.Path == "/upgrade" {
				io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
				continue
			}
			io.WriteString(c, interim+"HTTP/1.1 200 OK\r\nX-Final: yes\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	tr, dials := newTestH1(t, srv.url(), h1Timeouts(), nil)
	for i := range 3 {
		resp, got := h1Do(t, tr, "POST", srv.url(), []byte("x"))
		if resp.StatusCode != 200 || got != "ok" || resp.Header.Get("X-Final") != "yes" || resp.Header.Get("Link") != "" {
			t.Fatalf("request %d: %d %v %q", i, resp.StatusCode, resp.Header, got)
		}
	}
	if d := dials.Load(); d != 1 {
		t.Fatalf("dials %d, want 1", d)
	}
	resp, err := tr.RoundTrip(newH1Request(t, context.Background(), "GET", srv.url()+"/upgrade", nil))
	if err == nil {
		resp.Body.Close()
		t.Fatal("101 answer: RoundTrip succeeded, want an error")
	}
}

// TestH1NoBodyPooledAtOnce: answers without a body (HEAD, 204, 304, an empty 200) put the
// connection back before RoundTrip returns.
func TestH1NoBodyPooledAtOnce(t *testing.T) {
	srv := newH1Server(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/head":
			w.Header().Set("Content-Length", "1000")
		case "/204":
			w.WriteHeader(http.StatusNoContent)
		case "/304":
			w.WriteHeader(http.StatusNotModified)
		case "/empty":
			w.Header().Set("Content-Length", "0")
		}
	}, false, false)
	tr, dials := newTestH1(t, srv.URL, h1Timeouts(), nil)
	for _, tc := range []struct{ method, path string }{
		{"HEAD", "/head"}, {"GET", "/204"}, {"GET", "/304"}, {"GET", "/empty"}, {"HEAD", "/head"},
	} {
		resp, err := tr.RoundTrip(newH1Request(t, context.Background(), tc.method, srv.URL+tc.path, nil))
		if err != nil {
			t.Fatalf("%s %s: %v", tc.method, tc.path, err)
		}
		if n := len(idleConns(tr)); n != 1 {
			t.Fatalf("%s %s: %d idle connections before the body is touched, want 1", tc.method, tc.path, n)
		}
		if resp.Body != http.NoBody {
			t.Fatalf("%s %s: body %T, want http.NoBody", tc.method, tc.path, resp.Body)
		}
		resp.Body.Close()
	}
	if d := dials.Load(); d != 1 {
		t.Fatalf("dials %d, want 1", d)
	}
}

var errH1TestCause = errors.New("h1 test: caller gave up")

// stallServer reads one request, reports it, writes prefix, and then says nothing until the
// client closes the connection, which it reports too.
func stallServer(t *testing.T, prefix string) (srv *rawServer, got, closed chan struct{}) {
	got, closed = make(chan struct{}), make(chan struct{})
	srv = newRawServer(t, func(_ int, c net.Conn, br *bufio.Reader) {
		if _, _, err := readRawRequest(br); err != nil {
			return
		}
		io.WriteString(c, prefix)
		close(got)
		waitEOF(br)
		close(closed)
	})
	return srv, got, closed
}

func waitFor(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(h1Wait):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// TestH1CancelWaitingForHeaders: a canceled request returns at once with the context's
// cause, and its connection is closed.
func TestH1CancelWaitingForHeaders(t *testing.T) {
	srv, got, closed := stallServer(t, "")
	tr, _ := newTestH1(t, srv.url(), h1Timeouts(), nil)
	ctx, cancel := context.WithCancelCause(context.Background())
	req := newH1Request(t, ctx, "POST", srv.url(), []byte("x"))
	errc := make(chan error, 1)
	go func() {
		resp, err := tr.RoundTrip(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	waitFor(t, got, "the request")
	cancel(errH1TestCause)
	wantCause(t, errc, "RoundTrip")
	waitFor(t, closed, "the connection to close")
	if n := len(idleConns(tr)); n != 0 {
		t.Fatalf("%d idle connections, want 0", n)
	}
}

// wantCause waits for what (RoundTrip, Read) to return after the cancel, with errH1TestCause.
func wantCause(t *testing.T, errc <-chan error, what string) {
	t.Helper()
	select {
	case err := <-errc:
		if !errors.Is(err, errH1TestCause) {
			t.Fatalf("%s error %v, want the cause %v", what, err, errH1TestCause)
		}
	case <-time.After(h1Wait):
		t.Fatalf("%s did not return after cancel", what)
	}
}

// TestH1CancelMidBody: a cancel while the body stalls ends the blocked Read with the cause,
// and the connection is closed, not pooled.
func TestH1CancelMidBody(t *testing.T) {
	srv, got, closed := stallServer(t, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
	tr, _ := newTestH1(t, srv.url(), h1Timeouts(), nil)
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	resp, err := tr.RoundTrip(newH1Request(t, ctx, "GET", srv.url(), nil))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, got, "the request")
	if _, err := io.ReadFull(resp.Body, make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := resp.Body.Read(make([]byte, 100))
		errc <- err
	}()
	cancel(errH1TestCause)
	wantCause(t, errc, "Read")
	resp.Body.Close()
	waitFor(t, closed, "the connection to close")
	if n := len(idleConns(tr)); n != 0 {
		t.Fatalf("%d idle connections, want 0", n)
	}
}

// TestH1CancelBeforeConnected: a request canceled before or while its connection is set up
// (dial, TLS handshake) also returns the context's cause.
func TestH1CancelBeforeConnected(t *testing.T) {
	t.Run("canceled before dial", func(t *testing.T) {
		srv := newH1Server(t, okJSON, false, false)
		tr, _ := newTestH1(t, srv.URL, h1Timeouts(), nil)
		ctx, cancel := context.WithCancelCause(context.Background())
		cancel(errH1TestCause)
		_, err := tr.RoundTrip(newH1Request(t, ctx, "GET", srv.URL, nil))
		if !errors.Is(err, errH1TestCause) {
			t.Fatalf("RoundTrip error %v, want the cause %v", err, errH1TestCause)
		}
	})
	t.Run("canceled in TLS handshake", func(t *testing.T) {
		hello := make(chan struct{}, 1)
		srv := newRawServer(t, func(_ int, c net.Conn, br *bufio.Reader) {
			if _, err := br.Peek(1); err == nil {
				hello <- struct{}{} // the dial is done: the client is in its handshake
			}
			waitEOF(br) // never answers the ClientHello
		})
		tr, _ := newTestH1(t, "https://"+srv.ln.Addr().String(), h1Timeouts(), nil)
		ctx, cancel := context.WithCancelCause(context.Background())
		req := newH1Request(t, ctx, "GET", "https://"+srv.ln.Addr().String(), nil)
		errc := make(chan error, 1)
		go func() {
			_, err := tr.RoundTrip(req)
			errc <- err
		}()
		waitFor(t, hello, "the ClientHello")
		cancel(errH1TestCause)
		wantCause(t, errc, "RoundTrip")
	})
}

// TestH1TLS: over TLS the client asks for http/1.1 by ALPN, also from a server that offers
// h2, and keeps its connection alive.
func TestH1TLS(t *testing.T) {
	for _, tc := range []struct {
		name  string
		http2 bool
		to    Timeouts
	}{
		{"http/1.1 server", false, h1Timeouts()},
		{"h2 offered", true, h1Timeouts()},
		{"zero connect timeout", true, Timeouts{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newH1Server(t, func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, r.Proto)
			}, true, tc.http2)
			tr, dials := newTestH1(t, srv.URL, tc.to, srv.trust())
			for i := range 3 {
				if _, got := h1Do(t, tr, "GET", srv.URL, nil); got != "HTTP/1.1" {
					t.Fatalf("request %d: server saw %q", i, got)
				}
			}
			if d, o := dials.Load(), srv.opened.Load(); d != 1 || o != 1 {
				t.Fatalf("dials %d, server connections %d; want 1 and 1", d, o)
			}
		})
	}
}

// TestH1TLSUntrusted: a certificate the config does not trust fails the request.
func TestH1TLSUntrusted(t *testing.T) {
	srv := newH1Server(t, okJSON, true, false)
	tr, _ := newTestH1(t, srv.URL, h1Timeouts(), nil)
	resp, err := tr.RoundTrip(newH1Request(t, context.Background(), "GET", srv.URL, nil))
	if err == nil {
		resp.Body.Close()
		t.Fatal("RoundTrip succeeded against an untrusted certificate")
	}
}

// TestH1CloseIdleConnections: every pooled connection is closed, and the next request dials.
func TestH1CloseIdleConnections(t *testing.T) {
	const n = 3
	var arrived atomic.Int64
	all := make(chan struct{})
	srv := newH1Server(t, func(w http.ResponseWriter, r *http.Request) {
		if arrived.Add(1) == n {
			close(all)
		}
		select { // hold every request until all are in, so that each has its own connection
		case <-all:
		case <-time.After(h1Wait):
		}
		io.WriteString(w, "ok")
	}, false, false)
	tr, dials := newTestH1(t, srv.URL, h1Timeouts(), nil)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() { errs <- h1Get(tr, srv.URL) })
	}
	wg.Wait()
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got := len(idleConns(tr)); got != n {
		t.Fatalf("%d idle connections, want %d", got, n)
	}
	tr.CloseIdleConnections()
	if got := len(idleConns(tr)); got != 0 {
		t.Fatalf("%d idle connections after CloseIdleConnections", got)
	}
	eventually(t, "the server to see every connection close", func() bool { return srv.closed.Load() == n })
	h1Do(t, tr, "GET", srv.URL, nil)
	if d := dials.Load(); d != n+1 {
		t.Fatalf("dials %d, want %d", d, n+1)
	}
}

// TestH1IdleTimeout: a connection idle past idleFor is closed by the sweep, and one found
// expired when taken is not used.
func TestH1IdleTimeout(t *testing.T) {
	t.Run("sweep", func(t *testing.T) {
		srv := newH1Server(t, okJSON, false, false)
		tr, dials := newTestH1(t, srv.URL, h1Timeouts(), nil)
		tr.idleFor = 20 * time.Millisecond
		for round := int64(1); round <= 2; round++ {
			h1Do(t, tr, "GET", srv.URL, nil)
			eventually(t, "the sweep to close the idle connection", func() bool {
				return srv.closed.Load() == round && len(idleConns(tr)) == 0
			})
		}
		if d := dials.Load(); d != 2 {
			t.Fatalf("dials %d, want 2", d)
		}
		eventually(t, "the sweeper to stop with nothing idle", func() bool {
			tr.mu.Lock()
			defer tr.mu.Unlock()
			return tr.sweeper == nil
		})
	})
	t.Run("expired when taken", func(t *testing.T) {
		srv := newH1Server(t, okJSON, false, false)
		tr, dials := newTestH1(t, srv.URL, h1Timeouts(), nil)
		h1Do(t, tr, "GET", srv.URL, nil)
		tr.mu.Lock()
		tr.idle[0].idleAt = time.Now().Add(-2 * tr.idleFor)
		tr.mu.Unlock()
		h1Do(t, tr, "GET", srv.URL, nil)
		if d := dials.Load(); d != 2 {
			t.Fatalf("dials %d, want 2", d)
		}
		eventually(t, "the expired connection to close", func() bool { return srv.closed.Load() == 1 })
	})
}

// TestH1Concurrent: many goroutines share one transport; every answer belongs to its request.
func TestH1Concurrent(t *testing.T) {
	const workers, each = 50, 20
	srv := newH1Server(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.RequestURI(), b)
	}, false, false)
	tr, dials := newTestH1(t, srv.URL, h1Timeouts(), nil)
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				method, body := "GET", []byte(nil)
				if (w+i)%2 == 0 {
					method, body = "POST", []byte(fmt.Sprintf(`{"w":%d,"i":%d}`, w, i))
				}
				path := fmt.Sprintf("/w/%d?i=%d", w, i)
				req, err := http.NewRequest(method, srv.URL+path, bytes.NewReader(body))
				if err != nil {
					errs <- err
					return
				}
				resp, err := tr.RoundTrip(req)
				if err != nil {
					errs <- err
					return
				}
				got, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if want := fmt.Sprintf("%s %s %s", method, path, body); err != nil || string(got) != want {
					errs <- fmt.Errorf("got %q (%v), want %q", got, err, want)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if d := dials.Load(); d > workers {
		t.Errorf("dials %d for %d workers: connections are not reused", d, workers)
	}
}

// benchRoundTrip sends a small JSON POST through rt and reads the answer to the end. The body
// is what the engine sends (an io.NopCloser around a *bytes.Reader, which net/http also knows
// to be in memory), rewound instead of rebuilt so that both transports pay the same for it.
func benchRoundTrip(b *testing.B, rt http.RoundTripper, url string) {
	payload := []byte(`{"messages":[{"role":"user","content":"hi"}],"max_tokens":16}`)
	body := bytes.NewReader(payload)
	req := newH1Request(b, context.Background(), "POST", url+"/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", nil)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Api-Key", "key")
	req.Body, req.ContentLength = io.NopCloser(body), int64(len(payload))
	b.ReportAllocs()
	for b.Loop() {
		body.Reset(payload)
		resp, err := rt.RoundTrip(req)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
	}
}

func BenchmarkH1RoundTrip(b *testing.B) {
	srv := newH1Server(b, okJSON, false, false)
	tr, _ := newTestH1(b, srv.URL, h1Timeouts(), nil)
	benchRoundTrip(b, tr, srv.URL)
}

func BenchmarkNetHTTPRoundTrip(b *testing.B) {
	srv := newH1Server(b, okJSON, false, false)
	tr := newHTTPTransport(h1Timeouts(), nil)
	b.Cleanup(tr.CloseIdleConnections)
	benchRoundTrip(b, tr, srv.URL)
}
