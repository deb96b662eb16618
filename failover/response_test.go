package failover

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The region-facing side of the trust boundary: what a region sends is parsed by net/http's client, within the
// engine's bounds, and reaches the caller as the region sent it (less hop-by-hop headers and cookies).

// rawRegion answers every connection with raw bytes, after reading the request's head and body.
func rawRegion(raw []byte) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		client, server := net.Pipe()
		go func() {
			defer server.Close()
			br := bufio.NewReader(server)
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			server.SetWriteDeadline(time.Now().Add(2 * time.Second))
			server.Write(raw)
		}()
		return client, nil
	}
}

// rawTransport is the engine over one region that answers with raw bytes, through the engine's own region client
// settings (newRegionTransport), with only the dial replaced.
func rawTransport(t testing.TB, raw []byte) *Transport {
	rt := newRegionTransport("http", ProtocolAuto, fastPolicy().Timeouts, nil).(*http.Transport)
	rt.DialContext = rawRegion(raw)
	p := fastPolicy()
	p.Breaker.Failures = 1000 // the fuzzer must not see a breaker open between runs
	tr, err := New(Config{Regions: []Region{testRegion("eastus", "http://region.invalid", 1, "emb", "emb-1")}, Policy: p},
		WithBaseTransport(func(Region) http.RoundTripper { return rt }))
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// reference reads raw as net/http's client would on its own: interim answers skipped (their heads count toward the
// 1 MiB bound with the final one, which a fuzz input never reaches), the body
// decompressed when it is gzip (the engine asks for gzip on its own, as net/http's client does).
func reference(raw []byte) (resp *http.Response, body []byte, bodyErr, err error) {
	br := bufio.NewReader(bytes.NewReader(raw))
	for {
		resp, err = http.ReadResponse(br, &http.Request{Method: "POST"})
		if err != nil {
			return nil, nil, nil, err
		}
		if resp.StatusCode < 100 || resp.StatusCode >= 200 || resp.StatusCode == 101 {
			break // net/http's client skips 1xx answers only
		}
	}
	var r io.Reader = resp.Body
	if strings.EqualFold(resp.Header.Get("Content-Encoding"), "gzip") {
		zr, err := gzip.NewReader(resp.Body)
		if err == io.EOF {
			return resp, nil, nil, nil // net/http's client reads an empty gzip body as empty
		}
		if err != nil {
			return resp, nil, err, nil
		}
		r = zr
	}
	body, bodyErr = io.ReadAll(io.LimitReader(r, 1<<20))
	return resp, body, bodyErr, nil
}

func FuzzRegionResponse(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"data\":[]}",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close, X-Drop\r\nX-Drop: 1\r\nSet-Cookie: a=b\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 404 Not Found\r\nContent-Length: 46\r\n\r\n{\"error\":{\"code\":\"DeploymentNotFound\",\"m\":1}}",
		"HTTP/1.1 400 Bad Request\r\nContent-Length: 10\r\n\r\n{\"error\":",
		"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nContent-Length: 11\r\n\r\n0123456789",
		"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort",
		"HTTP/1.1 429 Too Many Requests\r\nRetry-After-Ms: 10\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 5\r\n\r\nnotgz",
		"HTTP/1.0 200 OK\r\n\r\nbody until close",
		"HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n",
		"garbage",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		tr := rawTransport(t, raw)
		defer tr.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "POST", "https://lifeline.invalid/openai/deployments/emb/embeddings?api-version=2024-10-21",
			strings.NewReader(`{"input":"x"}`))
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatalf("RoundTrip error %v (the engine answers every region failure with a response)", err)
		}
		defer resp.Body.Close()
		got, gotErr := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		fromRegion := resp.Header.Get(HeaderRegion) == "eastus"
		ref, refBody, refErr, err := reference(raw)
		if err != nil || ref.StatusCode < 200 {
			if fromRegion {
				t.Fatalf("the engine passed on an answer net/http cannot read (%v): %d", err, resp.StatusCode)
			}
			return
		}
		if !fromRegion {
			if ref.StatusCode < 500 && ref.StatusCode != 429 && ref.StatusCode != 408 && ref.StatusCode != 401 && ref.StatusCode != 403 &&
				ref.StatusCode != 404 && refErr == nil {
				t.Fatalf("a readable %d answer did not reach the caller: %d %s", ref.StatusCode, resp.StatusCode, got)
			}
			return
		}
		if resp.StatusCode != ref.StatusCode {
			t.Fatalf("status %d, net/http reads %d", resp.StatusCode, ref.StatusCode)
		}
		for k, v := range resp.Header {
			switch {
			case strings.HasPrefix(k, "X-Lifeline-"), k == "X-Should-Retry", k == "Content-Length", k == "Content-Encoding":
			case HopByHop(k) || k == "Set-Cookie":
				t.Fatalf("hop-by-hop header %s reached the caller", k)
			case strings.Join(v, "\x00") != strings.Join(ref.Header[k], "\x00"):
				t.Fatalf("header %s = %q, net/http reads %q", k, v, ref.Header[k])
			}
		}
		if resp.StatusCode >= 500 {
			return // the kept fallback answer: read within the attempt, bounded
		}
		if (gotErr == nil) != (refErr == nil) {
			t.Fatalf("body error %v, net/http %v", gotErr, refErr)
		}
		if gotErr == nil && !bytes.Equal(got, refBody) {
			t.Fatalf("body %q, net/http reads %q", got, refBody)
		}
	})
}

