// Package config loads the YAML configuration of `lifeline serve` (SPEC.md section 3): strict parsing that names the
// offending key, ${NAME} expansion from the environment, documented defaults, validation that reports every problem at
// once, and conversion of the `regions` and `policy` parts to a failover.Config.
//
// Every struct here is plain data. The zero value of a field means its documented default (docs/config.md); Load and
// Parse fill the defaults in, so a loaded Config shows the values in effect.
package config

import (
	"fmt"
	"os"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/lifeline-sre/lifeline/failover"
)

// Config is the whole file.
type Config struct {
	// Listen is the client-facing address. Default "127.0.0.1:8080".
	Listen string `yaml:"listen"`
	// TLS, when set, serves HTTPS (and HTTP/2) to clients. Nil means plain HTTP (HTTP/1.1 and h2c).
	TLS *TLS `yaml:"tls"`
	// Clients may call the gateway, each with its own key. Empty is refused unless AllowUnauthenticated.
	Clients []Client `yaml:"clients"`
	// AllowUnauthenticated lets any caller in when Clients is empty. Default false.
	AllowUnauthenticated bool `yaml:"allow_unauthenticated"`
	// Admin is the operator listener: health, metrics, status page, admin API.
	Admin Admin `yaml:"admin"`
	// Regions are the Azure OpenAI resources, at least one.
	Regions []Region `yaml:"regions"`
	// Fallbacks lists, per client-visible name, other names to try in order when no region can serve it or a
	// region answers 400 context_length_exceeded.
	Fallbacks map[string][]string `yaml:"fallbacks"`
	// Policy is routing, retries, breakers, timeouts and the body limit.
	Policy Policy `yaml:"policy"`
	// Server holds the HTTP server limits against slow or idle clients and the shutdown bound.
	Server Server `yaml:"server"`
	// Logging is the access and event log format.
	Logging Logging `yaml:"logging"`
	// Telemetry sends traces to an OpenTelemetry collector (config/telemetry.go).
	Telemetry Telemetry `yaml:"telemetry"`
	// Responses configures stored responses: rebuilding a conversation in another region (config/responses.go).
	Responses Responses `yaml:"responses"`
	// State shares what replicas learn about regions through Redis (config/state.go). Zero: each replica keeps
	// its state to itself.
	State State `yaml:"state"`
}

// TLS names the certificate and key files of the client-facing listener.
type TLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Client is one caller of the gateway, with what its key may do (SPEC.md section 12). Name appears in logs and
// metrics; Key never does.
type Client struct {
	Name string `yaml:"name"`
	Key  string `yaml:"key"`
	// Names are the client-visible names the key may use. Nil (the key left out): every name.
	Names []string `yaml:"names"`
	// Operations are the operations the key may use (SPEC.md section 12). Nil: chat/completions, completions,
	// embeddings, responses, images, audio and realtime; conversations, files, batches, fine_tuning and
	// vector_stores only when listed.
	Operations []string `yaml:"operations"`
	// MaxConcurrent bounds the key's requests in flight (streams included); more get 429. Zero: no limit.
	MaxConcurrent int `yaml:"max_concurrent"`
	// RequestsPerMinute bounds the key's request rate, with a burst of ten seconds' worth (as Azure evaluates
	// its own rate limits); more get 429 with the time to wait. Zero: no limit.
	RequestsPerMinute int `yaml:"requests_per_minute"`
}

// Admin configures the operator listener.
type Admin struct {
	// Listen is the admin address. Default "127.0.0.1:8081".
	Listen string `yaml:"listen"`
	// Key guards /admin/* and /status. Empty: those routes answer 403 (health and metrics stay open).
	Key string `yaml:"key"`
	// StatusRefresh is how often the status page polls. Default 2s.
	StatusRefresh Duration `yaml:"status_refresh"`
}

// Region is one regional Azure OpenAI resource.
type Region struct {
	Name        string            `yaml:"name"`
	Endpoint    string            `yaml:"endpoint"`
	APIKey      string            `yaml:"api_key"`
	Entra       *Entra            `yaml:"entra"`
	Priority    int               `yaml:"priority"` // 0 means 1
	Weight      int               `yaml:"weight"`   // 0 means 1
	Deployments map[string]string `yaml:"deployments"`
	// Prefill holds the names written in the long form with `prefill: true` (see deployments.go).
	Prefill  map[string]bool `yaml:"-"`
	Protocol string          `yaml:"protocol"` // auto (default) | http1 | http2
}

