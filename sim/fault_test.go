package sim

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// rawEvents reads an SSE body to its end and returns the data of every event and how the body ended (nil: a
// clean end of the body, whether or not [DONE] came).
func rawEvents(r io.Reader) ([]string, error) {
	var out []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			out = append(out, d)
		}
	}
	return out, sc.Err()
}

const streamTokens = `{"messages":[{"role":"user","content":"sim:tokens=6"}],"stream":true,"stream_options":{"include_usage":true}}`

func TestFaultSlowFirstByteSendsHeadersFirst(t *testing.T) {
	s := startSim(t, Config{Regions: DefaultRegions("eastus")})
	const lat = 800 * time.Millisecond
	if err := s.Fault("eastus", Fault{Mode: ModeSlowFirstByte, Latency: Duration(lat)}); err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{hello, streamTokens} {
		start := time.Now()
		resp := post(t, s.Client(), chatURL(s.Region("eastus"), "gpt-4o"), body)
		headers := time.Since(start)
		b := readBody(t, resp)
		total := time.Since(start)
		if resp.StatusCode != 200 || len(b) == 0 {
			t.Fatalf("status %d body %q", resp.StatusCode, b)
		}
		// The headers come before the latency is over, the body only after it.
		if headers >= lat || total < lat {
			t.Errorf("%s: headers after %v, body after %v; want headers before %v and the body after", body, headers, total, lat)
		}
	}
	if got := s.Region("eastus").Stats().FaultsInjected; got != 2 {
		t.Errorf("faults_injected = %d", got)
	}
}

