package h1srv

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// An upgrade handler that sets 101 and hijacks gets the connection, with the bytes the client sent right after the
// request replayed first, on both servers alike.
func TestHijackUpgrade(t *testing.T) {
	forBoth(t, func(t *testing.T, start func(http.Handler) string) {
		addr := start(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Connection", "Upgrade")
			w.Header().Set("Upgrade", "echo")
			w.WriteHeader(http.StatusSwitchingProtocols)
			c, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Errorf("Hijack: %v", err)
				return
			}
			defer c.Close()
			line, _ := brw.ReadString('\n')
			brw.WriteString("echo: " + line)
			brw.Flush()
		}))
		c, br := dial(t, addr)
		defer c.Close()
		io.WriteString(c, "GET /up HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nhello\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 101 || resp.Header.Get("Upgrade") != "echo" || resp.Header.Get("Content-Length") != "" {
			t.Fatalf("head: %v %+v", err, resp)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		rest, _ := io.ReadAll(br)
		if string(rest) != "echo: hello\n" {
			t.Errorf("after the upgrade: %q", rest)
		}
	})
}

// Hijack after the response started fails, and the response ends normally.
func TestHijackAfterWrite(t *testing.T) {
	_, addr, _ := startH1(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "body")
		w.(http.Flusher).Flush()
		if _, _, err := http.NewResponseController(w).Hijack(); err == nil || !strings.Contains(err.Error(), "started") {
			t.Errorf("Hijack after a flush: %v", err)
		}
	}))
	c, br := dial(t, addr)
	defer c.Close()
	io.WriteString(c, get("/"))
	if resp, body := readReply(t, br, "GET"); resp.StatusCode != 200 || body != "body" {
		t.Errorf("reply: %d %q", resp.StatusCode, body)
	}
}
