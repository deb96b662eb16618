package failover

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lifeline-sre/lifeline/sim"
)

// Upstream streaming end to end: the engine in front of simulated regions, through real sockets.

// upstreamPolicy has short deadlines, so that a region that stalls is left within the test's patience.
func upstreamPolicy() Policy {
	p := fastPolicy()
	p.Timeouts.StreamFirstByte = 500 * time.Millisecond
	p.Timeouts.StreamIdle = 500 * time.Millisecond
	p.Timeouts.Response = 20 * time.Second
	p.Hedge.Delay = -1 // these tests are about one region at a time
	return p
}

// post sends body to path through the scenario's transport and reads the whole answer.
func (s *scenario) post(path, body string) answer {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", "https://lifeline.invalid"+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Transport: s.tr}).Do(req)
	if err != nil {
		return answer{err: err}
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return answer{status: resp.StatusCode, region: resp.Header.Get(HeaderRegion), attempts: resp.Header.Get(HeaderAttempts),
		header: resp.Header, body: string(b), err: err}
}

const upChat = "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"

// The client sees exactly the non-streaming answer; the region saw a stream.
func TestUpstreamStreamingIsInvisible(t *testing.T) {
	s := newScenario(t, upstreamPolicy())
	body := `{"n":2,"logprobs":true,"messages":[{"role":"user","content":"sim:tool_calls=2 weather"}],"tools":[{"type":"function","function":{"name":"w"}}]}`
	a := s.post(upChat, body)
	s.ok(a, false, "eastus")
	if a.header.Get("Content-Type") != "application/json" || a.header.Get("Content-Length") != fmt.Sprint(len(a.body)) {
		t.Errorf("headers: %v", a.header)
	}
	for _, h := range []string{"Apim-Request-Id", "X-Ms-Region", "X-Ratelimit-Remaining-Tokens"} {
		if a.header.Get(h) == "" {
			t.Errorf("the region's header %s is missing", h)
		}
	}
	if st := s.sim.Region("eastus").Stats(); st.Streams != 1 {
		t.Errorf("the region answered %d streams, want 1", st.Streams)
	}
	// The same request straight to the region, not streamed: the same JSON, ids and timestamps aside.
	_, direct := simPost(t, s.sim, "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", []byte(body))
	if normalize(direct) != normalize([]byte(a.body)) {
		t.Errorf("through the engine:\n%s\nstraight from the region:\n%s", a.body, direct)
	}
	// Responses too: function calls, log probabilities, content filters, usage.
	rbody := `{"model":"gpt-4o","input":"sim:tool_calls=2 weather","tools":[{"type":"function","name":"w"}],"include":["message.output_text.logprobs"]}`
	ra := s.post("/openai/v1/responses", rbody)
	if ra.err != nil || ra.status != 200 || ra.region != "eastus" {
		t.Fatalf("responses: %d %v %s %.200s", ra.status, ra.err, ra.region, ra.body)
	}
	_, rdirect := simPost(t, s.sim, "/openai/v1/responses", []byte(rbody))
	if normalize(rdirect) != normalize([]byte(ra.body)) || !strings.Contains(ra.body, `"type":"function_call"`) {
		t.Errorf("responses through the engine:\n%s\nstraight from the region:\n%s", ra.body, rdirect)
	}
	if st := s.sim.Region("eastus").Stats(); st.Streams != 2 {
		t.Errorf("the region answered %d streams, want 2", st.Streams)
	}
	// Off: the request goes as it came.
	off := upstreamPolicy()
	off.StreamUpstream = new(bool)
	s2 := newScenario(t, off)
	s2.ok(s2.post(upChat, body), false, "eastus")
	if st := s2.sim.Region("eastus").Stats(); st.Streams != 0 {
		t.Errorf("stream_upstream off: the region answered %d streams", st.Streams)
	}
}

// A region that fails mid-generation is left before the client has seen a byte, whatever the way it fails.
func TestUpstreamStreamFailsOverMidGeneration(t *testing.T) {
	for name, f := range map[string]sim.Fault{
		"reset":           {Mode: sim.ModeCutStream, AfterEvents: 4},
		"clean cut":       {Mode: sim.ModeCutStream, AfterEvents: 4, Clean: true},
		"stall":           {Mode: sim.ModeStall, AfterEvents: 3},
		"malformed event": {Mode: sim.ModeMalformed, AfterEvents: 3},
		"silent start":    {Mode: sim.ModeSlowFirstByte, Latency: sim.Duration(10 * time.Second)},
	} {
		t.Run(name, func(t *testing.T) {
			s := newScenario(t, upstreamPolicy())
			s.fault("eastus", f)
			start := time.Now()
			a := s.post(upChat, `{"messages":[{"role":"user","content":"sim:tokens=12"}]}`)
			s.ok(a, false, "westus")
			// A region whose stream broke is not tried again in place while another region can take it.
			if a.attempts != "2" {
				t.Errorf("attempts %s, want 2", a.attempts)
			}
			if el := time.Since(start); el > 8*time.Second {
				t.Errorf("took %v", el)
			}
			if !strings.Contains(a.body, `"finish_reason":"stop"`) || !strings.Contains(a.body, `"usage":{`) {
				t.Errorf("answer: %s", a.body)
			}
		})
		t.Run(name+", responses", func(t *testing.T) {
			s := newScenario(t, upstreamPolicy())
			s.fault("eastus", f)
			a := s.post("/openai/v1/responses", `{"model":"gpt-4o","input":"sim:tokens=12"}`)
			if a.err != nil || a.status != 200 || a.region != "westus" || a.attempts != "2" ||
				!strings.Contains(a.body, `"status":"completed"`) || !strings.Contains(a.body, `"output_tokens":12`) {
				t.Errorf("%d %v region %s attempts %s: %.300s", a.status, a.err, a.region, a.attempts, a.body)
			}
		})
	}
}

// A black-holed region costs a non-streaming request the first-byte deadline, not timeouts.response.
func TestUpstreamBlackholeCostsTheFirstByteDeadline(t *testing.T) {
	s := newScenario(t, upstreamPolicy())
	s.fault("eastus", sim.Fault{Mode: sim.ModeBlackhole})
	start := time.Now()
	s.ok(s.post(upChat, `{"messages":[{"role":"user","content":"hi"}]}`), false, "westus")
	if el := time.Since(start); el > 5*time.Second { // stream_first_byte is 500ms, timeouts.response 20s
		t.Errorf("a black-holed region held the request %v", el)
	}
}

// A region that refuses the streamed form gets the request again as it came, and is remembered.
func TestUpstreamRefusedGoesAsItCame(t *testing.T) {
	regions := []sim.RegionConfig{{Name: "eastus", Deployments: []sim.Deployment{{Name: "gpt-4o", Model: "o1-preview", Version: "2024-09-12", NoStreaming: true}}}}
	s := newScenario(t, upstreamPolicy(), regions...)
	east := s.sim.Region("eastus")
	for i := 1; i <= 2; i++ {
		a := s.post(upChat, `{"messages":[{"role":"user","content":"hi"}]}`)
		s.ok(a, false, "eastus")
		if a.attempts != "1" {
			t.Errorf("request %d: attempts %s, want 1", i, a.attempts)
		}
	}
	// The first request was refused once (400) and sent again; the second went as it came at once.
	if st := east.Stats(); st.ByStatus[400] != 1 || st.ByStatus[200] != 2 || st.Streams != 0 {
		t.Errorf("region counters: %+v", st)
	}
	// Responses the same way (the v1 surface has no api-version: remembered under "").
	for i := 1; i <= 2; i++ {
		a := s.post("/openai/v1/responses", `{"model":"gpt-4o","input":"hi"}`)
		if a.status != 200 || a.attempts != "1" || !strings.Contains(a.body, `"object":"response"`) {
			t.Errorf("responses %d: %d attempts %s %.200s", i, a.status, a.attempts, a.body)
		}
	}
	if st := east.Stats(); st.ByStatus[400] != 2 || st.ByStatus[200] != 4 || st.Streams != 0 {
		t.Errorf("region counters after responses: %+v", st)
	}
	// An api-version that does not know stream_options: the same, remembered per api-version.
	s2 := newScenario(t, upstreamPolicy())
	old := strings.Replace(upChat, "2024-10-21", "2024-06-01", 1)
	for i := 0; i < 2; i++ {
		s2.ok(s2.post(old, `{"messages":[{"role":"user","content":"hi"}]}`), false, "eastus")
	}
	s2.ok(s2.post(upChat, `{"messages":[{"role":"user","content":"hi"}]}`), false, "eastus")
	if st := s2.sim.Region("eastus").Stats(); st.ByStatus[400] != 1 || st.Streams != 1 {
		t.Errorf("region counters: %+v", st)
	}
}

// What streaming cannot give goes as it came; everything else of the three operations goes as a stream.
func TestUpstreamExclusions(t *testing.T) {
	b := newBackend(t, okJSON)
	tr := mustNew(t, Config{Regions: []Region{testRegion("eastus", b.URL, 1, "gpt-4o", "gpt-4o")}, Policy: upstreamPolicy()})
	const dep = "/openai/deployments/gpt-4o/"
	cases := []struct {
		path, body string
		streamed   bool
	}{
		{dep + "chat/completions?api-version=2024-10-21", `{"messages":[]}`, true},
		{dep + "chat/completions?api-version=2024-10-21", `{"messages":[],"stream":false}`, true},
		{dep + "completions?api-version=2024-10-21", `{"prompt":"hi","best_of":1}`, true},
		{"/openai/v1/responses", `{"model":"gpt-4o","input":"hi"}`, true},
		{dep + "completions?api-version=2024-10-21", `{"prompt":"hi","best_of":2}`, false},
		{"/openai/v1/responses", `{"model":"gpt-4o","input":"hi","background":true}`, false},
		{dep + "chat/completions?api-version=2024-10-21", `{"messages":[],"modalities":["text","audio"]}`, false},
		{dep + "chat/completions?api-version=2024-10-21", `{"messages":[],"audio":{"voice":"alloy","format":"wav"}}`, false},
		{dep + "chat/completions?api-version=2024-10-21", `{"messages":[],"data_sources":[{"type":"azure_search"}]}`, false},
		{dep + "chat/completions?api-version=2024-10-21", `{"messages":[],"stream_options":{"include_usage":true}}`, false},
		{dep + "embeddings?api-version=2024-10-21", `{"input":"hi"}`, false},
		{dep + "chat/completions?api-version=2024-10-21", `[1,2]`, false},
	}
	for _, c := range cases {
		req, _ := http.NewRequest("POST", "https://lifeline.invalid"+c.path, strings.NewReader(c.body))
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, resp)
		_, got := b.lastRequest()
		if streamed := bytes.Contains(got, []byte(`"stream":true`)); streamed != c.streamed {
			t.Errorf("%s %s: sent %s", c.path, c.body, got)
		}
	}
}