// Entra selects Microsoft Entra ID auth. All fields empty: DefaultAzureCredential (workload identity, managed
// identity, environment, developer sign-ins). TenantID, ClientID and ClientSecret: a service principal.
// ManagedIdentityClientID alone: that user-assigned managed identity.
type Entra struct {
	TenantID                string `yaml:"tenant_id"`
	ClientID                string `yaml:"client_id"`
	ClientSecret            string `yaml:"client_secret"`
	ManagedIdentityClientID string `yaml:"managed_identity_client_id"`
}

// Policy mirrors failover.Policy.
type Policy struct {
	Routing      string   `yaml:"routing"` // priority (default) | weighted | latency
	Retry        Retry    `yaml:"retry"`
	Breaker      Breaker  `yaml:"breaker"`
	Timeouts     Timeouts `yaml:"timeouts"`
	Hedge        Hedge    `yaml:"hedge"`
	Streams      Streams  `yaml:"streams"`
	MaxBodyBytes int64    `yaml:"max_body_bytes"` // default 32 MiB
	// StreamUpstream sends non-streaming chat/completions, completions and responses requests to the region as
	// streams and reassembles the non-streaming answer; default true.
	StreamUpstream *bool `yaml:"stream_upstream"`
}

// Hedge starts a slow request also in the next region (docs/failover.md, Hedging).
type Hedge struct {
	// Delay is the wait for a first byte before the hedge: auto (default: learned per deployment from its
	// recent time to first byte, within min_delay and max_delay), off, or a fixed duration.
	Delay    string   `yaml:"delay"`
	MinDelay Duration `yaml:"min_delay"` // floor of the learned delay; default 500ms
	MaxDelay Duration `yaml:"max_delay"` // cap of the learned delay; default 10s
	Budget   float64  `yaml:"budget"`    // hedged requests as a share of all; default 0.1, plus one a second
}

// Streams governs a stream that a region breaks after the client got bytes (docs/failover.md, Stream resume).
type Streams struct {
	Resume        string   `yaml:"resume"`         // replay (default) | prefill | off
	ResumeTimeout Duration `yaml:"resume_timeout"` // how long a client may wait for the splice; default 30s
}

// Values of Hedge.Delay besides a duration.
const (
	HedgeAuto = "auto"
	HedgeOff  = "off"
)

// Retry is the in-region retry of a transient error.
type Retry struct {
	AttemptsPerRegion int      `yaml:"attempts_per_region"` // default 2
	Backoff           Duration `yaml:"backoff"`             // default 100ms
	MaxBackoff        Duration `yaml:"max_backoff"`         // default 2s
}

// Breaker takes a failing region out of service.
type Breaker struct {
	Failures    int      `yaml:"failures"`     // consecutive failures that open it; default 5
	OpenFor     Duration `yaml:"open_for"`     // default 30s
	MaxOpenFor  Duration `yaml:"max_open_for"` // cap of the lengthening open time; default 5m
	FailureRate float64  `yaml:"failure_rate"` // failed share within Window that opens it; default 0.5, above 1 disables
	Window      Duration `yaml:"window"`       // span of the failure rate; default 60s
	MinRequests int      `yaml:"min_requests"` // attempts within Window before FailureRate applies; default 20
	SlowStart   Duration `yaml:"slow_start"`   // ramp of traffic back to a recovered region; default 30s, negative: none
	// AbandonedAfter: a client giving up after this long without an answer counts against the region; default 5s, negative: never
	AbandonedAfter Duration `yaml:"abandoned_after"`
	// ProbeInterval: a region out of service is probed this often in the background (no tokens); default 5s, negative: never
	ProbeInterval Duration `yaml:"probe_interval"`
}

// Timeouts bound each phase of an upstream attempt.
type Timeouts struct {
	Connect         Duration `yaml:"connect"`           // default 3s
	StreamFirstByte Duration `yaml:"stream_first_byte"` // default 30s
	Response        Duration `yaml:"response"`          // default 300s
	StreamIdle      Duration `yaml:"stream_idle"`       // default 60s
}

