package failover

import (
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Transport is the failover engine: an http.RoundTripper that sends each request to the most
// preferred available region, rewritten for it, and fails over by the rules of SPEC.md
// section 5. It is safe for concurrent use; Reconfigure, Disable and Enable may be called
// while requests are in flight.
type Transport struct {
	tab   atomic.Pointer[table]
	obs   Observer
	clock Clock
	rand  rng
	tls   *tls.Config
	base  func(Region) http.RoundTripper

	tracer Tracer // nil: none (WithTracer)

	prober *prober      // active probes, from New until Close
	hedges *hedgeBudget // the hedge budget, shared by every request

	mu      sync.Mutex // serialises Reconfigure, Disable, Enable
	healths map[string]*health
	owned   map[string]*ownedTransport // by region name: transports New built
}

var _ http.RoundTripper = (*Transport)(nil)

// Clock tells the time for breakers, cool-downs and latency. Waits (backoff, timeouts) use
// real timers; the clock decides what state they find.
type Clock interface{ Now() time.Time }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Option configures New.
type Option func(*Transport)

// WithClock sets the clock; nil means the system clock.
func WithClock(c Clock) Option { return func(t *Transport) { t.clock = c } }

// WithRand sets the source of randomness (weighted choice, jitter), e.g. rand.NewPCG(1, 2)
// for repeatable tests. It is used behind a mutex. Default: a lock-free generator seeded
// from the time.
func WithRand(src rand.Source) Option {
	return func(t *Transport) { t.rand = &lockedSource{src: src} }
}

// WithObserver sets the receiver of events; use Observers to fan out.
func WithObserver(o Observer) Option { return func(t *Transport) { t.obs = o } }

// WithTLSConfig sets the TLS config for connections to regions (e.g. trust for a test CA).
func WithTLSConfig(c *tls.Config) Option { return func(t *Transport) { t.tls = c } }

// WithBaseTransport replaces the per-region HTTP transports that New builds. Connect timeouts
// are then the base transport's business; the engine still applies the other timeouts.
func WithBaseTransport(f func(Region) http.RoundTripper) Option {
	return func(t *Transport) { t.base = f }
}

// New builds a Transport from cfg.
func New(cfg Config, opts ...Option) (*Transport, error) {
	t := &Transport{
		obs:     NopObserver{},
		clock:   systemClock{},
		healths: map[string]*health{},
		owned:   map[string]*ownedTransport{},
		hedges:  newHedgeBudget(),
	}
	for _, o := range opts {
		o(t)
	}
	if t.obs == nil {
		t.obs = NopObserver{}
	}
	if t.clock == nil {
		t.clock = systemClock{}
	}
	if t.rand == nil {
		s := &splitMix{}
		s.state.Store(uint64(time.Now().UnixNano()))
		t.rand = s
	}
	if err := t.Reconfigure(cfg); err != nil {
		return nil, err
	}
	t.startProber()
	return t, nil
}

// ownedTransport is a per-region transport built by New, kept across Reconfigure while what
// it was built from stays the same.
type ownedTransport struct {
	key string
	tr  regionTransport
}

// regionTransport is what New builds per region: an *http.Transport.
type regionTransport interface {
	http.RoundTripper
	CloseIdleConnections()
}

// newRegionTransport picks the region's client by its protocol and scheme: net/http's Transport
// always (docs/architecture.md says why the engine has no HTTP client of its own), limited to
// HTTP/1.1 or HTTP/2 when the region's protocol asks for it.
func newRegionTransport(scheme, protocol string, to Timeouts, tlsConf *tls.Config) regionTransport {
	tr := newHTTPTransport(to, tlsConf)
	switch protocol {
	case ProtocolHTTP2:
		tr.Protocols = new(http.Protocols)
		if scheme == "https" {
			tr.Protocols.SetHTTP2(true)
		} else {
			tr.Protocols.SetUnencryptedHTTP2(true)
		}
	case ProtocolHTTP1:
		tr.Protocols = new(http.Protocols)
		tr.Protocols.SetHTTP1(true)
		tr.ForceAttemptHTTP2 = false
	}
	return tr
}

// maxResponseHeaderBytes bounds a region's response head: net/http adds up the interim (1xx)
// answers and the final head against it, over HTTP/1.1 and HTTP/2 alike. Azure's are a few KB;
// net/http's own default is 10 MB.
const maxResponseHeaderBytes = 1 << 20

// newHTTPTransport builds a region's transport: keep-alive sized for high concurrency
// (the default of two idle connections per host is far too few) and HTTP/2 where offered.
func newHTTPTransport(to Timeouts, tlsConf *tls.Config) *http.Transport {
	d := &net.Dialer{Timeout: to.Connect, KeepAlive: 30 * time.Second}
	var tc *tls.Config
	if tlsConf != nil {
		tc = tlsConf.Clone()
	}
	return &http.Transport{
		Proxy:                  nil, // traffic goes to the configured endpoints only; use WithBaseTransport for a proxy
		DialContext:            d.DialContext,
		TLSHandshakeTimeout:    to.Connect,
		TLSClientConfig:        tc,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           0, // no global limit
		MaxIdleConnsPerHost:    1024,
		IdleConnTimeout:        90 * time.Second,
		MaxResponseHeaderBytes: maxResponseHeaderBytes, // interim (1xx) answers included
		ExpectContinueTimeout:  time.Second,
		// ReadBufferSize and WriteBufferSize stay at net/http's 4 KB: each connection, idle ones too, holds
		// both, and larger ones only inflate the heap the GC paces against (a large body bypasses them).
		HTTP2: &http.HTTP2Config{
			SendPingTimeout: 30 * time.Second, // finds dead HTTP/2 connections
			PingTimeout:     15 * time.Second,
		},
	}
}

// Reconfigure replaces regions and policy. A region whose name persists keeps its health
// state (breaker, latency, cool-downs, manual disable) and, if its endpoint and timeouts are
// unchanged, its connections. Requests in flight finish on the old configuration.
func (t *Transport) Reconfigure(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	p := cfg.Policy.WithDefaults()
	t.mu.Lock()
	defer t.mu.Unlock()
	tab := &table{policy: p, byName: map[string]*region{}, names: map[string][]*region{}, fallbacks: map[string][]string{}}
	for name, fbs := range cfg.Fallbacks {
		tab.fallbacks[name] = slices.Clone(fbs)
	}
	healths := map[string]*health{}
	owned := map[string]*ownedTransport{}
	var old *table
	if old = t.tab.Load(); old == nil {
		old = &table{}
	}
	for _, rc := range cfg.Regions {
		r, err := t.buildRegion(rc, p, old.byName[rc.Name], owned)
		if err != nil {
			return err
		}
		healths[rc.Name] = r.h
		tab.regions = append(tab.regions, r)
		tab.byName[rc.Name] = r
		tab.all = append(tab.all, r)
		for name := range r.targets {
			tab.names[name] = append(tab.names[name], r)
		}
	}
	byPriority(tab.all)
	for name, rs := range tab.names {
		byPriority(rs)
		tab.sorted = append(tab.sorted, name)
	}
	sort.Strings(tab.sorted)
	for name, ot := range t.owned {
		if owned[name] != ot {
			ot.tr.CloseIdleConnections()
		}
	}
	t.healths, t.owned = healths, owned
	t.tab.Store(tab)
	closeDropped(old, tab)
	return nil
}

// closeDropped stops the token refresh of Entra credentials that the new table no longer uses.
func closeDropped(old, cur *table) {
	kept := map[*tokenCache]bool{}
	for _, r := range cur.regions {
		if tc, ok := r.cred.(*tokenCache); ok {
			kept[tc] = true
		}
	}
	for _, r := range old.regions {
		if tc, ok := r.cred.(*tokenCache); ok && !kept[tc] {
			tc.close()
		}
	}
}

func (t *Transport) buildRegion(rc Region, p Policy, prev *region, owned map[string]*ownedTransport) (*region, error) {
	h := t.healths[rc.Name]
	if h == nil {
		h = newHealth(rc.Name, p.Breaker)
		h.breaker.notify = t.stateNotifier(h)
	} else {
		h.breaker.setPolicy(p.Breaker)
	}
	u, err := parseRegionURL(rc.Endpoint)
	if err != nil {
		return nil, fmt.Errorf("region %s: endpoint: %w", rc.Name, err)
	}
	r := &region{cfg: rc, h: h, url: u, priority: max(rc.Priority, 1), weight: max(rc.Weight, 1),
		targets: make(map[string]*target, len(rc.Deployments)), label: []string{rc.Name}}
	if prev != nil && sameCredential(prev.cfg, rc) {
		r.cred = prev.cred
		if tc, ok := r.cred.(*tokenCache); ok {
			tc.setWait(p.Timeouts.Connect)
		}
	} else if r.cred, err = t.newCredential(rc, p.Timeouts.Connect); err != nil {
		return nil, err
	}
	switch key := u.scheme + "://" + u.host + "|" + rc.Protocol + "|" + fmt.Sprint(p.Timeouts.Connect); {
	case t.base != nil:
		r.rt = t.base(rc)
	case t.owned[rc.Name] != nil && t.owned[rc.Name].key == key:
		owned[rc.Name] = t.owned[rc.Name]
		r.rt = owned[rc.Name].tr
	default:
		owned[rc.Name] = &ownedTransport{key: key, tr: newRegionTransport(u.scheme, rc.Protocol, p.Timeouts, t.tls)}
		r.rt = owned[rc.Name].tr
	}
	for name, dep := range rc.Deployments {
		r.targets[name] = &target{deployment: dep, quoted: appendJSONString(nil, dep), state: h.deployment(dep)}
	}
	return r, nil
}

func sameCredential(a, b Region) bool {
	if a.APIKey != "" || b.APIKey != "" {
		return a.APIKey == b.APIKey
	}
	if a.Credential != nil || b.Credential != nil {
		return a.Credential == b.Credential
	}
	return a.Entra != nil && b.Entra != nil && *a.Entra == *b.Entra
}

// ErrUnknownRegion is returned by Disable and Enable for a name that is not configured.
var ErrUnknownRegion = errors.New("failover: unknown region")

// Disable takes a region out by hand: it gets no traffic at all until Enable, whatever its
// health. Disabling a disabled region is not an error.
func (t *Transport) Disable(name string) error { return t.setDisabled(name, true) }

// Enable ends a manual Disable. The region returns to its automatic state; a healthy region
// takes its traffic back gradually (slow start).
func (t *Transport) Enable(name string) error { return t.setDisabled(name, false) }

func (t *Transport) setDisabled(name string, d bool) error {
	t.mu.Lock()
	r := t.tab.Load().byName[name]
	if r == nil {
		t.mu.Unlock()
		return fmt.Errorf("%w %q", ErrUnknownRegion, name)
	}
	t.mu.Unlock()
	// Outside the lock: an observer may call back into the Transport.
	r.h.breaker.setDisabled(t.clock.Now(), d, ReasonManual)
	return nil
}

// RegionEvent is a change of a region's state decided outside this engine, such as another
// replica's breaker trip shared through Redis: "eastus open until T, because R".
type RegionEvent struct {
	// State is Open (out until Until; then this engine's own probe or trial decides) or Healthy (a
	// recovery: the region takes its traffic back gradually, as after a local one). Manual switches
	// are Disable and Enable.
	State  State
	Until  time.Time
	Reason string
}

// ApplyRegionEvent applies e to the region called name. The StateChange it causes is reported with
// Shared set, so that whoever publishes local changes does not echo it back. An Open event never
// shortens a longer local time out.
func (t *Transport) ApplyRegionEvent(name string, e RegionEvent) error {
	r := t.tab.Load().byName[name]
	if r == nil {
		return fmt.Errorf("%w %q", ErrUnknownRegion, name)
	}
	switch e.State {
	case Open, Healthy:
	default:
		return fmt.Errorf("failover: ApplyRegionEvent: state %v cannot be applied (Open or Healthy)", e.State)
	}
	reason := e.Reason
	if reason == "" {
		reason = ReasonShared
	}
	r.h.breaker.apply(t.clock.Now(), e.State, e.Until, reason)
	return nil
}

// stateNotifier reports a region's breaker changes to the observers. When the breaker opens, the
// attempts still waiting for the region's first byte stop waiting and move on.
func (t *Transport) stateNotifier(h *health) func(transition) {
	return func(tr transition) {
		if tr.to == Open {
			h.opened()
		}
		t.obs.StateChanged(StateChange{Region: h.name, From: tr.from, To: tr.to, At: t.clock.Now(),
			Reason: tr.reason, Until: tr.until, Shared: tr.shared})
	}
}

// Names returns the client-visible names, sorted.
func (t *Transport) Names() []string {
	return append([]string(nil), t.tab.Load().sorted...)
}

// Ready reports whether some region can serve: not disabled, and not open (or open with
// open_for passed, so that a probe may go).
func (t *Transport) Ready() bool {
	now := t.clock.Now()
	for _, r := range t.tab.Load().regions {
		if why, _ := r.check(nil, now); why == isAvailable {
			return true
		}
	}
	return false
}

// Close stops the active probes and the background renewal of Entra tokens, and closes idle connections of the
// transports New built. The Transport still serves requests after Close, without active probes.
func (t *Transport) Close() {
	t.prober.close()
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, ot := range t.owned {
		ot.tr.CloseIdleConnections()
	}
	if tab := t.tab.Load(); tab != nil {
		closeDropped(tab, &table{})
	}
}

// RegionStatus is a snapshot of one region for /admin/regions, the status page and metrics.
type RegionStatus struct {
	Name     string
	Endpoint string
	State    State
	Priority int
	Weight   int
	// ErrorRate is the failed share of attempts within the breaker window; Attempts their number.
	ErrorRate float64
	Attempts  int
	// Latency is the EWMA of time to response headers (0: no sample yet).
	Latency  time.Duration
	InFlight int
	// Share is this region's share of all attempts within the breaker window.
	Share float64
	// Ramp is the slow-start factor: 1 for full share, less while a recovered region ramps up.
	Ramp float64
	// OpenUntil is when an open breaker lets a probe through; Trips counts trips in a row.
	OpenUntil time.Time
	Trips     int
	// StateSince is when the breaker entered its current automatic state (zero: never changed), and
	// StateReason why: the outcome of the attempt that decided it (`timeout`, `stream_error`, `ok`...) or
	// one of the Reason* constants.
	StateSince  time.Time
	StateReason string
	// NextProbe is when the next active probe goes, for a region out of service (zero otherwise, or with
	// probes off); LastProbe is the last probe's result (nil: never probed).
	NextProbe   time.Time
	LastProbe   *ProbeStatus
	Deployments []DeploymentStatus
	// Credential is the region's Entra credential; nil for an API key.
	Credential *CredentialStatus
}

// DeploymentStatus is one client-visible name in one region.
type DeploymentStatus struct {
	Name       string // client-visible
	Deployment string // in this region
	// CoolingUntil is the end of a 429 cool-down (zero: none).
	CoolingUntil time.Time
	// BrokenUntil is set after 404 DeploymentNotFound, 401 or 403; BrokenBy says which.
	BrokenUntil time.Time
	BrokenBy    string
}

// Regions returns a snapshot of every region, in configuration order.
func (t *Transport) Regions() []RegionStatus {
	tab := t.tab.Load()
	now := t.clock.Now()
	out := make([]RegionStatus, 0, len(tab.regions))
	total := 0
	for _, r := range tab.regions {
		b := r.h.breaker
		rate, n := b.errorRate(now)
		bi := b.info()
		st := b.State()
		until := bi.openUntil
		if st != Open {
			until = time.Time{}
		}
		rs := RegionStatus{
			Name: r.cfg.Name, Endpoint: r.cfg.Endpoint, State: st, Priority: r.priority, Weight: r.weight,
			ErrorRate: rate, Attempts: n, Latency: r.h.latency(), InFlight: int(r.h.inflight.Load()),
			Ramp: b.rampFactor(now), OpenUntil: until, Trips: bi.trips, StateSince: bi.since, StateReason: bi.reason,
			LastProbe: r.h.lastProbe.Load(),
		}
		if b.wantsProbe() {
			rs.NextProbe = t.prober.nextProbe()
		}
		for name, tg := range r.targets {
			ds := DeploymentStatus{Name: name, Deployment: tg.deployment}
			if u := tg.state.coolUntil.Load(); u > now.UnixNano() {
				ds.CoolingUntil = time.Unix(0, u)
			}
			if u := tg.state.brokenUntil.Load(); u > now.UnixNano() {
				ds.BrokenUntil = time.Unix(0, u)
				ds.BrokenBy = Outcome(tg.state.brokenBy.Load()).String()
			}
			rs.Deployments = append(rs.Deployments, ds)
		}
		sort.Slice(rs.Deployments, func(i, j int) bool { return rs.Deployments[i].Name < rs.Deployments[j].Name })
		if tc, ok := r.cred.(*tokenCache); ok {
			rs.Credential = tc.status()
		}
		total += n
		out = append(out, rs)
	}
	for i := range out {
		if total > 0 {
			out[i].Share = float64(out[i].Attempts) / float64(total)
		}
	}
	return out
}
