package sim

import (
	"context"
	"crypto/tls"
	"fmt"
	"hash/fnv"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Region is one simulated Azure OpenAI region (one resource), served on its own address.
type Region struct {
	sim     *Sim
	name    string
	display string
	ttft    time.Duration
	tps     float64
	noLocal bool
	tenant  string   // Entra tenant of the resource; "" any
	users   []string // lower-case object ids with a data-plane role; nil: everyone
	session string   // azureml-model-session header value

	mu          sync.RWMutex
	listen      string // listen address; its port is fixed after the first listen, so clear reopens the same one
	addr        string // host:port for URLs (loopback when listening on every interface)
	srv         *http.Server
	ln          net.Listener // closed by down ourselves: srv.Close misses a listener Serve has not picked up yet
	up          bool
	fault       *Fault // the fault in force now (a flap's outage, or nothing between outages)
	shown       *Fault // the fault as set (a flap itself), for Fault and the control API
	flap        *FlapState
	answers     string // answer mode; "": the simulator's
	deployments map[string]*deployment
	conns       map[*trackedConn]struct{}
	draining    map[*http.Server]struct{} // servers of earlier up periods finishing their requests
	closed      bool

	// setMu orders fault changes: SetFault, a flap's phases and shutdown. gen counts SetFault calls, so that a flap
	// whose fault was replaced stops; flapStop ends its wait.
	setMu    sync.Mutex
	gen      uint64
	flapStop chan struct{}

	store    *store   // files and fine-tuning jobs
	objects  *objects // responses, conversations, batches, vector stores
	realtime sessions // open Realtime sessions, ended when the region goes down
	stats    counters

	// faultRand decides fault rates; it is the region's own (seeded from Config.Seed and the region's name), so
	// a region's sequence of faulted requests replays whatever the other regions and ids draw.
	faultMu   sync.Mutex
	faultRand *rand.Rand
}

// deployment is a Deployment with its quota state.
type deployment struct {
	Deployment
	fingerprint string
	quota       *quota
	sku         string // ARM sku name, "Standard" unless set through the ARM endpoint
	capacity    int    // ARM capacity (1 = 1,000 TPM)
}

func newRegion(s *Sim, rc RegionConfig) (*Region, error) {
	r := &Region{
		sim:         s,
		name:        rc.Name,
		display:     rc.DisplayName,
		ttft:        rc.TimeToFirstToken,
		tps:         rc.TokensPerSecond,
		noLocal:     rc.DisableLocalAuth,
		tenant:      rc.TenantID,
		listen:      rc.Addr,
		deployments: map[string]*deployment{},
		conns:       map[*trackedConn]struct{}{},
		draining:    map[*http.Server]struct{}{},
	}
	if rc.OpenAIUsers != nil {
		r.users = make([]string, len(rc.OpenAIUsers))
		for i, u := range rc.OpenAIUsers {
			r.users[i] = strings.ToLower(u)
		}
	}
	r.store = newStore(r)
	r.objects = newObjects(r)
	r.session = s.randomID("d", 3, "0123456789") + "-" + s.now().UTC().Format("20060102150405")
	h := fnv.New64a()
	h.Write([]byte(rc.Name))
	r.faultRand = rand.New(rand.NewPCG(uint64(s.cfg.Seed), h.Sum64()))
	if r.display == "" {
		r.display = DisplayName(rc.Name)
	}
	if r.listen == "" {
		r.listen = "127.0.0.1:0"
	}
	r.addr = r.listen
	if err := validAnswers(rc.Answers); err != nil {
		return nil, err
	}
	r.answers = rc.Answers
	if r.ttft < 0 || r.tps < 0 {
		return nil, fmt.Errorf("time_to_first_token and tokens_per_second must not be negative")
	}
	deps := rc.Deployments
	if len(deps) == 0 {
		deps = DefaultDeployments()
	}
	for i, d := range deps {
		if err := r.addDeployment(d, false, armSKU{}); err != nil {
			return nil, fmt.Errorf("deployments[%d]: %w", i, err)
		}
	}
	return r, nil
}

// Name is the region's short name.
func (r *Region) Name() string { return r.name }

// DisplayName is the x-ms-region value, e.g. "East US".
func (r *Region) DisplayName() string { return r.display }

// Addr is the host:port the region listens on (kept across down and clear).
func (r *Region) Addr() string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.addr
}