// A region that streams forever, or sends one giant event, cannot grow the engine past max_body_bytes: the
// answer is asked for again as it came, as a non-streaming request would have been.
func TestUpstreamReassemblyIsBounded(t *testing.T) {
	for name, giant := range map[string]bool{"endless stream": false, "giant event": true} {
		t.Run(name, func(t *testing.T) {
			var sent atomic.Int64
			var asItCame atomic.Int32
			var b *backend
			b = newBackend(t, func(w http.ResponseWriter, r *http.Request) {
				_, body := b.lastRequest()
				if !bytes.Contains(body, []byte(`"stream":true`)) {
					asItCame.Add(1)
					okJSON(w, r)
					return
				}
				w.Header().Set("Content-Type", "text/event-stream")
				chunk := []byte(`data: {"choices":[{"index":0,"delta":{"content":"` + strings.Repeat("x", 1000) + `"}}]}` + "\n\n")
				if giant { // one event that never ends, in pieces of 64 KiB
					io.WriteString(w, `data: {"choices":[{"index":0,"delta":{"content":"`)
					chunk = bytes.Repeat([]byte("y"), 64<<10)
				}
				for i := 0; i < 1<<14 && r.Context().Err() == nil; i++ {
					n, err := w.Write(chunk)
					sent.Add(int64(n))
					if err != nil {
						return
					}
					w.(http.Flusher).Flush()
				}
			})
			p := upstreamPolicy()
			p.MaxBodyBytes = 256 << 10
			tr := mustNew(t, Config{Regions: []Region{testRegion("eastus", b.URL, 1, "gpt-4o", "gpt-4o")}, Policy: p})
			req, _ := http.NewRequest("POST", "https://lifeline.invalid"+upChat, strings.NewReader(`{"messages":[]}`))
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			got := readAll(t, resp)
			if resp.StatusCode != 200 || asItCame.Load() != 1 || !strings.Contains(got, "chat.completion") {
				t.Fatalf("status %d, %d requests as they came, body %.200s", resp.StatusCode, asItCame.Load(), got)
			}
			// The engine stopped reading near the bound (socket buffers aside), not after the 16 MiB sent.
			if n := sent.Load(); n > 12<<20 {
				t.Errorf("the region could send %d bytes", n)
			}
		})
	}
}

