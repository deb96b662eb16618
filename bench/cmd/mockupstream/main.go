// Command mockupstream is the upstream that every peer of the benchmark proxies to: an OpenAI-shaped
// chat/completions endpoint that answers as cheaply as Go's net/http allows, so that the cost measured
// through a proxy is the proxy's own.
//
// Every POST path is answered. A body without `"stream":true` gets a fixed chat.completion JSON
// (Content-Length set, no allocation per request beyond net/http's own). A streaming body that asks for
// pacing (`"user":"interval=DURATION,chunks=N"`) gets N SSE content chunks, the first after 1 ms (-ttft),
// each flushed on its own and carrying its sequence number and send time (`"x_seq"`, `"x_sent"` in Unix
// nanoseconds) so that a client can prove it arrived alone and on time. A streaming body without pacing
// gets the same answer as the JSON, as a stream, at once: -chunks content chunks (9, the JSON's
// completion_tokens) written together (what a gateway that streams a non-streaming request upstream
// receives, with the generation time of the JSON answer, which is none). Every stream ends as Azure's do: a
// chunk with finish_reason "stop", a usage chunk with empty choices, then `data: [DONE]`.
//
// The same process can also play a failing region: -fail503 answers 503 to everything and -blackhole
// accepts connections and never answers. A refused connection needs no listener at all: the harness
// points a peer at a closed port.
//
// Every address list takes plain host:port entries and https://host:port entries. An https:// listener
// serves -cert and -key over TLS with HTTP/2 and HTTP/1.1 offered (ALPN), as an Azure OpenAI region does;
// an https:// black hole completes the TLS handshake and then never answers.
package main

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

var chatJSON = []byte(`{"id":"chatcmpl-bench","object":"chat.completion","created":1732150000,"model":"gpt-4o-2024-08-06",` +
	`"choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I help you today?","refusal":null},` +
	`"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":9,"total_tokens":21},` +
	`"system_fingerprint":"fp_bench"}`)

var errorJSON = []byte(`{"error":{"code":"ServiceUnavailable","message":"The service is temporarily unavailable.","type":"server_error"}}`)

func main() {
	listen := flag.String("listen", "127.0.0.1:19000", "addresses of healthy regions, comma-separated")
	fail503 := flag.String("fail503", "", "if set, an address that answers 503 to every request")
	blackhole := flag.String("blackhole", "", "if set, an address that accepts connections and never answers")
	chunks := flag.Int("chunks", 9, "SSE without pacing in the body: content chunks (before the finish and usage chunks and [DONE])")
	interval := flag.Duration("chunk-interval", 0, "SSE without pacing in the body: gap between chunks (0: all in one write)")
	ttft := flag.Duration("ttft", time.Millisecond, "SSE with pacing in the body: delay before the first chunk")
	certFile := flag.String("cert", "", "certificate (PEM) for https:// listeners")
	keyFile := flag.String("key", "", "private key (PEM) for https:// listeners")
	flag.Parse()

	var tlsConf *tls.Config
	if *certFile != "" {
		cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
		if err != nil {
			log.Fatal(err)
		}
		tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}
	}
	h := &handler{chunks: *chunks, interval: *interval, ttft: *ttft}
	errs := make(chan error, 16)
	each := func(list string, run func(addr string, tc *tls.Config) error) {
		for _, addr := range strings.Split(list, ",") {
			if addr == "" {
				continue
			}
			var tc *tls.Config
			if a, ok := strings.CutPrefix(addr, "https://"); ok {
				if tlsConf == nil {
					log.Fatalf("%s: an https:// listener needs -cert and -key", addr)
				}
				addr, tc = a, tlsConf
			}
			go func() { errs <- run(addr, tc) }()
		}
	}
	each(*listen, func(addr string, tc *tls.Config) error { return serve(addr, tc, h) })
	each(*fail503, func(addr string, tc *tls.Config) error { return serve(addr, tc, http.HandlerFunc(unavailable)) })
	each(*blackhole, holdForever)
	log.Fatal(<-errs)
}

// serve serves h on addr, over TLS (HTTP/2 and HTTP/1.1) when tc is set.
func serve(addr string, tc *tls.Config, h http.Handler) error {
	srv := &http.Server{Addr: addr, Handler: h, IdleTimeout: 5 * time.Minute}
	if tc == nil {
		return srv.ListenAndServe()
	}
	srv.TLSConfig = tc.Clone()
	// Go's HTTP/2 server allows 250 concurrent streams per connection by default; the clients open more
	// connections beyond that, as against a real region.
	return srv.ListenAndServeTLS("", "")
}

