package sim

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strings"
)

// Answer modes: what text a region generates for a prompt.
const (
	// AnswersRegion (the default): "Hello from East US! This is gpt-4o answering: ...". The same prompt gets the
	// same text from one region every time, and a different text from each region.
	AnswersRegion = "region"
	// AnswersDeterministic: the text depends on the prompt only, so every region gives the same answer to the
	// same prompt, as a model at temperature 0 with a fixed seed would. A stream restarted in another region
	// repeats what the first one sent.
	AnswersDeterministic = "deterministic"
	// AnswersRandom: a different text for every request (drawn from the seeded source), as sampling gives.
	AnswersRandom = "random"
)

// answersMarker in a prompt picks the answer mode of one request: "sim:answers=random".
const answersMarker = "sim:answers="

func validAnswers(mode string) error {
	switch mode {
	case "", AnswersRegion, AnswersDeterministic, AnswersRandom:
		return nil
	}
	return fmt.Errorf("answers %q: use region, deterministic or random", mode)
}

// SetAnswers sets the region's answer mode ("" is the simulator's default).
func (r *Region) SetAnswers(mode string) error {
	if err := validAnswers(mode); err != nil {
		return err
	}
	r.mu.Lock()
	r.answers = mode
	r.mu.Unlock()
	return nil
}

// Answers returns the region's answer mode.
func (r *Region) Answers() string {
	r.mu.RLock()
	mode := r.answers
	r.mu.RUnlock()
	if mode == "" {
		mode = r.sim.cfg.Answers
	}
	if mode == "" {
		mode = AnswersRegion
	}
	return mode
}

// answerMode is the mode of one request: the prompt's marker, else the region's.
func (c *call) answerMode(prompt string) string {
	if i := strings.Index(prompt, answersMarker); i >= 0 {
		rest := prompt[i+len(answersMarker):]
		for _, m := range [...]string{AnswersDeterministic, AnswersRandom, AnswersRegion} {
			if strings.HasPrefix(rest, m) {
				return m
			}
		}
	}
	return c.r.Answers()
}

// vocabulary is what deterministic and random answers are made of.
var vocabulary = strings.Fields(`the a region answer stream model token failover continuity request client
gateway latency network service deployment quota retry breaker probe hedge resume event chunk text reply
quickly slowly clearly always never often here there now then because while after before and but or so
blue green amber river mountain cloud harbor signal beacon anchor compass lantern bridge garden orbit`)

// defaultWords is the answer to a prompt without sim:tokens, in the request's answer mode; choice k of several
// says something else than choice 0, as sampling n answers does.
func (c *call) defaultWords(prompt, last string, k int) []string {
	if len(last) > 80 {
		last = last[:80]
	}
	last = strings.Join(strings.Fields(last), " ")
	variant := ""
	if k > 0 {
		variant = fmt.Sprintf(" (take %d)", k+1)
	}
	switch c.answerMode(prompt) {
	case AnswersDeterministic:
		h := fnv.New64a()
		h.Write([]byte(prompt))
		rng := rand.New(rand.NewPCG(h.Sum64(), 0xa5+uint64(k)))
		return strings.SplitAfter(fmt.Sprintf("You said%s: %q. %s.", variant, last, pickWords(rng.IntN, 12)), " ")
	case AnswersRandom:
		return strings.SplitAfter(pickWords(c.r.sim.intN, 8+c.r.sim.intN(8))+".", " ")
	}
	text := fmt.Sprintf("Hello from %s! This is %s answering%s: %q.", c.r.display, c.dep.Name, variant, last)
	return strings.SplitAfter(text, " ")
}

// pickWords joins n words of the vocabulary chosen by intN, the first capitalised.
func pickWords(intN func(int) int, n int) string {
	words := make([]string, n)
	for i := range words {
		words[i] = vocabulary[intN(len(vocabulary))]
	}
	words[0] = strings.ToUpper(words[0][:1]) + words[0][1:]
	return strings.Join(words, " ")
}

// randomWords returns n tokens drawn from the seeded source, for sim:tokens=N under random answers.
func (c *call) randomWords(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = " " + vocabulary[c.r.sim.intN(len(vocabulary))]
	}
	if n > 0 {
		out[0] = out[0][1:]
	}
	return out
}
