package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// api sends a JSON request with the test key and returns the status and the decoded body.
func api(t *testing.T, method, url, body string) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, url, rd)
	req.Header.Set("api-key", testKey)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	json.Unmarshal(raw, &out)
	if out == nil {
		out = map[string]any{"raw": string(raw)}
	}
	return resp.StatusCode, out
}

func upload(t *testing.T, base, purpose, content string) string {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	mw.WriteField("purpose", purpose)
	fw, _ := mw.CreateFormFile("file", "in.jsonl")
	io.WriteString(fw, content)
	mw.Close()
	req, _ := http.NewRequest(http.MethodPost, base+"/openai/v1/files", &b)
	req.Header.Set("api-key", testKey)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var f struct{ ID string }
	json.NewDecoder(resp.Body).Decode(&f)
	if resp.StatusCode != 200 || f.ID == "" {
		t.Fatalf("upload: %d", resp.StatusCode)
	}
	return f.ID
}

func errorOf(m map[string]any) (code, msg string) {
	e, _ := m["error"].(map[string]any)
	code, _ = e["code"].(string)
	msg, _ = e["message"].(string)
	return
}

func TestStoredResponses(t *testing.T) {
	s := startSim(t, Config{Regions: DefaultRegions("eastus", "westus")})
	east, west := s.Region("eastus").URL(), s.Region("westus").URL()
	st, first := api(t, "POST", east+"/openai/v1/responses", `{"model":"gpt-4o","input":"My name is Ada."}`)
	id, _ := first["id"].(string)
	if st != 200 || !strings.HasPrefix(id, "resp_") || first["store"] != true {
		t.Fatalf("create: %d %v", st, first)
	}
	firstIn := first["usage"].(map[string]any)["input_tokens"].(float64)

	// Retrieved on both surfaces where it was made; 404 like Azure elsewhere.
	if st, got := api(t, "GET", east+"/openai/v1/responses/"+id, ""); st != 200 || got["id"] != id {
		t.Errorf("retrieve: %d %v", st, got)
	}
	if st, _ := api(t, "GET", east+"/openai/responses/"+id+"?api-version=2025-04-01-preview", ""); st != 200 {
		t.Errorf("classic retrieve: %d", st)
	}
	st, got := api(t, "GET", west+"/openai/v1/responses/"+id, "")
	if _, msg := errorOf(got); st != 404 || msg != "Response with id '"+id+"' not found." {
		t.Errorf("retrieve elsewhere: %d %v", st, got)
	}
	if st, got := api(t, "GET", east+"/openai/v1/responses/resp_doesnotexist", ""); st != 404 {
		t.Errorf("unknown id: %d %v", st, got)
	}

	// A follow-up carries the earlier turn in its context (input tokens), and fails where the first is unknown.
	st, next := api(t, "POST", east+"/openai/v1/responses", `{"model":"gpt-4o","input":"What is my name?","previous_response_id":"`+id+`"}`)
	if st != 200 || next["previous_response_id"] != id {
		t.Fatalf("follow-up: %d %v", st, next)
	}
	if in := next["usage"].(map[string]any)["input_tokens"].(float64); in <= firstIn {
		t.Errorf("follow-up input tokens %v: the first turn (%v) is not in its context", in, firstIn)
	}
	st, got = api(t, "POST", west+"/openai/v1/responses", `{"model":"gpt-4o","input":"What is my name?","previous_response_id":"`+id+`"}`)
	if code, _ := errorOf(got); st != 400 || code != "previous_response_not_found" {
		t.Errorf("follow-up elsewhere: %d %v", st, got)
	}

	// input_items, delete, store:false.
	if st, items := api(t, "GET", east+"/openai/v1/responses/"+id+"/input_items", ""); st != 200 || len(items["data"].([]any)) != 1 || items["first_id"] == nil {
		t.Errorf("input_items: %d %v", st, items)
	}
	if st, del := api(t, "DELETE", east+"/openai/v1/responses/"+id, ""); st != 200 || del["deleted"] != true {
		t.Errorf("delete: %d %v", st, del)
	}
	if st, _ := api(t, "GET", east+"/openai/v1/responses/"+id, ""); st != 404 {
		t.Errorf("after delete: %d", st)
	}
	_, unstored := api(t, "POST", east+"/openai/v1/responses", `{"model":"gpt-4o","input":"x","store":false}`)
	if st, _ := api(t, "GET", east+"/openai/v1/responses/"+unstored["id"].(string), ""); st != 404 {
		t.Errorf("store:false was stored: %d", st)
	}
}

