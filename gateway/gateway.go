// Package gateway is `lifeline serve`: an HTTP(S) reverse proxy that speaks the Azure OpenAI and OpenAI APIs to
// clients and sends each request through the failover engine (package failover) to the configured regions. It adds
// what a shared service needs around the engine: client routes and keys, the models list, streaming with in-band
// errors, access logs, Prometheus metrics, the admin API and status page, reload and graceful shutdown.
//
// The shape is httputil.ReverseProxy's: choosing the region is the engine's job (failover.Transport), the gateway
// moves the bytes and maps errors. See docs/gateway.md.
package gateway

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/singleflight"

	"github.com/lifeline-sre/lifeline/affinity"
	"github.com/lifeline-sre/lifeline/config"
	"github.com/lifeline-sre/lifeline/failover"
	"github.com/lifeline-sre/lifeline/state"
)

// Options are the gateway's hooks and dependencies. Every field may be left zero.
type Options struct {
	// Logger receives access logs and events. Nil: a logger on LogOutput in the format and level of the config's
	// `logging` section, whose level follows reloads.
	Logger *slog.Logger
	// LogOutput is where the gateway's own logger writes when Logger is nil. Nil: os.Stderr.
	LogOutput io.Writer
	// Registerer gets the gateway's metrics. Nil: a new registry, served on /metrics. When Registerer is also a
	// prometheus.Gatherer (a *prometheus.Registry is), /metrics serves it.
	Registerer prometheus.Registerer
	// Gatherer is what /metrics serves. Nil: Registerer if it is a Gatherer, else the gateway's own registry.
	Gatherer prometheus.Gatherer
	// Observer receives the engine's events too (the demo and tests watch failovers with it). Nil: none.
	Observer failover.Observer
	// RegionTLS is the TLS config for connections to regions (trust for a test CA). Nil: the system roots.
	RegionTLS *tls.Config
	// Load reads the config again for POST /admin/reload and ReloadFromSource (the CLI passes config.Load of the
	// file). Nil: reloading from the admin API answers 501.
	Load func() (*config.Config, error)
	// FailoverOptions are passed to failover.New after the gateway's own (tests inject clocks, base transports).
	FailoverOptions []failover.Option
	// Now is the clock for latencies and timestamps. Nil: time.Now.
	Now func() time.Time
	// TracerProvider receives a span per client request and per upstream attempt. Nil: one built from the
	// config's `telemetry` and the OTEL_* variables (docs/telemetry.md), or no tracing when they name no collector.
	TracerProvider trace.TracerProvider
	// Notify receives service-manager state lines in sd_notify(3) form ("READY=1" once Serve listens,
	// "STOPPING=1" when it starts draining). Nil: none. `lifeline serve` passes systemd's notification socket
	// (internal/sdnotify).
	Notify func(state string)
	// Index records which region holds each stored object (SPEC 10). Nil: an in-memory index of
	// affinity.DefaultIndexSize ids, shared with the other replicas through Redis with state.redis.
	Index affinity.Index
	// Items keeps the items of stored responses for responses.rebuild. Nil: in memory, bounded by
	// responses.rebuild_max_bytes (and shared through Redis with state.redis). Nothing is put in it while
	// responses.rebuild is off.
	Items affinity.Items
	// OnSharedEvent, with state.redis, is called after an event from another replica has been applied here (the
	// staleness benchmark times it). Nil: none.
	OnSharedEvent func(state.Event)
}

// Gateway is a running gateway: the client handler, the admin handler and the engine under them.
type Gateway struct {
	opts      Options
	transport *failover.Transport
	state     atomic.Pointer[generation]
	metrics   *metrics
	log       *slog.Logger
	level     *slog.LevelVar // nil when the caller gave the logger
	events    *eventLog
	ids       requestIDs
	now       func() time.Time
	reloadMu  sync.Mutex
	active    atomic.Int64  // client handlers running
	draining  atomic.Bool   // Drain was called: /readyz fails
	shared    *state.Shared // nil without state.redis
	limits    sync.Map      // client name -> *clientLimit, across reloads
	cert      atomic.Pointer[tls.Certificate]
	index     affinity.Index     // stored object id -> region (stored.go)
	items     affinity.Items     // items of stored responses, for responses.rebuild (rebuild.go)
	locating  singleflight.Group // one search per unknown object id at a time
	realtime  realtimeSessions   // open Realtime sessions (realtime.go)
	wsOnce    sync.Once
	ws        *http.Client // region handshakes of Realtime sessions

	// hardStop ends every request context when a graceful shutdown runs out of time.
	hardCtx  context.Context
	hardStop context.CancelFunc
	started  time.Time

	trace    *tracing    // nil: no tracing
	hist     history     // the status page's last 15 minutes
	switches switchNotes // who switched each region by hand and why, without state.redis (shared.go)
}

