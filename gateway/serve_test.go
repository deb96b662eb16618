package gateway_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/azure"
	"github.com/openai/openai-go/v3/option"

	"github.com/lifeline-sre/lifeline/config"
	"github.com/lifeline-sre/lifeline/sim"
)

// selfSigned writes a certificate for 127.0.0.1 and its key, and returns their paths and a pool that trusts it.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "lifeline test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	kb, _ := x509.MarshalECPrivateKey(key)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestTLSAndHTTP2: HTTPS to clients with HTTP/2 when offered, HTTPS to the regions, and openai-go in Azure mode
// without any unsafe option.
func TestTLSAndHTTP2(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	h := startHarness(t, harnessOpts{
		simCfg: func(c *sim.Config) { c.TLS = true },
		mutate: func(c *config.Config) { c.TLS = &config.TLS{CertFile: certFile, KeyFile: keyFile} },
	})
	if !strings.HasPrefix(h.sim.Region("eastus").URL(), "https://") {
		t.Fatal("the simulator does not serve TLS")
	}
	h2 := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
	h1 := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}}
	for _, c := range []struct {
		client *http.Client
		major  int
	}{{h2, 2}, {h1, 1}} {
		req, _ := http.NewRequest("POST", h.url+"/v1/chat/completions", strings.NewReader(streamBody))
		req.Header.Set("Authorization", "Bearer "+clientKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := c.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.ProtoMajor != c.major || !strings.Contains(string(body), "data: [DONE]") {
			t.Errorf("HTTP/%d: status %d proto %s body %.200s", c.major, resp.StatusCode, resp.Proto, body)
		}
	}
	client := openai.NewClient(azure.WithEndpoint(h.url, "2024-10-21"), azure.WithAPIKey(clientKey),
		option.WithHTTPClient(h2), option.WithMaxRetries(0))
	if _, err := client.Chat.Completions.New(context.Background(), chatParams); err != nil {
		t.Fatalf("openai-go over HTTPS: %v", err)
	}

	// A reload rotates the certificate for new connections.
	newCert, newKey, newPool := selfSigned(t)
	data, _ := os.ReadFile(newCert)
	os.WriteFile(certFile, data, 0o600)
	data, _ = os.ReadFile(newKey)
	os.WriteFile(keyFile, data, 0o600)
	if err := h.gw.Reload(h.cfg); err != nil {
		t.Fatal(err)
	}
	fresh := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: newPool}}}
	resp, err := fresh.Get(h.url + "/v1/models")
	if err != nil {
		t.Fatalf("after a reload the new certificate is not served: %v", err)
	}
	resp.Body.Close()
	// A reload with a broken key file is refused; the current certificate keeps serving.
	os.WriteFile(keyFile, []byte("not a key"), 0o600)
	if err := h.gw.Reload(h.cfg); err == nil || !strings.Contains(err.Error(), "tls") {
		t.Errorf("reload with a broken key: %v", err)
	}
	fresh.CloseIdleConnections()
	if resp, err := fresh.Get(h.url + "/v1/models"); err != nil {
		t.Errorf("after a refused reload: %v", err)
	} else {
		resp.Body.Close()
	}
}

// TestHTTP1Servers: both servers for plain HTTP/1.x (server.http1) serve requests and streams, and hand h2c to
// net/http.
func TestHTTP1Servers(t *testing.T) {
	for _, srv := range []string{config.HTTP1Lifeline, config.HTTP1NetHTTP} {
		t.Run(strings.ReplaceAll(srv, "/", "-"), func(t *testing.T) {
			h := startHarness(t, harnessOpts{mutate: func(c *config.Config) { c.Server.HTTP1 = srv }})
			resp, body := h.do("POST", "/v1/chat/completions", chatBody)
			wantStatus(t, resp, body, 200)
			if resp.ProtoMajor != 1 || !strings.Contains(body, `"chat.completion"`) {
				t.Errorf("%s: %s", resp.Proto, body)
			}
			resp, body = h.do("POST", "/v1/chat/completions", streamBody)
			wantStatus(t, resp, body, 200)
			if !strings.HasSuffix(strings.TrimSpace(body), "data: [DONE]") {
				t.Errorf("stream: %q", tail(body))
			}
			testH2C(t, h)
		})
	}
}

func TestH2C(t *testing.T) { testH2C(t, startHarness(t, harnessOpts{})) }

func testH2C(t *testing.T, h *harness) {
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	c := &http.Client{Transport: &http.Transport{Protocols: p}}
	req, _ := http.NewRequest("POST", h.url+"/v1/chat/completions", strings.NewReader(chatBody))
	req.Header.Set("api-key", clientKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ProtoMajor != 2 {
		t.Errorf("h2c: %d %s", resp.StatusCode, resp.Proto)
	}
}

// TestSlowClientHeaders: a client that never finishes its headers is dropped after server.read_header_timeout.
func TestSlowClientHeaders(t *testing.T) {
	h := startHarness(t, harnessOpts{mutate: func(c *config.Config) { c.Server.ReadHeaderTimeout = config.Duration(200 * time.Millisecond) }})
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
	conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	start := time.Now()
	_, err = io.ReadAll(conn)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the gateway kept a client with unfinished headers for 3s")
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("dropped after %s", el)
	}
}

// TestGracefulShutdown: a stream in flight when the gateway stops finishes; one that outlasts
// server.shutdown_timeout ends with an error event, not a silent cut.
func TestGracefulShutdown(t *testing.T) {
	for _, c := range []struct {
		name    string
		tokens  int
		grace   time.Duration
		wantErr bool
	}{
		{"finishes-within-grace", 10, 3 * time.Second, false},
		{"cut-at-grace", 200, 300 * time.Millisecond, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := startHarness(t, harnessOpts{
				simCfg: func(sc *sim.Config) {
					for i := range sc.Regions {
						sc.Regions[i].TokensPerSecond = 20
					}
				},
				mutate: func(cfg *config.Config) { cfg.Server.ShutdownTimeout = config.Duration(c.grace) },
			})
			body := strings.Replace(streamBody, "hello", "sim:tokens="+itoa(c.tokens), 1)
			req, _ := http.NewRequest("POST", h.url+"/v1/chat/completions", strings.NewReader(body))
			req.Header.Set("api-key", clientKey)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			r := bufio.NewReader(resp.Body)
			first, _ := r.ReadString('\n') // the stream has started
			if !strings.HasPrefix(first, "data: ") {
				t.Fatalf("first line %q", first)
			}
			stopped := make(chan struct{})
			go func() { h.stop(); close(stopped) }()
			// New connections are refused once the gateway stops accepting.
			eventually(t, "the listener to close", 2*time.Second, func() bool {
				conn, err := net.DialTimeout("tcp", strings.TrimPrefix(h.url, "http://"), 100*time.Millisecond)
				if err == nil {
					conn.Close()
				}
				return err != nil
			})
			rest, _ := io.ReadAll(r)
			<-stopped
			gotErr := strings.Contains(string(rest), `"error"`)
			done := strings.Contains(string(rest), "data: [DONE]")
			if c.wantErr && (!gotErr || !strings.Contains(string(rest), "shutting_down")) {
				t.Errorf("stream cut at shutdown ended without a shutting_down error event: %q", tail(string(rest)))
			}
			if !c.wantErr && (gotErr || !done) {
				t.Errorf("stream in flight did not finish during the grace period: %q", tail(string(rest)))
			}
		})
	}
}

func tail(s string) string {
	if len(s) > 300 {
		return s[len(s)-300:]
	}
	return s
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}