func TestStoredResponseStreamed(t *testing.T) {
	s := startSim(t, Config{Regions: DefaultRegions("eastus")})
	base := s.Region("eastus").URL()
	resp := post(t, http.DefaultClient, base+"/openai/v1/responses", `{"model":"gpt-4o","input":"hi","stream":true}`, "api-key", testKey)
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	i := strings.Index(string(raw), `"id":"resp_`)
	if i < 0 {
		t.Fatalf("no response id in the stream:\n%s", raw)
	}
	id := string(raw[i+6 : i+6+53])
	if st, got := api(t, "GET", base+"/openai/v1/responses/"+id, ""); st != 200 || got["status"] != "completed" {
		t.Errorf("streamed response not stored: %d %v", st, got)
	}
}

func TestConversations(t *testing.T) {
	s := startSim(t, Config{Regions: DefaultRegions("eastus", "westus")})
	east, west := s.Region("eastus").URL(), s.Region("westus").URL()
	st, cv := api(t, "POST", east+"/openai/v1/conversations", `{"items":[{"type":"message","role":"user","content":"I like tea."}],"metadata":{"k":"v"}}`)
	id, _ := cv["id"].(string)
	if st != 200 || !strings.HasPrefix(id, "conv_") {
		t.Fatalf("create: %d %v", st, cv)
	}
	if st, r := api(t, "POST", east+"/openai/v1/responses", `{"model":"gpt-4o","input":"What do I like?","conversation":"`+id+`"}`); st != 200 {
		t.Fatalf("response in conversation: %d %v", st, r)
	}
	if st, items := api(t, "GET", east+"/openai/v1/conversations/"+id+"/items", ""); st != 200 || len(items["data"].([]any)) != 3 {
		t.Errorf("items: %d %v", st, items)
	}
	if st, r := api(t, "POST", west+"/openai/v1/responses", `{"model":"gpt-4o","input":"x","conversation":"`+id+`"}`); st != 404 {
		t.Errorf("conversation elsewhere: %d %v", st, r)
	}
	if st, _ := api(t, "GET", west+"/openai/v1/conversations/"+id, ""); st != 404 {
		t.Errorf("retrieve elsewhere: %d", st)
	}
	if st, d := api(t, "DELETE", east+"/openai/v1/conversations/"+id, ""); st != 200 || d["deleted"] != true {
		t.Errorf("delete: %d %v", st, d)
	}
}

func TestBatchLifecycle(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	var clock = func() time.Time { return now }
	s := startSim(t, Config{Regions: DefaultRegions("eastus", "westus"), Now: func() time.Time { return clock() }, FineTuneDuration: 8 * time.Second})
	east, west := s.Region("eastus").URL(), s.Region("westus").URL()
	fid := upload(t, east, "batch", `{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}}
{"custom_id":"b","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o","messages":[{"role":"user","content":"yo"}]}}`)
	body := `{"input_file_id":"` + fid + `","endpoint":"/v1/chat/completions","completion_window":"24h"}`
	if st, got := api(t, "POST", west+"/openai/v1/batches", body); st != 400 {
		t.Errorf("batch from a file of another region: %d %v", st, got)
	}
	st, b := api(t, "POST", east+"/openai/batches?api-version=2024-10-21", body)
	id, _ := b["id"].(string)
	if st != 201 || b["status"] != "validating" || !strings.HasPrefix(id, "batch_") {
		t.Fatalf("create: %d %v", st, b)
	}
	for _, step := range []struct {
		after time.Duration
		want  string
	}{{2 * time.Second, "in_progress"}, {7 * time.Second, "finalizing"}, {9 * time.Second, "completed"}} {
		now = time.Unix(1_800_000_000, 0).Add(step.after)
		if _, got := api(t, "GET", east+"/openai/v1/batches/"+id, ""); got["status"] != step.want {
			t.Errorf("after %v: status %v, want %s", step.after, got["status"], step.want)
		} else if step.want == "completed" {
			out, _ := got["output_file_id"].(string)
			req, _ := http.NewRequest("GET", east+"/openai/v1/files/"+out+"/content", nil)
			req.Header.Set("api-key", testKey)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			content, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Count(string(content), `"custom_id"`) != 2 {
				t.Errorf("output file: %s", content)
			}
		}
	}
	if st, _ := api(t, "POST", east+"/openai/v1/batches/"+id+"/cancel", ""); st != 409 {
		t.Errorf("cancel a completed batch: %d", st)
	}
	if st, got := api(t, "GET", west+"/openai/v1/batches/"+id, ""); st != 404 {
		t.Errorf("batch elsewhere: %d %v", st, got)
	}
	_, b2 := api(t, "POST", east+"/openai/v1/batches", body)
	if st, got := api(t, "POST", east+"/openai/v1/batches/"+b2["id"].(string)+"/cancel", ""); st != 200 || got["status"] != "cancelling" {
		t.Errorf("cancel: %d %v", st, got)
	}
	if _, list := api(t, "GET", east+"/openai/v1/batches", ""); len(list["data"].([]any)) != 2 {
		t.Errorf("list: %v", list)
	}
}

