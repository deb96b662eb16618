package continuity

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// Sample is one request: when it was sent (from the start of the fault's run), its phase, how it ended.
type Sample struct {
	Seq      int           `json:"seq"`
	Sent     time.Duration `json:"sent_ns"`
	Phase    string        `json:"phase"` // settle, baseline, fault, after
	Took     time.Duration `json:"took_ns"`
	OK       bool          `json:"ok"`
	FirstOK  bool          `json:"first_ok"` // the first attempt succeeded (a client without retries)
	Attempts int           `json:"attempts"`
	Primary  bool          `json:"primary"` // answered by the primary region
	Region   string        `json:"region,omitempty"`
	NoDone   bool          `json:"no_done,omitempty"`
	Err      string        `json:"err,omitempty"` // final error
	FirstErr string        `json:"first_err,omitempty"`
	done     bool
}

// PeerRun is one peer through one fault.
type PeerRun struct {
	Peer   string `json:"peer"`
	Cannot string `json:"cannot,omitempty"` // why the peer cannot be configured for this fault
	Error  string `json:"error,omitempty"`  // the run itself failed (the control API did not answer...)
	// BaselineAt, FaultAt and HealAt are offsets from the run's start (settling comes first); HealAt is 0 for a
	// fault that does not heal.
	BaselineAt time.Duration `json:"baseline_at_ns"`
	FaultAt    time.Duration `json:"fault_at_ns"`
	// Unsettled: the peer did not answer Back requests in a row from its primary within Recover before the
	// baseline (an earlier fault's effect was still there).
	Unsettled bool          `json:"unsettled,omitempty"`
	HealAt    time.Duration `json:"heal_at_ns"`
	Samples   []Sample      `json:"samples"`
	Stats     Stats         `json:"stats"`
}

// Stats are the figures of one run.
type Stats struct {
	Baseline      int           `json:"baseline_requests"`
	BaselineMean  time.Duration `json:"baseline_mean_ns"`
	BaselineP99   time.Duration `json:"baseline_p99_ns"`
	Requests      int           `json:"requests"` // sent while the fault lasted
	Errors        int           `json:"errors"`   // of those, failed after the client's retries
	FirstErrors   int           `json:"first_errors"`
	ErrorsAfter   int           `json:"errors_after"`   // failed among those sent after the heal
	RequestsAfter int           `json:"requests_after"` // sent after the heal
	OnPrimary     int           `json:"on_primary"`     // answered by the primary while the fault lasted
	NoDone        int           `json:"no_done"`        // complete streams without [DONE] (fault phase)
	Mean          time.Duration `json:"mean_ns"`        // while the fault lasted
	P99           time.Duration `json:"p99_ns"`
	Max           time.Duration `json:"max_ns"`
	AddedMean     time.Duration `json:"added_mean_ns"`
	// FirstPrimary: from the heal to the sending of the first request the primary answered; -1: none within the
	// recovery window. Back: to the first of Plan.Back requests in a row all answered by the primary.
	FirstPrimary time.Duration `json:"first_primary_ns"`
	Back         time.Duration `json:"back_ns"`
	Window       time.Duration `json:"window_ns"` // how long after the heal traffic went on
	ErrorKinds   []string      `json:"error_kinds,omitempty"`
}

func (r PeerRun) summary() string {
	if r.Error != "" {
		return "run failed: " + r.Error
	}
	s := r.Stats
	return fmt.Sprintf("%d/%d errors (%d on first attempt), +%v mean (baseline %v), on primary %d, first primary %v, back %v",
		s.Errors, s.Requests, s.FirstErrors, s.AddedMean.Round(time.Millisecond), s.BaselineMean.Round(time.Millisecond),
		s.OnPrimary, fmtRecover(s.FirstPrimary), fmtRecover(s.Back))
}

func fmtRecover(d time.Duration) string {
	if d < 0 {
		return "not seen"
	}
	return d.Round(10 * time.Millisecond).String()
}

// prompt is the request's prompt: the answer length and mode as markers, made long for context_length.
func prompt(p Plan, f Fault, long bool, seq int) string {
	s := fmt.Sprintf("Continuity request %d. sim:tokens=%d sim:answers=%s", seq, p.Tokens, f.Answers)
	if long {
		s += strings.Repeat(" context", 2*p.ContextWindow)
	}
	return s
}

func body(model, prompt string, stream bool) []byte {
	b := fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":%q}]`, model, prompt)
	if stream {
		b += `,"stream":true`
	}
	return []byte(b + "}")
}

