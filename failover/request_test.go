package failover

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

func parse(t *testing.T, method, target, contentType, body string) (*Request, *RequestError) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, "https://lifeline.invalid"+target, rd)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	r, err := ParseRequest(req, 1<<20)
	if err != nil {
		var re *RequestError
		if !errors.As(err, &re) {
			t.Fatalf("%s %s: error %T %v, want *RequestError", method, target, err, err)
		}
		return nil, re
	}
	return r, nil
}

// TestRoutes: every route of SPEC.md sections 4 and 10, with its methods, operation, name and
// the stored objects it names; anything else is 404, a known route with another method 405.
func TestRoutes(t *testing.T) {
	const chat = `{"model":"gpt-4o","messages":[]}`
	for _, c := range []struct {
		method, target, body string
		status               int // 0: accepted
		op                   Operation
		surface              Surface
		name                 string
		objects              string // kind:id:field, comma-separated
		creates              ObjectKind
		route                string
		regionPath           string
	}{
		{method: "POST", target: "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", body: chat, op: OpChatCompletions,
			surface: SurfaceAzure, name: "gpt-4o", route: "POST /openai/deployments/{name}/chat/completions", regionPath: "/openai/deployments/DEP/chat/completions"},
		{method: "POST", target: "/openai/deployments/gpt-4o/completions", body: chat, op: OpCompletions, surface: SurfaceAzure, name: "gpt-4o"},
		{method: "POST", target: "/openai/deployments/emb/embeddings", body: `{"input":"x"}`, op: OpEmbeddings, surface: SurfaceAzure, name: "emb"},
		{method: "POST", target: "/openai/deployments/img/images/generations", body: `{"prompt":"x"}`, op: OpImages, surface: SurfaceAzure, name: "img"},
		{method: "POST", target: "/openai/deployments/w/audio/transcriptions", op: OpAudio, surface: SurfaceAzure, name: "w"},
		{method: "POST", target: "/openai/deployments/w/audio/speech", body: `{"input":"x"}`, op: OpAudio, surface: SurfaceAzure, name: "w"},
		{method: "GET", target: "/openai/deployments/gpt-4o/chat/completions", status: 405},
		{method: "POST", target: "/openai/deployments/gpt-4o/fine_tuning/jobs", body: chat, status: 404},
		{method: "POST", target: "/openai/deployments/gpt-4o/../../files", body: chat, status: 404},
		{method: "POST", target: "/openai/deployments//chat/completions", body: chat, status: 404},
		{method: "POST", target: "/openai/deployments/gpt-4o/chat/completions/", body: chat, status: 404},

		{method: "POST", target: "/openai/v1/chat/completions", body: chat, op: OpChatCompletions, surface: SurfaceAzureV1, name: "gpt-4o",
			route: "POST /openai/v1/chat/completions", regionPath: "/openai/v1/chat/completions"},
		{method: "POST", target: "/v1/chat/completions", body: chat, op: OpChatCompletions, surface: SurfaceOpenAI, name: "gpt-4o",
			route: "POST /v1/chat/completions", regionPath: "/openai/v1/chat/completions"},
		{method: "POST", target: "/v1/completions", body: chat, op: OpCompletions, surface: SurfaceOpenAI, name: "gpt-4o"},
		{method: "POST", target: "/openai/v1/embeddings", body: chat, op: OpEmbeddings, surface: SurfaceAzureV1, name: "gpt-4o"},
		{method: "POST", target: "/openai/v1/images/generations", body: chat, op: OpImages, surface: SurfaceAzureV1, name: "gpt-4o"},
		{method: "POST", target: "/openai/v1/images/edits", body: chat, op: OpImages, surface: SurfaceAzureV1, name: "gpt-4o"},
		{method: "POST", target: "/openai/v1/audio/speech", body: chat, op: OpAudio, surface: SurfaceAzureV1, name: "gpt-4o"},
		{method: "POST", target: "/openai/v1/responses", body: `{"model":"gpt-4o","previous_response_id":"resp_1","conversation":{"id":"conv_1"}}`,
			op: OpResponses, surface: SurfaceAzureV1, name: "gpt-4o", objects: "response:resp_1:previous_response_id,conversation:conv_1:conversation",
			creates: ObjectResponse},
		{method: "POST", target: "/openai/v1/responses", body: `{"model":"gpt-4o","store":false,"conversation":"conv_2"}`,
			op: OpResponses, surface: SurfaceAzureV1, name: "gpt-4o", objects: "conversation:conv_2:conversation"},
		{method: "POST", target: "/openai/responses?api-version=2025-04-01-preview", body: chat, op: OpResponses, surface: SurfaceAzure,
			name: "gpt-4o", creates: ObjectResponse, regionPath: "/openai/v1/responses"},
		{method: "POST", target: "/openai/v1/fine_tuning/jobs", body: `{"model":"gpt-4o"}`, status: 0, op: OpFineTuning,
			surface: SurfaceAzureV1, creates: ObjectFineTuningJob},
		{method: "POST", target: "/openai/v1/chat/completions", status: 400},
		{method: "POST", target: "/openai/v1/chat/completions", body: `{"messages":[]}`, status: 400},
		{method: "GET", target: "/openai/v1/chat/completions", status: 405},
		{method: "POST", target: "/openai/v1/assistants", body: chat, status: 404},
		{method: "POST", target: "/openai/v1/evals", body: chat, status: 404},
		{method: "POST", target: "/openai/v1/uploads", body: chat, status: 404},
		{method: "POST", target: "/v1/chat/completions/../../fine_tuning/jobs", body: chat, status: 404},
		{method: "POST", target: "/openai/v1/chat%2Fcompletions", body: chat, status: 404},
		{method: "POST", target: "/OPENAI/v1/chat/completions", body: chat, status: 404},
		{method: "POST", target: "/openai/v1/", body: chat, status: 404},
		{method: "POST", target: "/healthz", body: chat, status: 404},

		{method: "GET", target: "/openai/realtime?api-version=2024-10-01-preview&deployment=rt", op: OpRealtime, surface: SurfaceAzure, name: "rt"},
		{method: "GET", target: "/openai/v1/realtime?model=rt", op: OpRealtime, surface: SurfaceAzureV1, name: "rt"},
		{method: "GET", target: "/v1/realtime?model=rt", op: OpRealtime, surface: SurfaceOpenAI, name: "rt"},
		{method: "GET", target: "/openai/v1/realtime?model=rt&model=x", status: 400},
		{method: "GET", target: "/openai/v1/realtime?Model=rt", status: 400},
		{method: "GET", target: "/openai/v1/realtime", status: 400},

		{method: "GET", target: "/openai/models?api-version=2024-10-21", op: OpModels, surface: SurfaceAzure},
		{method: "GET", target: "/openai/v1/models", op: OpModels, surface: SurfaceAzureV1},
		{method: "HEAD", target: "/v1/models", op: OpModels, surface: SurfaceOpenAI},
		{method: "GET", target: "/v1/models/gpt-4o", op: OpModels, surface: SurfaceOpenAI, name: "gpt-4o"},
		{method: "POST", target: "/v1/models", status: 405},

		{method: "GET", target: "/openai/v1/responses/resp_1", op: OpResponses, surface: SurfaceAzureV1, objects: "response:resp_1:path",
			route: "GET /openai/v1/responses/{response}"},
		{method: "DELETE", target: "/openai/v1/responses/resp_1", op: OpResponses, surface: SurfaceAzureV1, objects: "response:resp_1:path"},
		{method: "POST", target: "/openai/v1/responses/resp_1/cancel", op: OpResponses, surface: SurfaceAzureV1, objects: "response:resp_1:path"},
		{method: "GET", target: "/openai/v1/responses/resp_1/input_items", op: OpResponses, surface: SurfaceAzureV1, objects: "response:resp_1:path"},
		{method: "GET", target: "/openai/responses/resp_1?api-version=2025-04-01-preview", op: OpResponses, surface: SurfaceAzure,
			objects: "response:resp_1:path", regionPath: "/openai/v1/responses/resp_1"},
		{method: "PUT", target: "/openai/v1/responses/resp_1", status: 405},
		{method: "GET", target: "/openai/v1/responses/resp..1", status: 0, op: OpResponses, surface: SurfaceAzureV1, objects: "response:resp..1:path"},
		{method: "GET", target: "/openai/v1/responses/..", status: 404},
		{method: "GET", target: "/openai/v1/responses/a%20b", status: 404},

		{method: "POST", target: "/openai/v1/conversations", body: `{"items":[]}`, op: OpConversations, surface: SurfaceAzureV1, creates: ObjectConversation},
		{method: "POST", target: "/openai/v1/conversations/conv_1", body: `{"metadata":{}}`, op: OpConversations, surface: SurfaceAzureV1, objects: "conversation:conv_1:path"},
		{method: "GET", target: "/openai/v1/conversations/conv_1/items", op: OpConversations, surface: SurfaceAzureV1, objects: "conversation:conv_1:path"},
		{method: "DELETE", target: "/openai/v1/conversations/conv_1/items/msg_1", op: OpConversations, surface: SurfaceAzureV1, objects: "conversation:conv_1:path"},
		{method: "GET", target: "/openai/conversations/conv_1", status: 404},

		{method: "GET", target: "/openai/files?api-version=2024-10-21", op: OpFiles, surface: SurfaceAzure, regionPath: "/openai/files"},
		{method: "GET", target: "/openai/v1/files/file-1/content", op: OpFiles, surface: SurfaceAzureV1, objects: "file:file-1:path"},
		{method: "DELETE", target: "/v1/files/file-1", op: OpFiles, surface: SurfaceOpenAI, objects: "file:file-1:path", regionPath: "/openai/v1/files/file-1"},
		{method: "GET", target: "/openai/files/file-1", body: `{}`, status: 400},

		{method: "POST", target: "/openai/batches?api-version=2024-10-21", body: `{"input_file_id":"file-2","endpoint":"/chat/completions"}`,
			op: OpBatches, surface: SurfaceAzure, objects: "file:file-2:input_file_id", creates: ObjectBatch},
		{method: "POST", target: "/openai/v1/batches/batch_1/cancel", op: OpBatches, surface: SurfaceAzureV1, objects: "batch:batch_1:path"},

		{method: "POST", target: "/openai/fine_tuning/jobs?api-version=2024-10-21", body: `{"model":"base","training_file":"file-t","validation_file":"file-v"}`,
			op: OpFineTuning, surface: SurfaceAzure, objects: "file:file-t:training_file,file:file-v:validation_file", creates: ObjectFineTuningJob},
		{method: "POST", target: "/openai/v1/fine_tuning/jobs/ftjob-1/pause", op: OpFineTuning, surface: SurfaceAzureV1, objects: "fine_tuning_job:ftjob-1:path"},
		{method: "GET", target: "/openai/fine_tuning/jobs/ftjob-1/checkpoints?api-version=2024-10-21", op: OpFineTuning, surface: SurfaceAzure,
			objects: "fine_tuning_job:ftjob-1:path"},

		{method: "POST", target: "/openai/v1/vector_stores", body: `{"file_ids":["file-a","file-b"]}`, op: OpVectorStores, surface: SurfaceAzureV1,
			objects: "file:file-a:file_ids,file:file-b:file_ids", creates: ObjectVectorStore},
		{method: "POST", target: "/openai/v1/vector_stores/vs_1/files", body: `{"file_id":"file-c"}`, op: OpVectorStores, surface: SurfaceAzureV1,
			objects: "vector_store:vs_1:path,file:file-c:file_id"},
		{method: "GET", target: "/openai/v1/vector_stores/vs_1/files/file-c", op: OpVectorStores, surface: SurfaceAzureV1,
			objects: "vector_store:vs_1:path,file:file-c:path"},
		{method: "GET", target: "/openai/v1/vector_stores/vs_1/file_batches/vsfb_1/files", op: OpVectorStores, surface: SurfaceAzureV1,
			objects: "vector_store:vs_1:path"},
		{method: "POST", target: "/openai/vector_stores", body: `{}`, status: 404},
	} {
		name := c.method + " " + c.target
		r, e := parse(t, c.method, c.target, "application/json", c.body)
		if c.status != 0 {
			if e == nil || e.Status != c.status {
				t.Errorf("%s: %v, want status %d", name, e, c.status)
			}
			if e != nil && e.Status == 405 && e.Allow == "" {
				t.Errorf("%s: 405 without Allow", name)
			}
			continue
		}
		if e != nil {
			t.Errorf("%s: refused %d %s", name, e.Status, e.Message)
			continue
		}
		var objs []string
		for _, o := range r.Objects {
			objs = append(objs, o.Kind.String()+":"+o.ID+":"+o.Field)
		}
		if r.Operation != c.op || r.Surface != c.surface || r.Name != c.name || strings.Join(objs, ",") != c.objects || r.Creates != c.creates {
			t.Errorf("%s: op %q surface %v name %q objects %q creates %v; want %q %v %q %q %v",
				name, r.Operation, r.Surface, r.Name, strings.Join(objs, ","), r.Creates, c.op, c.surface, c.name, c.objects, c.creates)
		}
		if wantOp := map[Operation]string{OpChatCompletions: "chat/completions", OpCompletions: "completions"}[r.Operation]; wantOp != "" && r.in.op != wantOp {
			t.Errorf("%s: the attempt path's op %q, want %q (stream completeness reads it)", name, r.in.op, wantOp)
		}
		if c.route != "" && r.Route != c.route {
			t.Errorf("%s: route %q, want %q", name, r.Route, c.route)
		}
		if c.regionPath != "" {
			if got := r.in.targetPath("", "DEP"); got != c.regionPath {
				t.Errorf("%s: region path %q, want %q", name, got, c.regionPath)
			}
		}
	}
}