func TestFaultStallWithLatencyPausesTheStream(t *testing.T) {
	s := startSim(t, Config{Regions: DefaultRegions("eastus")})
	const lat = 500 * time.Millisecond
	if err := s.Fault("eastus", Fault{Mode: ModeStall, AfterEvents: 3, Latency: Duration(lat)}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	resp := post(t, s.Client(), chatURL(s.Region("eastus"), "gpt-4o"), streamTokens)
	defer resp.Body.Close()
	evs, err := sseEvents(resp.Body)
	if err != nil || len(evs) != 11 { // annotations, role, 6 tokens, finish, usage, [DONE]
		t.Fatalf("paused stream: %d events, %v", len(evs), err)
	}
	if el := time.Since(start); el < lat {
		t.Errorf("the stream took %v, want at least the %v pause", el, lat)
	}
}

// A stream stalled without a latency holds its connection until the client gives up, or until the region goes
// down: then the connection closes at once.
func TestFaultStallIsReleasedByDown(t *testing.T) {
	s := startSim(t, Config{Regions: DefaultRegions("eastus")})
	if err := s.Fault("eastus", Fault{Mode: ModeStall, AfterEvents: 2}); err != nil {
		t.Fatal(err)
	}
	resp := post(t, s.Client(), chatURL(s.Region("eastus"), "gpt-4o"), streamTokens)
	defer resp.Body.Close()
	got := make(chan error, 1)
	go func() {
		_, err := sseEvents(resp.Body)
		got <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for s.Region("eastus").Stats().StreamsStalled == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case err := <-got:
		t.Fatalf("the stalled stream ended before the region went down: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	if err := s.Fault("eastus", Fault{Mode: ModeDown}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if err == nil {
			t.Error("a stalled stream ended cleanly when its region went down")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("going down left the stalled stream hanging")
	}
}

func TestFaultCutStreamClean(t *testing.T) {
	s := startSim(t, Config{Regions: DefaultRegions("eastus")})
	if err := s.Fault("eastus", Fault{Mode: ModeCutStream, AfterEvents: 4, Clean: true}); err != nil {
		t.Fatal(err)
	}
	resp := post(t, s.Client(), chatURL(s.Region("eastus"), "gpt-4o"), streamTokens)
	evs, err := rawEvents(resp.Body)
	resp.Body.Close()
	if err != nil || len(evs) != 4 {
		t.Fatalf("clean cut: %d events, err %v; want 4 and a clean end", len(evs), err)
	}
	if s.Region("eastus").Stats().StreamsCut != 1 {
		t.Errorf("streams_cut = %d", s.Region("eastus").Stats().StreamsCut)
	}
}

func TestFaultNoDone(t *testing.T) {
	s := startSim(t, Config{Regions: DefaultRegions("eastus")})
	r := s.Region("eastus")
	if err := s.Fault("eastus", Fault{Mode: ModeNoDone}); err != nil {
		t.Fatal(err)
	}
	cases := []struct{ url, body string }{
		{chatURL(r, "gpt-4o"), streamTokens},
		{r.URL() + "/openai/deployments/gpt-4o/completions?api-version=2024-10-21", `{"prompt":"sim:tokens=3","stream":true,"stream_options":{"include_usage":true}}`},
	}
	for _, c := range cases {
		resp := post(t, s.Client(), c.url, c.body)
		evs, err := rawEvents(resp.Body)
		resp.Body.Close()
		if err != nil || len(evs) < 3 {
			t.Fatalf("%s: %d events, %v", c.url, len(evs), err)
		}
		last, finish := evs[len(evs)-1], evs[len(evs)-2]
		if last == "[DONE]" || !strings.Contains(last, `"usage":{`) || !strings.Contains(finish, `"finish_reason":"stop"`) {
			t.Errorf("%s: want the finish and usage chunks and no [DONE]; last events:\n%s\n%s", c.url, finish, last)
		}
	}
	// Responses streams never carry [DONE]: they end at response.completed as always.
	resp := post(t, s.Client(), r.URL()+"/openai/v1/responses", `{"model":"gpt-4o","input":"hi","stream":true}`)
	evs, err := rawEvents(resp.Body)
	resp.Body.Close()
	if err != nil || !strings.Contains(evs[len(evs)-1], `"type":"response.completed"`) {
		t.Errorf("responses under no_done: %v, last %s", err, evs[len(evs)-1])
	}
	if got := r.Stats().StreamsNoDone; got != 2 {
		t.Errorf("streams_no_done = %d, want 2", got)
	}
	// A non-streaming request is not affected.
	resp = post(t, s.Client(), chatURL(r, "gpt-4o"), hello)
	if b := readBody(t, resp); resp.StatusCode != 200 || !json.Valid(b) {
		t.Errorf("non-streaming under no_done: %d %s", resp.StatusCode, b)
	}
}

func TestFaultMalformedEvent(t *testing.T) {
	s := startSim(t, Config{Regions: DefaultRegions("eastus")})
	if err := s.Fault("eastus", Fault{Mode: ModeMalformed, AfterEvents: 2}); err != nil {
		t.Fatal(err)
	}
	resp := post(t, s.Client(), chatURL(s.Region("eastus"), "gpt-4o"), streamTokens)
	evs, err := sseEvents(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("the stream after the broken event: %v", err)
	}
	var broken []int
	for i, e := range evs {
		if e != "[DONE]" && !json.Valid([]byte(e)) {
			broken = append(broken, i)
		}
	}
	if len(broken) != 1 || broken[0] != 2 {
		t.Fatalf("broken events at %v, want [2]: %q", broken, evs)
	}
	// The broken event is the start of the event that follows it: nothing of the answer is lost.
	if !strings.HasPrefix(evs[3], evs[2]) || len(evs) != 12 {
		t.Errorf("events %q", evs)
	}
	if s.Region("eastus").Stats().StreamsMalformed != 1 {
		t.Errorf("streams_malformed = %d", s.Region("eastus").Stats().StreamsMalformed)
	}
}

// waitPhase waits until the region's flap is in phase and returns how long the phase has left.
func waitPhase(t *testing.T, r *Region, phase string, outages int) time.Duration {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if st, ok := r.Flap(); ok && st.Phase == phase && st.Outages == outages {
			return time.Until(st.Until)
		}
		time.Sleep(5 * time.Millisecond)
	}
	st, _ := r.Flap()
	t.Fatalf("flap never reached %s #%d (at %+v)", phase, outages, st)
	return 0
}

// tryChat sends one chat request on a new connection and returns its status, or 0 and the error.
func tryChat(r *Region) (int, error) {
	req, _ := http.NewRequest(http.MethodPost, chatURL(r, "gpt-4o"), strings.NewReader(hello))
	req.Header.Set("api-key", testKey)
	req.Header.Set("Content-Type", "application/json")
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

func TestFaultFlap(t *testing.T) {
	s := startSim(t, Config{ControlAddr: "127.0.0.1:0", Regions: DefaultRegions("eastus")})
	r := s.Region("eastus")
	resp, b := send(t, s.Client(), "POST", s.ControlURL()+"/regions/eastus/fault", `{"mode":"flap","down_for":"700ms","up_for":"700ms","repeat":2}`, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("flap: %d %s", resp.StatusCode, b)
	}
	for n := 1; n <= 2; n++ {
		if left := waitPhase(t, r, "out", n); left > 300*time.Millisecond {
			if _, err := tryChat(r); !errors.Is(err, syscall.ECONNREFUSED) {
				t.Errorf("outage %d: %v, want connection refused", n, err)
			}
		}
		if left := waitPhase(t, r, "up", n); left > 300*time.Millisecond {
			if st, err := tryChat(r); st != 200 {
				t.Errorf("after outage %d: status %d %v", n, st, err)
			}
		}
	}
	waitPhase(t, r, "over", 2)
	if st, err := tryChat(r); st != 200 || !r.Up() {
		t.Errorf("after the flap: status %d %v", st, err)
	}
	_, b = send(t, s.Client(), "GET", s.ControlURL()+"/regions/eastus", "", nil)
	var status RegionStatus
	if err := json.Unmarshal(b, &status); err != nil || status.Fault == nil || status.Fault.Mode != ModeFlap ||
		status.Flap == nil || status.Flap.Phase != "over" || status.Flap.Outages != 2 {
		t.Errorf("status after the flap: %s", b)
	}
}

// A flap's outage can be any fault that takes a whole region out; replacing the fault stops the flap.
func TestFaultFlapOutagesAndReplacement(t *testing.T) {
	s := startSim(t, Config{Regions: DefaultRegions("eastus")})
	r := s.Region("eastus")
	if err := s.Fault("eastus", Fault{Mode: ModeFlap, DownFor: Duration(time.Second), UpFor: Duration(time.Second), Outage: ModeError, Status: 500}); err != nil {
		t.Fatal(err)
	}
	if left := waitPhase(t, r, "out", 1); left > 300*time.Millisecond {
		if st, err := tryChat(r); st != 500 {
			t.Errorf("error outage: %d %v", st, err)
		}
	}
	waitPhase(t, r, "up", 1)
	if err := s.Fault("eastus", Fault{Mode: ModeClear}); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Flap(); ok {
		t.Error("clear left the flap state")
	}
	time.Sleep(1500 * time.Millisecond) // past the next outage's start, had the flap gone on
	if st, err := tryChat(r); st != 200 {
		t.Errorf("after clear, a replaced flap still acts: %d %v", st, err)
	}
	if _, ok := r.Fault(); ok {
		t.Error("the flap came back after clear")
	}
}

func TestFaultValidation(t *testing.T) {
	bad := map[string]Fault{
		"slow_first_byte needs latency": {Mode: ModeSlowFirstByte},
		"clean is for cut_stream":       {Mode: ModeStall, Clean: true},
		"flap needs durations":          {Mode: ModeFlap, DownFor: Duration(time.Second)},
		"flap outage":                   {Mode: ModeFlap, DownFor: Duration(time.Second), UpFor: Duration(time.Second), Outage: "slow"},
		"flap takes no rate":            {Mode: ModeFlap, DownFor: Duration(time.Second), UpFor: Duration(time.Second), Rate: 0.5},
		"flap fields elsewhere":         {Mode: ModeDown, DownFor: Duration(time.Second)},
		"negative repeat":               {Mode: ModeFlap, DownFor: Duration(time.Second), UpFor: Duration(time.Second), Repeat: -1},
		"status range":                  {Mode: ModeFlap, DownFor: Duration(time.Second), UpFor: Duration(time.Second), Outage: ModeError, Status: 200},
	}
	for name, f := range bad {
		if err := f.Validate(); err == nil {
			t.Errorf("%s: %+v accepted", name, f)
		}
	}
	good := []Fault{
		{Mode: ModeSlowFirstByte, Latency: Duration(time.Second)},
		{Mode: ModeCutStream, AfterEvents: 2, Clean: true},
		{Mode: ModeNoDone, Rate: 0.5},
		{Mode: ModeMalformed, AfterEvents: 1, Deployment: "gpt-4o"},
		{Mode: ModeFlap, DownFor: Duration(time.Second), UpFor: Duration(time.Second), Outage: ModeThrottle, RetryAfter: Duration(time.Second)},
	}
	for _, f := range good {
		if err := f.Validate(); err != nil {
			t.Errorf("%+v: %v", f, err)
		}
	}
}

// answerText asks one region for a chat answer and returns its text.
func answerText(t *testing.T, s *Sim, region, prompt string, stream bool) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"messages": []map[string]string{{"role": "user", "content": prompt}}, "stream": stream})
	resp := post(t, s.Client(), chatURL(s.Region(region), "gpt-4o"), string(body))
	if !stream {
		var out struct {
			Choices []struct {
				Message struct{ Content string } `json:"message"`
			} `json:"choices"`
		}
		if b := readBody(t, resp); json.Unmarshal(b, &out) != nil || len(out.Choices) != 1 {
			t.Fatalf("answer: %s", b)
		}
		return out.Choices[0].Message.Content
	}
	defer resp.Body.Close()
	evs, err := sseEvents(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	for _, e := range evs {
		var c struct {
			Choices []struct {
				Delta struct{ Content string } `json:"delta"`
			} `json:"choices"`
		}
		if json.Unmarshal([]byte(e), &c) == nil && len(c.Choices) == 1 {
			text.WriteString(c.Choices[0].Delta.Content)
		}
	}
	return text.String()
}