// URL is the region's base URL (no /openai suffix), e.g. http://127.0.0.1:18001.
func (r *Region) URL() string {
	scheme := "http"
	if r.sim.cert != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Addr()
}

// Fault returns the fault as it was set (a flap, not its current phase), if any.
func (r *Region) Fault() (Fault, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.shown == nil {
		return Fault{}, false
	}
	return *r.shown, true
}

// FlapState is where a flap stands.
type FlapState struct {
	Phase   string    `json:"phase"`          // "out" (the outage is in force), "up" (healthy), "over" (Repeat outages done)
	Outages int       `json:"outages"`        // outages begun so far
	Until   time.Time `json:"until,omitzero"` // end of the current phase; zero once over
}

// Flap returns the state of the region's flap, if one is set.
func (r *Region) Flap() (FlapState, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.flap == nil {
		return FlapState{}, false
	}
	return *r.flap, true
}

// Up reports whether the region is listening.
func (r *Region) Up() bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.up
}

// SetFault sets the region's fault, replacing any other; mode "clear" removes it and reopens a down listener.
func (r *Region) SetFault(f Fault) error {
	if err := f.Validate(); err != nil {
		return err
	}
	f = f.normalized()
	if f.Deployment != "" && f.Mode != ModeClear && f.Mode != ModeDown {
		r.mu.RLock()
		_, ok := r.deployments[f.Deployment]
		r.mu.RUnlock()
		if !ok {
			return fmt.Errorf("fault: deployment %q is not served by region %s", f.Deployment, r.name)
		}
	}
	r.setMu.Lock()
	defer r.setMu.Unlock()
	r.gen++
	if r.flapStop != nil {
		close(r.flapStop)
		r.flapStop = nil
	}
	switch f.Mode {
	case ModeClear:
		r.setFault(nil, nil, nil)
		return r.open()
	case ModeDown:
		r.setFault(&f, &f, nil)
		r.down()
		return nil
	case ModeFlap:
		r.flapStop = make(chan struct{})
		go r.runFlap(f, r.gen, r.flapStop)
		return nil
	default:
		r.setFault(&f, &f, nil)
		return r.open()
	}
}

func (r *Region) setFault(now, shown *Fault, flap *FlapState) {
	r.mu.Lock()
	r.fault, r.shown, r.flap = now, shown, flap
	r.mu.Unlock()
}

// runFlap takes the region out (f's outage) for DownFor and back for UpFor, Repeat times or until the fault is
// replaced (stop closes). It runs on the wall clock.
func (r *Region) runFlap(f Fault, gen uint64, stop <-chan struct{}) {
	out := f.outage()
	for n := 1; f.Repeat == 0 || n <= f.Repeat; n++ {
		if !r.flapPhase(gen, f, &out, FlapState{Phase: "out", Outages: n, Until: time.Now().Add(time.Duration(f.DownFor))}) ||
			!wait(stop, time.Duration(f.DownFor)) {
			return
		}
		if !r.flapPhase(gen, f, nil, FlapState{Phase: "up", Outages: n, Until: time.Now().Add(time.Duration(f.UpFor))}) ||
			!wait(stop, time.Duration(f.UpFor)) {
			return
		}
	}
	r.flapPhase(gen, f, nil, FlapState{Phase: "over", Outages: f.Repeat})
}