// TestQueryForRegions: the client's credential in the query never reaches a region; a classic
// Responses route loses its dated api-version; realtime gets the region's deployment.
func TestQueryForRegions(t *testing.T) {
	r, _ := parse(t, "POST", "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21&api-key=secret&Api-Key=s2", "", `{}`)
	if q := r.in.targetQuery("dep"); q != "api-version=2024-10-21" {
		t.Errorf("query %q", q)
	}
	r, _ = parse(t, "POST", "/openai/responses?api-version=2025-04-01-preview", "", `{"model":"m"}`)
	if q := r.in.targetQuery("dep"); q != "" {
		t.Errorf("classic responses query %q", q)
	}
	r, _ = parse(t, "GET", "/openai/realtime?api-version=2024-10-01-preview&deployment=rt", "", "")
	if q := r.in.targetQuery("rt-prod"); q != "api-version=2024-10-01-preview&deployment=rt-prod" {
		t.Errorf("realtime query %q", q)
	}
	if _, e := parse(t, "GET", "/openai/v1/models?a=%zz", "", ""); e == nil || e.Status != 400 {
		t.Errorf("malformed query: %v", e)
	}
}

// TestAmbiguousBodies: SPEC.md section 12. Every body here was read one way by the gateway and
// another by a region (issue 11); each is now refused with 400.
func TestAmbiguousBodies(t *testing.T) {
	mp := func(parts ...string) (string, string) {
		return "multipart/form-data; boundary=XyZ", "--XyZ\r\n" + strings.Join(parts, "\r\n--XyZ\r\n") + "\r\n--XyZ--\r\n"
	}
	field := func(disposition, value string) string {
		return "Content-Disposition: " + disposition + "\r\n\r\n" + value
	}
	for _, c := range []struct {
		name, ct, body string
	}{
		{"duplicate model", "application/json", `{"model":"gpt-4o","model":"X"}`},
		{"case variant", "application/json", `{"Model":"X","messages":[]}`},
		{"case variant beside model", "application/json", `{"model":"gpt-4o","MODEL":"X"}`},
		{"unicode fold", "application/json", `{"model":"gpt-4o","ſtream":true}`},
		{"escaped duplicate", "application/json", `{"model":"gpt-4o","mod\u0065l":"X"}`},
		{"duplicate other key", "application/json", `{"model":"gpt-4o","stream":false,"stream":true}`},
		{"model not a string", "application/json", `{"model":["gpt-4o"]}`},
		{"stream not a boolean", "application/json", `{"model":"gpt-4o","stream":"true"}`},
		{"not an object", "application/json", `["model","gpt-4o"]`},
		{"invalid JSON", "application/json", `{"model":"gpt-4o",}`},
		{"trailing data", "application/json", `{"model":"gpt-4o"}{"model":"X"}`},
		{"form-encoded", "application/x-www-form-urlencoded", `model=gpt-4o&model=X`},
		{"two model fields", "", ""},
		{"decoy in file part", "", ""},
		{"model as a file", "", ""},
		{"unparsable multipart", "multipart/form-data; boundary=XyZ", "--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\ngpt-4o"},
		{"multipart without boundary", "multipart/form-data", "--XyZ\r\n\r\n"},
		{"multipart/mixed", "multipart/mixed; boundary=XyZ", "--XyZ--\r\n"},
		{"duplicate name param", "", ""},
		{"extended name param", "", ""},
		{"two dispositions", "", ""},
	} {
		ct, body := c.ct, c.body
		switch c.name {
		case "two model fields":
			ct, body = mp(field(`form-data; name="model"`, "gpt-4o"), field(`form-data; name="model"`, "X"))
		case "decoy in file part":
			ct, body = mp(field(`form-data; name="file"; filename="a.wav"`, "RIFF; name=\"model\"\r\n\r\ngpt-4o\r\n-- not a delimiter"), field(`form-data; NAME="model"`, "X"))
			// The decoy is file content; mime/multipart reads NAME="model" as the model. That one is read,
			// and only it: this body is accepted with the name X (see TestMultipartReadsWhatRegionsRead).
			r, e := parse(t, "POST", "/openai/v1/audio/transcriptions", ct, body)
			if e != nil || r.Name != "X" {
				t.Errorf("%s: %v %+v", c.name, e, r)
			}
			continue
		case "model as a file":
			ct, body = mp(field(`form-data; name="model"; filename="m.txt"`, "X"))
		case "duplicate name param":
			ct, body = mp(field(`form-data; name="file"; name="model"`, "X"))
		case "extended name param":
			ct, body = mp(field(`form-data; name="file"; name*=utf-8''model`, "X"))
		case "two dispositions":
			ct, body = mp("Content-Disposition: form-data; name=\"file\"\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nX")
		}
		_, e := parse(t, "POST", "/openai/v1/audio/transcriptions", ct, body)
		if e == nil || e.Status != 400 {
			t.Errorf("%s: %v, want 400", c.name, e)
		}
	}
	// Two Content-Type headers, a compressed body, a body on GET.
	req, _ := http.NewRequest("POST", "https://x/openai/v1/chat/completions", strings.NewReader(`{"model":"m"}`))
	req.Header["Content-Type"] = []string{"application/json", "multipart/form-data; boundary=x"}
	if _, err := ParseRequest(req, 0); err == nil {
		t.Error("two Content-Type headers accepted")
	}
	req, _ = http.NewRequest("POST", "https://x/openai/v1/chat/completions", strings.NewReader(`{"model":"m"}`))
	req.Header.Set("Content-Encoding", "gzip")
	if _, err := ParseRequest(req, 0); err == nil {
		t.Error("Content-Encoding accepted")
	}
}