// A region that ignores include_usage cannot give the non-streaming answer by streaming: the request goes
// again as it came, and so do the next ones.
func TestUpstreamWithoutUsageGoesAsItCame(t *testing.T) {
	var streams, plain atomic.Int32
	var b *backend
	b = newBackend(t, func(w http.ResponseWriter, r *http.Request) {
		_, body := b.lastRequest()
		if !bytes.Contains(body, []byte(`"stream":true`)) {
			plain.Add(1)
			okJSON(w, r)
			return
		}
		streams.Add(1)
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, `data: {"id":"c","choices":[{"index":0,"delta":{"content":"a"},"finish_reason":"stop"}]}`+"\n\ndata: [DONE]\n\n")
	})
	tr := mustNew(t, Config{Regions: []Region{testRegion("eastus", b.URL, 1, "gpt-4o", "gpt-4o")}, Policy: upstreamPolicy()})
	for i := 0; i < 2; i++ {
		req, _ := http.NewRequest("POST", "https://lifeline.invalid"+upChat, strings.NewReader(`{"messages":[]}`))
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, resp); resp.StatusCode != 200 || !json.Valid([]byte(got)) {
			t.Fatalf("status %d body %s", resp.StatusCode, got)
		}
	}
	if streams.Load() != 1 || plain.Load() != 2 {
		t.Errorf("%d streamed, %d as they came; want 1 and 2", streams.Load(), plain.Load())
	}
}

