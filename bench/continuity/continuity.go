// Package continuity is the benchmark's continuity scenario (issue 12): for each gray failure a real regional
// incident brings, what the applications behind a gateway see while it lasts and how long the gateway takes to
// send traffic back to the primary once it heals.
//
// Every peer (Lifeline on its default policy, nginx and Portkey configured to fail over) sits in front of its own
// two simulated regions (`lifeline sim`: a primary and a secondary), so that the peers can be measured at the same
// time without sharing a region. The faults are set through the simulator's control API (POST
// /regions/{name}/fault) over real sockets, one after the other, on every peer's primary at the same moment.
// Traffic is open-loop (a fixed rate per peer, whatever the latency), as an application's users send it.
//
// Per fault and peer it reports the requests sent, the client-visible errors (after the retries openai-go makes by
// default, and on the first attempt, which is what a client without retries sees), the time added per request while
// the fault lasts (against the same peer's healthy baseline just before), and the time to recover: from the heal
// to the first answer from the primary, and to the start of a run of answers all from the primary.
package continuity

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Duration is a time.Duration read from and written to JSON as a Go duration string ("5s").
type Duration time.Duration

// MarshalJSON writes "5s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads "5s".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: want a string such as \"5s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// D is the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Plan is what to run: the peers, the faults and the timing.
type Plan struct {
	Peers []Peer `json:"peers"`
	// Faults to run, by name (Faults()); empty: every one.
	Faults []string `json:"faults,omitempty"`
	// Baseline is the healthy traffic before each fault (the reference for the added time).
	Baseline Duration `json:"baseline"`
	// Fault is how long a fault lasts (flap and throttle_all have their own lengths).
	Fault Duration `json:"fault"`
	// Flap is the whole flap (outage FlapDown, then healthy FlapUp, repeated to fill Flap).
	Flap     Duration `json:"flap"`
	FlapDown Duration `json:"flap_down"`
	FlapUp   Duration `json:"flap_up"`
	// Throttle is how long every region answers 429 in throttle_all (issue 12: one second).
	Throttle Duration `json:"throttle"`
	// SlowFirstByte is the delay of slow_first_byte (issue 12: 8 s).
	SlowFirstByte Duration `json:"slow_first_byte"`
	// Recover is the longest wait after the heal for a peer to send all its traffic to the primary again.
	Recover Duration `json:"recover"`
	// Back is how many answers in a row from the primary count as "all traffic back".
	Back int `json:"back"`
	// Rate is the requests per second each peer gets.
	Rate float64 `json:"rate"`
	// Tokens is the answer length (the prompt's sim:tokens marker).
	Tokens int `json:"tokens"`
	// Timeout is the client's bound on one request (its whole stream included).
	Timeout Duration `json:"timeout"`
	// Retries is what the client retries as openai-go does by default (2); 0: none.
	Retries int `json:"retries"`
	// ContextWindow is the primary name's context window in the context_length fault (tokens); the fault's
	// prompts are twice as long, the baseline's far shorter.
	ContextWindow int `json:"context_window"`
	// Notes are said in the report, after the peers (what the harness saw that the figures do not show).
	Notes []string `json:"notes,omitempty"`
	// CA is a PEM file the client trusts for https:// peers; the simulators' control APIs are plain HTTP.
	CA string `json:"ca,omitempty"`
}

// Peer is one gateway in front of its own simulated regions.
type Peer struct {
	Name string `json:"name"`
	// URL receives every request (chat/completions; the model is also in the body).
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers"`
	// FaultHeaders replace Headers during one fault (Portkey's config for context_length names the fallback).
	FaultHeaders map[string]map[string]string `json:"fault_headers,omitempty"`
	// Control is the base URL of this peer's simulator control API; Primary and Secondary its region names.
	Control   string `json:"control"`
	Primary   string `json:"primary"`
	Secondary string `json:"secondary"`
	// RegionHeader names the response header that tells which region answered, and PrimaryValue is the
	// primary's value in it (x-lifeline-region: eastus; x-ms-region: East US).
	RegionHeader string `json:"region_header"`
	PrimaryValue string `json:"primary_value"`
	// Cannot says, per fault, why this peer cannot be configured to handle it (it is run anyway: the report
	// shows what its clients get).
	Cannot map[string]string `json:"cannot,omitempty"`
	// Config says how the peer is configured, for the report.
	Config string `json:"config,omitempty"`
	// Skip: why this peer cannot run here.
	Skip string `json:"skip,omitempty"`
}

