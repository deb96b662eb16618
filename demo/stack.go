package demo

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/lifeline-sre/lifeline/config"
	"github.com/lifeline-sre/lifeline/failover"
	"github.com/lifeline-sre/lifeline/gateway"
	"github.com/lifeline-sre/lifeline/internal/h1srv"
	"github.com/lifeline-sre/lifeline/sim"
)

// stack is the demo's running system: simulated regions, the gateway and its admin listener, on loopback sockets.
type stack struct {
	sim        *sim.Sim
	gw         *gateway.Gateway
	servers    []interface{ Close() error }
	gatewayURL string
	statusURL  string
	clientKey  string
	simKey     string
	rec        *recorder
	begin      time.Time

	mu                            sync.Mutex
	states                        map[string]failover.State
	resumes, resumeFailed, hedges int
	opened                        map[string][]time.Duration // when each region's breaker opened, since begin
	last                          map[string]time.Time       // last failover event shown per from->to, to keep the view readable
}

func randomKey(prefix string) string {
	b := make([]byte, 16)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// demoConfig is the gateway config of the demo: three regions in order of preference, and no policy: the demo
// shows what a user gets on the defaults.
func demoConfig(urls []string, simKey, clientKey, adminKey string) string {
	// The listen addresses are not used: the demo serves the gateway's handlers on listeners of its own.
	c := fmt.Sprintf(`clients:
  - name: demo
    key: %s
admin:
  key: %s
regions:
`, clientKey, adminKey)
	for i, name := range Regions {
		c += fmt.Sprintf(`  - name: %s
    endpoint: %s
    api_key: %s
    priority: %d
    deployments:
      gpt-4o: gpt-4o
      gpt-4o-mini: gpt-4o-mini
`, name, urls[i], simKey, i+1)
	}
	return c
}

func startStack(seed int64) (*stack, error) {
	st := &stack{rec: &recorder{}, simKey: randomKey("sim-"), clientKey: randomKey("demo-"),
		states: map[string]failover.State{}, opened: map[string][]time.Duration{}, last: map[string]time.Time{}, begin: time.Now()}
	regions := sim.DefaultRegions(Regions...)
	for i := range regions {
		regions[i].TimeToFirstToken = 30 * time.Millisecond
		regions[i].TokensPerSecond = 400
	}
	s, err := sim.Start(sim.Config{Regions: regions, APIKey: st.simKey, Seed: seed, Answers: sim.AnswersDeterministic})
	if err != nil {
		return nil, fmt.Errorf("starting simulated regions: %w", err)
	}
	st.sim = s
	st.begin = time.Now()
	var urls []string
	for _, r := range Regions {
		urls = append(urls, s.Region(r).URL())
	}
	adminKey := randomKey("admin-")
	cfg, err := config.Parse([]byte(demoConfig(urls, st.simKey, st.clientKey, adminKey)), func(string) (string, bool) { return "", false })
	if err != nil {
		st.close()
		return nil, fmt.Errorf("demo config: %w", err)
	}
	gw, err := gateway.New(cfg, gateway.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Observer: demoObserver{st: st}})
	if err != nil {
		st.close()
		return nil, fmt.Errorf("starting the gateway: %w", err)
	}
	st.gw = gw
	// The client side is served by Lifeline's HTTP/1.x server, as `lifeline serve` does; the status page by net/http.
	gwURL, err := st.serve(&h1srv.Server{Handler: gw.Handler(), ReadHeaderTimeout: 5 * time.Second})
	if err != nil {
		st.close()
		return nil, err
	}
	adminURL, err := st.serve(&http.Server{Handler: gw.AdminHandler(), ReadHeaderTimeout: 5 * time.Second})
	if err != nil {
		st.close()
		return nil, err
	}
	st.gatewayURL = gwURL
	st.statusURL = adminURL + "/status?key=" + adminKey
	return st, nil
}

// serve runs srv on a new loopback listener until the stack closes.
func (st *stack) serve(srv interface {
	Serve(net.Listener) error
	Close() error
}) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("listening on loopback: %w", err)
	}
	st.servers = append(st.servers, srv)
	go srv.Serve(ln)
	return "http://" + ln.Addr().String(), nil
}

