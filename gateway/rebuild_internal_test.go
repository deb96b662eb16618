package gateway

import (
	"strings"
	"testing"

	"github.com/lifeline-sre/lifeline/affinity"
)

var validID = affinity.ValidID

func TestPortableItems(t *testing.T) {
	items := []string{
		`{"id":"msg_1","type":"message","role":"user","status":"completed","content":[{"type":"input_text","text":"hi"}]}`,
		`{"id":"rs_1","type":"reasoning","encrypted_content":"gAAA","summary":[]}`,
		`{"id":"msg_2","type":"message","role":"assistant","status":"completed","content":[{"type":"output_text","text":"hello"}]}`,
	}
	out, dropped, err := portable(items)
	if err != nil || dropped != 1 || len(out) != 2 {
		t.Fatalf("portable: %v dropped %d, %v", out, dropped, err)
	}
	for _, it := range out {
		if strings.Contains(it, `"id"`) || strings.Contains(it, `"status"`) || strings.Contains(it, "reasoning") {
			t.Errorf("not portable: %s", it)
		}
	}
	for _, bad := range []string{
		`{"type":"item_reference","id":"msg_9"}`,
		`{"type":"message","role":"user","content":[{"type":"input_file","file_id":"file-abc"}]}`,
	} {
		if _, _, err := portable([]string{bad}); err == nil {
			t.Errorf("%s: rebuilt", bad)
		} else if strings.Contains(bad, "file-abc") && !strings.Contains(err.Error(), "file-abc") {
			t.Errorf("error does not name the file: %v", err)
		}
	}
	if got := string(joinItems(inputItems([]byte(`{"input":"a \"quoted\" word"}`)))); got != `[{"type":"message","role":"user","content":"a \"quoted\" word"}]` {
		t.Errorf("string input: %s", got)
	}
	if got := string(joinItems(inputItems([]byte(`{"input":[{"role":"user","content":"x"}]}`)), nil)); got != `[{"role":"user","content":"x"}]` {
		t.Errorf("list input: %s", got)
	}
}

// FuzzParseStored: any path is either not a stored route, or one whose id (when it has one) is a valid id and
// whose region path stays under /openai/.
func FuzzParseStored(f *testing.F) {
	for _, p := range []string{"/openai/v1/responses/resp_1", "/v1/files/file-1/content", "/openai/fine_tuning/jobs/ftjob-1/events",
		"/openai/v1/vector_stores/vs_1/file_batches/b/files", "/openai/files", "/v1/conversations/c/items/i", "/openai/v1/responses//x",
		"/openai/v1/batches/../../x", "/openai/deployments/x/responses"} {
		f.Add("GET", p)
	}
	f.Fuzz(func(t *testing.T, method, path string) {
		sr, ok := parseStored(method, path)
		if !ok {
			return
		}
		if sr.kind == 0 || !strings.HasPrefix(sr.path, "/openai/") {
			t.Fatalf("%q: %+v", path, sr)
		}
		if sr.known && sr.id != "" && !validID(sr.id) {
			t.Fatalf("%q: invalid id %q accepted", path, sr.id)
		}
		sr.refs("application/json", []byte(path))
	})
}

// BenchmarkStoredDispatch is what every request pays for the stored-object and Realtime checks before the usual
// routing: a chat completion path (not stored) and a stored response retrieve.
func BenchmarkStoredDispatch(b *testing.B) {
	for _, p := range []string{"/openai/deployments/gpt-4o/chat/completions", "/openai/v1/responses/resp_0123456789abcdef0123456789abcdef"} {
		b.Run(strings.Trim(p[:12], "/"), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if sr, ok := parseStored("GET", p); !ok && isRealtime(p) {
					b.Fatal(sr)
				}
			}
		})
	}
}
