package h1srv

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// benchBody is a 300-byte JSON answer.
var benchBody = `{"id":"chatcmpl-1","object":"chat.completion","model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"` +
	strings.Repeat("x", 300-len(`{"id":"chatcmpl-1","object":"chat.completion","model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":""}}]}`)) +
	`"}}]}`

func benchHandler(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(benchBody)))
	io.WriteString(w, benchBody)
}

// benchKeepAlive sends b.N requests on one kept-alive connection, one at a time.
func benchKeepAlive(b *testing.B, addr string) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	req := []byte("GET /v1/models HTTP/1.1\r\nHost: bench.example\r\nUser-Agent: bench\r\nAccept: application/json\r\n\r\n")
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || n != int64(len(benchBody)) {
			b.Fatalf("read %d bytes: %v", n, err)
		}
	}
}

func BenchmarkServer(b *testing.B) {
	if len(benchBody) != 300 {
		b.Fatalf("body is %d bytes", len(benchBody))
	}
	_, addr, _ := startH1(b, http.HandlerFunc(benchHandler))
	benchKeepAlive(b, addr)
}

func BenchmarkNetHTTPServer(b *testing.B) {
	benchKeepAlive(b, startNetHTTP(b, http.HandlerFunc(benchHandler)))
}
