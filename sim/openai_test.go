package sim_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/lifeline-sre/lifeline/sim"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/azure"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"
)

const key = "openai-go-key"

func start(t *testing.T, cfg sim.Config) *sim.Sim {
	t.Helper()
	if cfg.APIKey == "" {
		cfg.APIKey = key
	}
	s, err := sim.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// azureClients returns an openai-go client in Azure mode for the TLS and the plain-HTTP (loopback) simulator.
func azureClients(t *testing.T) map[string]openai.Client {
	tlsSim := start(t, sim.Config{TLS: true, Regions: sim.DefaultRegions("eastus")})
	plainSim := start(t, sim.Config{Regions: sim.DefaultRegions("westus")})
	return map[string]openai.Client{
		"tls": openai.NewClient(
			azure.WithEndpoint(tlsSim.Region("eastus").URL(), "2024-10-21"),
			azure.WithAPIKey(key),
			option.WithHTTPClient(&http.Client{Transport: &http.Transport{TLSClientConfig: tlsSim.TLSConfig()}}),
		),
		"plain": openai.NewClient(
			azure.WithEndpoint(plainSim.Region("westus").URL(), "2024-10-21"),
			azure.WithAPIKey(key),
			azure.WithUnsafeAllowHTTP(),
		),
	}
}

func TestOpenAIGoAzureChat(t *testing.T) {
	for name, client := range azureClients(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			var raw *http.Response
			cc, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
				Model:    "gpt-4o",
				Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hello there")},
			}, option.WithResponseInto(&raw))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(cc.ID, "chatcmpl-") || cc.Model != "gpt-4o-2024-11-20" || cc.Created == 0 || cc.SystemFingerprint == "" {
				t.Errorf("envelope: id %q model %q created %d fp %q", cc.ID, cc.Model, cc.Created, cc.SystemFingerprint)
			}
			if len(cc.Choices) != 1 || cc.Choices[0].Message.Content == "" || cc.Choices[0].FinishReason != "stop" || cc.Choices[0].Message.Role != "assistant" {
				t.Errorf("choices: %+v", cc.Choices)
			}
			u := cc.Usage
			if u.PromptTokens == 0 || u.CompletionTokens == 0 || u.TotalTokens != u.PromptTokens+u.CompletionTokens ||
				!u.JSON.CompletionTokensDetails.Valid() || !u.JSON.PromptTokensDetails.Valid() {
				t.Errorf("usage: %+v", u)
			}
			var pfr []struct {
				PromptIndex int `json:"prompt_index"`
				Results     map[string]struct {
					Filtered bool   `json:"filtered"`
					Severity string `json:"severity"`
				} `json:"content_filter_results"`
			}
			if err := json.Unmarshal([]byte(cc.JSON.ExtraFields["prompt_filter_results"].Raw()), &pfr); err != nil || len(pfr) != 1 || pfr[0].Results["hate"].Severity != "safe" {
				t.Errorf("prompt_filter_results: %v %+v", err, pfr)
			}
			if !strings.Contains(cc.Choices[0].JSON.ExtraFields["content_filter_results"].Raw(), `"violence":{"filtered":false,"severity":"safe"}`) {
				t.Errorf("choice content_filter_results: %s", cc.Choices[0].JSON.ExtraFields["content_filter_results"].Raw())
			}
			if raw.Header.Get("x-ms-region") == "" || raw.Header.Get("apim-request-id") == "" {
				t.Errorf("headers: %v", raw.Header)
			}
		})
	}
}

func TestOpenAIGoAzureChatStreaming(t *testing.T) {
	for name, client := range azureClients(t) {
		t.Run(name, func(t *testing.T) {
			stream := client.Chat.Completions.NewStreaming(context.Background(), openai.ChatCompletionNewParams{
				Model:         "gpt-4o-mini",
				Messages:      []openai.ChatCompletionMessageParamUnion{openai.UserMessage("sim:tokens=12 please")},
				StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
			})
			var acc openai.ChatCompletionAccumulator
			chunks, sawPromptFilter := 0, false
			for stream.Next() {
				ch := stream.Current()
				if chunks == 0 {
					sawPromptFilter = len(ch.Choices) == 0 && strings.Contains(ch.RawJSON(), `"prompt_filter_results":[{"prompt_index":0`)
				}
				chunks++
				acc.AddChunk(ch)
			}
			if err := stream.Err(); err != nil {
				t.Fatal(err)
			}
			if !sawPromptFilter {
				t.Error("first chunk must have empty choices and prompt_filter_results")
			}
			if len(acc.Choices) != 1 || acc.Choices[0].FinishReason != "stop" || len(strings.Fields(acc.Choices[0].Message.Content)) != 12 {
				t.Errorf("accumulated: %+v", acc.Choices)
			}
			if acc.Usage.CompletionTokens != 12 || acc.Usage.TotalTokens == 0 || acc.Model != "gpt-4o-mini-2024-07-18" || !strings.HasPrefix(acc.ID, "chatcmpl-") {
				t.Errorf("usage %+v model %q id %q", acc.Usage, acc.Model, acc.ID)
			}
		})
	}
}

