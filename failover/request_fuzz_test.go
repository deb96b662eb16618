package failover

import (
	"bytes"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// The differential fuzz targets of the trust boundary: the same bytes go to the engine's request model and to Go's
// standard parsers, and a request the model accepts must read the same to them (the model name, the stream flag,
// the operation), before and after the engine rewrites it for a region. Refusing is always allowed; accepting a
// request that a standard parser reads differently is the bug. scripts/test.sh runs each for a bounded time.

func parseForFuzz(method, target, contentType string, body []byte) (*Request, error) {
	req, err := http.NewRequest(method, "https://lifeline.invalid"+target, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", contentType)
	return ParseRequest(req, 1<<20)
}

func FuzzRequestJSON(f *testing.F) {
	for _, s := range []string{
		`{"model":"gpt-4o","messages":[]}`, `{ "messages": [{"content":"\"model\":\"x\""}], "model" : "gpt-4o" }`,
		`{"model":"gpt\u002d4o","stream":true}`, `{"model":null}`, `{"nested":{"model":"a"},"model":"b"}`,
		`{"model":"a","model":"b"}`, `{"Model":"a"}`, `{"model":"a","MODEL":"b"}`, `{"mod\u0065l":"a"}`,
		`{"model":"a\ud800"}`, "{\"model\":\"\xff\"}", `{"model":"a","stream":"true"}`, `{"model":"a"} `, `[]`,
		`{"model":"a","ſtream":true}`, `{"model":"a","\u017ftream":true}`, `{"model":"\u00e9","KELVIN":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := parseForFuzz("POST", "/openai/v1/chat/completions", "application/json", body)
		if err != nil {
			return
		}
		var generic map[string]any
		if err := json.Unmarshal(body, &generic); err != nil {
			t.Fatalf("accepted %q, which encoding/json refuses: %v", body, err)
		}
		// A struct reader folds case and takes the last duplicate, as some region parsers do.
		var folded struct {
			Model  *string `json:"model"`
			Stream *bool   `json:"stream"`
		}
		if err := json.Unmarshal(body, &folded); err != nil {
			t.Fatalf("accepted %q, which a struct reader refuses: %v", body, err)
		}
		if m, _ := generic["model"].(string); m != r.Name || folded.Model == nil || *folded.Model != r.Name {
			t.Fatalf("%q: model %q, encoding/json reads %q (map) and %v (struct)", body, r.Name, generic["model"], folded.Model)
		}
		if s := folded.Stream != nil && *folded.Stream; s != r.Stream {
			t.Fatalf("%q: stream %v, encoding/json reads %v", body, r.Stream, s)
		}
		const dep = "dep-\"1\"<x>"
		out := r.in.rewriteBody(dep, appendJSONString(nil, dep))
		var after map[string]any
		if err := json.Unmarshal(out, &after); err != nil {
			t.Fatalf("rewrite broke the JSON: %q -> %q: %v", body, out, err)
		}
		generic["model"] = dep
		if !reflect.DeepEqual(after, generic) {
			t.Fatalf("rewrite changed more than the model: %q -> %q", body, out)
		}
		folded.Model = nil
		if json.Unmarshal(out, &folded); folded.Model == nil || *folded.Model != dep {
			t.Fatalf("after the rewrite a struct reader reads model %v", folded.Model)
		}
	})
}

func FuzzRequestMultipart(f *testing.F) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	mw.SetBoundary("XyZ")
	mw.WriteField("stream", "true")
	mw.WriteField("model", "whisper")
	fw, _ := mw.CreateFormFile("file", "a.wav")
	fw.Write([]byte("RIFF; name=\"model\"\r\n\r\nfake\r\n-- not a boundary"))
	mw.Close()
	f.Add(buf.Bytes())
	f.Add([]byte("--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nx\r\n--XyZ--\r\n"))
	f.Add([]byte("--XyZ\r\nContent-Disposition: form-data; NAME=\"model\"\r\n\r\nx\r\n--XyZ--\r\n"))
	f.Add([]byte("--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nx\r\n--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\ny\r\n--XyZ--\r\n"))
	f.Add([]byte("preamble\r\n--XyZ  \r\ncontent-disposition: form-data; name=model\r\n\r\nx\r\n--XyZ--"))
	f.Add([]byte("--XyZ\nContent-Disposition: form-data; name=\"model\"\n\nx\n--XyZ--\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := parseForFuzz("POST", "/openai/v1/audio/transcriptions", "multipart/form-data; boundary=XyZ", body)
		if err != nil {
			return
		}
		form, err := multipart.NewReader(bytes.NewReader(body), "XyZ").ReadForm(1 << 20)
		if err != nil {
			t.Fatalf("accepted %q, which mime/multipart refuses: %v", body, err)
		}
		if m := form.Value["model"]; len(m) != 1 || m[0] != r.Name || len(form.File["model"]) > 0 {
			t.Fatalf("%q: model %q, mime/multipart reads %q (and %d files)", body, r.Name, m, len(form.File["model"]))
		}
		for k := range form.Value {
			if strings.EqualFold(k, "model") && k != "model" {
				t.Fatalf("%q: accepted a field %q beside the model", body, k)
			}
		}
		out := r.in.rewriteBody("dep", nil)
		after, err := multipart.NewReader(bytes.NewReader(out), "XyZ").ReadForm(1 << 20)
		if err != nil {
			t.Fatalf("the re-encoded body does not parse: %q: %v", out, err)
		}
		form.Value["model"] = []string{"dep"}
		if !reflect.DeepEqual(after.Value, form.Value) {
			t.Fatalf("fields changed: %q -> %q", form.Value, after.Value)
		}
		if len(after.File) != len(form.File) {
			t.Fatalf("files changed: %d -> %d", len(form.File), len(after.File))
		}
		for name, fs := range form.File {
			for i, fh := range fs {
				if len(after.File[name]) != len(fs) || after.File[name][i].Filename != fh.Filename || fileContent(fh) != fileContent(after.File[name][i]) {
					t.Fatalf("file %q changed", name)
				}
			}
		}
	})
}

func fileContent(fh *multipart.FileHeader) string {
	f, err := fh.Open()
	if err != nil {
		return "error: " + err.Error()
	}
	defer f.Close()
	b, _ := io.ReadAll(f)
	return string(b)
}

// referenceRoutes are the routes of SPEC.md sections 4 and 10 as http.ServeMux patterns, written out by hand from
// the spec: the standard router is the reference the model's own matching is checked against.
var referenceRoutes = map[string]Operation{
	"POST /openai/responses": OpResponses, "GET /openai/responses/{id}": OpResponses, "DELETE /openai/responses/{id}": OpResponses,
	"POST /openai/responses/{id}/cancel": OpResponses, "GET /openai/responses/{id}/input_items": OpResponses,
	"GET /openai/realtime": OpRealtime, "GET /openai/models": OpModels, "GET /openai/models/{id}": OpModels,
	"GET /openai/files": OpFiles, "POST /openai/files": OpFiles, "GET /openai/files/{id}": OpFiles, "DELETE /openai/files/{id}": OpFiles,
	"GET /openai/files/{id}/content": OpFiles,
	"GET /openai/batches":            OpBatches, "POST /openai/batches": OpBatches, "GET /openai/batches/{id}": OpBatches,
	"POST /openai/batches/{id}/cancel": OpBatches,
	"GET /openai/fine_tuning/jobs":     OpFineTuning, "POST /openai/fine_tuning/jobs": OpFineTuning,
	"GET /openai/fine_tuning/jobs/{id}": OpFineTuning, "DELETE /openai/fine_tuning/jobs/{id}": OpFineTuning,
	"POST /openai/fine_tuning/jobs/{id}/cancel": OpFineTuning, "POST /openai/fine_tuning/jobs/{id}/pause": OpFineTuning,
	"POST /openai/fine_tuning/jobs/{id}/resume": OpFineTuning, "GET /openai/fine_tuning/jobs/{id}/events": OpFineTuning,
	"GET /openai/fine_tuning/jobs/{id}/checkpoints": OpFineTuning,
}

func init() {
	for op, o := range map[string]Operation{"chat/completions": OpChatCompletions, "completions": OpCompletions, "embeddings": OpEmbeddings,
		"images/generations": OpImages, "images/edits": OpImages, "audio/transcriptions": OpAudio, "audio/translations": OpAudio,
		"audio/speech": OpAudio} {
		referenceRoutes["POST /openai/deployments/{name}/"+op] = o
	}
	v1 := map[string]Operation{
		"POST chat/completions": OpChatCompletions, "POST completions": OpCompletions, "POST embeddings": OpEmbeddings,
		"POST responses": OpResponses, "POST images/generations": OpImages, "POST images/edits": OpImages, "POST images/variations": OpImages,
		"POST audio/transcriptions": OpAudio, "POST audio/translations": OpAudio, "POST audio/speech": OpAudio, "GET realtime": OpRealtime,
		"GET models": OpModels, "GET models/{id}": OpModels,
		"GET responses/{id}": OpResponses, "DELETE responses/{id}": OpResponses, "POST responses/{id}/cancel": OpResponses,
		"GET responses/{id}/input_items": OpResponses,
		"POST conversations":             OpConversations, "GET conversations/{id}": OpConversations, "POST conversations/{id}": OpConversations,
		"DELETE conversations/{id}": OpConversations, "GET conversations/{id}/items": OpConversations,
		"POST conversations/{id}/items": OpConversations, "GET conversations/{id}/items/{item}": OpConversations,
		"DELETE conversations/{id}/items/{item}": OpConversations,
		"GET vector_stores":                      OpVectorStores, "POST vector_stores": OpVectorStores, "GET vector_stores/{id}": OpVectorStores,
		"POST vector_stores/{id}": OpVectorStores, "DELETE vector_stores/{id}": OpVectorStores, "POST vector_stores/{id}/search": OpVectorStores,
		"GET vector_stores/{id}/files": OpVectorStores, "POST vector_stores/{id}/files": OpVectorStores,
		"GET vector_stores/{id}/files/{f}": OpVectorStores, "POST vector_stores/{id}/files/{f}": OpVectorStores,
		"DELETE vector_stores/{id}/files/{f}": OpVectorStores, "POST vector_stores/{id}/file_batches": OpVectorStores,
		"GET vector_stores/{id}/file_batches/{b}": OpVectorStores, "POST vector_stores/{id}/file_batches/{b}/cancel": OpVectorStores,
		"GET vector_stores/{id}/file_batches/{b}/files": OpVectorStores,
	}
	for _, p := range []string{"GET files", "POST files", "GET files/{id}", "DELETE files/{id}", "GET files/{id}/content",
		"GET batches", "POST batches", "GET batches/{id}", "POST batches/{id}/cancel", "GET fine_tuning/jobs", "POST fine_tuning/jobs",
		"GET fine_tuning/jobs/{id}", "DELETE fine_tuning/jobs/{id}", "POST fine_tuning/jobs/{id}/cancel", "POST fine_tuning/jobs/{id}/pause",
		"POST fine_tuning/jobs/{id}/resume", "GET fine_tuning/jobs/{id}/events", "GET fine_tuning/jobs/{id}/checkpoints"} {
		v1[p] = referenceRoutes[strings.Replace(p, " ", " /openai/", 1)]
	}
	for p, o := range v1 {
		method, path, _ := strings.Cut(p, " ")
		referenceRoutes[method+" /openai/v1/"+path] = o
		referenceRoutes[method+" /v1/"+path] = o
	}
}

func referenceMux() *http.ServeMux {
	mux := http.NewServeMux()
	for p, o := range referenceRoutes {
		mux.Handle(p, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Header().Set("Op", string(o)) }))
	}
	return mux
}

func FuzzRequestRoute(f *testing.F) {
	for _, s := range []string{"/openai/deployments/gpt-4o/chat/completions", "/openai/v1/responses/resp_1/cancel", "/v1/files/f/content",
		"/openai/deployments/a/../../files", "/openai/v1/chat%2Fcompletions", "/openai/v1/vector_stores/vs/file_batches/b/files",
		"/openai/v1//files", "/openai/v1/models/", "/openai/deployments/a%2Fb/embeddings", "/openai/v1/fine_tuning/jobs/x/y"} {
		f.Add("POST", s)
		f.Add("GET", s)
	}
	mux := referenceMux()
	f.Fuzz(func(t *testing.T, method, path string) {
		req, err := http.NewRequest(method, "https://lifeline.invalid"+path, nil)
		if err != nil || req.URL.Host != "lifeline.invalid" {
			return
		}
		r, err := ParseRequest(req, 1<<20)
		if err != nil {
			re := err.(*RequestError)
			if re.Status != 404 && re.Status != 405 && re.Status != 400 {
				t.Fatalf("%s %s: status %d", method, path, re.Status)
			}
			return
		}
		h, pattern := mux.Handler(req)
		rec := &headerRecorder{h: http.Header{}}
		h.ServeHTTP(rec, req)
		if pattern == "" || Operation(rec.h.Get("Op")) != r.Operation {
			t.Fatalf("%s %s: operation %q (route %q), http.ServeMux: pattern %q, operation %q", method, path, r.Operation, r.Route, pattern, rec.h.Get("Op"))
		}
	})
}

type headerRecorder struct{ h http.Header }

func (r *headerRecorder) Header() http.Header         { return r.h }
func (r *headerRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (r *headerRecorder) WriteHeader(int)             {}