// "A region that sends an endless response header grew the gateway to 2.1 GB in 15 s through Lifeline's own
// HTTP/1.1 client (net/http stops at 10 MB); that client also has no limit on 1xx answers." A region's head is
// bounded (1 MiB, interim answers included), and the attempt fails against the region instead.
func TestRegionHeadBounded(t *testing.T) {
	for _, c := range []struct {
		name  string
		start string
		unit  string
	}{
		{"endless header", "HTTP/1.1 200 OK\r\nX-Endless: ", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"},
		{"endless 1xx", "", "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			var sent atomic.Int64
			go func() {
				for {
					conn, err := ln.Accept()
					if err != nil {
						return
					}
					go func() {
						defer conn.Close()
						br := bufio.NewReader(conn)
						if req, err := http.ReadRequest(br); err == nil {
							io.Copy(io.Discard, req.Body)
						}
						chunk := []byte(strings.Repeat(c.unit, 1024))
						conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
						io.WriteString(conn, c.start)
						for {
							n, err := conn.Write(chunk)
							sent.Add(int64(n))
							if err != nil {
								return
							}
						}
					}()
				}
			}()
			p := fastPolicy()
			p.Timeouts.Response = 10 * time.Second
			tr := mustNew(t, Config{Regions: []Region{testRegion("eastus", "http://"+ln.Addr().String(), 1, "emb", "emb-1")}, Policy: p})
			start := time.Now()
			req, _ := http.NewRequest("POST", "https://lifeline.invalid/openai/deployments/emb/embeddings?api-version=2024-10-21", strings.NewReader(`{"input":"x"}`))
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			body := readAll(t, resp)
			if resp.Header.Get(HeaderRegion) != SelfRegion || resp.StatusCode < 500 {
				t.Errorf("status %d from %q: %s", resp.StatusCode, resp.Header.Get(HeaderRegion), body)
			}
			if el := time.Since(start); el > 5*time.Second {
				t.Errorf("the attempt took %s: the region's head was read until the response timeout", el)
			}
			time.Sleep(200 * time.Millisecond)
			// Two attempts (attempts_per_region) each stop after 1 MiB; what the region got to send beyond that sits
			// in socket buffers.
			if n := sent.Load(); n > 32<<20 {
				t.Errorf("the region got to send %d MiB of head", n>>20)
			}
		})
	}
}