// flapPhase puts a flap's phase in force, unless the flap was replaced since; it reports whether it did.
func (r *Region) flapPhase(gen uint64, f Fault, now *Fault, st FlapState) bool {
	r.setMu.Lock()
	defer r.setMu.Unlock()
	if r.gen != gen {
		return false
	}
	// The phase is reported once it is in force: a client that sees "out" finds the port closed.
	r.setFault(now, &f, r.flapState())
	ok := true
	if now != nil && now.Mode == ModeDown {
		r.down()
	} else {
		ok = r.open() == nil
	}
	r.mu.Lock()
	r.flap = &st
	r.mu.Unlock()
	return ok
}

func (r *Region) flapState() *FlapState {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.flap
}

func wait(stop <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-stop:
		return false
	}
}

// AddDeployment adds or replaces a deployment.
func (r *Region) AddDeployment(d Deployment) error {
	return r.addDeployment(d, true, armSKU{})
}

func (r *Region) addDeployment(d Deployment, checkFineTuned bool, sku armSKU) error {
	if d.Name == "" {
		return fmt.Errorf("deployment name is required")
	}
	if strings.ContainsAny(d.Name, "/?#% ") {
		return fmt.Errorf("deployment name %q may not contain '/', '?', '#', '%%' or spaces", d.Name)
	}
	if d.Model == "" {
		d.Model = d.Name
	}
	if d.TPM < 0 || d.RPM < 0 || d.Dimensions < 0 {
		return fmt.Errorf("deployment %s: tpm, rpm and dimensions must not be negative", d.Name)
	}
	if d.Version == "" {
		d.Version = defaultVersion(d.Model)
	}
	if checkFineTuned && isFineTuned(d.Model) && !r.store.hasFineTunedModel(d.Model) {
		return fmt.Errorf("model %q is not a fine-tuned model of region %s (its job must have succeeded there)", d.Model, r.name)
	}
	if sku.Name == "" {
		sku = armSKU{Name: "Standard", Capacity: max(1, d.TPM/1000)}
	}
	dep := &deployment{Deployment: d, fingerprint: fingerprint(d.Model), quota: newQuota(d.TPM, d.RPM, r.sim.now()), sku: sku.Name, capacity: sku.Capacity}
	r.mu.Lock()
	r.deployments[d.Name] = dep
	r.mu.Unlock()
	return nil
}

// Deployments returns the region's deployments sorted by name.
func (r *Region) Deployments() []Deployment {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]Deployment, 0, len(r.deployments))
	for _, d := range r.deployments {
		out = append(out, d.Deployment)
	}
	sortDeployments(out)
	return out
}

func (r *Region) deployment(name string) *deployment {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.deployments[name]
}

// open starts listening if the region is not listening; it is a no-op when up.
func (r *Region) open() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errClosed
	}
	if r.up {
		return nil
	}
	ln, err := net.Listen("tcp", r.listen)
	if err != nil {
		return err
	}
	if host, _, err := net.SplitHostPort(r.listen); err == nil {
		r.listen = net.JoinHostPort(host, fmt.Sprint(ln.Addr().(*net.TCPAddr).Port))
	}
	r.addr = hostForURL(ln.Addr())
	var l net.Listener = &trackingListener{Listener: ln, region: r}
	if r.sim.cert != nil {
		l = tls.NewListener(l, r.sim.cert.serverConfig())
	}
	srv := &http.Server{
		Handler:           r,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       120 * time.Second,
		// HTTP/1.1 only: hijacking (blackhole, cut_stream) needs it, and clients gain nothing from h2 here.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
		ErrorLog:     log.New(io.Discard, "", 0),
	}
	r.srv, r.ln = srv, ln
	r.up = true
	go srv.Serve(l)
	return nil
}