// Server limits the client-facing HTTP servers.
type Server struct {
	ReadHeaderTimeout Duration `yaml:"read_header_timeout"` // default 10s
	IdleTimeout       Duration `yaml:"idle_timeout"`        // default 120s
	ShutdownTimeout   Duration `yaml:"shutdown_timeout"`    // default 30s: how long streams in flight may finish
	// ShutdownDelay is how long the gateway keeps accepting and serving after SIGTERM, with /readyz failing, so that
	// load balancers take it out before it stops accepting. Default 5s; negative: no delay.
	ShutdownDelay  Duration `yaml:"shutdown_delay"`
	MaxHeaderBytes int      `yaml:"max_header_bytes"` // default 64 KiB
	// BodyReadTimeout bounds reading a request's whole body, from the first read; a client that has not sent it
	// all by then gets 408 and the connection closes. Default 60s; negative: no bound.
	BodyReadTimeout Duration `yaml:"body_read_timeout"`
	// WriteStallTimeout bounds each write to a client: one that stops reading for this long (its socket buffer
	// full) loses the connection, and the region's stream is released. Default 30s; negative: no bound.
	WriteStallTimeout Duration `yaml:"write_stall_timeout"`
	// HTTP1 is the server for HTTP/1.x on a plain (non-TLS) listener: lifeline (default) or net/http.
	HTTP1 string `yaml:"http1"`
}

// Servers for Server.HTTP1.
const (
	HTTP1Lifeline = "lifeline"
	HTTP1NetHTTP  = "net/http"
)

// Logging selects the log format and level.
type Logging struct {
	Format string `yaml:"format"` // json (default) | text
	Level  string `yaml:"level"`  // debug | info (default) | warn | error
}

// Defaults, exported so that docs, tests and the gateway agree. The policy defaults are the engine's own.
const (
	DefaultListen            = "127.0.0.1:8080"
	DefaultAdminListen       = "127.0.0.1:8081"
	DefaultStatusRefresh     = 2 * time.Second
	DefaultRouting           = failover.RoutingPriority
	DefaultAttemptsPerRegion = failover.DefaultAttemptsPerRegion
	DefaultBackoff           = failover.DefaultBackoff
	DefaultMaxBackoff        = failover.DefaultMaxBackoff
	DefaultBreakerFailures   = failover.DefaultFailures
	DefaultOpenFor           = failover.DefaultOpenFor
	DefaultMaxOpenFor        = failover.DefaultMaxOpenFor
	DefaultFailureRate       = failover.DefaultFailureRate
	DefaultWindow            = failover.DefaultWindow
	DefaultMinRequests       = failover.DefaultMinRequests
	DefaultSlowStart         = failover.DefaultSlowStart
	DefaultAbandonedAfter    = failover.DefaultAbandonedAfter
	DefaultProbeInterval     = failover.DefaultProbeInterval
	DefaultHedgeMinDelay     = failover.DefaultHedgeMinDelay
	DefaultHedgeMaxDelay     = failover.DefaultHedgeMaxDelay
	DefaultHedgeBudget       = failover.DefaultHedgeBudget
	DefaultResume            = failover.ResumeReplay
	DefaultResumeTimeout     = failover.DefaultResumeTimeout
	DefaultConnect           = failover.DefaultConnectTimeout
	DefaultStreamFirstByte   = failover.DefaultStreamFirstByte
	DefaultResponse          = failover.DefaultResponseTimeout
	DefaultStreamIdle        = failover.DefaultStreamIdle
	DefaultMaxBodyBytes      = failover.DefaultMaxBodyBytes
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultIdleTimeout       = 120 * time.Second
	DefaultShutdownTimeout   = 30 * time.Second
	DefaultShutdownDelay     = 5 * time.Second
	DefaultMaxHeaderBytes    = 64 << 10
	DefaultBodyReadTimeout   = 60 * time.Second
	DefaultWriteStallTimeout = 30 * time.Second
	DefaultLogFormat         = "json"
	DefaultLogLevel          = "info"
)

// Duration is a time.Duration written as a Go duration string ("250ms", "2s") in YAML.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats d like time.Duration.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalYAML writes d as a duration string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// Load reads the file at path, expands ${NAME} from the process environment, parses it strictly, fills in the
// defaults and validates. Problems in the file come back as *Errors.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return Parse(data, os.LookupEnv)
}

