package failover

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
)

// Config is the `regions` and `policy` parts of the YAML config as Go values.
// Zero values mean the documented defaults.
type Config struct {
	Regions []Region
	Policy  Policy
	// Fallbacks lists, per client-visible name, other names to try in order when no region can serve
	// it, or when a region answers 400 context_length_exceeded (`fallbacks: {gpt-4o: [gpt-4o-mini]}`).
	// Every name must be one some region serves. Fallbacks of a fallback are not followed.
	Fallbacks map[string][]string
}

// Region is one regional Azure OpenAI (or OpenAI-compatible) resource.
type Region struct {
	// Name is the short name used in logs, metrics, headers and the admin API. Required, unique.
	Name string
	// Endpoint is the base URL, e.g. https://contoso-eastus.openai.azure.com (no /openai suffix).
	// A path prefix is kept: https://gw.example/eastus sends /eastus/openai/....
	Endpoint string
	// APIKey is sent as `api-key`. Exactly one of APIKey and Entra/Credential is set.
	APIKey string
	// Entra selects an Entra ID token from azidentity for scope https://cognitiveservices.azure.com/.default.
	Entra *Entra
	// Credential overrides Entra: any azcore.TokenCredential (tests, callers that already have one).
	Credential azcore.TokenCredential
	// Priority: lower is preferred; 0 means 1.
	Priority int
	// Weight is the share within a priority level (or overall with weighted routing); 0 means 1.
	Weight int
	// Deployments maps client-visible name -> deployment name in this region. At least one entry.
	Deployments map[string]string
	// Protocol is how the engine talks to the region: ProtocolAuto (""), ProtocolHTTP1 or ProtocolHTTP2.
	Protocol string
	// Prefill marks the client-visible names whose deployment here continues a trailing assistant
	// message (a prefill): with Streams.Resume ResumePrefill, a broken stream resumes here by sending
	// the partial answer instead of replaying it.
	Prefill map[string]bool
}

// Protocols for Region.Protocol.
const (
	// ProtocolAuto: HTTP/2 when an https region offers it (ALPN), else HTTP/1.1; an http region
	// gets HTTP/1.1.
	ProtocolAuto = "auto"
	// ProtocolHTTP1: HTTP/1.1 only, for https regions too: less added latency and CPU per request
	// than HTTP/2, one connection per concurrent request.
	ProtocolHTTP1 = "http1"
	// ProtocolHTTP2: HTTP/2 only (over TLS by ALPN; over plain http with prior knowledge, h2c).
	ProtocolHTTP2 = "http2"
)

// Entra configures an azidentity credential. All fields empty: DefaultAzureCredential (environment,
// workload identity, managed identity, developer sign-ins). TenantID, ClientID and ClientSecret: a service
// principal (ClientSecretCredential). ManagedIdentityClientID alone: that user-assigned managed identity
// (ManagedIdentityCredential). AZURE_AUTHORITY_HOST selects another cloud for all of them.
type Entra struct {
	TenantID, ClientID, ClientSecret string
	ManagedIdentityClientID          string
}

// Routing modes for Policy.Routing.
const (
	RoutingPriority = "priority" // preferred regions first; equal priority shares by weight
	RoutingWeighted = "weighted" // active-active split by weight, priority ignored
	RoutingLatency  = "latency"  // best recent latency (EWMA, power of two choices)
)

// Policy is how the engine retries, trips breakers and times out. Zero values mean the defaults.
type Policy struct {
	// Routing is RoutingPriority (default), RoutingWeighted or RoutingLatency.
	Routing string
	Retry   RetryPolicy
	Breaker BreakerPolicy
	// Timeouts bound each attempt.
	Timeouts Timeouts
	// Hedge starts a request also in the next region when the first has no first byte in time.
	Hedge HedgePolicy
	// Streams governs what happens to a stream a region breaks after the caller got bytes.
	Streams StreamsPolicy
	// MaxBodyBytes bounds the buffered request body, and the memory of an answer reassembled from a stream
	// (StreamUpstream); 0 means 32 MiB.
	MaxBodyBytes int64
	// StreamUpstream sends non-streaming chat/completions, completions and responses requests to the region as
	// streams and reassembles the non-streaming answer from them, so that first-byte and idle deadlines apply and
	// a failure mid-generation is retried in another region before the caller has seen a byte (upstream.go).
	// nil means true.
	StreamUpstream *bool
}