// down closes the listener, so new connections are refused, and the idle and held (blackholed) connections, so
// clients cannot keep using pooled ones. Requests in flight finish (streams included) and their connections close
// after them: a sudden break in the middle of an answer is cut_stream's job.
func (r *Region) down() {
	r.mu.Lock()
	srv, ln := r.srv, r.ln
	r.srv, r.ln = nil, nil
	r.up = false
	var held []*trackedConn
	for c := range r.conns {
		if c.held.Load() {
			held = append(held, c)
		}
	}
	if srv != nil {
		r.draining[srv] = struct{}{}
	}
	r.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	for _, c := range held {
		c.Close()
	}
	r.realtime.closeAll()
	if srv != nil {
		srv.SetKeepAlivesEnabled(false) // closes idle connections now; answers in flight end with Connection: close
		go func() {
			srv.Shutdown(context.Background()) // closes idle connections now, the others once their answer is done
			r.mu.Lock()
			delete(r.draining, srv)
			r.mu.Unlock()
		}()
	}
}

// shutdown stops the region for good: every server and connection is closed at once.
func (r *Region) shutdown() {
	r.setMu.Lock()
	r.gen++
	if r.flapStop != nil {
		close(r.flapStop)
		r.flapStop = nil
	}
	r.setMu.Unlock()
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.down()
	r.mu.Lock()
	servers := make([]*http.Server, 0, len(r.draining))
	for srv := range r.draining {
		servers = append(servers, srv)
	}
	conns := make([]*trackedConn, 0, len(r.conns))
	for c := range r.conns {
		conns = append(conns, c)
	}
	r.mu.Unlock()
	for _, srv := range servers {
		srv.Close()
	}
	for _, c := range conns {
		c.Close()
	}
}

// trackingListener records every accepted connection so that down and Close can end hijacked and held ones too.
type trackingListener struct {
	net.Listener
	region *Region
}

// Accept hands new connections to the HTTP server, except under a region-wide blackhole: then the connection is
// held before any byte is read (no TLS handshake, no HTTP), as a silent network path would.
func (l *trackingListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		tc := &trackedConn{Conn: c, region: l.region}
		l.region.mu.Lock()
		if l.region.closed {
			l.region.mu.Unlock()
			c.Close()
			return nil, net.ErrClosed
		}
		l.region.conns[tc] = struct{}{}
		f := l.region.fault
		l.region.mu.Unlock()
		l.region.stats.connections.Add(1)
		if f != nil && f.Mode == ModeBlackhole && f.Deployment == "" && f.Rate >= 1 {
			l.region.stats.blackholed.Add(1)
			tc.held.Store(true)
			go func() {
				io.Copy(io.Discard, tc)
				tc.Close()
			}()
			continue
		}
		return tc, nil
	}
}

type trackedConn struct {
	net.Conn
	region *Region
	once   sync.Once
	held   atomic.Bool // taken from the HTTP server by blackhole: down closes it
}

// markHeld flags a hijacked connection as held by blackhole.
func markHeld(c net.Conn) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if t, ok := c.(*trackedConn); ok {
		t.held.Store(true)
	}
}

func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.region.mu.Lock()
		delete(c.region.conns, c)
		c.region.mu.Unlock()
	})
	return err
}

// chance reports true with probability p, from the region's seeded source.
func (r *Region) chance(p float64) bool {
	if p >= 1 {
		return true
	}
	if p <= 0 {
		return false
	}
	r.faultMu.Lock()
	v := r.faultRand.Float64()
	r.faultMu.Unlock()
	return v < p
}

// reset closes a connection with TCP RST (SO_LINGER 0) so the peer sees "connection reset", not a clean end.
func reset(c net.Conn) {
	raw := c
	if tc, ok := raw.(*tls.Conn); ok {
		raw = tc.NetConn()
	}
	if t, ok := raw.(*trackedConn); ok {
		if tcp, ok := t.Conn.(*net.TCPConn); ok {
			tcp.SetLinger(0)
		}
	}
	c.Close()
}

// counters are a region's request counters; all fields are updated atomically.
type counters struct {
	requests         atomic.Int64
	streams          atomic.Int64
	streamsCut       atomic.Int64
	streamsStalled   atomic.Int64
	malformed        atomic.Int64
	noDone           atomic.Int64
	blackholed       atomic.Int64
	faults           atomic.Int64
	throttled        atomic.Int64
	connections      atomic.Int64
	promptTokens     atomic.Int64
	completionTokens atomic.Int64
	panics           atomic.Int64 // handler bugs turned into 500s; tests require 0
	byStatus         [600]atomic.Int64
}

