package failover

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// Active probes (SPEC.md section 9): every Breaker.ProbeInterval, each region that is out of service
// (open, or half-open and still waiting for its trial request) is probed in the background with a
// request that costs no tokens: GET {endpoint}/openai/models. An answer of any kind from the region
// (even a 404 from an endpoint without that route) ends its time out at once: it goes half-open and
// the next request is the trial that decides, as after open_for. A failure (no connection, a timeout,
// a 5xx) keeps it open. So a region that comes back gets traffic again within one interval, however
// long open_for has grown, and with no client traffic at all. A disabled region is never probed.

// probePath is what a probe asks for: the models list, on the classic surface every Azure OpenAI
// resource serves. It costs no tokens.
const probePath = "/openai/models"

// probeAPIVersion is the api-version a probe sends (the latest GA version).
const probeAPIVersion = "2024-10-21"

// ProbeEvent is sent after each active probe.
type ProbeEvent struct {
	Region  string
	Outcome Outcome       // ok, or what failed (connect_error, timeout, server_error, ...)
	Status  int           // the region's status, 0 when no response came
	Latency time.Duration // until the answer or the failure
	At      time.Time
	Err     error
}

// ProbeStatus is the last probe of a region, for the status page.
type ProbeStatus struct {
	At      time.Time
	Outcome string
	Latency time.Duration
}

// prober runs the active probes of one Transport, from New until Close.
type prober struct {
	t    *Transport
	stop chan struct{}
	done chan struct{}
	once sync.Once
	next atomic.Int64 // unix nanos of the next round (0: probes are off)
	wg   sync.WaitGroup
}

func (t *Transport) startProber() {
	p := &prober{t: t, stop: make(chan struct{}), done: make(chan struct{})}
	t.prober = p
	go p.run()
}

// close stops the rounds and waits for probes in flight.
func (p *prober) close() {
	p.once.Do(func() {
		close(p.stop)
		<-p.done
		p.wg.Wait()
	})
}

func (p *prober) run() {
	defer close(p.done)
	for {
		interval := p.t.tab.Load().policy.Breaker.ProbeInterval
		wait := interval
		if interval <= 0 {
			p.next.Store(0)
			wait = time.Second // probes are off: look at the policy again in a while (Reconfigure may turn them on)
		} else {
			p.next.Store(time.Now().Add(wait).UnixNano())
		}
		tm := time.NewTimer(wait)
		select {
		case <-p.stop:
			tm.Stop()
			return
		case <-tm.C:
		}
		if interval > 0 {
			// A probe gets less than the interval, so that one to a silent region has ended before the next round.
			to := p.t.tab.Load().policy.Timeouts.Connect
			p.round(min(interval, max(probeTimeout, to)))
		}
	}
}

// probeTimeout bounds a probe (or the connect timeout, if longer; never more than the interval).
const probeTimeout = 2 * time.Second

// round starts a probe for every region out of service that has none in flight.
func (p *prober) round(timeout time.Duration) {
	for _, r := range p.t.tab.Load().regions {
		if !r.h.breaker.wantsProbe() || !r.h.probing.CompareAndSwap(false, true) {
			continue
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer r.h.probing.Store(false)
			p.probe(r, timeout)
		}()
	}
}

// probe sends one probe to r, bounded by timeout, and applies its result.
func (p *prober) probe(r *region, timeout time.Duration) {
	t := p.t
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	go func() { // Close ends a probe in flight
		select {
		case <-p.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	start := t.clock.Now()
	status, err := p.send(ctx, r)
	select {
	case <-p.stop:
		return
	default:
	}
	now := t.clock.Now()
	var v Verdict
	if err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			err = ErrAttemptTimeout
		}
		v = Classify(Signal{Err: err, Now: now})
	} else {
		v = Classify(Signal{Status: status, Now: now})
	}
	up := v.Scope != ScopeRegion && v.Outcome != OutcomeCanceled
	o := OutcomeOK
	if !up {
		o = v.Outcome
	}
	lat := now.Sub(start)
	r.h.lastProbe.Store(&ProbeStatus{At: now, Outcome: o.String(), Latency: lat})
	r.h.breaker.probed(now, up)
	t.obs.Probe(ProbeEvent{Region: r.cfg.Name, Outcome: o, Status: status, Latency: lat, At: now, Err: err})
}

// send makes the probe request and reads (a bounded part of) the answer.
func (p *prober) send(ctx context.Context, r *region) (int, error) {
	h := http.Header{"User-Agent": {"lifeline-probe"}}
	if err := r.cred.apply(ctx, h); err != nil {
		return 0, err
	}
	req := (&http.Request{
		Method:     http.MethodGet,
		URL:        &url.URL{Scheme: r.url.scheme, Host: r.url.host, Path: r.url.prefix + probePath, RawQuery: "api-version=" + probeAPIVersion},
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     h,
		Host:       r.url.host,
	}).WithContext(ctx)
	resp, err := r.rt.RoundTrip(req)
	if err != nil {
		return 0, err
	}
	io.CopyN(io.Discard, resp.Body, 64<<10)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// nextProbe is when the next round of probes goes (zero when probes are off).
func (p *prober) nextProbe() time.Time {
	if p == nil {
		return time.Time{}
	}
	if n := p.next.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}
