package continuity_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/azure"
	"github.com/openai/openai-go/v3/option"

	"github.com/lifeline-sre/lifeline/config"
	"github.com/lifeline-sre/lifeline/failover"
	"github.com/lifeline-sre/lifeline/gateway"
	"github.com/lifeline-sre/lifeline/internal/nodetest"
	"github.com/lifeline-sre/lifeline/sim"
)

const (
	clientKey = "continuity-client-0123456789abcdef"
	adminKey  = "continuity-admin-0123456789abcdef"
	regionKey = "continuity-region-0123456789abcdef"
)

// slack is the "little" that a request may wait beyond the hedge delay for a region already seen silent: the
// answer from the other region, on a loaded machine with the race detector. It is small next to what a silent
// region costs without hedging (30 s, 300 s) and next to the 8 s of the slow-first-byte fault.
const slack = 3 * time.Second

// stack is simulated eastus (primary) and westus behind `lifeline serve` on the default policy.
type stack struct {
	t     *testing.T
	sim   *sim.Sim
	url   string
	rec   *recorder
	begin time.Time
}

type stackOpts struct {
	deployments []sim.Deployment  // extra simulated deployments in both regions
	names       map[string]string // extra client-visible names: name -> deployment
	extraYAML   string            // top-level YAML appended to the config (fallbacks:)
	answers     string            // the regions' answer mode; "": sim.AnswersDeterministic
}

// start starts the stack. The gateway's config is YAML with no policy section, parsed as `lifeline serve` parses
// its file: the defaults, unchanged. Unless o.answers says otherwise, the simulated regions answer a prompt with
// the same text in both (as a model with a seed and temperature 0 does), so that a broken stream can resume.
func start(t *testing.T, o stackOpts) *stack {
	t.Helper()
	regions := sim.DefaultRegions("eastus", "westus")
	for i := range regions {
		regions[i].TimeToFirstToken = 30 * time.Millisecond
		regions[i].TokensPerSecond = 400
		regions[i].Deployments = append(regions[i].Deployments, o.deployments...)
	}
	if o.answers == "" {
		o.answers = sim.AnswersDeterministic
	}
	s, err := sim.Start(sim.Config{Regions: regions, APIKey: regionKey, Seed: 1, Answers: o.answers})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	y := fmt.Sprintf("clients:\n  - name: continuity\n    key: %s\nadmin:\n  key: %s\nregions:\n", clientKey, adminKey)
	for i, name := range []string{"eastus", "westus"} {
		y += fmt.Sprintf("  - name: %s\n    endpoint: %s\n    api_key: %s\n    priority: %d\n    deployments:\n      gpt-4o: gpt-4o\n      embed: text-embedding-3-small\n",
			name, s.Region(name).URL(), regionKey, i+1)
		for n, d := range o.names {
			y += fmt.Sprintf("      %s: %s\n", n, d)
		}
	}
	y += o.extraYAML
	cfg, err := config.Parse([]byte(y), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatalf("config: %v\n%s", err, y)
	}
	if strings.Contains(y, "policy") {
		t.Fatal("the config sets a policy: these tests are about the defaults")
	}
	rec := &recorder{}
	gw, err := gateway.New(cfg, gateway.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Observer: rec})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- gw.Serve(ctx, ln, nil) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Serve did not return 30s after its context ended")
		}
	})
	return &stack{t: t, sim: s, url: "http://" + ln.Addr().String(), rec: rec, begin: time.Now()}
}

func (st *stack) fault(region string, f sim.Fault) time.Time {
	st.t.Helper()
	if err := st.sim.Fault(region, f); err != nil {
		st.t.Fatal(err)
	}
	return time.Now()
}

func (st *stack) heal(region string) time.Time {
	return st.fault(region, sim.Fault{Mode: sim.ModeClear})
}

// at is t as seconds since the stack started, for messages.
func (st *stack) at(t time.Time) string { return fmt.Sprintf("%.1fs", t.Sub(st.begin).Seconds()) }

// recorder keeps the engine's events that the assertions need.
type recorder struct {
	failover.NopObserver
	mu       sync.Mutex
	states   []failover.StateChange
	hedges   []failover.HedgeEvent
	resumes  []failover.ResumeEvent
	failures []failure            // attempts that counted against their region
	lastOK   map[string]time.Time // per region, when an attempt last ended well
}

// servedBy reports whether an attempt in region ended well after since.
func (r *recorder) servedBy(region string, since time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastOK[region].After(since)
}

type failure struct {
	at      time.Time
	region  string
	outcome failover.Outcome
	err     string
}