// Fault is one gray failure of issue 12.
type Fault struct {
	Name   string
	What   string // for the report
	Stream bool   // the traffic is streamed
	// Answers is the simulator's answer mode named in every prompt: random (what sampling gives: a stream
	// restarted elsewhere says something else) or deterministic (temperature 0 with a seed, or a prefill model).
	Answers string
	// Long: the fault's requests have a prompt longer than the primary name's context window.
	Long bool
	// Heals: the fault ends and the time to recover means something (not for context_length).
	Heals bool
	// set returns the simulator faults to apply, per region role ("primary", "secondary").
	set func(p *Plan) map[string]map[string]any
	// length of the fault.
	length func(p *Plan) time.Duration
}

// Faults returns issue 12's faults in the order they run.
func Faults() []Fault {
	primary := func(f map[string]any) func(*Plan) map[string]map[string]any {
		return func(*Plan) map[string]map[string]any { return map[string]map[string]any{"primary": f} }
	}
	fault := func(p *Plan) time.Duration { return p.Fault.D() }
	return []Fault{
		{Name: "cut_stream", What: "the primary resets every stream after 3 events", Stream: true, Answers: "random", Heals: true,
			set: primary(map[string]any{"mode": "cut_stream", "after_events": 3}), length: fault},
		{Name: "cut_stream_deterministic", What: "as cut_stream, answers deterministic (temperature 0 and a seed): a resume can splice", Stream: true, Answers: "deterministic", Heals: true,
			set: primary(map[string]any{"mode": "cut_stream", "after_events": 3}), length: fault},
		{Name: "stall_stream", What: "the primary stops every stream after 3 events and holds the connection open", Stream: true, Answers: "random", Heals: true,
			set: primary(map[string]any{"mode": "stall_stream", "after_events": 3}), length: fault},
		{Name: "stall_stream_deterministic", What: "as stall_stream, answers deterministic", Stream: true, Answers: "deterministic", Heals: true,
			set: primary(map[string]any{"mode": "stall_stream", "after_events": 3}), length: fault},
		{Name: "blackhole_stream", What: "the primary reads streaming requests and never answers", Stream: true, Answers: "random", Heals: true,
			set: primary(map[string]any{"mode": "blackhole"}), length: fault},
		{Name: "blackhole", What: "the primary reads non-streaming requests and never answers", Answers: "random", Heals: true,
			set: primary(map[string]any{"mode": "blackhole"}), length: fault},
		{Name: "slow_first_byte", What: "the primary sends its headers at once and its first event after 8 s", Stream: true, Answers: "random", Heals: true,
			set: func(p *Plan) map[string]map[string]any {
				return map[string]map[string]any{"primary": {"mode": "slow_first_byte", "latency": p.SlowFirstByte.D().String()}}
			}, length: fault},
		{Name: "flap", What: "the primary is down, then up, in turns, for the whole flap", Answers: "random", Heals: true,
			set: func(p *Plan) map[string]map[string]any {
				return map[string]map[string]any{"primary": {"mode": "flap", "outage": "down", "down_for": p.FlapDown.D().String(),
					"up_for": p.FlapUp.D().String()}}
			}, length: func(p *Plan) time.Duration { return p.Flap.D() }},
		{Name: "no_done", What: "the primary ends every stream after finish_reason and usage, without data: [DONE]", Stream: true, Answers: "random", Heals: true,
			set: primary(map[string]any{"mode": "no_done"}), length: fault},
		{Name: "context_length", What: "prompts longer than gpt-4o's context window; gpt-4o-128k is the configured fallback", Answers: "random", Long: true,
			set: func(*Plan) map[string]map[string]any { return nil }, length: fault},
		{Name: "throttle_all", What: "every region answers 429 (Retry-After: 1) for one second", Answers: "random", Heals: true,
			set: func(*Plan) map[string]map[string]any {
				f := map[string]any{"mode": "throttle", "retry_after": "1s"}
				return map[string]map[string]any{"primary": f, "secondary": f}
			}, length: func(p *Plan) time.Duration { return p.Throttle.D() }},
	}
}

// controlHTTP calls the simulators' control APIs.
var controlHTTP = &http.Client{Timeout: 10 * time.Second}

