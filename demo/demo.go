package demo

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/lifeline-sre/lifeline/sim"
)

// Options are the flags of `lifeline demo`.
type Options struct {
	Duration time.Duration // whole run; default 2m
	Rate     float64       // client requests per second; default 20
	NoOutage bool          // run healthy throughout
	Seed     int64         // simulator randomness
	Out      io.Writer     // live view and summary
}

func (o *Options) defaults() {
	if o.Duration <= 0 {
		o.Duration = 2 * time.Minute
	}
	if o.Rate <= 0 {
		o.Rate = 20
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
}

// Regions of the demo, in order of preference.
var Regions = []string{"eastus", "westus", "swedencentral"}

// step is one moment of the scripted outage, at a fraction of the run.
type step struct {
	at    float64
	phase string
	do    func(*stack) error
}

// Phases of the timeline that the summary measures from.
const (
	phaseGray     = "eastus breaks streams"
	phaseFailback = "eastus back: failback"
)

// timeline is the scripted outage: the gray failures first (eastus cuts its streams half-way, then westus, the
// backup, accepts requests and never answers), then the clean ones (eastus refuses connections, westus throttles),
// then the recovery, which on the default policy takes a probe (5 s) and a slow start (30 s).
func timeline(noOutage bool) []step {
	if noOutage {
		return []step{{0, "healthy", nil}}
	}
	return []step{
		{0, "healthy", nil},
		{0.08, phaseGray, func(s *stack) error { return s.sim.Fault("eastus", sim.Fault{Mode: sim.ModeCutStream, AfterEvents: 4}) }},
		{0.2, "westus goes silent", func(s *stack) error { return s.fault("westus", "blackhole", 0) }},
		{0.32, "eastus down, westus ok", func(s *stack) error {
			if err := s.fault("eastus", "down", 0); err != nil {
				return err
			}
			return s.fault("westus", "clear", 0)
		}},
		{0.4, "eastus down, westus 429", func(s *stack) error { return s.fault("westus", "throttle", 3*time.Second) }},
		{0.46, "eastus down, westus ok", func(s *stack) error { return s.fault("westus", "clear", 0) }},
		{0.5, phaseFailback, func(s *stack) error { return s.fault("eastus", "clear", 0) }},
	}
}

// Run plays the demo and returns its summary. The error is for a demo that could not run at all; client errors
// are in the summary.
func Run(ctx context.Context, opts Options) (Summary, error) {
	opts.defaults()
	st, err := startStack(opts.Seed)
	if err != nil {
		return Summary{}, err
	}
	defer st.close()
	rec := st.rec
	fmt.Fprintf(opts.Out, "Lifeline demo: %d simulated regions (%s primary), the gateway at %s, %.0f req/s from openai-go for %s\n",
		len(Regions), Regions[0], st.gatewayURL, opts.Rate, opts.Duration)
	fmt.Fprintf(opts.Out, "policy: the defaults, unchanged (docs/config.md); the simulated regions answer the same prompt with the same text, so that a broken stream can resume\n")
	fmt.Fprintf(opts.Out, "status page: %s\n\n", st.statusURL)

	begin := st.begin // events and samples share one time base
	tr := &traffic{gateway: newClient(st.gatewayURL, st.clientKey, httpClient()), direct: newClient(st.regionURL(Regions[0]), st.simKey, httpClient()),
		rec: rec, begin: begin, timeout: 30 * time.Second}
	runCtx, stop := context.WithTimeout(ctx, opts.Duration)
	defer stop()

	var mu sync.Mutex
	phase, outageAt, recoveryAt := "healthy", time.Duration(-1), time.Duration(-1)
	healthy := func() bool { mu.Lock(); defer mu.Unlock(); return outageAt < 0 }
	go tr.run(runCtx, opts.Rate)
	go tr.pairs(runCtx, Regions[0], healthy)

	v := &view{w: opts.Out, tty: isTerminal(opts.Out), regions: Regions, statusURL: st.statusURL}
	steps := timeline(opts.NoOutage)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	next := 0
	for runCtx.Err() == nil {
		now := time.Since(begin)
		for next < len(steps) && now >= time.Duration(steps[next].at*float64(opts.Duration)) {
			s := steps[next]
			if s.do != nil {
				if err := s.do(st); err != nil {
					return Summary{}, fmt.Errorf("demo step %q: %w", s.phase, err)
				}
				rec.event(Event{At: now, Text: "scenario: " + s.phase})
			}
			mu.Lock()
			phase = s.phase
			switch s.phase {
			case phaseGray:
				outageAt = now
			case phaseFailback:
				recoveryAt = now
			}
			mu.Unlock()
			next++
		}
		samples, events := rec.snapshot()
		v.draw(frame{now: now, phase: phase, samples: samples, events: events, state: st.state})
		select {
		case <-runCtx.Done():
		case <-tick.C:
		}
	}
	if ctx.Err() != nil {
		return Summary{}, ctx.Err()
	}
	tr.wait()
	samples, _ := rec.snapshot()
	sum := summarize(samples, Regions[0], outageAt, recoveryAt, st.openedAt(Regions[0], outageAt))
	sum.addBaseline(rec.baseline())
	sum.Resumed, sum.ResumeFailed, sum.Hedged = st.gray()
	return sum, nil
}