func (r *recorder) StateChanged(e failover.StateChange) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.states = append(r.states, e)
}

func (r *recorder) Hedge(e failover.HedgeEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hedges = append(r.hedges, e)
}

func (r *recorder) Resume(e failover.ResumeEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.resumes = append(r.resumes, e)
}

func (r *recorder) AttemptFinished(e failover.AttemptResult) {
	if e.Outcome == failover.OutcomeOK {
		r.mu.Lock()
		if r.lastOK == nil {
			r.lastOK = map[string]time.Time{}
		}
		r.lastOK[e.Region] = time.Now()
		r.mu.Unlock()
		return
	}
	switch e.Outcome {
	case failover.OutcomeTimeout, failover.OutcomeStreamError, failover.OutcomeReset, failover.OutcomeConnectError,
		failover.OutcomeServerError:
	default:
		return
	}
	f := failure{at: time.Now(), region: e.Region, outcome: e.Outcome}
	if e.Err != nil {
		f.err = e.Err.Error()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failures = append(r.failures, f)
}

// firstFailure is when region first failed an attempt in a way that matches (at or after from); zero if never.
func (r *recorder) firstFailure(region string, from time.Time, match func(failure) bool) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, f := range r.failures {
		if f.region == region && !f.at.Before(from) && match(f) {
			return f.at
		}
	}
	return time.Time{}
}

// opened is when region's breaker first opened at or after from; zero if it did not.
func (r *recorder) opened(region string, from time.Time) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.states {
		if e.Region == region && e.To == failover.Open && !e.At.Before(from) {
			return e.At
		}
	}
	return time.Time{}
}

// hedgeBound is the longest hedge delay any request used: the "hedge delay" of the assertions.
func (r *recorder) hedgeBound() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := 2 * time.Second // the delay before any first bytes were learned (SPEC section 9)
	for _, h := range r.hedges {
		d = max(d, h.Delay)
	}
	return d
}

// earlyResumes counts the streams resumed by an early resume (started while the stream was quiet).
func (r *recorder) earlyResumes() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.resumes {
		if e.Early && e.Outcome == failover.ResumeOK {
			n++
		}
	}
	return n
}

func (r *recorder) resumeOutcomes() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := map[string]int{}
	for _, e := range r.resumes {
		m[e.Outcome]++
	}
	return m
}

func (r *recorder) summary(st *stack) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	for _, e := range r.states {
		fmt.Fprintf(&b, "  %s %s: %s -> %s (%s)\n", st.at(e.At), e.Region, e.From, e.To, e.Reason)
	}
	hedges := map[string]int{}
	for _, h := range r.hedges {
		hedges[h.To+" "+h.Outcome]++
	}
	fmt.Fprintf(&b, "  hedges %v, failures %d\n", hedges, len(r.failures))
	return b.String()
}

// sample is one request as a client saw it.
type sample struct {
	Client string
	Kind   string // chat, stream, embed
	Prompt int    // index in the traffic's prompts
	Start  time.Time
	First  time.Time     // first chunk of a stream, the whole answer otherwise
	End    time.Time     //
	MaxGap time.Duration // the longest the client waited for anything: start to first byte, between chunks, last chunk to end
	Region string        // x-lifeline-region
	Name   string        // x-lifeline-name (set when a fallback name served)
	Hedged bool
	Err    string
}

func (s sample) String() string {
	e := ""
	if s.Err != "" {
		e = " error: " + s.Err
	}
	return fmt.Sprintf("%s %s prompt %d from %s: %s in %s (longest wait %s)%s", s.Client, s.Kind, s.Prompt,
		s.Start.Format("15:04:05.000"), s.Region, s.End.Sub(s.Start).Round(time.Millisecond), s.MaxGap.Round(time.Millisecond), e)
}

// traffic is what the clients send: kinds and prompts taken in turn, by two openai-go workers (Azure mode and
// OpenAI v1 mode) and two npm openai workers (AzureOpenAI and OpenAI with /openai/v1), each pausing between
// requests.
type traffic struct {
	kinds   []string
	prompts []string
	pause   time.Duration
}

func (tr *traffic) defaults() {
	if tr.kinds == nil {
		tr.kinds = []string{"chat", "stream", "embed"}
	}
	if tr.prompts == nil {
		tr.prompts = []string{"Tell me about rivers"}
	}
	if tr.pause == 0 {
		tr.pause = 250 * time.Millisecond
	}
}

