package failover

import (
	"net/http"
	"strings"
	"testing"
)

const tooLongBody = `{"error":{"message":"This model's maximum context length is 128000 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}`

// answersDeployment answers with the deployment it was asked for, so a test sees which name served.
func answersDeployment(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	dep := strings.Split(r.URL.Path, "/")[3]
	w.Write([]byte(`{"object":"chat.completion","model":"` + dep + `","choices":[]}`))
}

func TestFallbackWhenNoRegionServes(t *testing.T) {
	east := newBackend(t, status(503, `{"error":{"code":"503"}}`))
	west := newBackend(t, answersDeployment)
	rec := &recorder{}
	tr := mustNew(t, Config{
		Regions: []Region{
			testRegion("eastus", east.URL, 1, "gpt-4o", "gpt-4o-east"),
			testRegion("westus", west.URL, 2, "gpt-4o-mini", "mini-west"),
		},
		Policy:    fastPolicy(),
		Fallbacks: map[string][]string{"gpt-4o": {"gpt-4o-mini"}},
	}, WithObserver(rec))
	resp := chat(t, tr, "gpt-4o")
	body := readAll(t, resp)
	if resp.StatusCode != 200 || resp.Header.Get(HeaderName) != "gpt-4o-mini" || resp.Header.Get(HeaderRegion) != "westus" ||
		!strings.Contains(body, "mini-west") {
		t.Fatalf("status %d name %q region %q: %s", resp.StatusCode, resp.Header.Get(HeaderName), resp.Header.Get(HeaderRegion), body)
	}
	rec.mu.Lock()
	fb := rec.fallbacks
	rec.mu.Unlock()
	if len(fb) != 1 || fb[0] != (FallbackEvent{From: "gpt-4o", To: "gpt-4o-mini", Reason: FallbackUnavailable}) {
		t.Errorf("events %+v", fb)
	}
	// The name asked for serves again: no fallback, no x-lifeline-name.
	east.set(answersDeployment)
	resp = chat(t, tr, "gpt-4o")
	readAll(t, resp)
	if resp.Header.Get(HeaderName) != "" || resp.Header.Get(HeaderRegion) != "eastus" {
		t.Errorf("healthy: name %q region %q", resp.Header.Get(HeaderName), resp.Header.Get(HeaderRegion))
	}
}

func TestFallbackOnContextLength(t *testing.T) {
	east := newBackend(t, status(400, tooLongBody))
	west := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/big-west/") {
			answersDeployment(w, r)
			return
		}
		status(400, tooLongBody)(w, r)
	})
	rec := &recorder{}
	tr := mustNew(t, Config{
		Regions: []Region{
			testRegion("eastus", east.URL, 1, "gpt-4o", "gpt-4o-east"),
			testRegion("westus", west.URL, 2, "gpt-4o", "gpt-4o-west", "gpt-4.1", "big-west"),
		},
		Policy:    fastPolicy(),
		Fallbacks: map[string][]string{"gpt-4o": {"gpt-4.1"}},
	}, WithObserver(rec))
	resp := chat(t, tr, "gpt-4o")
	body := readAll(t, resp)
	if resp.StatusCode != 200 || resp.Header.Get(HeaderName) != "gpt-4.1" || !strings.Contains(body, "big-west") {
		t.Fatalf("status %d name %q: %s", resp.StatusCode, resp.Header.Get(HeaderName), body)
	}
	// One 400 from the first region that answers is enough: it is the model's limit, not the region's.
	if east.hits.Load() != 1 || west.hits.Load() != 1 {
		t.Errorf("hits: eastus %d westus %d", east.hits.Load(), west.hits.Load())
	}
	if r := tr.Regions()[0]; r.ErrorRate != 0 {
		t.Errorf("a 400 counted against eastus: %+v", r)
	}
}

// TestFallbackNoneServes: when the fallbacks cannot serve either, the caller gets the answer for the
// name it asked for.
func TestFallbackNoneServes(t *testing.T) {
	east := newBackend(t, status(400, tooLongBody))
	west := newBackend(t, status(400, tooLongBody))
	tr := mustNew(t, Config{
		Regions: []Region{
			testRegion("eastus", east.URL, 1, "gpt-4o", "a"),
			testRegion("westus", west.URL, 2, "gpt-4.1", "b"),
		},
		Policy:    fastPolicy(),
		Fallbacks: map[string][]string{"gpt-4o": {"gpt-4.1"}},
	})
	resp := chat(t, tr, "gpt-4o")
	body := readAll(t, resp)
	if resp.StatusCode != 400 || ErrorCode([]byte(body)) != contextTooLong || resp.Header.Get(HeaderRegion) != "eastus" || resp.Header.Get(HeaderName) != "" {
		t.Fatalf("status %d region %s name %q: %s", resp.StatusCode, resp.Header.Get(HeaderRegion), resp.Header.Get(HeaderName), body)
	}
	// Without fallbacks the 400 goes to the caller as it is.
	tr2 := mustNew(t, Config{Regions: []Region{testRegion("eastus", east.URL, 1, "gpt-4o", "a")}, Policy: fastPolicy()})
	resp = chat(t, tr2, "gpt-4o")
	if body := readAll(t, resp); resp.StatusCode != 400 || body != tooLongBody {
		t.Errorf("no fallbacks: %d %s", resp.StatusCode, body)
	}
	// Every name unavailable: the 503 names the name asked for.
	east.set(status(503, `{}`))
	west.set(status(503, `{}`))
	resp = chat(t, tr, "gpt-4o")
	readAll(t, resp)
	if resp.StatusCode != 503 || resp.Header.Get(HeaderRegion) != "eastus" {
		t.Errorf("all unavailable: %d from %s", resp.StatusCode, resp.Header.Get(HeaderRegion))
	}
}

func TestFallbacksValidate(t *testing.T) {
	regions := []Region{testRegion("eastus", "http://127.0.0.1:1", 1, "gpt-4o", "a", "mini", "b")}
	err := Config{Regions: regions, Fallbacks: map[string][]string{
		"gpt-4o": {"gpt-4o", "nope", "mini", "mini"}, "ghost": {"mini"},
	}}.Validate()
	for _, want := range []string{
		"fallbacks.gpt-4o[0]: a name cannot fall back to itself",
		`fallbacks.gpt-4o[1]: no region serves the name "nope"`,
		`fallbacks.gpt-4o[3]: "mini" is listed twice`,
		`fallbacks.ghost: no region serves the name "ghost"`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in %v", want, err)
		}
	}
}
