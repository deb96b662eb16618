package sim

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a clock that tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func send(t *testing.T, c *http.Client, method, url, body string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	var rd *strings.Reader
	if body != "" {
		rd = strings.NewReader(body)
	} else {
		rd = strings.NewReader("")
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return resp, readBody(t, resp)
}

func errorCode(t *testing.T, body []byte) string {
	t.Helper()
	var e struct {
		Error struct {
			Code any `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("error body is not JSON: %s", body)
	}
	s, _ := e.Error.Code.(string)
	return s
}

func TestQuotaTokensAndRequests(t *testing.T) {
	clock := newFakeClock()
	s := startSim(t, Config{Now: clock.Now, Regions: []RegionConfig{{Name: "eastus", Deployments: []Deployment{
		{Name: "tpm", Model: "gpt-4o", TPM: 1000},
		{Name: "rpm", Model: "gpt-4o", RPM: 12}, // bursts of 2, refilling one every 5s
	}}}})
	r := s.Region("eastus")
	c := s.Client()
	// Each request is estimated at prompt + answer (sim:tokens=400) tokens: the third one in a minute is over 1000.
	body := `{"messages":[{"role":"user","content":"sim:tokens=400"}]}`
	for i := 0; i < 2; i++ {
		resp := post(t, c, chatURL(r, "tpm"), body)
		readBody(t, resp)
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: %d", i, resp.StatusCode)
		}
	}
	resp := post(t, c, chatURL(r, "tpm"), body)
	b := readBody(t, resp)
	if resp.StatusCode != 429 {
		t.Fatalf("over TPM: status %d", resp.StatusCode)
	}
	ra, ram := resp.Header.Get("retry-after"), resp.Header.Get("retry-after-ms")
	if ra == "" || ram == "" || ra == "0" {
		t.Fatalf("429 needs retry-after and retry-after-ms, got %q %q", ra, ram)
	}
	if !bytes.Contains(b, []byte("exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after "+ra+" seconds")) || errorCode(t, b) != "429" {
		t.Errorf("TPM body: %s", b)
	}
	if resp.Header.Get("x-ratelimit-remaining-tokens") == "" {
		t.Error("429 lacks x-ratelimit-remaining-tokens")
	}
	clock.Advance(time.Minute)
	resp = post(t, c, chatURL(r, "tpm"), body)
	readBody(t, resp)
	if resp.StatusCode != 200 {
		t.Fatalf("after a minute: %d", resp.StatusCode)
	}

	for i := 0; i < 2; i++ {
		resp := post(t, c, chatURL(r, "rpm"), hello)
		readBody(t, resp)
		if resp.StatusCode != 200 {
			t.Fatalf("rpm request %d: %d", i, resp.StatusCode)
		}
	}
	resp = post(t, c, chatURL(r, "rpm"), hello)
	b = readBody(t, resp)
	if resp.StatusCode != 429 || resp.Header.Get("retry-after") != "5" || resp.Header.Get("retry-after-ms") != "5000" {
		t.Fatalf("over RPM: %d retry-after %q ms %q", resp.StatusCode, resp.Header.Get("retry-after"), resp.Header.Get("retry-after-ms"))
	}
	if !bytes.Contains(b, []byte("exceeded call rate limit")) {
		t.Errorf("RPM body: %s", b)
	}
	clock.Advance(5 * time.Second)
	resp = post(t, c, chatURL(r, "rpm"), hello)
	readBody(t, resp)
	if resp.StatusCode != 200 {
		t.Fatalf("after retry-after: %d", resp.StatusCode)
	}
	if r.Stats().Throttled != 2 {
		t.Errorf("throttled = %d, want 2", r.Stats().Throttled)
	}
}

func TestAuth(t *testing.T) {
	s := startSim(t, Config{
		VerifyToken: func(tok string) bool { return tok == "good-token" },
		Regions:     []RegionConfig{{Name: "eastus"}, {Name: "westus", DisableLocalAuth: true}},
	})
	c := s.Client()
	classic := chatURL(s.Region("eastus"), "gpt-4o")
	v1 := s.Region("eastus").URL() + "/openai/v1/chat/completions"
	v1body := `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`
	cases := []struct {
		name, url, body string
		hdr             map[string]string
		status          int
		code            string
	}{
		{"classic api-key", classic, hello, map[string]string{"api-key": testKey}, 200, ""},
		{"classic wrong key", classic, hello, map[string]string{"api-key": "nope"}, 401, "401"},
		{"classic no credential", classic, hello, nil, 401, "401"},
		{"classic bearer key is not a token", classic, hello, map[string]string{"Authorization": "Bearer " + testKey}, 401, ""},
		{"classic bearer token", classic, hello, map[string]string{"Authorization": "Bearer good-token"}, 200, ""},
		{"classic bad token", classic, hello, map[string]string{"Authorization": "Bearer bad"}, 401, ""},
		{"v1 api-key", v1, v1body, map[string]string{"api-key": testKey}, 200, ""},
		{"v1 bearer key", v1, v1body, map[string]string{"Authorization": "Bearer " + testKey}, 200, ""},
		{"v1 bearer token", v1, v1body, map[string]string{"Authorization": "Bearer good-token"}, 200, ""},
		{"v1 bearer wrong", v1, v1body, map[string]string{"Authorization": "Bearer wrong"}, 401, ""},
		{"local auth disabled", chatURL(s.Region("westus"), "gpt-4o"), hello, map[string]string{"api-key": testKey}, 403, "AuthenticationTypeDisabled"},
		{"local auth disabled, token ok", chatURL(s.Region("westus"), "gpt-4o"), hello, map[string]string{"Authorization": "Bearer good-token"}, 200, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hdr := map[string]string{"Content-Type": "application/json"}
			for k, v := range tc.hdr {
				hdr[k] = v
			}
			resp, b := send(t, c, "POST", tc.url, tc.body, hdr)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, b)
			}
			if tc.code != "" && errorCode(t, b) != tc.code {
				t.Errorf("code %q, want %q: %s", errorCode(t, b), tc.code, b)
			}
			// A bearer token that is not accepted gets API Management's shape, as Azure answers it.
			if tc.status == 401 && tc.code == "" && string(b) != string(tokenInvalidBody) {
				t.Errorf("body %s, want %s", b, tokenInvalidBody)
			}
		})
	}
}

func TestBadInput(t *testing.T) {
	s := startSim(t, Config{MaxBodyBytes: 1 << 10, Regions: DefaultRegions("eastus")})
	c := s.Client()
	base := s.Region("eastus").URL()
	js := map[string]string{"Content-Type": "application/json", "api-key": testKey}
	cases := []struct {
		name, method, path, body string
		hdr                      map[string]string
		status                   int
		contains                 string
	}{
		{"missing api-version", "POST", "/openai/deployments/gpt-4o/chat/completions", hello, js, 404, `{"error":{"code":"404","message":"Resource not found"}}`},
		{"unknown deployment", "POST", "/openai/deployments/nope/chat/completions?api-version=2024-10-21", hello, js, 404, `"code":"DeploymentNotFound"`},
		{"unknown route", "GET", "/foo", "", js, 404, `Resource not found`},
		{"unknown op", "POST", "/openai/deployments/gpt-4o/nothing?api-version=2024-10-21", hello, js, 404, `Resource not found`},
		{"dated version on v1", "POST", "/openai/v1/chat/completions?api-version=2024-10-21", `{"model":"gpt-4o"}`, js, 400, `API version not supported`},
		{"malformed JSON", "POST", "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", `{"messages":`, js, 400, `We could not parse the JSON body`},
		{"wrong type", "POST", "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", `{"messages":[],"stream":"yes"}`, js, 400, `Invalid type for 'stream'`},
		{"missing messages", "POST", "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", `{}`, js, 400, `Missing required parameter: 'messages'.`},
		{"empty messages", "POST", "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", `{"messages":[]}`, js, 400, `empty array`},
		{"v1 missing model", "POST", "/openai/v1/chat/completions", hello, js, 400, `Missing required parameter: 'model'.`},
		{"wrong content type", "POST", "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", hello, map[string]string{"Content-Type": "text/plain", "api-key": testKey}, 415, `Unsupported content type: 'text/plain'`},
		{"oversized body", "POST", "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", `{"messages":[{"role":"user","content":"` + strings.Repeat("x", 2000) + `"}]}`, js, 413, `RequestEntityTooLarge`},
		{"embeddings on a chat model", "POST", "/openai/deployments/gpt-4o/embeddings?api-version=2024-10-21", `{"input":"x"}`, js, 400, `OperationNotSupported`},
		{"content filter", "POST", "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", `{"messages":[{"role":"user","content":"sim:content_filter"}]}`, js, 400, `"innererror":{"code":"ResponsibleAIPolicyViolation","content_filter_result":`},
		{"content filter on a response", "POST", "/openai/v1/responses", `{"model":"gpt-4o","input":"sim:content_filter"}`, js, 400, `"code":"content_filter","content_filters":[{"blocked":true,"source_type":"prompt"`},
		{"responses: bad input item", "POST", "/openai/v1/responses", `{"model":"gpt-4o","input":[{"type":"message","content":"no role"}]}`, js, 400, `Invalid value for 'input'`},
		{"responses: top_logprobs out of range", "POST", "/openai/v1/responses", `{"model":"gpt-4o","input":"x","top_logprobs":21}`, js, 400, `Invalid 'top_logprobs'`},
		{"GET on chat", "GET", "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", "", js, 404, `Resource not found`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, b := send(t, c, tc.method, base+tc.path, tc.body, tc.hdr)
			if resp.StatusCode != tc.status || !bytes.Contains(b, []byte(tc.contains)) {
				t.Fatalf("status %d body %s; want %d containing %s", resp.StatusCode, b, tc.status, tc.contains)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("content type %q", ct)
			}
		})
	}
	if p := s.Region("eastus").stats.panics.Load(); p != 0 {
		t.Fatalf("%d handler panics", p)
	}
}

func TestLatencyFollowsAnswerLength(t *testing.T) {
	s := startSim(t, Config{Regions: []RegionConfig{{Name: "eastus", TimeToFirstToken: 100 * time.Millisecond, TokensPerSecond: 100}}})
	r := s.Region("eastus")
	c := s.Client()
	timeIt := func(body string) time.Duration {
		start := time.Now()
		resp := post(t, c, chatURL(r, "gpt-4o"), body)
		readBody(t, resp)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		return time.Since(start)
	}
	short := timeIt(`{"messages":[{"role":"user","content":"sim:tokens=1"}]}`)
	long := timeIt(`{"messages":[{"role":"user","content":"sim:tokens=50"}]}`) // 100ms + 500ms
	if short < 100*time.Millisecond || long < 600*time.Millisecond || long < short+300*time.Millisecond {
		t.Fatalf("short %v, long %v: latency must be ttft + tokens/tps", short, long)
	}
	// Streaming: the first event arrives after the time to first token, the end after the whole answer.
	start := time.Now()
	resp := post(t, c, chatURL(r, "gpt-4o"), `{"messages":[{"role":"user","content":"sim:tokens=30"}],"stream":true}`)
	first := time.Since(start)
	evs, err := sseEvents(resp.Body)
	resp.Body.Close()
	total := time.Since(start)
	if err != nil || len(evs) != 34 {
		t.Fatalf("stream: %d events, %v", len(evs), err)
	}
	if first < 100*time.Millisecond || total < 350*time.Millisecond {
		t.Fatalf("stream: headers after %v, end after %v", first, total)
	}
}

func TestFaultScopedToDeploymentAndRate(t *testing.T) {
	s := startSim(t, Config{Seed: 42, Regions: DefaultRegions("eastus")})
	r := s.Region("eastus")
	c := s.Client()
	if err := s.Fault("eastus", Fault{Mode: ModeError, Status: 500, Deployment: "gpt-4o"}); err != nil {
		t.Fatal(err)
	}
	resp := post(t, c, chatURL(r, "gpt-4o-mini"), hello)
	readBody(t, resp)
	if resp.StatusCode != 200 {
		t.Fatalf("other deployment: %d", resp.StatusCode)
	}
	resp = post(t, c, chatURL(r, "gpt-4o"), hello)
	b := readBody(t, resp)
	if resp.StatusCode != 500 || !bytes.Contains(b, []byte(`"type":"server_error"`)) {
		t.Fatalf("faulted deployment: %d %s", resp.StatusCode, b)
	}
	if err := s.Fault("eastus", Fault{Mode: ModeError, Status: 503, Deployment: "nope"}); err == nil {
		t.Error("a fault on an unknown deployment must be refused")
	}
	// A rate of 0.5 with a fixed seed gives the same sequence every time.
	sequence := func() string {
		s2 := startSim(t, Config{Seed: 7, Regions: DefaultRegions("eastus")})
		if err := s2.Fault("eastus", Fault{Mode: ModeError, Status: 503, Rate: 0.5}); err != nil {
			t.Fatal(err)
		}
		var out strings.Builder
		c2 := s2.Client()
		for i := 0; i < 20; i++ {
			resp := post(t, c2, chatURL(s2.Region("eastus"), "gpt-4o"), hello)
			readBody(t, resp)
			if resp.StatusCode == 503 {
				out.WriteByte('x')
			} else {
				out.WriteByte('.')
			}
		}
		return out.String()
	}
	a, b2 := sequence(), sequence()
	if a != b2 || !strings.Contains(a, "x") || !strings.Contains(a, ".") {
		t.Fatalf("seeded rate: %s vs %s", a, b2)
	}
}

func TestControlAPI(t *testing.T) {
	s := startSim(t, Config{ControlAddr: "127.0.0.1:0", Regions: DefaultRegions("eastus", "westus")})
	c := s.Client()
	ctl := s.ControlURL()
	resp, b := send(t, c, "POST", ctl+"/regions/westus/fault", `{"mode":"throttle","retry_after":"7s","rate":1}`, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("fault: %d %s", resp.StatusCode, b)
	}
	r := post(t, c, chatURL(s.Region("westus"), "gpt-4o"), hello)
	readBody(t, r)
	if r.StatusCode != 429 || r.Header.Get("retry-after") != "7" {
		t.Fatalf("throttled region: %d", r.StatusCode)
	}
	for _, bad := range []string{`{"mode":"explode"}`, `{"mode":"error","rate":2}`, `{"mode":"slow"}`, `{"mode":"down","colour":"red"}`, `not json`} {
		resp, b := send(t, c, "POST", ctl+"/regions/westus/fault", bad, nil)
		if resp.StatusCode != 400 || !bytes.Contains(b, []byte(`"message"`)) {
			t.Errorf("bad fault %s: %d %s", bad, resp.StatusCode, b)
		}
	}
	resp, b = send(t, c, "POST", ctl+"/regions/nowhere/fault", `{"mode":"down"}`, nil)
	if resp.StatusCode != 404 {
		t.Errorf("unknown region: %d %s", resp.StatusCode, b)
	}
	resp, b = send(t, c, "POST", ctl+"/regions/eastus/deployments", `{"name":"extra","model":"gpt-4o-mini","version":"2024-07-18","rpm":60}`, nil)
	if resp.StatusCode != 201 {
		t.Fatalf("add deployment: %d %s", resp.StatusCode, b)
	}
	r = post(t, c, chatURL(s.Region("eastus"), "extra"), hello)
	readBody(t, r)
	if r.StatusCode != 200 {
		t.Fatalf("new deployment answers %d", r.StatusCode)
	}
	resp, b = send(t, c, "GET", ctl+"/regions", "", nil)
	var regions []RegionStatus
	if err := json.Unmarshal(b, &regions); err != nil || resp.StatusCode != 200 || len(regions) != 2 {
		t.Fatalf("GET /regions: %d %v %s", resp.StatusCode, err, b)
	}
	w := regions[1]
	if w.Name != "westus" || w.Fault == nil || w.Fault.Mode != "throttle" || w.Counters.ByStatus[429] != 1 || w.Counters.Requests != 1 || !w.Up || w.URL != s.Region("westus").URL() {
		t.Errorf("westus status: %+v", w)
	}
	if regions[0].Counters.ByStatus[200] != 1 || len(regions[0].Deployments) != 4 {
		t.Errorf("eastus status: %+v", regions[0])
	}
	send(t, c, "POST", ctl+"/regions/westus/fault", `{"mode":"down"}`, nil)
	_, b = send(t, c, "GET", ctl+"/regions/westus", "", nil)
	if !bytes.Contains(b, []byte(`"up":false`)) {
		t.Errorf("down region: %s", b)
	}
}

func TestCompletionsStreamingAndV1Shapes(t *testing.T) {
	s := startSim(t, Config{Regions: DefaultRegions("eastus")})
	c := s.Client()
	base := s.Region("eastus").URL()
	resp := post(t, c, base+"/openai/deployments/gpt-4o-mini/completions?api-version=2024-10-21",
		`{"prompt":"sim:tokens=4","stream":true,"stream_options":{"include_usage":true}}`)
	evs, err := sseEvents(resp.Body)
	resp.Body.Close()
	// prompt annotations, 4 tokens, finish, usage, [DONE]
	if err != nil || len(evs) != 8 || !strings.Contains(evs[0], `"prompt_filter_results"`) ||
		!strings.Contains(evs[5], `"finish_reason":"stop"`) || !strings.Contains(evs[6], `"completion_tokens":4`) {
		t.Fatalf("completions stream (%v):\n%s", err, strings.Join(evs, "\n"))
	}
	// v1 answers creation with 200 (classic: 201 and Location).
	body := "--b\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nfine-tune\r\n" +
		"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"t.jsonl\"\r\n\r\n{\"messages\":[]}\r\n--b--\r\n"
	hdr := map[string]string{"api-key": testKey, "Content-Type": "multipart/form-data; boundary=b"}
	r1, b1 := send(t, c, "POST", base+"/openai/v1/files", body, hdr)
	r2, b2 := send(t, c, "POST", base+"/openai/files?api-version=2024-10-21", body, hdr)
	if r1.StatusCode != 200 || r2.StatusCode != 201 || r2.Header.Get("Location") == "" {
		t.Fatalf("uploads: v1 %d %s, classic %d %s", r1.StatusCode, b1, r2.StatusCode, b2)
	}
	r3, b3 := send(t, c, "POST", base+"/openai/v1/files", strings.Replace(body, "{\"messages\":[]}", "not json", 1), hdr)
	if r3.StatusCode != 400 || errorCode(t, b3) != "jsonlValidationFailed" {
		t.Fatalf("invalid JSONL: %d %s", r3.StatusCode, b3)
	}
	r4, b4 := send(t, c, "POST", base+"/openai/v1/fine_tuning/jobs", `{"model":"gpt-4o-2024-11-20","training_file":"file-x"}`, map[string]string{"api-key": testKey, "Content-Type": "application/json"})
	if r4.StatusCode != 400 || !bytes.Contains(b4, []byte("does not support fine-tuning")) {
		t.Fatalf("unsupported base model: %d %s", r4.StatusCode, b4)
	}
	var up struct{ ID string }
	json.Unmarshal(b1, &up)
	r5, b5 := send(t, c, "POST", base+"/openai/v1/fine_tuning/jobs", `{"model":"gpt-4o-mini-2024-07-18","training_file":"`+up.ID+`","method":{"type":"ppo"}}`, map[string]string{"api-key": testKey, "Content-Type": "application/json"})
	if r5.StatusCode != 400 || !bytes.Contains(b5, []byte("method type 'ppo'")) {
		t.Fatalf("unknown method: %d %s", r5.StatusCode, b5)
	}
}

func TestOutputContentFilter(t *testing.T) {
	s := startSim(t, Config{Regions: DefaultRegions("eastus")})
	r := s.Region("eastus")
	resp := post(t, s.Client(), chatURL(r, "gpt-4o"), `{"messages":[{"role":"user","content":"sim:tokens=10 sim:output_filter"}]}`)
	b := readBody(t, resp)
	if resp.StatusCode != 200 || !bytes.Contains(b, []byte(`"finish_reason":"content_filter"`)) || !bytes.Contains(b, []byte(`"violence":{"filtered":true,"severity":"medium"}`)) || !bytes.Contains(b, []byte(`"completion_tokens":5`)) {
		t.Fatalf("output filter: %d %s", resp.StatusCode, b)
	}
	resp = post(t, s.Client(), chatURL(r, "gpt-4o"), `{"messages":[{"role":"user","content":"sim:tokens=10 sim:output_filter"}],"stream":true}`)
	evs, err := sseEvents(resp.Body)
	resp.Body.Close()
	if err != nil || len(evs) != 9 || !strings.Contains(evs[7], `"finish_reason":"content_filter"`) {
		t.Fatalf("streamed output filter (%v): %s", err, strings.Join(evs, "\n"))
	}
}

// Reading a job while it is cancelled is safe (run with -race).
func TestJobCancelWhileRead(t *testing.T) {
	s := startSim(t, Config{FineTuneDuration: time.Hour, Regions: DefaultRegions("eastus")})
	st := s.Region("eastus").store
	f := st.addFile("t.jsonl", "fine-tune", []byte(`{"messages":[]}`))
	j, _, errBody := st.createJob(jobRequest{Model: "gpt-4o-mini-2024-07-18", TrainingFile: f.ID})
	if errBody != nil {
		t.Fatalf("%s", errBody)
	}
	base := s.Region("eastus").URL() + "/openai/fine_tuning/jobs/" + j.id
	hdr := map[string]string{"api-key": testKey}
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for _, sub := range []string{"", "/events", "/checkpoints"} {
				send(t, s.Client(), "GET", base+sub+"?api-version=2024-10-21", "", hdr)
			}
			if i == 0 {
				send(t, s.Client(), "POST", base+"/cancel?api-version=2024-10-21", "", hdr)
			}
		}(i)
	}
	wg.Wait()
	_, b := send(t, s.Client(), "GET", base+"/events?api-version=2024-10-21", "", hdr)
	if !bytes.Contains(b, []byte("Job cancelled.")) {
		t.Fatalf("events after cancel: %s", b)
	}
}

func TestAPIVersionsAllowList(t *testing.T) {
	s := startSim(t, Config{APIVersions: []string{"2024-10-21"}, Regions: DefaultRegions("eastus")})
	r := s.Region("eastus")
	resp := post(t, s.Client(), strings.Replace(chatURL(r, "gpt-4o"), "2024-10-21", "2023-01-01", 1), hello)
	b := readBody(t, resp)
	if resp.StatusCode != 400 || errorCode(t, b) != "BadRequest" {
		t.Fatalf("unsupported version: %d %s", resp.StatusCode, b)
	}
	resp = post(t, s.Client(), chatURL(r, "gpt-4o"), hello)
	readBody(t, resp)
	if resp.StatusCode != 200 {
		t.Fatalf("supported version: %d", resp.StatusCode)
	}
}
