package gateway_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/responses"

	"github.com/lifeline-sre/lifeline/config"
)

func newResponse(t *testing.T, c openai.Client, prev, say string) (*responses.Response, *http.Response, error) {
	t.Helper()
	var raw *http.Response
	p := responses.ResponseNewParams{Model: "gpt-4o", Input: responses.ResponseNewParamsInputUnion{OfString: openai.String(say)}}
	if prev != "" {
		p.PreviousResponseID = openai.String(prev)
	}
	r, err := c.Responses.New(context.Background(), p, withRaw(&raw))
	return r, raw, err
}

// With responses.rebuild, a follow-up whose region is down continues correctly in another region, from the items
// the gateway kept; the new response's id then belongs to that region.
func TestResponsesRebuild(t *testing.T) {
	for _, m := range clientModes {
		t.Run(m.name, func(t *testing.T) {
			h := startHarness(t, harnessOpts{mutate: func(c *config.Config) { c.Responses.Rebuild = true }})
			c := m.client(h)
			first, _, err := newResponse(t, c, "", "My name is Ada.")
			if err != nil {
				t.Fatal(err)
			}
			second, _, err := newResponse(t, c, first.ID, "I live in Lisbon.")
			if err != nil {
				t.Fatal(err)
			}
			// The same third turn without an outage, for comparison.
			control, _, err := newResponse(t, c, second.ID, "What is my name?")
			if err != nil {
				t.Fatal(err)
			}
			h.admin("POST", "/admin/regions/eastus/disable", adminKey)
			third, raw, err := newResponse(t, c, second.ID, "What is my name?")
			if err != nil {
				t.Fatalf("follow-up with its region down: %v", err)
			}
			if raw.Header.Get("x-lifeline-region") != "westus" || raw.Header.Get("X-Lifeline-Rebuilt-From") != "eastus" {
				t.Fatalf("rebuilt in %q from %q", raw.Header.Get("x-lifeline-region"), raw.Header.Get("X-Lifeline-Rebuilt-From"))
			}
			if third.Usage.InputTokens < control.Usage.InputTokens {
				t.Errorf("rebuilt input tokens %d < %d without an outage: history lost", third.Usage.InputTokens, control.Usage.InputTokens)
			}
			if third.PreviousResponseID != "" {
				t.Errorf("the region got previous_response_id %q", third.PreviousResponseID)
			}
			h.admin("POST", "/admin/regions/eastus/enable", adminKey)
			// The conversation goes on in westus, where the rebuilt response is stored.
			fourth, raw, err := newResponse(t, c, third.ID, "And where do I live?")
			if err != nil || raw.Header.Get("x-lifeline-region") != "westus" || raw.Header.Get("X-Lifeline-Rebuilt-From") != "" {
				t.Fatalf("next turn: %v %v", err, raw.Header)
			}
			if fourth.Usage.InputTokens <= third.Usage.InputTokens {
				t.Errorf("the next turn does not carry the rebuilt history (%d <= %d)", fourth.Usage.InputTokens, third.Usage.InputTokens)
			}
			// And it can be rebuilt again, back in eastus, history complete.
			h.admin("POST", "/admin/regions/westus/disable", adminKey)
			fifth, raw, err := newResponse(t, c, fourth.ID, "Thanks.")
			if err != nil || raw.Header.Get("x-lifeline-region") != "eastus" || raw.Header.Get("X-Lifeline-Rebuilt-From") != "westus" {
				t.Fatalf("rebuilt back: %v %v", err, raw.Header)
			}
			if fifth.Usage.InputTokens <= fourth.Usage.InputTokens {
				t.Errorf("history lost on the second rebuild")
			}
		})
	}
}

// Without responses.rebuild nothing is kept and the follow-up gets the 503; with it, a previous response whose items
// were not kept (made before, or elsewhere) gets the 503 too, never a conversation with a hole.
func TestResponsesRebuildOffOrUnknown(t *testing.T) {
	for _, on := range []bool{false, true} {
		h := startHarness(t, harnessOpts{mutate: func(c *config.Config) { c.Responses.Rebuild = on }})
		c := clientModes[1].client(h)
		first, _, err := newResponse(t, c, "", "hi")
		if err != nil {
			t.Fatal(err)
		}
		// A response made directly in eastus: the gateway never saw its items.
		req, _ := http.NewRequest("POST", h.sim.Region("eastus").URL()+"/openai/v1/responses", strings.NewReader(`{"model":"gpt-4o","input":"direct"}`))
		req.Header.Set("api-key", regionKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var direct struct{ ID string }
		json.NewDecoder(resp.Body).Decode(&direct)
		resp.Body.Close()
		if _, err := c.Responses.Get(context.Background(), direct.ID, responses.ResponseGetParams{}); err != nil {
			t.Fatal(err)
		}
		h.admin("POST", "/admin/regions/eastus/disable", adminKey)
		_, _, err = newResponse(t, c, first.ID, "again")
		if st, _ := apiStatus(err); on && st != 200 && err != nil || !on && st != 503 {
			t.Errorf("rebuild=%v: kept-items follow-up: %v", on, err)
		}
		_, _, err = newResponse(t, c, direct.ID, "again")
		if st, body := apiStatus(err); st != 503 || !strings.Contains(body, direct.ID) {
			t.Errorf("rebuild=%v: follow-up of a response whose items were not kept: %d %s", on, st, body)
		}
	}
}

// A streamed response's items are kept from its response.completed event.
func TestResponsesRebuildStreamed(t *testing.T) {
	h := startHarness(t, harnessOpts{mutate: func(c *config.Config) { c.Responses.Rebuild = true }})
	resp, body := h.do("POST", "/v1/responses", `{"model":"gpt-4o","input":"My name is Ada.","stream":true}`)
	wantStatus(t, resp, body, 200)
	i := strings.Index(body, `"id":"resp_`)
	if i < 0 {
		t.Fatalf("no id in %s", body)
	}
	id := body[i+6 : i+6+53]
	h.admin("POST", "/admin/regions/eastus/disable", adminKey)
	resp, body = h.do("POST", "/v1/responses", `{"model":"gpt-4o","input":"What is my name?","previous_response_id":"`+id+`","stream":true}`)
	wantStatus(t, resp, body, 200)
	if resp.Header.Get("X-Lifeline-Rebuilt-From") != "eastus" || !strings.Contains(body, "response.completed") {
		t.Errorf("streamed follow-up: %v\n%s", resp.Header, body)
	}
	_ = io.Discard
}