// sim talks to one peer's simulator control API.
type sim struct {
	base   string
	client *http.Client
}

func (s sim) post(ctx context.Context, path string, body any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.base+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s%s: %s: %s", s.base, path, resp.Status, strings.TrimSpace(string(msg)))
	}
	return nil
}

func (s sim) fault(ctx context.Context, region string, f map[string]any) error {
	return s.post(ctx, "/regions/"+region+"/fault", f)
}

// prepare gives both regions the context_length fault's deployments: gpt-4o with a context window, and
// gpt-4o-128k without one.
func (s sim) prepare(ctx context.Context, p Peer, window int) error {
	for _, r := range []string{p.Primary, p.Secondary} {
		if err := s.fault(ctx, r, map[string]any{"mode": "clear"}); err != nil {
			return err
		}
		for _, d := range []map[string]any{
			{"name": "gpt-4o", "model": "gpt-4o", "version": "2024-11-20", "context_window": window},
			{"name": "gpt-4o-128k", "model": "gpt-4o", "version": "2024-11-20"},
		} {
			if err := s.post(ctx, "/regions/"+r+"/deployments", d); err != nil {
				return err
			}
		}
	}
	return nil
}

// Run runs the plan's faults one after the other, every peer at once, and returns the results.
func Run(ctx context.Context, p Plan, logf func(string, ...any)) (*Result, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	p = p.withDefaults()
	faults, err := p.selected()
	if err != nil {
		return nil, err
	}
	cl, err := newClient(p)
	if err != nil {
		return nil, err
	}
	res := &Result{Plan: p, Started: time.Now().UTC()}
	var peers []Peer
	for _, pe := range p.Peers {
		if pe.Skip != "" {
			res.Skipped = append(res.Skipped, Skipped{Peer: pe.Name, Why: pe.Skip})
			continue
		}
		s := sim{base: strings.TrimRight(pe.Control, "/"), client: controlHTTP}
		if err := s.prepare(ctx, pe, p.ContextWindow); err != nil {
			return nil, fmt.Errorf("%s: preparing the simulator: %w", pe.Name, err)
		}
		peers = append(peers, pe)
	}
	for _, f := range faults {
		logf("continuity: %s (%s)", f.Name, f.What)
		var wg sync.WaitGroup
		runs := make([]PeerRun, len(peers))
		for i, pe := range peers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				runs[i] = runFault(ctx, cl, p, pe, f, logf)
			}()
		}
		wg.Wait()
		for _, r := range runs {
			logf("continuity: %s %s: %s", f.Name, r.Peer, r.summary())
		}
		res.Faults = append(res.Faults, FaultResult{Name: f.Name, What: f.What, Stream: f.Stream, Heals: f.Heals, Runs: runs})
		if err := ctx.Err(); err != nil {
			return res, err
		}
	}
	res.Finished = time.Now().UTC()
	return res, nil
}

func (p Plan) withDefaults() Plan {
	def := func(d *Duration, v time.Duration) {
		if *d <= 0 {
			*d = Duration(v)
		}
	}
	def(&p.Baseline, 5*time.Second)
	def(&p.Fault, 20*time.Second)
	def(&p.Flap, 60*time.Second)
	def(&p.FlapDown, 5*time.Second)
	def(&p.FlapUp, 5*time.Second)
	def(&p.Throttle, time.Second)
	def(&p.SlowFirstByte, 8*time.Second)
	def(&p.Recover, 60*time.Second)
	def(&p.Timeout, 90*time.Second)
	if p.Back <= 0 {
		p.Back = 20
	}
	if p.Rate <= 0 {
		p.Rate = 8
	}
	if p.Tokens <= 0 {
		p.Tokens = 20
	}
	if p.ContextWindow <= 0 {
		p.ContextWindow = 400
	}
	return p
}

func (p Plan) selected() ([]Fault, error) {
	all := Faults()
	if len(p.Faults) == 0 {
		return all, nil
	}
	var out []Fault
	for _, name := range p.Faults {
		found := false
		for _, f := range all {
			if f.Name == name {
				out, found = append(out, f), true
			}
		}
		if !found {
			var names []string
			for _, f := range all {
				names = append(names, f.Name)
			}
			return nil, fmt.Errorf("fault %q is unknown (have %s)", name, strings.Join(names, ", "))
		}
	}
	return out, nil
}
