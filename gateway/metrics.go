package gateway

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/lifeline-sre/lifeline/failover"
)

// metrics are the gateway's Prometheus series (SPEC.md section 4). Label values are region names, configured
// client-visible names, status codes and outcome names: never anything a client sent verbatim, never a secret.
type metrics struct {
	gatherer     prometheus.Gatherer
	requests     *prometheus.CounterVec   // name, region, code
	attempts     *prometheus.CounterVec   // region, outcome
	failovers    *prometheus.CounterVec   // from, to, reason
	state        *prometheus.GaugeVec     // region
	duration     *prometheus.HistogramVec // region
	ttfb         *prometheus.HistogramVec // region
	tokens       *prometheus.CounterVec   // region, kind
	upstream     *prometheus.HistogramVec // region: time to response headers per attempt
	streamErrors *prometheus.CounterVec   // region
	reloads      *prometheus.CounterVec   // result
	probes       *prometheus.CounterVec   // region, outcome
	hedges       *prometheus.CounterVec   // region, outcome
	fallbacks    *prometheus.CounterVec   // from, to, reason
	resumes      *prometheus.CounterVec   // from, to, outcome
	inFlight     prometheus.Gauge
	realtime     *prometheus.GaugeVec // region: open Realtime sessions
	// Per client key (SPEC.md section 12): configured client names only.
	clientRequests *prometheus.CounterVec // client, operation, code
	clientTokens   *prometheus.CounterVec // client, kind
	clientLimited  *prometheus.CounterVec // client, limit

	// Children resolved once per label set: the hot path does a map lookup, not a label hash.
	mu       sync.RWMutex
	children map[childKey]*requestSeries
	clients  map[clientSeriesKey]*clientSeries
	attemptC sync.Map // attemptKey -> *attemptSeries
}

type attemptKey struct {
	region  string
	outcome failover.Outcome
}

type attemptSeries struct {
	attempts prometheus.Counter
	latency  prometheus.Observer
}

func (m *metrics) attempt(region string, o failover.Outcome) *attemptSeries {
	k := attemptKey{region, o}
	if s, ok := m.attemptC.Load(k); ok {
		return s.(*attemptSeries)
	}
	s := &attemptSeries{attempts: m.attempts.WithLabelValues(region, o.String()), latency: m.upstream.WithLabelValues(region)}
	m.attemptC.Store(k, s)
	return s
}

type childKey struct {
	name, region string
	code         int
}

type requestSeries struct {
	requests         prometheus.Counter
	duration, ttfb   prometheus.Observer
	prompt, complete prometheus.Counter
}

var latencyBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300}