// generation is what a config decides for the gateway itself (the engine keeps its own). A request loads it
// once, so a reload never changes the rules under a request in flight.
type generation struct {
	cfg     *config.Config
	clients []*client
	open    *client // allow_unauthenticated: the one client every caller is; nil otherwise
	names   map[string]string
	// bodyTimeout and writeStall are server.body_read_timeout and server.write_stall_timeout (0: none).
	bodyTimeout, writeStall time.Duration
	adminKey                []byte // sha256 of admin.key; nil: admin routes are off
	cookie                  string // value of the status page cookie (HMAC of the admin key); "" when no admin key
	maxBody                 int64
}

// New builds a gateway for cfg, which must be valid (config.Load and config.Parse validate). It does not listen:
// see Run and Serve, or use Handler and AdminHandler with your own servers.
func New(cfg *config.Config, opts Options) (*Gateway, error) {
	if cfg == nil {
		return nil, errors.New("gateway: nil config")
	}
	cfg = withDefaults(cfg)
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	g := &Gateway{opts: opts, now: opts.Now, events: newEventLog(50), started: time.Now()}
	if g.now == nil {
		g.now = time.Now
	}
	g.log = opts.Logger
	if g.log == nil {
		g.level = new(slog.LevelVar)
		g.level.Set(parseLevel(cfg.Logging.Level))
		out := opts.LogOutput
		if out == nil {
			out = os.Stderr
		}
		g.log = NewLogger(out, cfg.Logging.Format, g.level)
	}
	g.ids = newRequestIDs()
	g.index = opts.Index
	if g.index == nil {
		g.index = affinity.NewMemoryIndex(0)
	}
	g.items = opts.Items
	if g.items == nil {
		g.items = affinity.NewMemoryItems(cfg.Responses.RebuildMaxBytes, g.now)
	}
	reg, gath := opts.Registerer, opts.Gatherer
	if reg == nil {
		r := prometheus.NewRegistry()
		reg = r
		if gath == nil {
			gath = r
		}
	}
	if gath == nil {
		if gg, ok := reg.(prometheus.Gatherer); ok {
			gath = gg
		} else {
			gath = prometheus.NewRegistry()
		}
	}
	m, err := newMetrics(reg, gath)
	if err != nil {
		return nil, err
	}
	g.metrics = m
	if g.shared, err = newShared(cfg, opts, g.log, reg); err != nil {
		return nil, err
	}
	if g.shared != nil { // the stored-object index and rebuild items are shared too, unless the caller gave its own
		if opts.Index == nil {
			g.index = g.shared.Index(g.index)
		}
		if opts.Items == nil {
			g.items = g.shared.Items(g.items, g.now)
		}
	}
	fopts := []failover.Option{failover.WithObserver(g.observer())}
	if g.shared != nil {
		fopts[0] = failover.WithObserver(failover.Observers{g.observer(), g.shared.Observer()})
	}
	if g.trace, err = newTracing(cfg, opts); err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	if g.trace != nil {
		fopts = append(fopts, g.trace.failoverOption())
	}
	if opts.RegionTLS != nil {
		fopts = append(fopts, failover.WithTLSConfig(opts.RegionTLS))
	}
	fopts = append(fopts, opts.FailoverOptions...)
	t, err := failover.New(cfg.Failover(), fopts...)
	if err != nil {
		g.trace.shutdown()
		return nil, fmt.Errorf("gateway: %w", err)
	}
	g.transport = t
	if err := reg.Register(entraCollector{g}); err != nil {
		return nil, err
	}
	g.state.Store(g.newGeneration(cfg))
	if err := reg.Register(regionCollector{g}); err != nil {
		g.trace.shutdown()
		return nil, err
	}
	g.hardCtx, g.hardStop = context.WithCancel(context.Background())
	g.metrics.setStates(t.Regions())
	if g.shared != nil {
		g.shared.Start(t) // in the background: Redis is never waited for
	}
	return g, nil
}

// withDefaults returns a copy of cfg with the documented defaults filled in (callers that build a Config in Go
// need not call ApplyDefaults); cfg itself is not changed.
func withDefaults(cfg *config.Config) *config.Config {
	c := *cfg
	c.Regions = slices.Clone(cfg.Regions)
	c.ApplyDefaults()
	return &c
}