func TestAnswerModes(t *testing.T) {
	s := startSim(t, Config{ControlAddr: "127.0.0.1:0", Regions: DefaultRegions("eastus", "westus")})
	// The default: each region its own text.
	if e, w := answerText(t, s, "eastus", "Hi", false), answerText(t, s, "westus", "Hi", false); e == w || !strings.Contains(e, "East US") {
		t.Errorf("region answers: %q and %q", e, w)
	}
	resp, b := send(t, s.Client(), "POST", s.ControlURL()+"/answers", `{"mode":"deterministic"}`, nil)
	if resp.StatusCode != 200 || !bytes.Contains(b, []byte(`"answers":"deterministic"`)) {
		t.Fatalf("POST /answers: %d %s", resp.StatusCode, b)
	}
	e := answerText(t, s, "eastus", "Tell me about rivers", false)
	if w := answerText(t, s, "westus", "Tell me about rivers", true); e != w || e == "" {
		t.Errorf("deterministic answers differ between regions (or stream and not): %q and %q", e, w)
	}
	if o := answerText(t, s, "eastus", "Tell me about harbors", false); o == e {
		t.Errorf("two prompts gave the same deterministic answer %q", o)
	}
	resp, b = send(t, s.Client(), "POST", s.ControlURL()+"/regions/westus/answers", `{"mode":"random"}`, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("POST /regions/westus/answers: %d %s", resp.StatusCode, b)
	}
	a1, a2 := answerText(t, s, "westus", "Same prompt", true), answerText(t, s, "westus", "Same prompt", false)
	if a1 == a2 || a1 == "" {
		t.Errorf("random answers repeat: %q and %q", a1, a2)
	}
	// A prompt's marker overrides the region: two regions agree once the prompt asks for it.
	p := "sim:answers=deterministic sim:tokens=5"
	if e, w := answerText(t, s, "eastus", p, false), answerText(t, s, "westus", p, false); e != w {
		t.Errorf("marker: %q and %q", e, w)
	}
	for _, bad := range []string{`{"mode":"creative"}`, `{"answers":"random"}`} {
		if resp, b := send(t, s.Client(), "POST", s.ControlURL()+"/regions/eastus/answers", bad, nil); resp.StatusCode != 400 {
			t.Errorf("%s: %d %s", bad, resp.StatusCode, b)
		}
	}
	if _, err := Start(Config{Answers: "creative"}); err == nil {
		t.Error("Start accepted answers \"creative\"")
	}
}
