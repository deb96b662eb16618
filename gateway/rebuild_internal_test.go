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