func TestOpenAIGoAzureEmbeddingsCompletionsResponsesModels(t *testing.T) {
	for name, client := range azureClients(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			emb, err := client.Embeddings.New(ctx, openai.EmbeddingNewParams{
				Model: "text-embedding-3-small",
				Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"a", "b"}},
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(emb.Data) != 2 || len(emb.Data[0].Embedding) != 1536 || emb.Usage.PromptTokens == 0 || emb.Data[1].Index != 1 {
				t.Errorf("embeddings: %d vectors, dims %d, usage %+v", len(emb.Data), len(emb.Data[0].Embedding), emb.Usage)
			}
			emb2, err := client.Embeddings.New(ctx, openai.EmbeddingNewParams{
				Model: "text-embedding-3-small", Input: openai.EmbeddingNewParamsInputUnion{OfString: openai.String("a")},
				Dimensions: openai.Int(256), EncodingFormat: openai.EmbeddingNewParamsEncodingFormatFloat,
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(emb2.Data[0].Embedding) != 256 {
				t.Errorf("dimensions 256: got %d", len(emb2.Data[0].Embedding))
			}
			cmp, err := client.Completions.New(ctx, openai.CompletionNewParams{
				Model: "gpt-4o-mini", Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("Once upon")}, MaxTokens: openai.Int(5),
			})
			if err != nil {
				t.Fatal(err)
			}
			if cmp.Object != "text_completion" || cmp.Choices[0].Text == "" || cmp.Choices[0].FinishReason != "length" || cmp.Usage.CompletionTokens != 5 {
				t.Errorf("completion: %+v", cmp)
			}
			resp, err := client.Responses.New(ctx, responses.ResponseNewParams{
				Model: "gpt-4o", Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("Hi")},
			}, option.WithQuery("api-version", "2025-04-01-preview"))
			if err != nil {
				t.Fatal(err)
			}
			if resp.Status != "completed" || resp.OutputText() == "" || resp.Usage.OutputTokens == 0 || !strings.HasPrefix(resp.ID, "resp_") {
				t.Errorf("response: status %q text %q usage %+v", resp.Status, resp.OutputText(), resp.Usage)
			}
			page, err := client.Models.List(ctx)
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, m := range page.Data {
				found = found || m.ID == "gpt-4o-2024-11-20"
			}
			if !found {
				t.Errorf("models list lacks gpt-4o-2024-11-20: %d models", len(page.Data))
			}
		})
	}
}

func TestOpenAIGoAzureErrors(t *testing.T) {
	s := start(t, sim.Config{Regions: sim.DefaultRegions("eastus")})
	client := openai.NewClient(azure.WithEndpoint(s.Region("eastus").URL(), "2024-10-21"), azure.WithAPIKey(key),
		azure.WithUnsafeAllowHTTP(), option.WithMaxRetries(0))
	ctx := context.Background()
	_, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "nope",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("x")}})
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 404 || apiErr.Code != "DeploymentNotFound" {
		t.Errorf("unknown deployment: %v", err)
	}
	_, err = client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "gpt-4o",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("tell me sim:content_filter")}})
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || apiErr.Code != "content_filter" || apiErr.Param != "prompt" {
		t.Errorf("content filter: %v", err)
	}
	bad := openai.NewClient(azure.WithEndpoint(s.Region("eastus").URL(), "2024-10-21"), azure.WithAPIKey("wrong"),
		azure.WithUnsafeAllowHTTP(), option.WithMaxRetries(0))
	_, err = bad.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "gpt-4o",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("x")}})
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 401 || apiErr.Code != "401" {
		t.Errorf("bad key: %v", err)
	}
}

// The v1 surface with the plain OpenAI client: the key travels as Authorization: Bearer.
func TestOpenAIGoV1Surface(t *testing.T) {
	s := start(t, sim.Config{Regions: sim.DefaultRegions("swedencentral")})
	client := openai.NewClient(option.WithBaseURL(s.Region("swedencentral").URL()+"/openai/v1/"), option.WithAPIKey(key))
	var raw *http.Response
	cc, err := client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model: "gpt-4o", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
	}, option.WithResponseInto(&raw))
	if err != nil {
		t.Fatal(err)
	}
	if cc.Choices[0].Message.Content == "" || raw.Header.Get("x-ms-region") != "Sweden Central" {
		t.Errorf("v1 chat: %+v region %q", cc.Choices, raw.Header.Get("x-ms-region"))
	}
}