func unavailable(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	hd := w.Header()
	hd["Content-Type"] = []string{"application/json"}
	hd["Content-Length"] = []string{strconv.Itoa(len(errorJSON))}
	w.WriteHeader(http.StatusServiceUnavailable)
	w.Write(errorJSON)
}

// holdForever accepts connections and reads what they send, never answering: a black-holed region (over
// TLS when tc is set: the handshake completes, then silence).
func holdForever(addr string, tc *tls.Config) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	if tc != nil {
		ln = tls.NewListener(ln, tc)
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go io.Copy(io.Discard, c)
	}
}

type handler struct {
	chunks   int
	interval time.Duration
	ttft     time.Duration
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	bp := bufPool.Get().(*[]byte)
	body := (*bp)[:0]
	body, _ = readAll(r.Body, body)
	stream := bytes.Contains(body, []byte(`"stream":true`)) || bytes.Contains(body, []byte(`"stream": true`))
	if !stream {
		*bp = body
		bufPool.Put(bp)
		hd := w.Header()
		hd["Content-Type"] = []string{"application/json"}
		hd["Content-Length"] = []string{strconv.Itoa(len(chatJSON))}
		hd["X-Ms-Region"] = []string{"Bench Region"}
		w.Write(chatJSON)
		return
	}
	chunks, interval, ttft := h.chunks, h.interval, time.Duration(0)
	var req struct {
		User string `json:"user"`
	}
	if json.Unmarshal(body, &req) == nil && req.User != "" {
		chunks, interval = pacing(req.User, chunks, interval)
		ttft = h.ttft
	}
	*bp = body
	bufPool.Put(bp)
	h.stream(w, r, chunks, interval, ttft)
}

// pacing reads "interval=1s,chunks=30" from the request's user field.
func pacing(s string, chunks int, interval time.Duration) (int, time.Duration) {
	for _, kv := range strings.Split(s, ",") {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "interval":
			if d, err := time.ParseDuration(v); err == nil {
				interval = d
			}
		case "chunks":
			if n, err := strconv.Atoi(v); err == nil {
				chunks = n
			}
		}
	}
	return chunks, interval
}

func (h *handler) stream(w http.ResponseWriter, r *http.Request, chunks int, interval, ttft time.Duration) {
	hd := w.Header()
	hd["Content-Type"] = []string{"text/event-stream"}
	hd["Cache-Control"] = []string{"no-cache"}
	hd["X-Ms-Region"] = []string{"Bench Region"}
	w.WriteHeader(http.StatusOK)
	fl := w.(http.Flusher)
	paced := ttft > 0 || interval > 0
	if paced {
		fl.Flush()
	}
	ctx := r.Context()
	var t *time.Timer
	if paced {
		t = time.NewTimer(ttft)
		defer t.Stop()
	}
	buf := make([]byte, 0, 512)
	for i := 0; i < chunks; i++ {
		if paced {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
		buf = appendChunk(buf[:0], i, time.Now().UnixNano())
		if _, err := w.Write(buf); err != nil {
			return
		}
		if paced {
			fl.Flush()
			t.Reset(interval)
		}
	}
	fmt.Fprintf(w, "data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1732150000,"+
		"\"model\":\"gpt-4o-2024-08-06\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"+
		"data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1732150000,"+
		"\"model\":\"gpt-4o-2024-08-06\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":%d,"+
		"\"total_tokens\":%d}}\n\ndata: [DONE]\n\n", chunks, chunks+12)
	fl.Flush()
}

func appendChunk(b []byte, seq int, sent int64) []byte {
	b = append(b, `data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1732150000,"model":"gpt-4o-2024-08-06",`...)
	b = append(b, `"choices":[{"index":0,"delta":{"content":"tok`...)
	b = strconv.AppendInt(b, int64(seq), 10)
	b = append(b, ` "},"finish_reason":null}],"x_seq":`...)
	b = strconv.AppendInt(b, int64(seq), 10)
	b = append(b, `,"x_sent":`...)
	b = strconv.AppendInt(b, sent, 10)
	return append(b, "}\n\n"...)
}

func readAll(r io.Reader, b []byte) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			return b, err
		}
	}
}