// RetryPolicy governs retries inside one region.
type RetryPolicy struct {
	// AttemptsPerRegion is the number of attempts in one region for transient errors; 0 means 2.
	AttemptsPerRegion int
	// Backoff is the first backoff; it doubles per retry, with full jitter. 0 means 100ms.
	Backoff time.Duration
	// MaxBackoff caps the backoff, and a server's Retry-After for an in-region retry. 0 means 2s.
	MaxBackoff time.Duration
}

// BreakerPolicy governs the per-region circuit breaker.
type BreakerPolicy struct {
	// Failures is the number of consecutive failed attempts that open the breaker; 0 means 5.
	Failures int
	// OpenFor is how long an open breaker keeps the region out before one probe decides; 0 means 30s.
	// Each trip that follows a failed probe doubles it, up to MaxOpenFor.
	OpenFor time.Duration
	// MaxOpenFor caps the lengthened open time; 0 means 5m.
	MaxOpenFor time.Duration
	// FailureRate opens the breaker when the failed share of attempts within Window reaches it
	// (after MinRequests attempts). 0 means 0.5; a value above 1 disables the rate rule.
	FailureRate float64
	// Window is the span of the failure rate; 0 means 60s.
	Window time.Duration
	// MinRequests is the number of attempts within Window before FailureRate applies; 0 means 20.
	MinRequests int
	// SlowStart is how long a recovered or re-enabled region takes to get its full share back;
	// 0 means 30s, negative disables slow start.
	SlowStart time.Duration
	// ProbeInterval is how often a region out of service is probed in the background with a request
	// that costs no tokens (the models list); an answer brings it back (half-open: the next request is
	// the trial) at once, whatever OpenFor has grown to. 0 means 5s; negative: no active probes.
	ProbeInterval time.Duration
	// AbandonedAfter: an attempt its caller gave up on before the region answered counts as a
	// failure of the region when it had waited at least this long and at least AbandonedFactor
	// times the region's usual latency to headers. This is how a region that accepts requests and
	// never answers is found when clients give up before timeouts.response. 0 means 5s; negative:
	// an abandoned attempt never counts.
	AbandonedAfter time.Duration
}

// HedgePolicy governs hedging (SPEC.md section 9): when an attempt of a chat/completions,
// completions, responses or embeddings request has no first byte after the delay, the same request
// also starts in the next available region; the first to answer wins and the other is cancelled.
type HedgePolicy struct {
	// Delay is the wait for a first byte before the hedge starts. 0 means auto: learned per deployment
	// in each region from its recent time to first byte (the 95th percentile of the last 64; 2s until
	// there are 8), within MinDelay and MaxDelay. Negative: no hedging.
	Delay time.Duration
	// MinDelay and MaxDelay bound the learned delay; 0 means 500ms and 10s.
	MinDelay, MaxDelay time.Duration
	// Budget caps hedged requests as a share of all requests that could hedge, with a floor of one
	// hedge per second (and a burst of 10); 0 means 0.1.
	Budget float64
}

// StreamsPolicy governs streams that a region breaks after the caller got bytes (SPEC.md section 9).
type StreamsPolicy struct {
	// Resume is ResumeReplay (default: the request restarts in another region, whose answer must
	// repeat what the caller has), ResumePrefill (the partial answer is sent as an assistant message to
	// deployments marked Region.Prefill; replay elsewhere) or ResumeOff (the stream ends with an error).
	Resume string
	// ResumeTimeout bounds how long the caller waits for a resume to reach the splice; then the stream
	// ends with the error event. 0 means 30s.
	ResumeTimeout time.Duration
}

// AbandonedFactor is how many times its usual latency a region must have kept an abandoned
// attempt waiting for the attempt to count against it (see BreakerPolicy.AbandonedAfter).
const AbandonedFactor = 4

// Timeouts bound each attempt. A region that does not answer in time is a failed attempt.
type Timeouts struct {
	// Connect bounds TCP + TLS handshake; 0 means 3s.
	Connect time.Duration
	// StreamFirstByte bounds, for streaming requests, the wait for headers and the first body bytes; 0 means 30s.
	StreamFirstByte time.Duration
	// Response bounds, for non-streaming requests, the wait for response headers; 0 means 300s.
	Response time.Duration
	// StreamIdle is the longest gap between reads of a response body; 0 means 60s.
	StreamIdle time.Duration
}