// drive sends traffic while script runs (it injects and heals faults, and returns when the traffic may stop), then
// returns every sample of both clients.
func (st *stack) drive(tr traffic, script func()) []sample {
	t := st.t
	t.Helper()
	tr.defaults()
	dir := t.TempDir()
	results, stopFile := filepath.Join(dir, "node.jsonl"), filepath.Join(dir, "stop")
	prompts, _ := json.Marshal(tr.prompts)
	wait := nodetest.Start(t, "continuity.test.mjs", map[string]string{
		"GATEWAY_URL": st.url, "CLIENT_KEY": clientKey, "DURATION_MS": "600000", "STOP_FILE": stopFile,
		"PAUSE_MS": fmt.Sprint(tr.pause.Milliseconds()), "RESULTS": results, "KINDS": strings.Join(tr.kinds, ","),
		"PROMPTS": string(prompts),
	}, 5*time.Minute)
	var mu sync.Mutex
	var samples []sample
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w, m := range goModes {
		c := m.client(st.url)
		wg.Go(func() {
			for i := w; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				s := one(c, tr.kinds[i%len(tr.kinds)], tr.prompts, i%len(tr.prompts))
				s.Client = m.name
				mu.Lock()
				samples = append(samples, s)
				mu.Unlock()
				select {
				case <-stop:
					return
				case <-time.After(tr.pause):
				}
			}
		})
	}
	script()
	close(stop)
	if err := os.WriteFile(stopFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	wait()
	samples = append(samples, readNode(t, results)...)
	sort.Slice(samples, func(i, j int) bool { return samples[i].Start.Before(samples[j].Start) })
	return samples
}

// readNode reads the npm client's samples.
func readNode(t *testing.T, path string) []sample {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("the npm client's results: %v", err)
	}
	defer f.Close()
	var out []sample
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var n struct {
			Client, Kind, Region, Name, Err string
			Prompt                          int
			Start, First, End               int64
			MaxGapMS                        int64 `json:"max_gap_ms"`
			Hedged                          bool
		}
		if err := json.Unmarshal(sc.Bytes(), &n); err != nil {
			t.Fatalf("npm client result %q: %v", sc.Text(), err)
		}
		s := sample{Client: n.Client, Kind: n.Kind, Prompt: n.Prompt, Start: time.UnixMilli(n.Start), End: time.UnixMilli(n.End),
			MaxGap: time.Duration(n.MaxGapMS) * time.Millisecond, Region: n.Region, Name: n.Name, Hedged: n.Hedged, Err: n.Err}
		if n.First > 0 {
			s.First = time.UnixMilli(n.First)
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		t.Fatal("the npm client sent no request")
	}
	return out
}

// goMode is one way a real application points openai-go at the gateway.
type goMode struct {
	name string
	opts func(url string) []option.RequestOption
}

var goModes = []goMode{
	{"openai-go azure", func(url string) []option.RequestOption {
		return []option.RequestOption{azure.WithEndpoint(url, "2024-10-21"), azure.WithAPIKey(clientKey), azure.WithUnsafeAllowHTTP()}
	}},
	{"openai-go /openai/v1", func(url string) []option.RequestOption {
		return []option.RequestOption{option.WithBaseURL(url + "/openai/v1/"), option.WithAPIKey(clientKey)}
	}},
}

// client is openai-go with its own retries off. The timeout is generous: a stall is cut, on the default policy,
// after policy.timeouts.stream_idle (60 s).
func (m goMode) client(url string) openai.Client {
	opts := append(m.opts(url), option.WithHTTPClient(&http.Client{}), option.WithMaxRetries(0),
		option.WithRequestTimeout(150*time.Second))
	return openai.NewClient(opts...)
}

