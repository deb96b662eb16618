package h1srv

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// fuzzHandler does a little of everything a handler may do, by path.
func fuzzHandler(w http.ResponseWriter, r *http.Request) {
	switch {
	case strings.HasPrefix(r.URL.Path, "/echo"):
		io.Copy(w, io.LimitReader(r.Body, 1<<20))
	case strings.HasPrefix(r.URL.Path, "/flush"):
		io.WriteString(w, "a")
		w.(http.Flusher).Flush()
		io.WriteString(w, "b")
	case strings.HasPrefix(r.URL.Path, "/length"):
		w.Header().Set("Content-Length", "3")
		io.WriteString(w, "ab")
	case strings.HasPrefix(r.URL.Path, "/hints"):
		w.WriteHeader(http.StatusEarlyHints)
		w.WriteHeader(http.StatusNoContent)
	case strings.HasPrefix(r.URL.Path, "/abort"):
		panic(http.ErrAbortHandler)
	default:
		io.WriteString(w, "ok")
	}
}

// FuzzServer feeds arbitrary bytes to the server as a request stream: it must answer or close,
// never panic or hang.
func FuzzServer(f *testing.F) {
	for _, seed := range []string{
		get("/"),
		get("/flush") + get("/length") + get("/hints"),
		post("/echo", "hello"),
		"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nT: v\r\n\r\n",
		"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
		"HEAD /echo HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" + get("/abort"),
		"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n",
		"GARBAGE\r\n\r\n",
		h2Preface + "\x00\x00\x00\x04\x00\x00\x00\x00\x00",
		"PRI * HTTP/2.0\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n",
		"\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	var logs syncBuffer
	_, addr, _ := startH1(f, http.HandlerFunc(fuzzHandler), func(s *Server) {
		s.ReadHeaderTimeout = time.Second
		s.IdleTimeout = time.Second
		s.MaxHeaderBytes = 4 << 10
		s.ErrorLog = slog.New(slog.NewTextHandler(&logs, nil))
	})
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		wrote := make(chan struct{})
		go func() {
			defer close(wrote)
			c.Write(in)
			c.(*net.TCPConn).CloseWrite()
		}()
		_, err = io.Copy(io.Discard, c)
		c.Close()
		<-wrote // the fuzzer reuses in
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("the server neither answered nor closed the connection")
		}
		if s := logs.String(); s != "" {
			t.Fatalf("server log: %s", s)
		}
	})
}
