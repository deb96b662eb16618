package h1srv

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// These tests look inside: a connection should hold a read buffer only while it reads.

// onlyConn returns the server's one connection.
func onlyConn(t *testing.T, s *Server) *conn {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.conns) != 1 {
		t.Fatalf("%d connections, want 1", len(s.conns))
	}
	for c := range s.conns {
		return c
	}
	return nil
}

// TestStreamHoldsNoReadBuffer: while a handler streams (and waits between events), its connection
// holds no read buffer once the request is read.
func TestStreamHoldsNoReadBuffer(t *testing.T) {
	for _, tc := range []struct{ name, raw string }{
		{"get", get("/")},
		{"post-read", post("/", strings.Repeat("b", 10<<10))},
		{"post-chunked-read", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked("hello", 2)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			flushed := make(chan bool)
			release := make(chan struct{})
			s, addr, _ := startH1(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				// The handler holds its request while it streams: its ended body must not keep net/http's
				// body, which holds the connection's read buffer.
				if rb, ok := r.Body.(*requestBody); ok && rb.rc != nil {
					t.Error("the ended request body still holds net/http's body (and the read buffer)")
				}
				io.WriteString(w, "data: 1\n\n")
				w.(http.Flusher).Flush()
				flushed <- true
				<-release
				io.WriteString(w, "data: 2\n\n")
			}))
			c, br := dial(t, addr)
			io.WriteString(c, tc.raw)
			<-flushed
			if sc := onlyConn(t, s); sc.br != nil {
				t.Errorf("a streaming connection holds a read buffer (%d bytes buffered)", sc.br.Buffered())
			}
			close(release)
			if _, body := readReply(t, br, "GET"); body != "data: 1\n\ndata: 2\n\n" {
				t.Errorf("body %q", body)
			}
		})
	}
}

// TestIdleConnHoldsNoReadBuffer: a kept-alive connection waiting for its next request holds no
// read buffer; one with a pipelined request buffered keeps it, and serves that request.
func TestIdleConnHoldsNoReadBuffer(t *testing.T) {
	var mu sync.Mutex
	var buffered []bool
	s, addr, _ := startH1(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.URL.Path)
		w.(http.Flusher).Flush()
		mu.Lock()
		buffered = append(buffered, w.(*response).c.br != nil)
		mu.Unlock()
	}))
	c, br := dial(t, addr)
	io.WriteString(c, get("/1")+get("/2"))
	readReply(t, br, "GET")
	readReply(t, br, "GET")
	sc := onlyConn(t, s)
	waitFor(t, "the connection to be idle", func() bool { return sc.state.Load() == stateIdle })
	if sc.br != nil {
		t.Error("an idle connection holds a read buffer")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(buffered) != 2 || !buffered[0] || buffered[1] {
		t.Errorf("read buffer held while streaming: %v; want [true false] (the second request was buffered during the first)", buffered)
	}
}