// A region that refuses the request inside its stream (as OpenAI reports a Responses input too long for the
// context window: response.created, then an error event) gives the caller the 400 the request would have got
// without streaming, not a failover: the region is not counted against, and a name fallback acts on
// context_length_exceeded as it does on the 400 itself.
func TestUpstreamRefusalInTheStreamIsTheAnswer(t *testing.T) {
	const tooLong = `{"type":"error","sequence_number":1,"error":{"type":"invalid_request_error","code":"context_length_exceeded","message":"Your input exceeds the context window of this model. Please adjust your input and try again.","param":"input"}}`
	var b *backend
	b = newBackend(t, func(w http.ResponseWriter, r *http.Request) {
		_, body := b.lastRequest()
		w.Header().Set("Content-Type", "text/event-stream")
		if bytes.Contains(body, []byte(`"model":"gpt-4o-mini"`)) {
			io.WriteString(w, "data: {\"type\":\"response.created\",\"response\":{}}\n\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"r\",\"model\":\"mini\",\"output\":[]}}\n\n")
			return
		}
		io.WriteString(w, "data: {\"type\":\"response.created\",\"response\":{}}\n\ndata: "+tooLong+"\n\n")
	})
	regions := []Region{testRegion("eastus", b.URL, 1, "gpt-4o", "gpt-4o", "gpt-4o-mini", "gpt-4o-mini")}
	post := func(tr *Transport) (*http.Response, string) {
		req, _ := http.NewRequest("POST", "https://lifeline.invalid/openai/v1/responses", strings.NewReader(`{"model":"gpt-4o","input":"long"}`))
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp, readAll(t, resp)
	}
	rec := &recorder{}
	tr := mustNew(t, Config{Regions: regions, Policy: upstreamPolicy()}, WithObserver(rec))
	resp, body := post(tr)
	if resp.StatusCode != 400 || resp.Header.Get("Content-Type") != "application/json" ||
		body != `{"error":{"message":"Your input exceeds the context window of this model. Please adjust your input and try again.","type":"invalid_request_error","param":"input","code":"context_length_exceeded"}}` {
		t.Fatalf("status %d %v body %s", resp.StatusCode, resp.Header, body)
	}
	if got := rec.outcomes(); b.hits.Load() != 1 || strings.Join(got, ",") != "eastus:client_error" {
		t.Errorf("%d requests, attempts %v: the refusal is the region's answer, not its failure", b.hits.Load(), got)
	}
	// With a fallback name, the larger model answers.
	fb := mustNew(t, Config{Regions: regions, Policy: upstreamPolicy(), Fallbacks: map[string][]string{"gpt-4o": {"gpt-4o-mini"}}})
	resp, body = post(fb)
	if resp.StatusCode != 200 || resp.Header.Get(HeaderName) != "gpt-4o-mini" || !strings.Contains(body, `"model":"mini"`) {
		t.Errorf("with a fallback: %d %s %s", resp.StatusCode, resp.Header.Get(HeaderName), body)
	}
}