func newMetrics(reg prometheus.Registerer, gath prometheus.Gatherer) (*metrics, error) {
	m := &metrics{
		gatherer: gath,
		children: map[childKey]*requestSeries{},
		clients:  map[clientSeriesKey]*clientSeries{},
		clientRequests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lifeline_client_requests_total",
			Help: "Client requests by client key name, operation and status code."}, []string{"client", "operation", "code"}),
		clientTokens: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lifeline_client_tokens_total",
			Help: "Tokens reported in the usage that regions return, by client key name and kind (prompt, completion)."}, []string{"client", "kind"}),
		clientLimited: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lifeline_client_limited_total",
			Help: "Requests refused with 429 by a client's own limit (concurrency, rate), by client key name."}, []string{"client", "limit"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lifeline_requests_total",
			Help: "Client requests by client-visible name, answering region and status code."}, []string{"name", "region", "code"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lifeline_upstream_attempts_total",
			Help: "Upstream attempts by region and outcome."}, []string{"region", "outcome"}),
		failovers: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lifeline_failovers_total",
			Help: "Requests that left a failing region for another, by reason (the failed attempt's outcome)."}, []string{"from", "to", "reason"}),
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "lifeline_region_state",
			Help: "Region state: 0 healthy, 1 half-open, 2 open, 3 disabled."}, []string{"region"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "lifeline_request_duration_seconds",
			Help: "Client request duration until the last byte, by answering region.", Buckets: latencyBuckets}, []string{"region"}),
		ttfb: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "lifeline_time_to_first_byte_seconds",
			Help: "Time until the first body byte reached the client, by answering region.", Buckets: latencyBuckets}, []string{"region"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lifeline_tokens_total",
			Help: "Tokens reported in the usage that regions return, by kind (prompt, completion)."}, []string{"region", "kind"}),
		upstream: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "lifeline_upstream_latency_seconds",
			Help: "Per attempt: time until the region's response headers (or the failure).", Buckets: latencyBuckets}, []string{"region"}),
		streamErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lifeline_stream_errors_total",
			Help: "Responses whose body failed after the status was sent (ended with an error event or an aborted connection)."}, []string{"region"}),
		probes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lifeline_probes_total",
			Help: "Active probes of regions out of service, by outcome (ok, or what failed)."}, []string{"region", "outcome"}),
		hedges: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lifeline_hedges_total",
			Help: "Hedges by the region they went to and outcome (won, lost, failed, no_budget)."}, []string{"region", "outcome"}),
		fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lifeline_name_fallbacks_total",
			Help: "Requests that moved on to a fallback name (fallbacks:), by reason (unavailable, context_length_exceeded)."}, []string{"from", "to", "reason"}),
		resumes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lifeline_stream_resumes_total",
			Help: "Resumes of streams a region broke after the client got bytes, by outcome (ok, diverged, failed, timeout, no_region, unsupported)."}, []string{"from", "to", "outcome"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lifeline_config_reloads_total",
			Help: "Config reloads by result (ok, error)."}, []string{"result"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{Name: "lifeline_requests_in_flight",
			Help: "Client requests being served."}),
		realtime: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "lifeline_realtime_sessions",
			Help: "Open Realtime (WebSocket) sessions, by the region that serves them."}, []string{"region"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.attempts, m.failovers, m.state, m.duration, m.ttfb, m.tokens,
		m.upstream, m.streamErrors, m.reloads, m.inFlight, m.probes, m.hedges, m.realtime, m.fallbacks, m.resumes, m.clientRequests, m.clientTokens, m.clientLimited} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) series(name, region string, code int) *requestSeries {
	k := childKey{name, region, code}
	m.mu.RLock()
	s := m.children[k]
	m.mu.RUnlock()
	if s != nil {
		return s
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if s = m.children[k]; s != nil {
		return s
	}
	s = &requestSeries{
		requests: m.requests.WithLabelValues(name, region, strconv.Itoa(code)),
		duration: m.duration.WithLabelValues(region),
		ttfb:     m.ttfb.WithLabelValues(region),
		prompt:   m.tokens.WithLabelValues(region, "prompt"),
		complete: m.tokens.WithLabelValues(region, "completion"),
	}
	if len(m.children) < 10000 { // bounded: label values are configured names and regions
		m.children[k] = s
	}
	return s
}

type clientSeriesKey struct {
	client, op string
	code       int
}

type clientSeries struct {
	requests         prometheus.Counter
	prompt, complete prometheus.Counter
}

// client returns the per-client series; client is a configured client name ("" before authentication: "none").
func (m *metrics) client(client, op string, code int) *clientSeries {
	if client == "" {
		client = "none"
	}
	k := clientSeriesKey{client, op, code}
	m.mu.RLock()
	s := m.clients[k]
	m.mu.RUnlock()
	if s != nil {
		return s
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if s = m.clients[k]; s != nil {
		return s
	}
	s = &clientSeries{
		requests: m.clientRequests.WithLabelValues(client, op, strconv.Itoa(code)),
		prompt:   m.clientTokens.WithLabelValues(client, "prompt"),
		complete: m.clientTokens.WithLabelValues(client, "completion"),
	}
	if len(m.clients) < 10000 {
		m.clients[k] = s
	}
	return s
}

func (m *metrics) setStates(regions []failover.RegionStatus) {
	for _, r := range regions {
		m.state.WithLabelValues(r.Name).Set(float64(r.State))
	}
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.gatherer, promhttp.HandlerOpts{})
}

// gatewayObserver turns the engine's events into metrics, the recent-failover list of the status page and
// debug logs.
type gatewayObserver struct{ g *Gateway }

func (g *Gateway) observer() failover.Observer {
	o := failover.Observer(gatewayObserver{g})
	if g.opts.Observer != nil {
		return failover.Observers{o, g.opts.Observer}
	}
	return o
}

func (o gatewayObserver) AttemptStarted(failover.AttemptStart) {}

func (o gatewayObserver) AttemptFinished(e failover.AttemptResult) {
	o.g.hist.attempt(o.g.now(), e)
	s := o.g.metrics.attempt(e.Region, e.Outcome)
	s.attempts.Inc()
	s.latency.Observe(e.Latency.Seconds())
	if e.Outcome != failover.OutcomeOK && o.g.log.Enabled(context.Background(), slog.LevelDebug) {
		attrs := []slog.Attr{slog.String("region", e.Region), slog.String("name", e.Name), slog.Int("attempt", e.Attempt),
			slog.String("outcome", e.Outcome.String()), slog.Int("status", e.Status)}
		if e.Err != nil {
			attrs = append(attrs, slog.String("error", e.Err.Error()))
		}
		o.g.log.LogAttrs(context.Background(), slog.LevelDebug, "attempt failed", attrs...)
	}
}

// againstRegion reports whether an attempt's outcome counts against its region's health (SPEC section 5): the
// failed attempts of the status page.
func againstRegion(o failover.Outcome) bool {
	switch o {
	case failover.OutcomeConnectError, failover.OutcomeTimeout, failover.OutcomeReset, failover.OutcomeServerError,
		failover.OutcomeStreamError, failover.OutcomeAbandoned:
		return true
	}
	return false
}

func (o gatewayObserver) Failover(e failover.FailoverEvent) {
	o.g.metrics.failovers.WithLabelValues(e.From, e.To, e.Reason.String()).Inc()
	o.g.events.failover(o.g.now(), e)
}

func (o gatewayObserver) Resume(e failover.ResumeEvent) {
	to := e.To
	if to == "" {
		to = "none"
	}
	o.g.metrics.resumes.WithLabelValues(e.From, to, e.Outcome).Inc()
	o.g.hist.resume(o.g.now(), e)
	o.g.events.resume(o.g.now(), e)
	if e.Outcome != failover.ResumeOK && e.Outcome != failover.ResumeUnsupported {
		o.g.log.Info("stream resume failed", "name", e.Name, "from", e.From, "to", e.To, "mode", e.Mode,
			"outcome", e.Outcome, "reason", e.Reason, "wait", e.Wait.String())
	}
}

func (o gatewayObserver) NameFallback(e failover.FallbackEvent) {
	o.g.metrics.fallbacks.WithLabelValues(e.From, e.To, e.Reason).Inc()
}

func (o gatewayObserver) Hedge(e failover.HedgeEvent) {
	o.g.metrics.hedges.WithLabelValues(e.To, e.Outcome).Inc()
	o.g.hist.hedge(o.g.now(), e)
}

func (o gatewayObserver) Probe(e failover.ProbeEvent) {
	o.g.metrics.probes.WithLabelValues(e.Region, e.Outcome.String()).Inc()
	o.g.hist.probe(o.g.now(), e)
	if o.g.log.Enabled(context.Background(), slog.LevelDebug) {
		attrs := []slog.Attr{slog.String("region", e.Region), slog.String("outcome", e.Outcome.String()), slog.Int("status", e.Status),
			slog.Duration("latency", e.Latency)}
		if e.Err != nil {
			attrs = append(attrs, slog.String("error", e.Err.Error()))
		}
		o.g.log.LogAttrs(context.Background(), slog.LevelDebug, "probe", attrs...)
	}
}

func (o gatewayObserver) StateChanged(e failover.StateChange) {
	o.g.metrics.state.WithLabelValues(e.Region).Set(float64(e.To))
	o.g.events.state(o.g.now(), e)
	attrs := []any{"region", e.Region, "from", e.From.String(), "to", e.To.String(), "reason", e.Reason}
	if !e.Until.IsZero() {
		attrs = append(attrs, "until", e.Until.UTC().Format(time.RFC3339Nano))
	}
	if e.Shared {
		attrs = append(attrs, "shared", true)
	}
	o.g.log.Info("region state changed", attrs...)
}

// eventLog keeps the recent failovers and state changes for the status page and /admin/regions. Failovers
// between the same regions for the same reason within a second are counted in one entry.
type eventLog struct {
	mu     sync.Mutex
	max    int
	events []Event
}

// Event is one entry of the recent events list.
type Event struct {
	At     time.Time `json:"at"`
	Kind   string    `json:"kind"` // "failover", "state" or "resume"
	From   string    `json:"from"`
	To     string    `json:"to"`
	Reason string    `json:"reason,omitempty"`
	Region string    `json:"region,omitempty"`
	Count  int       `json:"count"`
}

func newEventLog(max int) *eventLog { return &eventLog{max: max} }

func (l *eventLog) failover(now time.Time, e failover.FailoverEvent) {
	l.counted(Event{At: now, Kind: "failover", From: e.From, To: e.To, Reason: e.Reason.String(), Count: 1})
}

// resume records a resume of a broken stream that was tried (To is "" when no region could take it; Reason is the
// outcome). A stream that could not be resumed at all is left out: its stream error shows on the region's card.
func (l *eventLog) resume(now time.Time, e failover.ResumeEvent) {
	if e.Outcome == failover.ResumeUnsupported {
		return
	}
	l.counted(Event{At: now, Kind: "resume", From: e.From, To: e.To, Reason: e.Outcome, Count: 1})
}

// counted adds e, or counts it in the last entry when that one is the same event less than a second ago.
func (l *eventLog) counted(e Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := len(l.events); n > 0 {
		last := &l.events[n-1]
		if last.Kind == e.Kind && last.From == e.From && last.To == e.To && last.Reason == e.Reason && e.At.Sub(last.At) < time.Second {
			last.Count++
			return
		}
	}
	l.add(e)
}

func (l *eventLog) state(now time.Time, e failover.StateChange) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.add(Event{At: now, Kind: "state", Region: e.Region, From: e.From.String(), To: e.To.String(), Reason: e.Reason, Count: 1})
}

func (l *eventLog) add(e Event) {
	if len(l.events) >= l.max {
		copy(l.events, l.events[1:])
		l.events = l.events[:len(l.events)-1]
	}
	l.events = append(l.events, e)
}

func (l *eventLog) snapshot() []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Event, len(l.events))
	for i, e := range l.events {
		out[len(out)-1-i] = e // newest first
	}
	return out
}