// runFault runs one fault against one peer: baseline, fault, heal, recovery, then waits for what is in flight.
func runFault(ctx context.Context, cl *client, p Plan, pe Peer, f Fault, logf func(string, ...any)) PeerRun {
	run := PeerRun{Peer: pe.Name, Cannot: pe.Cannot[f.Name]}
	s := sim{base: strings.TrimRight(pe.Control, "/"), client: controlHTTP}
	roles := map[string]string{"primary": pe.Primary, "secondary": pe.Secondary}
	clear := func() error {
		for _, r := range []string{pe.Primary, pe.Secondary} {
			if err := s.fault(ctx, r, map[string]any{"mode": "clear"}); err != nil {
				return err
			}
		}
		return nil
	}
	if err := clear(); err != nil {
		run.Error = err.Error()
		return run
	}
	headers := pe.Headers
	if h, ok := pe.FaultHeaders[f.Name]; ok {
		headers = h
	}
	var (
		mu      sync.Mutex
		samples []*Sample
		wg      sync.WaitGroup
	)
	start := time.Now()
	// settle: traffic until the peer answers from its primary (what an earlier fault left behind, a breaker still
	// open, a slow start, nginx's fail_timeout, has passed), at most Recover; then the baseline, the fault, the heal.
	var baseAt, faultAt, healAt, end time.Duration
	setTimes := func(now time.Duration) {
		baseAt = now
		faultAt = now + p.Baseline.D()
		healAt = faultAt + f.length(&p)
		end = healAt + p.Recover.D()
		if !f.Heals {
			end = healAt
		}
	}
	phase := "settle"
	interval := time.Duration(float64(time.Second) / p.Rate)
	next := time.Duration(0)
	lastCheck := time.Duration(0)
	for seq := 0; ; seq++ {
		if d := time.Until(start.Add(next)); d > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(d):
			}
		}
		if ctx.Err() != nil {
			break
		}
		now := time.Since(start)
		if phase == "settle" && now-lastCheck >= 250*time.Millisecond {
			lastCheck = now
			mu.Lock()
			settled := backAt(samples, "settle", 0, p.Back) >= 0
			mu.Unlock()
			if settled || now >= p.Recover.D() {
				if !settled {
					run.Unsettled = true
				}
				setTimes(now)
				phase = "baseline"
			}
		}
		if phase == "baseline" && now >= faultAt {
			for role, fault := range f.set(&p) {
				if err := s.fault(ctx, roles[role], fault); err != nil {
					run.Error = err.Error()
				}
			}
			phase = "fault"
		}
		if phase == "fault" && now >= healAt {
			if !f.Heals {
				break
			}
			if err := clear(); err != nil {
				run.Error = err.Error()
			}
			phase = "after"
		}
		if phase == "after" {
			if now >= end {
				break
			}
			if now-lastCheck >= 250*time.Millisecond {
				lastCheck = now
				mu.Lock()
				back := backAt(samples, "after", healAt, p.Back)
				mu.Unlock()
				if back >= 0 {
					break
				}
			}
		}
		smp := &Sample{Seq: seq, Sent: now, Phase: phase}
		b := body("gpt-4o", prompt(p, f, f.Long && phase == "fault", seq), f.Stream)
		mu.Lock()
		samples = append(samples, smp)
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			first, last, n := cl.call(ctx, pe.URL, headers, b, f.Stream, pe.RegionHeader)
			mu.Lock()
			defer mu.Unlock()
			smp.Took, smp.Attempts, smp.done = time.Since(t0), n, true
			smp.OK, smp.FirstOK, smp.Err, smp.NoDone = last.ok, first.ok, last.err, last.noDone
			if !first.ok {
				smp.FirstErr = first.err
			}
			smp.Region = last.region
			smp.Primary = last.ok && strings.EqualFold(last.region, pe.PrimaryValue)
		}()
		next += interval
	}
	stopped := time.Since(start)
	wg.Wait()
	if err := clear(); err != nil && run.Error == "" {
		run.Error = err.Error()
	}
	for _, smp := range samples {
		run.Samples = append(run.Samples, *smp)
	}
	run.BaselineAt, run.FaultAt = baseAt, faultAt
	if f.Heals {
		run.HealAt = healAt
	}
	run.Stats = stats(run.Samples, healAt, f.Heals, p.Back, stopped)
	return run
}

// backAt is the offset from the heal of the first request sent in phase (after the heal, or settling) that starts
// a run of n answers in a row (in the order they were sent) all from the primary, or -1. A request still in flight
// ends the search.
func backAt(samples []*Sample, phase string, healAt time.Duration, n int) time.Duration {
	run, from := 0, time.Duration(-1)
	for _, s := range samples {
		if s.Phase != phase {
			continue
		}
		if !s.done {
			return -1
		}
		if s.OK && s.Primary {
			if run == 0 {
				from = s.Sent - healAt
			}
			run++
			if run >= n {
				return from
			}
		} else {
			run = 0
		}
	}
	return -1
}

func stats(samples []Sample, healAt time.Duration, heals bool, back int, stopped time.Duration) Stats {
	var st Stats
	var base, during []time.Duration
	kinds := map[string]int{}
	st.FirstPrimary, st.Back = -1, -1
	ptrs := make([]*Sample, len(samples))
	for i := range samples {
		s := &samples[i]
		ptrs[i] = s
		switch s.Phase {
		case "baseline":
			base = append(base, s.Took)
		case "fault":
			st.Requests++
			during = append(during, s.Took)
			if !s.OK {
				st.Errors++
				kinds[s.Err]++
			}
			if !s.FirstOK {
				st.FirstErrors++
			}
			if s.OK && s.Primary {
				st.OnPrimary++
			}
			if s.NoDone {
				st.NoDone++
			}
		case "after":
			st.RequestsAfter++
			if !s.OK {
				st.ErrorsAfter++
				kinds[s.Err+" (after the heal)"]++
			}
			if s.OK && s.Primary && st.FirstPrimary < 0 {
				st.FirstPrimary = s.Sent - healAt
			}
		}
	}
	if heals {
		st.Back = backAt(ptrs, "after", healAt, back)
		st.Window = stopped - healAt
	}
	st.Baseline = len(base)
	st.BaselineMean, st.BaselineP99 = mean(base), quantile(base, 0.99)
	st.Mean, st.P99 = mean(during), quantile(during, 0.99)
	if len(during) > 0 {
		st.Max = slices.Max(during)
	}
	st.AddedMean = st.Mean - st.BaselineMean
	for k, n := range kinds {
		st.ErrorKinds = append(st.ErrorKinds, fmt.Sprintf("%d× %s", n, k))
	}
	slices.Sort(st.ErrorKinds)
	return st
}

func mean(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	var sum time.Duration
	for _, v := range d {
		sum += v
	}
	return sum / time.Duration(len(d))
}

func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[int(q*float64(len(s)-1)+0.5)]
}