func (st *stack) regionURL(name string) string { return st.sim.Region(name).URL() }

func (st *stack) fault(region, mode string, retryAfter time.Duration) error {
	return st.sim.Fault(region, sim.Fault{Mode: mode, RetryAfter: sim.Duration(retryAfter)})
}

// state is what the live view shows for a region: the engine's state, or "throttled" for a healthy region
// whose every deployment is cooling down after a 429 (it takes no traffic, and is not healthy at 0/s).
func (st *stack) state(region string) string {
	for _, r := range st.gw.Transport().Regions() {
		if r.Name != region {
			continue
		}
		if r.State == failover.Healthy && len(r.Deployments) > 0 && allCooling(r.Deployments) {
			return "throttled"
		}
		return r.State.String()
	}
	return "unknown"
}

func allCooling(ds []failover.DeploymentStatus) bool {
	for _, d := range ds {
		if d.CoolingUntil.IsZero() {
			return false
		}
	}
	return true
}

// openedAt returns when region's breaker first opened at or after t, relative to the run's begin, or -1.
func (st *stack) openedAt(region string, t time.Duration) time.Duration {
	if t < 0 {
		return -1
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, at := range st.opened[region] {
		if at >= t {
			return at
		}
	}
	return -1
}

func (st *stack) close() {
	for _, s := range st.servers {
		s.Close()
	}
	if st.gw != nil {
		st.gw.Close()
	}
	if st.sim != nil {
		st.sim.Close()
	}
}

// demoObserver turns the engine's events into the demo's event list and region states.
type demoObserver struct {
	failover.NopObserver
	st *stack
}

func (o demoObserver) StateChanged(e failover.StateChange) {
	st := o.st
	at := e.At.Sub(st.begin)
	st.mu.Lock()
	st.states[e.Region] = e.To
	if e.To == failover.Open {
		st.opened[e.Region] = append(st.opened[e.Region], at)
	}
	st.mu.Unlock()
	st.rec.event(Event{At: at, Text: fmt.Sprintf("region %s: %s -> %s", e.Region, e.From, e.To)})
}

func (o demoObserver) Resume(e failover.ResumeEvent) {
	st := o.st
	st.mu.Lock()
	if e.Outcome == failover.ResumeOK {
		st.resumes++
	} else {
		st.resumeFailed++
	}
	quiet := time.Since(st.last["resume"+e.Outcome]) < 2*time.Second
	if !quiet {
		st.last["resume"+e.Outcome] = time.Now()
	}
	st.mu.Unlock()
	if !quiet {
		st.rec.event(Event{At: time.Since(st.begin), Text: fmt.Sprintf("stream resumed %s -> %s (%s)", e.From, e.To, e.Outcome)})
	}
}

func (o demoObserver) Hedge(e failover.HedgeEvent) {
	st := o.st
	st.mu.Lock()
	if e.Outcome == failover.HedgeWon {
		st.hedges++
	}
	key := "hedge" + e.Outcome
	quiet := time.Since(st.last[key]) < 2*time.Second
	if !quiet {
		st.last[key] = time.Now()
	}
	st.mu.Unlock()
	if !quiet {
		st.rec.event(Event{At: time.Since(st.begin), Text: fmt.Sprintf("hedge %s -> %s after %s (%s)", e.From, e.To, e.Delay.Round(time.Millisecond), e.Outcome)})
	}
}

// gray returns the counts of the gray phases: streams resumed and not, answers that came from a hedge.
func (st *stack) gray() (resumed, failed, hedged int) {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.resumes, st.resumeFailed, st.hedges
}

func (o demoObserver) Failover(e failover.FailoverEvent) {
	st := o.st
	key := e.From + ">" + e.To + e.Reason.String()
	now := time.Now()
	st.mu.Lock()
	quiet := now.Sub(st.last[key]) < 2*time.Second
	if !quiet {
		st.last[key] = now
	}
	st.mu.Unlock()
	if !quiet {
		st.rec.event(Event{At: now.Sub(st.begin), Text: fmt.Sprintf("failover %s -> %s (%s)", e.From, e.To, e.Reason)})
	}
}
