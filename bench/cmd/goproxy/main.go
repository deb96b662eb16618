// Command goproxy is the benchmark's Go floor: a plain httputil.ReverseProxy to one upstream with a
// keep-alive pool sized for the load, and nothing else (no routing, no auth, no failover). What Lifeline
// costs beyond it is the price of its features. An https:// upstream gets HTTP/2 when it offers it, as
// Go's default transport does; it is trusted through SSL_CERT_FILE like any Go program's roots.
package main

import (
	"flag"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:19101", "address for clients")
	upstream := flag.String("upstream", "http://127.0.0.1:19000", "upstream base URL")
	flag.Parse()

	target, err := url.Parse(*upstream)
	if err != nil {
		log.Fatal(err)
	}
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 3 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        4096,
		MaxIdleConnsPerHost: 4096,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   true, // custom dialer: HTTP/2 over TLS only when asked for, as http.DefaultTransport does
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = target.Host
		},
		Transport:     tr,
		FlushInterval: -1,
	}
	srv := &http.Server{Addr: *listen, Handler: rp, IdleTimeout: 5 * time.Minute}
	log.Fatal(srv.ListenAndServe())
}
