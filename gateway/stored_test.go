package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"

	"github.com/lifeline-sre/lifeline/sim"
)

// regionOf returns the x-lifeline-region of the last response an openai-go call got.
func withRaw(raw **http.Response) option.RequestOption { return option.WithResponseInto(raw) }

func apiStatus(err error) (int, string) {
	var e *openai.Error
	if errors.As(err, &e) {
		return e.StatusCode, e.RawJSON()
	}
	return 0, ""
}

// A stored response is created, retrieved, chained, listed and deleted through the gateway on every client shape;
// with its region disabled a follow-up gets 503 naming the response and the region, never an answer from a region
// that does not hold it.
func TestStoredResponseAffinity(t *testing.T) {
	for _, m := range clientModes {
		t.Run(m.name, func(t *testing.T) {
			h := startHarness(t, harnessOpts{})
			c := m.client(h)
			ctx := context.Background()
			var raw *http.Response
			first, err := c.Responses.New(ctx, responses.ResponseNewParams{Model: "gpt-4o",
				Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("My name is Ada.")}}, withRaw(&raw))
			if err != nil {
				t.Fatal(err)
			}
			if got := raw.Header.Get("x-lifeline-region"); got != "eastus" {
				t.Fatalf("created in %q, want eastus", got)
			}
			got, err := c.Responses.Get(ctx, first.ID, responses.ResponseGetParams{}, withRaw(&raw))
			if err != nil || got.ID != first.ID || raw.Header.Get("x-lifeline-region") != "eastus" {
				t.Fatalf("retrieve: %v %v", err, raw.Header)
			}
			items, err := c.Responses.InputItems.List(ctx, first.ID, responses.InputItemListParams{})
			if err != nil || len(items.Data) != 1 {
				t.Fatalf("input items: %v %+v", err, items)
			}
			second, err := c.Responses.New(ctx, responses.ResponseNewParams{Model: "gpt-4o", PreviousResponseID: openai.String(first.ID),
				Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("What is my name?")}}, withRaw(&raw))
			if err != nil || raw.Header.Get("x-lifeline-region") != "eastus" {
				t.Fatalf("follow-up: %v", err)
			}
			if second.Usage.InputTokens <= first.Usage.InputTokens {
				t.Errorf("follow-up input tokens %d: the first turn is not in its context", second.Usage.InputTokens)
			}

			// eastus is disabled: the follow-up must not go to westus, which never saw the first response.
			h.admin("POST", "/admin/regions/eastus/disable", adminKey)
			_, err = c.Responses.New(ctx, responses.ResponseNewParams{Model: "gpt-4o", PreviousResponseID: openai.String(second.ID),
				Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("And again?")}}, withRaw(&raw))
			st, body := apiStatus(err)
			if st != 503 || !strings.Contains(body, "response "+second.ID+" is stored in region eastus") || !strings.Contains(body, "object_region_unavailable") {
				t.Fatalf("follow-up with its region disabled: %d %s (%v)", st, body, err)
			}
			if raw.Header.Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
			if _, err := c.Responses.Get(ctx, first.ID, responses.ResponseGetParams{}); func() int { s, _ := apiStatus(err); return s }() != 503 {
				t.Errorf("retrieve with its region disabled: %v", err)
			}
			// A new conversation still works in westus.
			if _, err := c.Responses.New(ctx, responses.ResponseNewParams{Model: "gpt-4o",
				Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("hi")}}, withRaw(&raw)); err != nil || raw.Header.Get("x-lifeline-region") != "westus" {
				t.Errorf("new response with eastus disabled: %v", err)
			}
			h.admin("POST", "/admin/regions/eastus/enable", adminKey)
			if err := c.Responses.Delete(ctx, first.ID); err != nil {
				t.Fatalf("delete: %v", err)
			}
			if _, err := c.Responses.Get(ctx, first.ID, responses.ResponseGetParams{}); func() int { s, _ := apiStatus(err); return s }() != 404 {
				t.Errorf("retrieve after delete: %v", err)
			}
		})
	}
}