// TestMultipartReadsWhatRegionsRead: the multipart body regions get is re-encoded from what
// mime/multipart read, so a field another parser might see differently cannot get through.
func TestMultipartReadsWhatRegionsRead(t *testing.T) {
	raw := "--XyZ\r\n" +
		"content-disposition: form-data; NAME=\"file\"; FileName=\"a.wav\"\r\nContent-Type: audio/wav\r\nX-Junk: 1\r\n\r\n" +
		"RIFF--XyZ-not-a-boundary\r\nname=\"model\"\r\n\r\ndecoy\r\n" +
		"--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper\r\n" +
		"--XyZ\r\nContent-Disposition: form-data; name=\"stream\"\r\n\r\ntrue\r\n--XyZ--\r\n"
	r, e := parse(t, "POST", "/openai/v1/audio/transcriptions", "multipart/form-data; boundary=XyZ", raw)
	if e != nil {
		t.Fatal(e)
	}
	if r.Name != "whisper" || !r.Stream {
		t.Fatalf("name %q stream %v", r.Name, r.Stream)
	}
	out := r.in.rewriteBody("whisper-prod", nil)
	form, err := multipart.NewReader(bytes.NewReader(out), "XyZ").ReadForm(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	if got := form.Value["model"]; !reflect.DeepEqual(got, []string{"whisper-prod"}) {
		t.Errorf("model fields %q", got)
	}
	f := form.File["file"]
	if len(f) != 1 || f[0].Filename != "a.wav" || f[0].Header.Get("Content-Type") != "audio/wav" || f[0].Header.Get("X-Junk") != "" {
		t.Fatalf("file part %+v", f)
	}
	fr, _ := f[0].Open()
	content, _ := io.ReadAll(fr)
	if string(content) != "RIFF--XyZ-not-a-boundary\r\nname=\"model\"\r\n\r\ndecoy" {
		t.Errorf("file content %q", content)
	}
	if !bytes.Contains(out, []byte(`Content-Disposition: form-data; name="file"; filename="a.wav"`)) {
		t.Errorf("part header not canonical:\n%s", out)
	}
}

// TestJSONRewrite: the region's body differs from the client's in the model value only.
func TestJSONRewrite(t *testing.T) {
	body := `{ "messages":[{"content":"\"model\":\"x\""}], "mod\u0065l" : "gpt\u002d4o", "n":1 }`
	r, e := parse(t, "POST", "/openai/v1/chat/completions", "application/json", body)
	if e != nil {
		t.Fatal(e)
	}
	if r.Name != "gpt-4o" {
		t.Fatalf("name %q", r.Name)
	}
	out := r.in.rewriteBody("prod\"1", appendJSONString(nil, "prod\"1"))
	var got, want map[string]any
	json.Unmarshal(out, &got)
	json.Unmarshal([]byte(body), &want)
	want["model"] = "prod\"1"
	if !reflect.DeepEqual(got, want) {
		t.Errorf("rewritten %s", out)
	}
}

// TestBodyMemoryFollowsBytes: a Content-Length that claims 32 MiB does not buy 32 MiB of memory.
func TestBodyMemoryFollowsBytes(t *testing.T) {
	req, _ := http.NewRequest("POST", "https://x/openai/v1/chat/completions", io.MultiReader(strings.NewReader("{"), errReader{}))
	req.ContentLength = 32 << 20
	_, err := readBody(req, 32<<20)
	if err == nil {
		t.Fatal("no error")
	}
	var buf []byte
	req, _ = http.NewRequest("POST", "https://x/", &capReader{data: []byte(`{"a":1}`), cap: &buf})
	req.ContentLength = 32 << 20
	readBody(req, 32<<20)
	if cap(buf) > bodyChunk {
		t.Errorf("buffer of %d bytes for a 7-byte body that claimed 32 MiB", cap(buf))
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

// capReader records the capacity of the buffer it is read into.
type capReader struct {
	data []byte
	cap  *[]byte
}

func (c *capReader) Read(p []byte) (int, error) {
	if cap(p) > cap(*c.cap) {
		*c.cap = p
	}
	if len(c.data) == 0 {
		return 0, io.ErrUnexpectedEOF
	}
	n := copy(p, c.data)
	c.data = c.data[n:]
	return n, nil
}

// TestInvalidHeaderRefused: a header value the region's client would refuse to send is the caller's error (400),
// never a failed attempt that counts against a region.
func TestInvalidHeaderRefused(t *testing.T) {
	req, _ := http.NewRequest("POST", "https://x/openai/v1/chat/completions", strings.NewReader(`{"model":"m"}`))
	req.Header["X-Trace"] = []string{"a\r\nInjected: 1"}
	_, err := ParseRequest(req, 0)
	var re *RequestError
	if !errors.As(err, &re) || re.Status != 400 || re.Code != "invalid_header" {
		t.Fatalf("%v", err)
	}
}
