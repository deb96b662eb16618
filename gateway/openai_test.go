package gateway_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/azure"
	"github.com/openai/openai-go/v3/option"

	"github.com/lifeline-sre/lifeline/sim"
)

// clientMode is one way a real application points openai-go at the gateway.
type clientMode struct {
	name string
	opts func(h *harness) []option.RequestOption
}

var clientModes = []clientMode{
	{"azure", func(h *harness) []option.RequestOption {
		return []option.RequestOption{azure.WithEndpoint(h.url, "2024-10-21"), azure.WithAPIKey(clientKey), azure.WithUnsafeAllowHTTP()}
	}},
	{"azure-v1", func(h *harness) []option.RequestOption {
		return []option.RequestOption{option.WithBaseURL(h.url + "/openai/v1/"), option.WithAPIKey(clientKey)}
	}},
	{"openai-v1", func(h *harness) []option.RequestOption {
		return []option.RequestOption{option.WithBaseURL(h.url + "/v1/"), option.WithAPIKey(clientKey)}
	}},
}

// client is openai-go with its own retries off: whatever survives an outage, the gateway made it survive.
func (m clientMode) client(h *harness) openai.Client {
	opts := append(m.opts(h), option.WithHTTPClient(&http.Client{}), option.WithMaxRetries(0),
		option.WithRequestTimeout(20*time.Second))
	return openai.NewClient(opts...)
}

var chatParams = openai.ChatCompletionNewParams{
	Model:    "gpt-4o",
	Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say hello")},
}

// chat makes one non-streaming call and returns the answering region.
func chat(t *testing.T, c openai.Client) string {
	t.Helper()
	var raw *http.Response
	resp, err := c.Chat.Completions.New(context.Background(), chatParams, option.WithResponseInto(&raw))
	if err != nil {
		t.Errorf("chat: the client saw an error: %v", err)
		return ""
	}
	if len(resp.Choices) == 0 || resp.Choices[0].Message.Content == "" {
		t.Errorf("chat: empty answer: %+v", resp)
		return ""
	}
	if resp.Usage.TotalTokens == 0 {
		t.Errorf("chat: no usage in the answer")
	}
	return raw.Header.Get("x-lifeline-region")
}

// stream makes one streaming call, reads it to the end and returns the answering region, the number of chunks
// and the stream's error.
func stream(t *testing.T, c openai.Client) (region string, chunks int, text string, err error) {
	t.Helper()
	var raw *http.Response
	params := chatParams
	params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	s := c.Chat.Completions.NewStreaming(context.Background(), params, option.WithResponseInto(&raw))
	defer s.Close()
	var b strings.Builder
	for s.Next() {
		chunks++
		if ch := s.Current(); len(ch.Choices) > 0 {
			b.WriteString(ch.Choices[0].Delta.Content)
		}
	}
	if raw != nil {
		region = raw.Header.Get("x-lifeline-region")
	}
	return region, chunks, b.String(), s.Err()
}

// TestOpenAIGoSurvivesOutages runs openai-go in Azure mode, Azure v1 mode and plain OpenAI v1 mode, streaming and
// not, through the gateway while the primary region is healthy, down, black-holed or throttling. The client must
// never see an error, since the secondary can serve.
func TestOpenAIGoSurvivesOutages(t *testing.T) {
	faults := []struct {
		name  string
		fault *sim.Fault
		want  string // answering region
	}{
		{"healthy", nil, "eastus"},
		{"primary-down", &sim.Fault{Mode: sim.ModeDown}, "westus"},
		{"primary-blackholed", &sim.Fault{Mode: sim.ModeBlackhole}, "westus"},
		{"primary-throttled", &sim.Fault{Mode: sim.ModeThrottle, RetryAfter: sim.Duration(30 * time.Second)}, "westus"},
		{"primary-500", &sim.Fault{Mode: sim.ModeError, Status: 500}, "westus"},
	}
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			h := startHarness(t, harnessOpts{})
			if f.fault != nil {
				h.fault("eastus", *f.fault)
			}
			for _, m := range clientModes {
				c := m.client(h)
				if got := chat(t, c); got != f.want {
					t.Errorf("%s chat answered by %q, want %q", m.name, got, f.want)
				}
				region, chunks, text, err := stream(t, c)
				if err != nil {
					t.Fatalf("%s stream: the client saw an error: %v", m.name, err)
				}
				if region != f.want || chunks < 2 || text == "" {
					t.Errorf("%s stream: region %q (want %q), %d chunks, text %q", m.name, region, f.want, chunks, text)
				}
			}
		})
	}
}