// one sends one request of kind and records what the client saw.
func one(c openai.Client, kind string, prompts []string, p int) sample {
	s := sample{Kind: kind, Prompt: p, Start: time.Now()}
	last := s.Start
	mark := func() {
		now := time.Now()
		s.MaxGap = max(s.MaxGap, now.Sub(last))
		if s.First.IsZero() {
			s.First = now
		}
		last = now
	}
	var raw *http.Response
	into := option.WithResponseInto(&raw)
	ctx := context.Background()
	msgs := []openai.ChatCompletionMessageParamUnion{openai.UserMessage(prompts[p])}
	var err error
	switch kind {
	case "chat":
		var r *openai.ChatCompletion
		r, err = c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "gpt-4o", Messages: msgs, MaxTokens: openai.Int(24)}, into)
		mark()
		if err == nil && (len(r.Choices) == 0 || r.Choices[0].Message.Content == "" || r.Choices[0].FinishReason == "") {
			err = fmt.Errorf("incomplete answer: %+v", r)
		}
	case "stream":
		st := c.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{Model: "gpt-4o", Messages: msgs, MaxTokens: openai.Int(24),
			StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}}, into)
		var acc openai.ChatCompletionAccumulator
		for st.Next() {
			mark()
			acc.AddChunk(st.Current())
		}
		err = st.Err()
		st.Close()
		if err == nil && (len(acc.Choices) == 0 || acc.Choices[0].Message.Content == "" || acc.Choices[0].FinishReason == "") {
			err = errors.New("the stream ended without a finish_reason")
		}
	case "embed":
		var r *openai.CreateEmbeddingResponse
		r, err = c.Embeddings.New(ctx, openai.EmbeddingNewParams{Model: "embed", Input: openai.EmbeddingNewParamsInputUnion{OfString: openai.String(prompts[p])}}, into)
		mark()
		if err == nil && (len(r.Data) == 0 || len(r.Data[0].Embedding) == 0) {
			err = errors.New("empty embedding")
		}
	}
	s.End = time.Now()
	s.MaxGap = max(s.MaxGap, s.End.Sub(last))
	if raw != nil {
		s.Region = raw.Header.Get("x-lifeline-region")
		s.Name = raw.Header.Get("x-lifeline-name")
		s.Hedged = raw.Header.Get("x-lifeline-hedged") == "true"
	}
	if err != nil {
		s.Err = err.Error()
	}
	return s
}

// noClientErrors fails t for every request a client saw fail.
func noClientErrors(t *testing.T, samples []sample) {
	t.Helper()
	var bad []string
	for _, s := range samples {
		if s.Err != "" {
			bad = append(bad, s.String())
		}
	}
	if len(bad) > 0 {
		t.Errorf("%d of %d requests failed in the client; another region could serve them all:\n%s", len(bad), len(samples),
			strings.Join(bad[:min(len(bad), 15)], "\n"))
	}
	t.Logf("%d requests, no client error", len(samples))
}

// startedIn returns the samples that started in [from, to).
func startedIn(samples []sample, from, to time.Time) []sample {
	var out []sample
	for _, s := range samples {
		if !s.Start.Before(from) && s.Start.Before(to) {
			out = append(out, s)
		}
	}
	return out
}

// kinds counts samples per kind.
func kinds(samples []sample) map[string]int {
	m := map[string]int{}
	for _, s := range samples {
		m[s.Kind]++
	}
	return m
}

// waitedAtMost fails t for each sample that waited longer than bound for anything.
func waitedAtMost(t *testing.T, what string, samples []sample, bound time.Duration) {
	t.Helper()
	var bad []string
	longest := time.Duration(0)
	for _, s := range samples {
		longest = max(longest, s.MaxGap)
		if s.MaxGap > bound {
			bad = append(bad, s.String())
		}
	}
	if len(bad) > 0 {
		t.Errorf("%s: %d of %d requests waited longer than %s:\n%s", what, len(bad), len(samples), bound,
			strings.Join(bad[:min(len(bad), 15)], "\n"))
	}
	t.Logf("%s: %d requests, the longest wait %s (bound %s)", what, len(samples), longest.Round(time.Millisecond), bound)
}

// servedAgain fails t unless region answered a request within 10 s of healed (SPEC section 9: a region back
// after an outage serves again within 10 s of its return), and returns how long it took.
func servedAgain(t *testing.T, st *stack, samples []sample, region string, healed time.Time) {
	t.Helper()
	first := time.Time{}
	for _, s := range samples {
		if s.Region == region && s.Err == "" && !s.First.Before(healed) && (first.IsZero() || s.First.Before(first)) {
			first = s.First
		}
	}
	if first.IsZero() {
		t.Errorf("%s healed at %s and answered no request after that\n%s", region, st.at(healed), st.rec.summary(st))
		return
	}
	if d := first.Sub(healed); d > 10*time.Second {
		t.Errorf("%s healed at %s and first answered %s later; want within 10s\n%s", region, st.at(healed), d, st.rec.summary(st))
	} else {
		t.Logf("%s healed at %s and answered again %s later", region, st.at(healed), d.Round(time.Millisecond))
	}
}

// answeredAfter waits (up to limit) until region has answered a request that started after since, so that a
// script can stop the traffic as soon as the recovery is seen.
func (st *stack) answeredBy(region string, since time.Time, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if st.rec.servedBy(region, since) {
			time.Sleep(time.Second) // some traffic after the recovery
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}
