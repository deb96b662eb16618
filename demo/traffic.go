package demo

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/azure"
	"github.com/openai/openai-go/v3/option"
)

// traffic sends requests with the official openai-go client at a steady rate: alternately streaming and not, on two
// client-visible names. Retries in the client are off, so every error the gateway lets through is counted.
type traffic struct {
	gateway openai.Client // through the gateway, Azure mode
	direct  openai.Client // straight to the primary region, for the added-latency baseline
	rec     *recorder
	begin   time.Time
	timeout time.Duration
	wg      sync.WaitGroup
}

func newClient(endpoint, key string, hc *http.Client) openai.Client {
	return openai.NewClient(
		azure.WithEndpoint(endpoint, "2024-10-21"),
		azure.WithAPIKey(key),
		azure.WithUnsafeAllowHTTP(), // loopback only: the demo never leaves this machine
		option.WithMaxRetries(0),
		option.WithHTTPClient(hc),
	)
}

func httpClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		MaxIdleConns:        512,
		MaxIdleConnsPerHost: 512,
		IdleConnTimeout:     90 * time.Second,
	}}
}

var demoNames = [...]string{"gpt-4o", "gpt-4o-mini"}

// run sends rate requests per second until ctx ends.
func (t *traffic) run(ctx context.Context, rate float64) {
	interval := time.Duration(float64(time.Second) / rate)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		name := demoNames[i%len(demoNames)]
		stream := i%2 == 1
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			t.rec.add(t.one(&t.gateway, name, stream))
		}()
	}
}

// pairs measures what the gateway adds: while healthy() holds, it sends the same non-streaming request straight to
// the primary region and through the gateway, one after the other (alternating which goes first), and records both
// latencies. Pairing cancels most of the simulated generation time and of the machine's noise.
func (t *traffic) pairs(ctx context.Context, primary string, healthy func() bool) {
	t.wg.Add(1)
	defer t.wg.Done()
	for i := 0; ctx.Err() == nil && healthy(); i++ {
		var d, g Sample
		if i%2 == 0 {
			d = t.one(&t.direct, "gpt-4o", false)
			g = t.one(&t.gateway, "gpt-4o", false)
		} else {
			g = t.one(&t.gateway, "gpt-4o", false)
			d = t.one(&t.direct, "gpt-4o", false)
		}
		if d.Err == "" && g.Err == "" && g.Region == primary && healthy() {
			t.rec.pair(d.Latency, g.Latency)
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// wait waits for the requests in flight.
func (t *traffic) wait() { t.wg.Wait() }

func (t *traffic) one(c *openai.Client, name string, stream bool) Sample {
	ctx, cancel := context.WithTimeout(context.Background(), t.timeout)
	defer cancel()
	s := Sample{Start: time.Since(t.begin), Stream: stream}
	var region string
	capture := option.WithMiddleware(func(r *http.Request, next option.MiddlewareNext) (*http.Response, error) {
		resp, err := next(r)
		if resp != nil {
			region = resp.Header.Get("x-lifeline-region")
		}
		return resp, err
	})
	params := openai.ChatCompletionNewParams{
		Model:     openai.ChatModel(name),
		Messages:  []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say hello to the on-call engineer.")},
		MaxTokens: openai.Int(16),
	}
	var err error
	if stream {
		err = readStream(ctx, c, params, capture)
	} else {
		var res *openai.ChatCompletion
		res, err = c.Chat.Completions.New(ctx, params, capture)
		if err == nil && (len(res.Choices) == 0 || res.Choices[0].Message.Content == "") {
			err = errors.New("empty answer")
		}
	}
	s.Latency = time.Since(t.begin) - s.Start
	s.Region = region
	if err != nil {
		s.Err = err.Error()
	}
	return s
}

// readStream reads a whole chat completion stream; a stream that ends without its finish chunk is an error even if
// the client library saw a clean end, so a silently truncated stream can never pass as a success.
func readStream(ctx context.Context, c *openai.Client, params openai.ChatCompletionNewParams, opts ...option.RequestOption) error {
	st := c.Chat.Completions.NewStreaming(ctx, params, opts...)
	defer st.Close()
	finished := false
	for st.Next() {
		for _, ch := range st.Current().Choices {
			if ch.FinishReason != "" {
				finished = true
			}
		}
	}
	if err := st.Err(); err != nil {
		return err
	}
	if !finished {
		return errors.New("stream ended without a finish_reason")
	}
	return nil
}