func TestVectorStores(t *testing.T) {
	s := startSim(t, Config{Regions: DefaultRegions("eastus", "westus")})
	east, west := s.Region("eastus").URL(), s.Region("westus").URL()
	f1 := upload(t, east, "assistants", "the sky is blue\ngrass is green\n")
	f2 := upload(t, east, "assistants", "tea is hot\n")
	if st, _ := api(t, "POST", west+"/openai/v1/vector_stores", `{"name":"kb","file_ids":["`+f1+`"]}`); st != 400 {
		t.Errorf("files of another region: %d", st)
	}
	st, vs := api(t, "POST", east+"/openai/v1/vector_stores", `{"name":"kb","file_ids":["`+f1+`"]}`)
	id, _ := vs["id"].(string)
	if st != 200 || !strings.HasPrefix(id, "vs_") {
		t.Fatalf("create: %d %v", st, vs)
	}
	if st, _ := api(t, "POST", east+"/openai/v1/vector_stores/"+id+"/files", `{"file_id":"`+f2+`"}`); st != 200 {
		t.Errorf("add file: %d", st)
	}
	if _, files := api(t, "GET", east+"/openai/v1/vector_stores/"+id+"/files", ""); len(files["data"].([]any)) != 2 {
		t.Errorf("files: %v", files)
	}
	st, fb := api(t, "POST", east+"/openai/v1/vector_stores/"+id+"/file_batches", `{"file_ids":["`+f1+`","`+f2+`"]}`)
	if st != 200 {
		t.Fatalf("file batch: %d %v", st, fb)
	}
	if st, _ := api(t, "GET", east+"/openai/v1/vector_stores/"+id+"/file_batches/"+fb["id"].(string)+"/files", ""); st != 200 {
		t.Errorf("file batch files: %d", st)
	}
	if _, res := api(t, "POST", east+"/openai/v1/vector_stores/"+id+"/search", `{"query":"green"}`); len(res["data"].([]any)) != 1 {
		t.Errorf("search: %v", res)
	}
	if st, _ := api(t, "GET", west+"/openai/v1/vector_stores/"+id, ""); st != 404 {
		t.Errorf("elsewhere: %d", st)
	}
	if st, _ := api(t, "PUT", east+"/openai/v1/vector_stores/"+id, ""); st != 404 {
		t.Errorf("PUT: %d", st)
	}
	if st, d := api(t, "DELETE", east+"/openai/v1/vector_stores/"+id, ""); st != 200 || d["deleted"] != true {
		t.Errorf("delete: %d %v", st, d)
	}
}

func realtimeDeployments() []Deployment {
	return append(DefaultDeployments(), Deployment{Name: "gpt-realtime", Model: "gpt-4o-realtime-preview", Version: "2024-12-17"})
}

func dialRealtime(t *testing.T, ctx context.Context, url string) *websocket.Conn {
	t.Helper()
	c, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: http.Header{"api-key": {testKey}}})
	if err != nil {
		st := 0
		if resp != nil {
			st = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (status %d)", url, err, st)
	}
	return c
}

func readEvent(t *testing.T, ctx context.Context, c *websocket.Conn) map[string]any {
	t.Helper()
	_, data, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	var ev map[string]any
	json.Unmarshal(data, &ev)
	return ev
}