func (g *Gateway) newGeneration(cfg *config.Config) *generation {
	gen := &generation{cfg: cfg, names: map[string]string{}, maxBody: cfg.Policy.MaxBodyBytes,
		bodyTimeout: cfg.Server.BodyReadTimeout.D(), writeStall: cfg.Server.WriteStallTimeout.D()}
	if gen.maxBody <= 0 {
		gen.maxBody = config.DefaultMaxBodyBytes
	}
	names := cfg.Names()
	for _, n := range names {
		gen.names[n] = n // the map's values are the canonical strings used as metric labels
	}
	for i, c := range cfg.Clients {
		gen.clients = append(gen.clients, newClient(c, i, names, g.limitFor(c)))
	}
	if cfg.AllowUnauthenticated {
		gen.open = newClient(config.Client{Name: anonymous}, -1, names, &clientLimit{})
	}
	if cfg.Admin.Key != "" {
		sum := sha256.Sum256([]byte(cfg.Admin.Key))
		gen.adminKey = sum[:]
		mac := hmac.New(sha256.New, []byte(cfg.Admin.Key))
		io.WriteString(mac, "lifeline status page session")
		gen.cookie = hex.EncodeToString(mac.Sum(nil))
	}
	return gen
}

// Transport is the engine under the gateway (for callers that want its status or to disable a region).
func (g *Gateway) Transport() *failover.Transport { return g.transport }

// Config is the config in effect.
func (g *Gateway) Config() *config.Config { return g.state.Load().cfg }

// Reload applies cfg to a running gateway: regions, policy, names, client keys, admin key and log level change at
// once; requests in flight finish under the config they started with. An invalid cfg is refused and the old one
// keeps serving. listen, tls, admin.listen and server.* take effect only on restart; a change to them is logged.
func (g *Gateway) Reload(cfg *config.Config) error {
	if cfg == nil {
		return errors.New("gateway: nil config")
	}
	g.reloadMu.Lock()
	defer g.reloadMu.Unlock()
	cfg = withDefaults(cfg)
	if err := cfg.Validate(); err != nil {
		g.metrics.reloads.WithLabelValues("error").Inc()
		return fmt.Errorf("config: %w", err)
	}
	var cert *tls.Certificate
	if cfg.TLS != nil {
		c, err := tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile)
		if err != nil {
			g.metrics.reloads.WithLabelValues("error").Inc()
			return fmt.Errorf("reload: tls: %w", err)
		}
		cert = &c
	}
	if err := g.transport.Reconfigure(cfg.Failover()); err != nil {
		g.metrics.reloads.WithLabelValues("error").Inc()
		return fmt.Errorf("reload: %w", err)
	}
	old := g.state.Swap(g.newGeneration(cfg))
	if cert != nil {
		g.cert.Store(cert) // rotated certificates apply to new connections at once
	}
	if g.level != nil {
		g.level.Set(parseLevel(cfg.Logging.Level))
	}
	g.metrics.setStates(g.transport.Regions())
	g.metrics.reloads.WithLabelValues("ok").Inc()
	if o := old.cfg; o.Listen != cfg.Listen || o.Admin.Listen != cfg.Admin.Listen || o.Server != cfg.Server ||
		(o.TLS == nil) != (cfg.TLS == nil) || !reflect.DeepEqual(o.State, cfg.State) {
		g.log.Warn("config reloaded; listen, admin.listen, server.*, state.* and turning tls on or off take effect only on restart")
	}
	g.log.Info("config reloaded", "regions", len(cfg.Regions), "names", len(cfg.Names()), "clients", len(cfg.Clients))
	return nil
}

// ReloadFromSource reads the config again with Options.Load and applies it (SIGHUP and POST /admin/reload).
func (g *Gateway) ReloadFromSource() error {
	if g.opts.Load == nil {
		return errNoLoader
	}
	cfg, err := g.opts.Load()
	if err != nil {
		g.metrics.reloads.WithLabelValues("error").Inc()
		g.log.Error("config reload refused; the old config keeps serving", "error", err.Error())
		return err
	}
	if err := g.Reload(cfg); err != nil {
		g.log.Error("config reload refused; the old config keeps serving", "error", err.Error())
		return err
	}
	return nil
}

var errNoLoader = errors.New("gateway: no config source to reload from")

// Close stops the engine's background work. Use it when the gateway is not run with Run or Serve.
func (g *Gateway) Close() {
	g.hardStop()
	g.transport.Close()
	if g.shared != nil {
		g.shared.Close()
	}
	g.trace.shutdown()
}

// requestIDs makes short unique request ids: a random process prefix and a counter.
type requestIDs struct {
	prefix string
	n      atomic.Uint64
}

func newRequestIDs() requestIDs {
	var b [4]byte
	rand.Read(b[:])
	return requestIDs{prefix: hex.EncodeToString(b[:])}
}

func (r *requestIDs) next() string {
	n := r.n.Add(1)
	var buf [24]byte
	out := append(buf[:0], r.prefix...)
	out = append(out, '-')
	out = appendHex(out, n)
	return string(out)
}

func appendHex(b []byte, n uint64) []byte {
	const digits = "0123456789abcdef"
	var tmp [16]byte
	i := len(tmp)
	for {
		i--
		tmp[i] = digits[n&15]
		n >>= 4
		if n == 0 {
			break
		}
	}
	return append(b, tmp[i:]...)
}