// Defaults, exported so that callers and docs can name them.
const (
	DefaultAttemptsPerRegion = 2
	DefaultBackoff           = 100 * time.Millisecond
	DefaultMaxBackoff        = 2 * time.Second
	DefaultFailures          = 5
	DefaultOpenFor           = 30 * time.Second
	DefaultMaxOpenFor        = 5 * time.Minute
	DefaultFailureRate       = 0.5
	DefaultWindow            = 60 * time.Second
	DefaultMinRequests       = 20
	DefaultSlowStart         = 30 * time.Second
	DefaultAbandonedAfter    = 5 * time.Second
	DefaultProbeInterval     = 5 * time.Second
	DefaultHedgeMinDelay     = 500 * time.Millisecond
	DefaultHedgeMaxDelay     = 10 * time.Second
	DefaultHedgeBudget       = 0.1
	DefaultResumeTimeout     = 30 * time.Second
	DefaultConnectTimeout    = 3 * time.Second
	DefaultStreamFirstByte   = 30 * time.Second
	DefaultResponseTimeout   = 300 * time.Second
	DefaultStreamIdle        = 60 * time.Second
	DefaultMaxBodyBytes      = 32 << 20
	// DefaultCoolDown is the cool-down after a 429 that names no Retry-After.
	DefaultCoolDown = time.Second
)

// WithDefaults returns p with every zero field set to its default.
func (p Policy) WithDefaults() Policy {
	if p.Routing == "" {
		p.Routing = RoutingPriority
	}
	r := &p.Retry
	setInt(&r.AttemptsPerRegion, DefaultAttemptsPerRegion)
	setDur(&r.Backoff, DefaultBackoff)
	setDur(&r.MaxBackoff, DefaultMaxBackoff)
	b := &p.Breaker
	setInt(&b.Failures, DefaultFailures)
	setDur(&b.OpenFor, DefaultOpenFor)
	setDur(&b.MaxOpenFor, DefaultMaxOpenFor)
	if b.MaxOpenFor < b.OpenFor {
		b.MaxOpenFor = b.OpenFor
	}
	if b.FailureRate == 0 {
		b.FailureRate = DefaultFailureRate
	}
	setDur(&b.Window, DefaultWindow)
	setInt(&b.MinRequests, DefaultMinRequests)
	setDur(&b.SlowStart, DefaultSlowStart)
	setDur(&b.AbandonedAfter, DefaultAbandonedAfter)
	setDur(&b.ProbeInterval, DefaultProbeInterval)
	h := &p.Hedge
	setDur(&h.MinDelay, DefaultHedgeMinDelay)
	setDur(&h.MaxDelay, DefaultHedgeMaxDelay)
	h.MaxDelay = max(h.MaxDelay, h.MinDelay)
	if h.Budget == 0 {
		h.Budget = DefaultHedgeBudget
	}
	if p.Streams.Resume == "" {
		p.Streams.Resume = ResumeReplay
	}
	setDur(&p.Streams.ResumeTimeout, DefaultResumeTimeout)
	t := &p.Timeouts
	setDur(&t.Connect, DefaultConnectTimeout)
	setDur(&t.StreamFirstByte, DefaultStreamFirstByte)
	setDur(&t.Response, DefaultResponseTimeout)
	setDur(&t.StreamIdle, DefaultStreamIdle)
	if p.MaxBodyBytes == 0 {
		p.MaxBodyBytes = DefaultMaxBodyBytes
	}
	return p
}

func setInt(v *int, def int) {
	if *v == 0 {
		*v = def
	}
}

func setDur(v *time.Duration, def time.Duration) {
	if *v == 0 {
		*v = def
	}
}