func TestRealtimeSession(t *testing.T) {
	s := startSim(t, Config{Regions: []RegionConfig{{Name: "eastus", Deployments: realtimeDeployments()}}})
	base := strings.Replace(s.Region("eastus").URL(), "http", "ws", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, tc := range []struct{ url, delta, audioDelta string }{
		{base + "/openai/realtime?api-version=2024-10-01-preview&deployment=gpt-realtime", "response.text.delta", "response.audio.delta"},
		{base + "/openai/v1/realtime?model=gpt-realtime", "response.output_text.delta", "response.output_audio.delta"},
	} {
		c := dialRealtime(t, ctx, tc.url)
		if ev := readEvent(t, ctx, c); ev["type"] != "session.created" {
			t.Fatalf("first event %v", ev)
		}
		c.Write(ctx, websocket.MessageText, []byte(`{"type":"conversation.item.create","item":{"type":"message","role":"user","content":[{"type":"input_text","text":"Hello there"}]}}`))
		c.Write(ctx, websocket.MessageText, []byte(`{"type":"response.create","response":{"modalities":["text"],"output_modalities":["text"]}}`))
		var text string
		for {
			ev := readEvent(t, ctx, c)
			if ev["type"] == tc.delta {
				text += ev["delta"].(string)
			}
			if ev["type"] == "response.done" {
				break
			}
		}
		if !strings.Contains(text, "Hello there") || !strings.Contains(text, "East US") {
			t.Errorf("%s: text %q", tc.url, text)
		}
		c.Write(ctx, websocket.MessageText, []byte(`{"type":"response.create"}`))
		audio := 0
		for {
			ev := readEvent(t, ctx, c)
			if ev["type"] == tc.audioDelta {
				audio++
			}
			if ev["type"] == "response.done" {
				break
			}
		}
		if audio == 0 {
			t.Errorf("%s: no audio deltas", tc.url)
		}
		c.Write(ctx, websocket.MessageText, []byte(`{"type":"nonsense"}`))
		if ev := readEvent(t, ctx, c); ev["type"] != "error" {
			t.Errorf("unknown event: %v", ev)
		}
		c.Close(websocket.StatusNormalClosure, "")
	}
}

func TestRealtimeEndsWhenRegionFails(t *testing.T) {
	s := startSim(t, Config{Regions: []RegionConfig{{Name: "eastus", Deployments: realtimeDeployments()}}})
	r := s.Region("eastus")
	base := strings.Replace(r.URL(), "http", "ws", 1) + "/openai/v1/realtime?model=gpt-realtime"
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := dialRealtime(t, ctx, base)
	readEvent(t, ctx, c)
	if err := s.Fault("eastus", Fault{Mode: ModeDown}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Read(ctx); err == nil || websocket.CloseStatus(err) == websocket.StatusNormalClosure {
		t.Fatalf("read after the region went down: %v", err)
	}
	s.Fault("eastus", Fault{Mode: ModeClear})

	// cut_stream ends a session after N server events.
	s.Fault("eastus", Fault{Mode: ModeCutStream, AfterEvents: 3})
	c = dialRealtime(t, ctx, base)
	readEvent(t, ctx, c)
	c.Write(ctx, websocket.MessageText, []byte(`{"type":"response.create"}`))
	n := 1
	for ; n < 100; n++ {
		if _, _, err := c.Read(ctx); err != nil {
			break
		}
	}
	if n != 3 {
		t.Errorf("session cut after %d events, want 3", n)
	}
	// Wrong model kind, unknown deployment, bad key.
	for url, want := range map[string]int{
		strings.Replace(base, "gpt-realtime", "gpt-4o", 1):  400,
		strings.Replace(base, "gpt-realtime", "nothere", 1): 404,
	} {
		s.Fault("eastus", Fault{Mode: ModeClear})
		_, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: http.Header{"api-key": {testKey}}})
		if err == nil || resp == nil || resp.StatusCode != want {
			t.Errorf("%s: %v, want %d", url, err, want)
		}
	}
	_, resp, err := websocket.Dial(ctx, base, &websocket.DialOptions{HTTPHeader: http.Header{"api-key": {"wrong"}}})
	if err == nil || resp == nil || resp.StatusCode != 401 {
		t.Errorf("bad key: %v", err)
	}
}
