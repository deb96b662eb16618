package failover

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
)

// TestRegionProtocol: regions[].protocol picks the wire protocol the region sees, over TLS and
// plain HTTP, and the answer comes back either way.
func TestRegionProtocol(t *testing.T) {
	seen := make(chan string, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Proto
		okJSON(w, r)
	})
	tlsSrv := httptest.NewUnstartedServer(h)
	tlsSrv.EnableHTTP2 = true
	tlsSrv.StartTLS()
	t.Cleanup(tlsSrv.Close)
	plain := httptest.NewUnstartedServer(h)
	plain.Config.Protocols = new(http.Protocols)
	plain.Config.Protocols.SetHTTP1(true)
	plain.Config.Protocols.SetUnencryptedHTTP2(true)
	plain.Start()
	t.Cleanup(plain.Close)
	trust := &tls.Config{RootCAs: tlsSrv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs}

	for _, c := range []struct {
		endpoint, protocol, want string
	}{
		{tlsSrv.URL, "", "HTTP/2.0"},
		{tlsSrv.URL, ProtocolAuto, "HTTP/2.0"},
		{tlsSrv.URL, ProtocolHTTP1, "HTTP/1.1"},
		{tlsSrv.URL, ProtocolHTTP2, "HTTP/2.0"},
		{plain.URL, ProtocolAuto, "HTTP/1.1"},
		{plain.URL, ProtocolHTTP1, "HTTP/1.1"},
		{plain.URL, ProtocolHTTP2, "HTTP/2.0"},
	} {
		t.Run(strconv.Quote(c.protocol)+"@"+c.endpoint[:5], func(t *testing.T) {
			r := testRegion("a", c.endpoint, 1, "gpt-4o", "gpt-4o")
			r.Protocol = c.protocol
			tr := mustNew(t, Config{Regions: []Region{r}, Policy: fastPolicy()}, WithTLSConfig(trust))
			for i := 0; i < 2; i++ {
				resp := chat(t, tr, "gpt-4o")
				body := readAll(t, resp)
				if resp.StatusCode != 200 || body == "" {
					t.Fatalf("status %d body %q", resp.StatusCode, body)
				}
				if got := <-seen; got != c.want {
					t.Errorf("region saw %s, want %s", got, c.want)
				}
			}
		})
	}
}

func TestRegionProtocolInvalid(t *testing.T) {
	r := testRegion("a", "https://a.example", 1, "gpt-4o", "gpt-4o")
	r.Protocol = "h3"
	if _, err := New(Config{Regions: []Region{r}}); err == nil {
		t.Fatal("protocol h3 accepted")
	}
}