// TestOpenAIGoStreamCutMidway: a stream that the region cuts after events reached the client, and that no other
// region can resume (westus cuts its streams too), ends with an error in the client (never a clean end); one cut
// before any event reached it is failed over transparently.
func TestOpenAIGoStreamCutMidway(t *testing.T) {
	h := startHarness(t, harnessOpts{})
	h.fault("eastus", sim.Fault{Mode: sim.ModeCutStream, AfterEvents: 3})
	h.fault("westus", sim.Fault{Mode: sim.ModeCutStream, AfterEvents: 3})
	for _, m := range clientModes {
		region, chunks, _, err := stream(t, m.client(h))
		if err == nil {
			t.Errorf("%s: stream cut after 3 events ended cleanly (%d chunks); the client must see an error", m.name, chunks)
		}
		if chunks == 0 || region != "eastus" {
			t.Errorf("%s: %d chunks from %q before the cut; want some from eastus", m.name, chunks, region)
		}
	}
	eventually(t, "3 access log lines", 2*time.Second, func() bool { return len(h.logs.lines("request")) >= 3 })
	if !strings.Contains(h.metrics(), `lifeline_stream_errors_total{region="eastus"}`) {
		t.Error("lifeline_stream_errors_total not counted for eastus")
	}

	h = startHarness(t, harnessOpts{}) // westus's breaker opened on the cut resumes
	h.fault("eastus", sim.Fault{Mode: sim.ModeCutStream, AfterEvents: 0})
	for _, m := range clientModes {
		region, chunks, _, err := stream(t, m.client(h))
		if err != nil {
			t.Errorf("%s: stream cut before its first event: the client saw %v; want a transparent failover", m.name, err)
		}
		if region != "westus" || chunks == 0 {
			t.Errorf("%s: region %q, %d chunks; want westus", m.name, region, chunks)
		}
	}
}

// TestOpenAIGoStalledStream: a region that stops sending mid-stream is cut after timeouts.stream_idle and the
// client gets an error event, not a hang.
func TestOpenAIGoStalledStream(t *testing.T) {
	// One token a second against a 500ms stream_idle: the region stalls between events.
	h := startHarness(t, harnessOpts{simCfg: func(c *sim.Config) {
		for i := range c.Regions {
			c.Regions[i].TokensPerSecond = 1
		}
	}})
	start := time.Now()
	_, chunks, _, err := stream(t, clientModes[0].client(h))
	if err == nil {
		t.Fatalf("a stream with 1s between events and a 500ms idle timeout ended cleanly (%d chunks)", chunks)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("the stalled stream took %s to end", el)
	}
	if !strings.Contains(err.Error(), "stream_idle_timeout") {
		t.Errorf("client error %q does not name the idle timeout", err)
	}
}

// TestOpenAIGoOutageUnderTraffic: openai-go clients send steady traffic while the primary region goes down and
// later comes back. No non-streaming call may fail, no stream may fail before its first chunk, and a stream cut
// by the outage must end with an error, never as if complete.
func TestOpenAIGoOutageUnderTraffic(t *testing.T) {
	h := startHarness(t, harnessOpts{})
	var mu sync.Mutex
	served := map[string]int{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 4 {
		m := clientModes[i%len(clientModes)]
		c := m.client(h)
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				var region string
				if n%2 == 0 {
					region = chat(t, c)
				} else {
					r, chunks, text, err := stream(t, c)
					if err != nil && chunks == 0 {
						t.Errorf("%s: a stream failed before its first chunk: %v", m.name, err)
					}
					if err == nil && text == "" {
						t.Errorf("%s: a stream ended cleanly without content", m.name)
					}
					region = r
				}
				mu.Lock()
				served[region]++
				mu.Unlock()
			}
		})
	}
	time.Sleep(300 * time.Millisecond)
	h.fault("eastus", sim.Fault{Mode: sim.ModeDown})
	time.Sleep(600 * time.Millisecond)
	h.fault("eastus", sim.Fault{Mode: sim.ModeClear})
	time.Sleep(1200 * time.Millisecond) // open_for is 300ms: the primary takes its traffic back
	close(stop)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if served["eastus"] == 0 || served["westus"] == 0 {
		t.Errorf("served by region: %v; want both (failover, then failback)", served)
	}
	t.Logf("served by region: %v", served)
}
