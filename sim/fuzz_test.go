package sim

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzRequest sends arbitrary paths, headers and bodies straight to a region's handler: it must always answer
// with JSON (or an SSE stream) and never panic.
func FuzzRequest(f *testing.F) {
	f.Add("POST", "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", "application/json", `{"messages":[{"role":"user","content":"hi"}],"stream":true}`)
	f.Add("POST", "/openai/v1/chat/completions", "application/json", `{"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"text","text":"x"}]}]}`)
	f.Add("POST", "/openai/v1/chat/completions", "application/json", `{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":{"type":"function","function":{"name":"g"}}}`)
	f.Add("POST", "/openai/v1/embeddings", "application/json", `{"model":"text-embedding-3-small","input":[[1,2,3]],"dimensions":3,"encoding_format":"base64"}`)
	f.Add("POST", "/openai/v1/completions", "application/json", `{"model":"gpt-4o","prompt":["a","b"],"max_tokens":-1}`)
	f.Add("POST", "/openai/v1/responses", "application/json", `{"model":"gpt-4o","input":[{"role":"user","content":"x"}],"max_output_tokens":1}`)
	f.Add("POST", "/openai/v1/responses", "application/json", `{"model":"gpt-4o","stream":true,"input":[{"type":"function_call_output","call_id":"c","output":"x"},{"type":"reasoning"}],"tools":[{"type":"function","name":"f"}],"tool_choice":{"type":"function","name":"g"},"include":["message.output_text.logprobs"],"top_logprobs":2}`)
	f.Add("POST", "/openai/v1/responses", "application/json", `{"model":"gpt-4o","input":"sim:tool_calls=99 sim:refusal sim:output_filter","reasoning":{"effort":[]},"text":1,"metadata":"x"}`)
	f.Add("POST", "/openai/fine_tuning/jobs?api-version=2024-10-21", "application/json", `{"model":"gpt-4o-mini-2024-07-18","training_file":"file-x","hyperparameters":{"n_epochs":"auto"}}`)
	f.Add("GET", "/openai/fine_tuning/jobs/ftjob-x/events?api-version=2024-10-21&limit=-3", "", "")
	f.Add("POST", "/openai/files?api-version=2024-10-21", "multipart/form-data; boundary=x", "--x\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nfine-tune\r\n--x--")
	f.Add("GET", "/openai/models/gpt-4o-2024-11-20?api-version=2024-10-21", "", "")
	f.Add("POST", "/openai/v1/audio/transcriptions", "multipart/form-data; boundary=x", "--x\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper\r\n--x--")
	f.Add("POST", "/openai/v1/images/generations", "application/json", `{"model":"dall-e-3","prompt":"x","n":0}`)
	f.Add("POST", "/openai/v1/audio/speech", "application/json", `{"model":"tts","input":"x","response_format":"wav"}`)
	f.Add("POST", "/openai/deployments//chat/completions?api-version=x", "text/plain", "\x00")
	deps := append(DefaultDeployments(), Deployment{Name: "dall-e-3", Model: "dall-e-3"}, Deployment{Name: "whisper", Model: "whisper"}, Deployment{Name: "tts", Model: "tts"})
	s, err := Start(Config{APIKey: testKey, Regions: []RegionConfig{{Name: "eastus", Deployments: deps}}})
	if err != nil {
		f.Fatal(err)
	}
	defer s.Close()
	r := s.Region("eastus")
	f.Fuzz(func(t *testing.T, method, target, contentType, body string) {
		if !strings.HasPrefix(target, "/") || strings.ContainsAny(target, " \r\n\x00") || strings.ContainsAny(method, " \r\n\x00/") || method == "" {
			return
		}
		req, err := http.NewRequestWithContext(context.Background(), method, target, strings.NewReader(body))
		if err != nil {
			return
		}
		req.Header.Set("api-key", testKey)
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req)
		if p := r.stats.panics.Load(); p != 0 {
			t.Fatalf("handler panicked on %s %s %q", method, target, body)
		}
		ct := w.Header().Get("Content-Type")
		if w.Code >= 400 && ct != "application/json" {
			t.Fatalf("error %d with content type %q for %s %s", w.Code, ct, method, target)
		}
	})
}

func FuzzParseRoute(f *testing.F) {
	for _, p := range []string{"/openai/deployments/a/chat/completions", "/openai/v1/", "/openai/", "/openai/deployments/", "/openai/deployments/x", "/x"} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, path string) {
		rt, ok := parseRoute(path, func(string) string { return "" })
		if ok && rt.op == "" {
			t.Fatalf("%q parsed with an empty operation", path)
		}
	})
}

// FuzzControl sends arbitrary requests to the control API and the ARM endpoint: errors, never panics.
func FuzzControl(f *testing.F) {
	arm := "/subscriptions/s/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/eastus/deployments/d?api-version=2024-10-01"
	f.Add("POST", "/regions/eastus/fault", `{"mode":"cut_stream","after_events":2,"rate":0.5,"deployment":"gpt-4o"}`)
	f.Add("POST", "/regions/eastus/fault", `{"mode":"throttle","retry_after":7}`)
	f.Add("POST", "/regions/eastus/deployments", `{"name":"x","model":"gpt-4o-mini.ft-abc","tpm":-1}`)
	f.Add("PUT", arm, `{"sku":{"name":"Standard","capacity":-5},"properties":{"model":{"format":"OpenAI","name":"gpt-4o","version":"2024-11-20"}}}`)
	f.Add("PUT", arm, `{"sku":"x"}`)
	f.Add("GET", "/regions", "")
	s, err := Start(Config{APIKey: testKey, Regions: DefaultRegions("eastus"), VerifyToken: func(string) bool { return true }})
	if err != nil {
		f.Fatal(err)
	}
	defer s.Close()
	h := s.ControlHandler()
	f.Fuzz(func(t *testing.T, method, target, body string) {
		if !strings.HasPrefix(target, "/") || strings.ContainsAny(target, " \r\n\x00") || method == "" || strings.ContainsAny(method, " \r\n\x00/") {
			return
		}
		req, err := http.NewRequest(method, target, strings.NewReader(body))
		if err != nil {
			return
		}
		req.Header.Set("Authorization", "Bearer t")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code >= 400 && w.Header().Get("Content-Type") != "application/json" {
			t.Fatalf("%s %s: %d with content type %q", method, target, w.Code, w.Header().Get("Content-Type"))
		}
		s.Fault("eastus", Fault{Mode: ModeClear})
	})
}