// Entra tokens go through VerifyToken, with azure.WithTokenCredential over TLS.
func TestOpenAIGoTokenCredential(t *testing.T) {
	s := start(t, sim.Config{TLS: true, Regions: sim.DefaultRegions("eastus"), VerifyToken: func(tok string) bool { return tok == "entra-ok" }})
	client := openai.NewClient(
		azure.WithEndpoint(s.Region("eastus").URL(), "2024-10-21"),
		azure.WithTokenCredential(staticToken("entra-ok")),
		option.WithHTTPClient(&http.Client{Transport: &http.Transport{TLSClientConfig: s.TLSConfig()}}),
	)
	cc, err := client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model: "gpt-4o", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if cc.Choices[0].Message.Content == "" {
		t.Error("empty answer")
	}
	_ = time.Second
}

type staticToken string

func (s staticToken) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: string(s), ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// A cut stream is an error for the client, never a clean end.
func TestOpenAIGoSeesCutStream(t *testing.T) {
	s := start(t, sim.Config{Regions: sim.DefaultRegions("eastus")})
	if err := s.Fault("eastus", sim.Fault{Mode: sim.ModeCutStream, AfterEvents: 4}); err != nil {
		t.Fatal(err)
	}
	client := openai.NewClient(azure.WithEndpoint(s.Region("eastus").URL(), "2024-10-21"), azure.WithAPIKey(key), azure.WithUnsafeAllowHTTP())
	for _, tokens := range []string{"sim:tokens=50", "sim:tokens=1"} { // cut mid-answer, and before [DONE]
		stream := client.Chat.Completions.NewStreaming(context.Background(), openai.ChatCompletionNewParams{
			Model: "gpt-4o", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(tokens)},
		})
		n := 0
		for stream.Next() {
			n++
		}
		if stream.Err() == nil {
			t.Fatalf("%s: stream ended cleanly after %d chunks", tokens, n)
		}
		if n > 4 {
			t.Errorf("%s: %d chunks arrived, want at most 4", tokens, n)
		}
	}
	if got := s.Region("eastus").Stats().StreamsCut; got != 2 {
		t.Errorf("streams_cut = %d, want 2", got)
	}
}

func TestOpenAIGoResponsesStreaming(t *testing.T) {
	s := start(t, sim.Config{Regions: sim.DefaultRegions("eastus")})
	client := openai.NewClient(option.WithBaseURL(s.Region("eastus").URL()+"/openai/v1/"), option.WithAPIKey(key))
	stream := client.Responses.NewStreaming(context.Background(), responses.ResponseNewParams{
		Model: "gpt-4o", Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("sim:tokens=6")},
	})
	var text strings.Builder
	var done *responses.Response
	for stream.Next() {
		ev := stream.Current()
		switch ev.Type {
		case "response.output_text.delta":
			text.WriteString(ev.Delta)
		case "response.completed":
			r := ev.Response
			done = &r
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if done == nil || done.Status != "completed" || done.OutputText() != text.String() || len(strings.Fields(text.String())) != 6 || done.Usage.OutputTokens != 6 {
		t.Fatalf("responses stream: text %q final %+v", text.String(), done)
	}
}

// Many concurrent callers, streaming and not, as the gateway's benchmarks and the demo load the simulator.
func TestConcurrentLoad(t *testing.T) {
	s := start(t, sim.Config{Regions: sim.DefaultRegions("eastus")})
	client := openai.NewClient(azure.WithEndpoint(s.Region("eastus").URL(), "2024-10-21"), azure.WithAPIKey(key), azure.WithUnsafeAllowHTTP())
	const n = 200
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			params := openai.ChatCompletionNewParams{Model: "gpt-4o-mini", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("sim:tokens=20")}}
			if i%2 == 0 {
				_, err := client.Chat.Completions.New(context.Background(), params)
				errs <- err
				return
			}
			stream := client.Chat.Completions.NewStreaming(context.Background(), params)
			for stream.Next() {
			}
			errs <- stream.Err()
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	st := s.Region("eastus").Stats()
	if st.ByStatus[200] != n || st.Streams != n/2 || st.CompletionTokens != 20*n {
		t.Fatalf("counters after load: %+v", st)
	}
}

func BenchmarkChat(b *testing.B) {
	s, err := sim.Start(sim.Config{APIKey: key, Regions: sim.DefaultRegions("eastus")})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	c := s.Client()
	url := s.Region("eastus").URL() + "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
	for _, stream := range []bool{false, true} {
		body := fmt.Sprintf(`{"messages":[{"role":"user","content":"sim:tokens=20"}],"stream":%v}`, stream)
		b.Run(fmt.Sprintf("stream=%v", stream), func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequest("POST", url, strings.NewReader(body))
					req.Header.Set("api-key", key)
					req.Header.Set("Content-Type", "application/json")
					resp, err := c.Do(req)
					if err != nil {
						b.Fatal(err)
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			})
		})
	}
}
