package demo

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"
)

// Options are the flags of `lifeline demo`.
type Options struct {
	Duration time.Duration // whole run; default 60s
	Rate     float64       // client requests per second; default 20
	NoOutage bool          // run healthy throughout
	Seed     int64         // simulator randomness
	Out      io.Writer     // live view and summary
}

func (o *Options) defaults() {
	if o.Duration <= 0 {
		o.Duration = 60 * time.Second
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

func timeline(noOutage bool) []step {
	if noOutage {
		return []step{{0, "healthy", nil}}
	}
	return []step{
		{0, "healthy", nil},
		{0.2, "eastus down", func(s *stack) error { return s.fault("eastus", "down", 0) }},
		{0.45, "eastus down, westus 429", func(s *stack) error { return s.fault("westus", "throttle", 3*time.Second) }},
		{0.6, "eastus down, westus ok", func(s *stack) error { return s.fault("westus", "clear", 0) }},
		{0.7, "eastus back: failback", func(s *stack) error { return s.fault("eastus", "clear", 0) }},
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
			case "eastus down":
				outageAt = now
			case "eastus back: failback":
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
	return sum, nil
}