// Validate reports every problem in c, each naming its field.
func (c Config) Validate() error {
	var errs []error
	if len(c.Regions) == 0 {
		errs = append(errs, errors.New("regions: at least one region is required"))
	}
	seen := map[string]bool{}
	for i, r := range c.Regions {
		f := func(field, msg string, args ...any) {
			errs = append(errs, fmt.Errorf("regions[%d].%s: %s", i, field, fmt.Sprintf(msg, args...)))
		}
		switch {
		case r.Name == "":
			f("name", "is required")
		case seen[r.Name]:
			f("name", "%q is used twice", r.Name)
		}
		seen[r.Name] = true
		if u, err := url.Parse(r.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			f("endpoint", "%q is not an http(s) URL", r.Endpoint)
		}
		hasToken := r.Entra != nil || r.Credential != nil
		if (r.APIKey != "") == hasToken {
			f("api_key", "exactly one of api_key and entra is required")
		}
		if e := r.Entra; e != nil && r.Credential == nil {
			sp := e.TenantID != "" || e.ClientID != "" || e.ClientSecret != ""
			switch {
			case sp && e.ManagedIdentityClientID != "":
				f("entra", "managed_identity_client_id excludes tenant_id, client_id and client_secret")
			case sp && (e.TenantID == "" || e.ClientID == "" || e.ClientSecret == ""):
				f("entra", "set all of tenant_id, client_id and client_secret, or none")
			}
		}
		if r.Priority < 0 {
			f("priority", "must not be negative")
		}
		if r.Weight < 0 {
			f("weight", "must not be negative")
		}
		switch r.Protocol {
		case "", ProtocolAuto, ProtocolHTTP1, ProtocolHTTP2:
		default:
			f("protocol", "%q is not one of auto, http1, http2", r.Protocol)
		}
		if len(r.Deployments) == 0 {
			f("deployments", "at least one name is required")
		}
		for k, v := range r.Deployments {
			if k == "" || v == "" {
				f("deployments", "empty name in %q: %q", k, v)
			}
		}
		for k := range r.Prefill {
			if _, ok := r.Deployments[k]; !ok {
				f("prefill", "%q is not one of its deployments", k)
			}
		}
	}
	errs = append(errs, c.validateFallbacks()...)
	p := c.Policy
	switch p.Routing {
	case "", RoutingPriority, RoutingWeighted, RoutingLatency:
	default:
		errs = append(errs, fmt.Errorf("policy.routing: %q is not one of priority, weighted, latency", p.Routing))
	}
	if p.Retry.AttemptsPerRegion < 0 {
		errs = append(errs, errors.New("policy.retry.attempts_per_region: must not be negative"))
	}
	if p.Breaker.Failures < 0 {
		errs = append(errs, errors.New("policy.breaker.failures: must not be negative"))
	}
	switch p.Streams.Resume {
	case "", ResumeReplay, ResumePrefill, ResumeOff:
	default:
		errs = append(errs, fmt.Errorf("policy.streams.resume: %q is not one of replay, prefill, off", p.Streams.Resume))
	}
	if p.Hedge.Budget < 0 || p.Hedge.Budget > 1 {
		errs = append(errs, errors.New("policy.hedge.budget: must be between 0 and 1"))
	}
	if p.Hedge.MinDelay < 0 || p.Hedge.MaxDelay < 0 {
		errs = append(errs, errors.New("policy.hedge.min_delay, max_delay: must not be negative"))
	}
	if p.MaxBodyBytes < 0 {
		errs = append(errs, errors.New("policy.max_body_bytes: must not be negative"))
	}
	return errors.Join(errs...)
}

func (c Config) validateFallbacks() []error {
	served := map[string]bool{}
	for _, r := range c.Regions {
		for name := range r.Deployments {
			served[name] = true
		}
	}
	var errs []error
	for name, fbs := range c.Fallbacks {
		if !served[name] {
			errs = append(errs, fmt.Errorf("fallbacks.%s: no region serves the name %q", name, name))
		}
		seen := map[string]bool{}
		for i, fb := range fbs {
			switch {
			case fb == name:
				errs = append(errs, fmt.Errorf("fallbacks.%s[%d]: a name cannot fall back to itself", name, i))
			case !served[fb]:
				errs = append(errs, fmt.Errorf("fallbacks.%s[%d]: no region serves the name %q", name, i, fb))
			case seen[fb]:
				errs = append(errs, fmt.Errorf("fallbacks.%s[%d]: %q is listed twice", name, i, fb))
			}
			seen[fb] = true
		}
	}
	return errs
}
