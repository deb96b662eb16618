package failover

import (
	"fmt"
	"io"
	"strings"
	"testing"
)

// chatChunks is a chat stream of text in the given pieces: a role chunk, one chunk per piece, a finish
// chunk, a usage chunk and [DONE]. Each event is returned without its blank line.
func chatChunks(id, fp string, pieces []string) []string {
	ev := func(delta, finish string) string {
		return fmt.Sprintf(`data: {"choices":[{"delta":%s,"finish_reason":%s,"index":0,"logprobs":null}],"created":1700000000,"id":%q,"model":"gpt-4o-2024-11-20","object":"chat.completion.chunk","system_fingerprint":%q}`,
			delta, finish, id, fp)
	}
	out := []string{`data: {"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":[]}`,
		ev(`{"content":"","role":"assistant"}`, "null")}
	for _, p := range pieces {
		out = append(out, ev(fmt.Sprintf(`{"content":%q}`, p), "null"))
	}
	out = append(out, ev(`{}`, `"stop"`),
		fmt.Sprintf(`data: {"choices":[],"created":1700000000,"id":%q,"model":"gpt-4o-2024-11-20","object":"chat.completion.chunk","system_fingerprint":%q,"usage":{"completion_tokens":9,"prompt_tokens":3,"total_tokens":12}}`, id, fp),
		"data: [DONE]")
	return out
}

// splitEvery cuts s into pieces of n characters.
func splitEvery(s string, n int) []string {
	r := []rune(s)
	var out []string
	for len(r) > n {
		out = append(out, string(r[:n]))
		r = r[n:]
	}
	return append(out, string(r))
}

// spliceOffline resumes a stream of which the caller got first with the whole stream second, without
// sockets, and returns what the caller gets after the splice.
func spliceOffline(t *testing.T, first []string, second []string) (string, string, string) {
	t.Helper()
	a := testAttempt(t)
	tk := &choicesTracker{want: 1, log: newReplayLog(1, false)}
	for _, ev := range first {
		tk.event(parseEvent([]byte(ev)), false)
	}
	b := &resumingBody{rt: a.rt, track: tk}
	raw := strings.Join(second, "\n\n") + "\n\n"
	src := newStreamBody(testAttempt(t), io.NopCloser(strings.NewReader(raw)), 200, 0, nil, newTracker("chat/completions", 1))
	sp := newSplicer(b, src, false, "eastus", "westus")
	if o, why := sp.prime(); o != ResumeOK {
		return "", o, why
	}
	sp.adopt()
	rest, err := io.ReadAll(sp)
	if err != nil {
		t.Fatalf("after the splice: %v", err)
	}
	return string(rest), ResumeOK, ""
}

// TestSpliceEveryCut: whatever the point where the first region broke, and however differently the new
// region cuts the same answer into chunks, the caller ends up with the whole answer, once, with the
// first region's identity; an answer that differs anywhere in what the caller has is never spliced.
func TestSpliceEveryCut(t *testing.T) {
	const text = "Rivers carve valleys over millennia, shaping the land — and the people (ünïcode too)."
	first := chatChunks("chatcmpl-east", "fp_east", strings.SplitAfter(text, " "))
	for _, chunking := range []int{1, 3, 7, 200} {
		second := chatChunks("chatcmpl-west", "fp_west", splitEvery(text, chunking))
		for cut := 2; cut < len(first)-1; cut++ { // at least the role chunk, at most up to the finish chunk
			rest, outcome, why := spliceOffline(t, first[:cut], second)
			if outcome != ResumeOK {
				t.Fatalf("chunking %d, cut %d: %s: %s", chunking, cut, outcome, why)
			}
			got, _, _ := streamText(strings.Join(first[:cut], "\n\n") + "\n\n" + rest)
			if got != text {
				t.Fatalf("chunking %d, cut %d: the caller has %q", chunking, cut, got)
			}
			if !strings.HasPrefix(rest, ": lifeline resumed eastus -> westus\n\n") || !strings.HasSuffix(rest, "data: [DONE]\n\n") {
				t.Fatalf("chunking %d, cut %d: %q", chunking, cut, rest)
			}
			if strings.Contains(rest, "chatcmpl-west") || strings.Contains(rest, "fp_west") || strings.Contains(rest, "prompt_filter_results") {
				t.Fatalf("chunking %d, cut %d: the new region's identity leaked: %q", chunking, cut, rest)
			}
		}
		// Differences anywhere in what the caller had: never spliced.
		for _, other := range []string{"X" + text[1:], text[:20] + "X" + text[21:], text[:len(text)-2] + "!."} {
			second := chatChunks("chatcmpl-west", "fp_west", splitEvery(other, chunking))
			for cut := 3; cut < len(first)-2; cut++ {
				had, _, _ := streamText(strings.Join(first[:cut], "\n\n") + "\n\n")
				if strings.HasPrefix(other, had) {
					continue // the difference lies after what the caller has: a consistent continuation
				}
				if _, outcome, _ := spliceOffline(t, first[:cut], second); outcome != ResumeDiverged {
					t.Fatalf("chunking %d, cut %d, answer %q: %s, want diverged", chunking, cut, other, outcome)
				}
			}
		}
	}
	// A shorter answer that stops inside what the caller has.
	short := chatChunks("chatcmpl-west", "fp_west", []string{"Rivers "})
	if _, outcome, _ := spliceOffline(t, first[:6], short); outcome != ResumeDiverged {
		t.Errorf("a shorter answer: %s", outcome)
	}
}

// TestSpliceGarbage: what a resume's new region sends is input like any region's answer: broken JSON, a
// choice the caller never had, output the engine cannot compare, an answer that ends early or an event too
// large to hold are never spliced, and never crash the engine.
func TestSpliceGarbage(t *testing.T) {
	first := chatChunks("chatcmpl-east", "fp_east", []string{"Hello ", "there ", "friend."})
	good := chatChunks("chatcmpl-west", "fp_west", []string{"Hello ", "there ", "friend."})
	for name, tc := range map[string]struct {
		second []string
		want   string
	}{
		"broken JSON":         {append(good[:2:2], `data: {"choices":[{"delta":{"content":"Hel`), ResumeFailed},
		"unknown choice":      {append(good[:2:2], `data: {"choices":[{"delta":{"content":"Hello "},"index":7}],"id":"x"}`), ResumeDiverged},
		"audio output":        {append(good[:2:2], `data: {"choices":[{"delta":{"audio":{"data":"AAAA"}},"index":0}],"id":"x"}`), ResumeFailed},
		"ends early":          {append(good[:3:3], "data: [DONE]"), ResumeDiverged},
		"no data at all":      {[]string{": only a comment", "event: ping"}, ResumeFailed},
		"event too large":     {append(good[:2:2], "data: "+strings.Repeat("x", maxHeldEvent+1)), ResumeFailed},
		"not an event stream": {[]string{"<html>busy</html>"}, ResumeFailed},
	} {
		t.Run(name, func(t *testing.T) {
			rest, outcome, why := spliceOffline(t, first[:4], tc.second)
			if outcome != tc.want || rest != "" {
				t.Errorf("outcome %s (%s), rest %q; want %s and nothing spliced", outcome, why, rest, tc.want)
			}
		})
	}
}