// An id created directly in the secondary region (not through the gateway) is found by asking the regions, and the
// answer is remembered.
func TestStoredObjectLocated(t *testing.T) {
	h := startHarness(t, harnessOpts{})
	direct := strings.NewReader(`{"model":"gpt-4o","input":"made in westus"}`)
	req, _ := http.NewRequest("POST", h.sim.Region("westus").URL()+"/openai/v1/responses", direct)
	req.Header.Set("api-key", regionKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var made struct{ ID string }
	json.NewDecoder(resp.Body).Decode(&made)
	resp.Body.Close()
	before := h.sim.Region("westus").Stats().Requests

	resp2, body := h.do("GET", "/openai/v1/responses/"+made.ID, "")
	wantStatus(t, resp2, body, 200)
	if r := resp2.Header.Get("x-lifeline-region"); r != "westus" {
		t.Fatalf("answered by %q, want westus", r)
	}
	// Remembered: the next request goes straight to westus (one request there, none to eastus).
	eastBefore, westBefore := h.sim.Region("eastus").Stats().Requests, h.sim.Region("westus").Stats().Requests
	resp3, body := h.do("POST", "/v1/responses", `{"model":"gpt-4o","input":"again","previous_response_id":"`+made.ID+`"}`)
	wantStatus(t, resp3, body, 200)
	if resp3.Header.Get("x-lifeline-region") != "westus" || h.sim.Region("eastus").Stats().Requests != eastBefore ||
		h.sim.Region("westus").Stats().Requests != westBefore+1 {
		t.Errorf("follow-up: region %q, eastus +%d, westus +%d", resp3.Header.Get("x-lifeline-region"),
			h.sim.Region("eastus").Stats().Requests-eastBefore, h.sim.Region("westus").Stats().Requests-westBefore)
	}
	_ = before

	// An id no region holds: the most preferred region's own 404.
	resp4, body := h.do("GET", "/openai/v1/responses/resp_doesnotexist", "")
	wantStatus(t, resp4, body, 404)
	resp5, body := h.do("POST", "/openai/v1/responses", `{"model":"gpt-4o","input":"x","previous_response_id":"resp_doesnotexist"}`)
	if resp5.StatusCode != 400 || !strings.Contains(body, "previous_response_not_found") {
		t.Errorf("follow-up of an unknown response: %d %s", resp5.StatusCode, body)
	}
	// An unknown id while a region cannot answer: 503 naming it, not a false 404.
	h.fault("westus", sim.Fault{Mode: "down"})
	resp6, body := h.do("GET", "/openai/v1/responses/resp_unknownelsewhere", "")
	if resp6.StatusCode != 503 || resp6.Header.Get("X-Lifeline-Unreached-Regions") != "westus" {
		t.Errorf("unknown id with westus down: %d %s %v", resp6.StatusCode, body, resp6.Header)
	}
}

// A file uploaded and a batch created from it stay in one region; lists merge every region.
func TestFilesAndBatches(t *testing.T) {
	for _, m := range clientModes {
		t.Run(m.name, func(t *testing.T) {
			h := startHarness(t, harnessOpts{simCfg: func(c *sim.Config) { c.FineTuneDuration = 200 * time.Millisecond }})
			c := m.client(h)
			ctx := context.Background()
			var raw *http.Response
			lines := `{"custom_id":"1","method":"POST","url":"/chat/completions","body":{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}}`
			f, err := c.Files.New(ctx, openai.FileNewParams{File: openai.File(strings.NewReader(lines), "batch.jsonl", "application/jsonl"),
				Purpose: openai.FilePurposeBatch}, withRaw(&raw))
			if err != nil {
				t.Fatal(err)
			}
			if raw.Header.Get("x-lifeline-region") != "eastus" {
				t.Fatalf("file in %q", raw.Header.Get("x-lifeline-region"))
			}
			// westus holds a file too, uploaded directly.
			other := uploadDirect(t, h.sim.Region("westus").URL())

			list, err := c.Files.List(ctx, openai.FileListParams{}, withRaw(&raw))
			if err != nil {
				t.Fatal(err)
			}
			ids := map[string]bool{}
			for _, x := range list.Data {
				ids[x.ID] = true
			}
			if !ids[f.ID] || !ids[other] || raw.Header.Get("x-lifeline-region") != "eastus,westus" {
				t.Errorf("merged list: %v, regions %q", ids, raw.Header.Get("x-lifeline-region"))
			}

			// The batch goes where its input file is, whatever the region order says.
			h.admin("POST", "/admin/regions/eastus/disable", adminKey)
			_, err = c.Batches.New(ctx, openai.BatchNewParams{InputFileID: f.ID, Endpoint: openai.BatchNewParamsEndpointV1ChatCompletions,
				CompletionWindow: openai.BatchNewParamsCompletionWindow24h})
			if st, body := apiStatus(err); st != 503 || !strings.Contains(body, "file "+f.ID+" is stored in region eastus") {
				t.Fatalf("batch with the file's region disabled: %d %s", st, body)
			}
			list, err = c.Files.List(ctx, openai.FileListParams{}, withRaw(&raw))
			if err != nil || raw.Header.Get("X-Lifeline-Unreached-Regions") != "eastus" || len(list.Data) != 1 {
				t.Errorf("list with eastus disabled: %v %v %d", err, raw.Header, len(list.Data))
			}
			h.admin("POST", "/admin/regions/eastus/enable", adminKey)
			b, err := c.Batches.New(ctx, openai.BatchNewParams{InputFileID: f.ID, Endpoint: openai.BatchNewParamsEndpointV1ChatCompletions,
				CompletionWindow: openai.BatchNewParamsCompletionWindow24h}, withRaw(&raw))
			if err != nil || raw.Header.Get("x-lifeline-region") != "eastus" {
				t.Fatalf("batch: %v", err)
			}
			eventually(t, "the batch to complete", 10*time.Second, func() bool {
				got, err := c.Batches.Get(ctx, b.ID)
				return err == nil && got.Status == openai.BatchStatusCompleted
			})
			got, _ := c.Batches.Get(ctx, b.ID)
			content, err := c.Files.Content(ctx, got.OutputFileID)
			if err != nil {
				t.Fatal(err)
			}
			out, _ := io.ReadAll(content.Body)
			content.Body.Close()
			if !strings.Contains(string(out), `"custom_id":"1"`) {
				t.Errorf("batch output: %s", out)
			}
		})
	}
}

func uploadDirect(t *testing.T, base string) string {
	t.Helper()
	body := "--b\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"w.jsonl\"\r\n\r\n{\"custom_id\":\"w\"}\r\n--b--\r\n"
	req, _ := http.NewRequest("POST", base+"/openai/v1/files", strings.NewReader(body))
	req.Header.Set("api-key", regionKey)
	req.Header.Set("Content-Type", "multipart/form-data; boundary=b")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var f struct{ ID string }
	json.NewDecoder(resp.Body).Decode(&f)
	if f.ID == "" {
		t.Fatalf("direct upload: %d", resp.StatusCode)
	}
	return f.ID
}

// Bad input on stored routes: odd ids never reach a region; objects in two regions cannot be combined.
func TestStoredBadInput(t *testing.T) {
	h := startHarness(t, harnessOpts{})
	for _, c := range []struct {
		method, path, body string
		status             int
	}{
		{"GET", "/openai/v1/responses/" + strings.Repeat("x", 200), "", 404},
		{"GET", "/openai/v1/files/a%2Fb", "", 404},
		{"GET", "/openai/v1/files/../models", "", 404},
		{"POST", "/openai/v1/responses", `{"model":"nope","input":"x"}`, 404},
		{"DELETE", "/openai/v1/batches/batch_1", "", 405},
		{"GET", "/openai/v1/conversations", "", 405},
	} {
		resp, body := h.do(c.method, c.path, c.body)
		if resp.StatusCode != c.status {
			t.Errorf("%s %s: %d %s, want %d", c.method, c.path, resp.StatusCode, body, c.status)
		}
	}
	before := h.sim.Region("eastus").Stats().Requests + h.sim.Region("westus").Stats().Requests
	h.do("GET", "/openai/v1/responses/"+strings.Repeat("x", 200), "")
	if after := h.sim.Region("eastus").Stats().Requests + h.sim.Region("westus").Stats().Requests; after != before {
		t.Errorf("an invalid id reached the regions (%d requests)", after-before)
	}
	e := uploadDirect(t, h.sim.Region("eastus").URL())
	w := uploadDirect(t, h.sim.Region("westus").URL())
	resp, body := h.do("POST", "/openai/v1/vector_stores", `{"name":"kb","file_ids":["`+e+`","`+w+`"]}`)
	if resp.StatusCode != 409 || !strings.Contains(body, "objects_in_different_regions") {
		t.Errorf("files of two regions: %d %s", resp.StatusCode, body)
	}
}