// Counters is a snapshot of a region's counters.
type Counters struct {
	Requests         int64         `json:"requests"`          // requests that reached the handler
	ByStatus         map[int]int64 `json:"by_status"`         // responses by status code
	Streams          int64         `json:"streams"`           // SSE responses started
	StreamsCut       int64         `json:"streams_cut"`       // streams reset by cut_stream
	StreamsStalled   int64         `json:"streams_stalled"`   // streams held silent by stall_stream
	StreamsMalformed int64         `json:"streams_malformed"` // streams given a broken event by malformed_event
	StreamsNoDone    int64         `json:"streams_no_done"`   // streams ended without data: [DONE] by no_done
	Blackholed       int64         `json:"blackholed"`        // requests (and new connections) held by blackhole
	FaultsInjected   int64         `json:"faults_injected"`   // error, throttle, slow, blackhole and cut_stream hits
	Throttled        int64         `json:"throttled"`         // 429 answers (quota and throttle fault)
	Connections      int64         `json:"connections"`       // TCP connections accepted
	PromptTokens     int64         `json:"prompt_tokens"`     // usage reported
	CompletionTokens int64         `json:"completion_tokens"` // usage reported
}

// Stats returns a snapshot of the region's counters.
func (r *Region) Stats() Counters {
	c := Counters{
		Requests:         r.stats.requests.Load(),
		ByStatus:         map[int]int64{},
		Streams:          r.stats.streams.Load(),
		StreamsCut:       r.stats.streamsCut.Load(),
		StreamsStalled:   r.stats.streamsStalled.Load(),
		StreamsMalformed: r.stats.malformed.Load(),
		StreamsNoDone:    r.stats.noDone.Load(),
		Blackholed:       r.stats.blackholed.Load(),
		FaultsInjected:   r.stats.faults.Load(),
		Throttled:        r.stats.throttled.Load(),
		Connections:      r.stats.connections.Load(),
		PromptTokens:     r.stats.promptTokens.Load(),
		CompletionTokens: r.stats.completionTokens.Load(),
	}
	for i := range r.stats.byStatus {
		if n := r.stats.byStatus[i].Load(); n != 0 {
			c.ByStatus[i] = n
		}
	}
	return c
}

func (c *counters) status(code int) {
	if code >= 0 && code < len(c.byStatus) {
		c.byStatus[code].Add(1)
	}
}

// DisplayName returns the Azure display name of a region ("swedencentral" -> "Sweden Central"); unknown names are
// returned unchanged.
func DisplayName(name string) string {
	if d, ok := displayNames[strings.ToLower(name)]; ok {
		return d
	}
	return name
}

var displayNames = map[string]string{
	"eastus": "East US", "eastus2": "East US 2", "westus": "West US", "westus2": "West US 2", "westus3": "West US 3",
	"centralus": "Central US", "northcentralus": "North Central US", "southcentralus": "South Central US",
	"westcentralus": "West Central US", "canadaeast": "Canada East", "canadacentral": "Canada Central",
	"brazilsouth": "Brazil South", "swedencentral": "Sweden Central", "francecentral": "France Central",
	"germanywestcentral": "Germany West Central", "uksouth": "UK South", "ukwest": "UK West",
	"westeurope": "West Europe", "northeurope": "North Europe", "switzerlandnorth": "Switzerland North",
	"switzerlandwest": "Switzerland West", "norwayeast": "Norway East", "polandcentral": "Poland Central",
	"spaincentral": "Spain Central", "italynorth": "Italy North", "japaneast": "Japan East",
	"japanwest": "Japan West", "koreacentral": "Korea Central", "australiaeast": "Australia East",
	"southindia": "South India", "centralindia": "Central India", "southeastasia": "Southeast Asia",
	"eastasia": "East Asia", "southafricanorth": "South Africa North", "uaenorth": "UAE North",
}