// Parse is Load on bytes, with the environment given as a lookup function (nil: no variable is set).
func Parse(data []byte, lookupEnv func(string) (string, bool)) (*Config, error) {
	if lookupEnv == nil {
		lookupEnv = func(string) (string, bool) { return "", false }
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, &Errors{Problems: []Problem{{Message: trimYAMLPrefix(err.Error())}}}
	}
	c := &Config{}
	d := decoder{env: lookupEnv}
	if len(doc.Content) > 0 {
		prefill := d.longDeployments(doc.Content[0])
		d.decode(doc.Content[0], "", c)
		for i, names := range prefill {
			if i < len(c.Regions) {
				c.Regions[i].Prefill = names
			}
		}
	}
	if len(d.errs.Problems) > 0 {
		return nil, &d.errs
	}
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// ApplyDefaults replaces every zero field that has a documented default by that default.
func (c *Config) ApplyDefaults() {
	setDefault(&c.Listen, DefaultListen)
	setDefault(&c.Admin.Listen, DefaultAdminListen)
	setDefault(&c.Admin.StatusRefresh, Duration(DefaultStatusRefresh))
	c.Responses.applyDefaults()
	c.State.applyDefaults()
	for i := range c.Regions {
		setDefault(&c.Regions[i].Priority, 1)
		setDefault(&c.Regions[i].Weight, 1)
		setDefault(&c.Regions[i].Protocol, failover.ProtocolAuto)
	}
	p := &c.Policy
	setDefault(&p.Routing, DefaultRouting)
	setDefault(&p.Retry.AttemptsPerRegion, DefaultAttemptsPerRegion)
	setDefault(&p.Retry.Backoff, Duration(DefaultBackoff))
	setDefault(&p.Retry.MaxBackoff, Duration(DefaultMaxBackoff))
	setDefault(&p.Breaker.Failures, DefaultBreakerFailures)
	setDefault(&p.Breaker.OpenFor, Duration(DefaultOpenFor))
	setDefault(&p.Breaker.MaxOpenFor, Duration(max(DefaultMaxOpenFor, p.Breaker.OpenFor.D())))
	setDefault(&p.Breaker.FailureRate, DefaultFailureRate)
	setDefault(&p.Breaker.Window, Duration(DefaultWindow))
	setDefault(&p.Breaker.MinRequests, DefaultMinRequests)
	setDefault(&p.Breaker.SlowStart, Duration(DefaultSlowStart))
	setDefault(&p.Breaker.AbandonedAfter, Duration(DefaultAbandonedAfter))
	setDefault(&p.Breaker.ProbeInterval, Duration(DefaultProbeInterval))
	setDefault(&p.Hedge.Delay, HedgeAuto)
	setDefault(&p.Hedge.MinDelay, Duration(DefaultHedgeMinDelay))
	setDefault(&p.Hedge.MaxDelay, Duration(max(DefaultHedgeMaxDelay, p.Hedge.MinDelay.D())))
	setDefault(&p.Hedge.Budget, DefaultHedgeBudget)
	setDefault(&p.Streams.Resume, DefaultResume)
	setDefault(&p.Streams.ResumeTimeout, Duration(DefaultResumeTimeout))
	setDefault(&p.Timeouts.Connect, Duration(DefaultConnect))
	setDefault(&p.Timeouts.StreamFirstByte, Duration(DefaultStreamFirstByte))
	setDefault(&p.Timeouts.Response, Duration(DefaultResponse))
	setDefault(&p.Timeouts.StreamIdle, Duration(DefaultStreamIdle))
	setDefault(&p.MaxBodyBytes, DefaultMaxBodyBytes)
	setDefault(&c.Server.ReadHeaderTimeout, Duration(DefaultReadHeaderTimeout))
	setDefault(&c.Server.IdleTimeout, Duration(DefaultIdleTimeout))
	setDefault(&c.Server.ShutdownTimeout, Duration(DefaultShutdownTimeout))
	setDefault(&c.Server.ShutdownDelay, Duration(DefaultShutdownDelay))
	setDefault(&c.Server.MaxHeaderBytes, DefaultMaxHeaderBytes)
	setDefault(&c.Server.BodyReadTimeout, Duration(DefaultBodyReadTimeout))
	setDefault(&c.Server.WriteStallTimeout, Duration(DefaultWriteStallTimeout))
	setDefault(&c.Server.HTTP1, HTTP1Lifeline)
	setDefault(&c.Logging.Format, DefaultLogFormat)
	setDefault(&c.Logging.Level, DefaultLogLevel)
}

func setDefault[T comparable](p *T, def T) {
	var zero T
	if *p == zero {
		*p = def
	}
}

// Names returns the client-visible names that some region maps, sorted.
func (c *Config) Names() []string {
	seen := map[string]bool{}
	var out []string
	for _, r := range c.Regions {
		for n := range r.Deployments {
			if !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
	}
	sortStrings(out)
	return out
}
