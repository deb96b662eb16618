package config

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/lifeline-sre/lifeline/failover"
)

// Problem is one thing wrong with a config, named by the path of its field (`regions[1].deployments`).
type Problem struct {
	Field   string
	Message string
}

func (p Problem) String() string {
	if p.Field == "" {
		return p.Message
	}
	return p.Field + ": " + p.Message
}

// Errors is every problem found in a config, in file order. Its Error text is one problem a line.
type Errors struct {
	Problems []Problem
}

func (e *Errors) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

func (e *Errors) add(field, format string, args ...any) {
	msg := format
	if len(args) > 0 {
		msg = fmt.Sprintf(format, args...)
	}
	e.Problems = append(e.Problems, Problem{Field: field, Message: msg})
}

// Validate reports every problem of c at once as *Errors, or nil. It expects defaults to be applied (Load and Parse
// do it) but accepts zero values wherever the zero value has a default.
func (c *Config) Validate() error {
	var e Errors
	checkAddr(&e, "listen", c.Listen)
	if c.TLS != nil {
		if c.TLS.CertFile == "" {
			e.add("tls.cert_file", "required when tls is set")
		}
		if c.TLS.KeyFile == "" {
			e.add("tls.key_file", "required when tls is set")
		}
	}
	c.validateClients(&e)
	checkAddr(&e, "admin.listen", c.Admin.Listen)
	if c.Admin.Listen != "" && c.Admin.Listen == c.Listen && !strings.HasSuffix(c.Listen, ":0") {
		e.add("admin.listen", "must differ from listen (%s)", c.Listen)
	}
	if c.Admin.StatusRefresh < 0 {
		e.add("admin.status_refresh", "must not be negative")
	}
	c.validateRegions(&e)
	c.validateFallbacks(&e)
	c.Policy.validate(&e)
	c.Server.validate(&e)
	c.Telemetry.validate(&e)
	c.Responses.validate(&e)
	c.State.validate(&e)
	switch c.Logging.Format {
	case "", "json", "text":
	default:
		e.add("logging.format", "must be json or text, not %q", c.Logging.Format)
	}
	switch c.Logging.Level {
	case "", "debug", "info", "warn", "error":
	default:
		e.add("logging.level", "must be debug, info, warn or error, not %q", c.Logging.Level)
	}
	if len(e.Problems) == 0 {
		return nil
	}
	return &e
}

func checkAddr(e *Errors, field, addr string) {
	if addr == "" {
		return
	}
	if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
		e.add(field, "must be host:port (like 127.0.0.1:8080 or :8080), not %q", addr)
	}
}

func (c *Config) validateClients(e *Errors) {
	if len(c.Clients) == 0 && !c.AllowUnauthenticated {
		e.add("clients", "at least one client is required; to run without client keys set allow_unauthenticated: true")
	}
	if len(c.Clients) > 0 && c.AllowUnauthenticated {
		e.add("allow_unauthenticated", "must not be true when clients are configured")
	}
	names, keys := map[string]int{}, map[string]int{}
	for i, cl := range c.Clients {
		f := fmt.Sprintf("clients[%d]", i)
		if cl.Name == "" {
			e.add(f+".name", "required")
		} else if j, dup := names[cl.Name]; dup {
			e.add(f+".name", "%q is already used by clients[%d]", cl.Name, j)
		} else {
			names[cl.Name] = i
		}
		c.validateGrants(e, f, cl)
		if cl.MaxConcurrent < 0 {
			e.add(f+".max_concurrent", "must not be negative (0: no limit)")
		}
		if cl.RequestsPerMinute < 0 {
			e.add(f+".requests_per_minute", "must not be negative (0: no limit)")
		}
		if cl.Key == "" {
			e.add(f+".key", "required")
		} else if j, dup := keys[cl.Key]; dup {
			e.add(f+".key", "same key as clients[%d]; every client needs its own", j)
		} else {
			keys[cl.Key] = i
		}
	}
}

// validateGrants checks a client's names and operations: each must exist, so that a typo never grants nothing
// (or everything) silently.
func (c *Config) validateGrants(e *Errors, f string, cl Client) {
	if cl.Names != nil && len(cl.Names) == 0 {
		e.add(f+".names", "must list at least one name; leave it out to allow every name")
	}
	known := map[string]bool{}
	for _, n := range c.Names() {
		known[n] = true
	}
	for _, n := range cl.Names {
		if !known[n] {
			e.add(f+".names", "%q is not a name any region maps (known: %s)", n, strings.Join(c.Names(), ", "))
		}
	}
	if cl.Operations != nil && len(cl.Operations) == 0 {
		e.add(f+".operations", "must list at least one operation; leave it out for the default operations")
	}
	for _, op := range cl.Operations {
		if _, ok := failover.ParseOperation(op); !ok {
			names := make([]string, 0, 12)
			for _, o := range failover.Operations() {
				names = append(names, string(o))
			}
			e.add(f+".operations", "%q is not an operation (one of %s)", op, strings.Join(names, ", "))
		}
	}
}

func (c *Config) validateRegions(e *Errors) {
	if len(c.Regions) == 0 {
		e.add("regions", "at least one region is required")
	}
	names := map[string]int{}
	for i, r := range c.Regions {
		f := fmt.Sprintf("regions[%d]", i)
		switch {
		case r.Name == "":
			e.add(f+".name", "required")
		case !validRegionName(r.Name):
			e.add(f+".name", "%q must be lower-case letters, digits and dashes", r.Name)
		default:
			if j, dup := names[r.Name]; dup {
				e.add(f+".name", "%q is already used by regions[%d]", r.Name, j)
			}
			names[r.Name] = i
		}
		checkEndpoint(e, f+".endpoint", r.Endpoint)
		r.validateAuth(e, f)
		if r.Priority < 0 {
			e.add(f+".priority", "must not be negative")
		}
		if r.Weight < 0 {
			e.add(f+".weight", "must not be negative")
		}
		switch r.Protocol {
		case "", failover.ProtocolAuto, failover.ProtocolHTTP1, failover.ProtocolHTTP2:
		default:
			e.add(f+".protocol", "must be auto, http1 or http2, not %q", r.Protocol)
		}
		if len(r.Deployments) == 0 {
			e.add(f+".deployments", "at least one name is required")
		}
		for _, name := range sortedKeys(r.Deployments) {
			dep := r.Deployments[name]
			if !validPathSegment(name) {
				e.add(f+".deployments", "name %q must be non-empty without '/', '?', '#', '%%' or spaces", name)
			}
			if !validPathSegment(dep) {
				e.add(f+".deployments."+name, "deployment %q must be non-empty without '/', '?', '#', '%%' or spaces", dep)
			}
		}
	}
}

func (r Region) validateAuth(e *Errors, f string) {
	switch {
	case r.APIKey == "" && r.Entra == nil:
		e.add(f, "one of api_key or entra is required")
	case r.APIKey != "" && r.Entra != nil:
		e.add(f, "api_key and entra are exclusive; set only one")
	case r.Entra != nil:
		en := r.Entra
		sp := en.TenantID != "" || en.ClientID != "" || en.ClientSecret != ""
		switch {
		case sp && en.ManagedIdentityClientID != "":
			e.add(f+".entra", "managed_identity_client_id (a user-assigned managed identity) excludes tenant_id, client_id and client_secret (a service principal); set one or the other")
		case sp && (en.TenantID == "" || en.ClientID == "" || en.ClientSecret == ""):
			e.add(f+".entra", "set all of tenant_id, client_id and client_secret, or none for DefaultAzureCredential")
		}
	}
}

func checkEndpoint(e *Errors, field, endpoint string) {
	if endpoint == "" {
		e.add(field, "required")
		return
	}
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		e.add(field, "must be a URL like https://NAME.openai.azure.com")
		return
	}
	switch {
	case u.User != nil:
		e.add(field, "must not contain credentials; use api_key or entra")
	case u.RawQuery != "" || u.Fragment != "":
		e.add(field, "must not have a query or fragment")
	case strings.TrimSuffix(u.Path, "/") != "" && strings.Contains(u.Path, "/openai"):
		e.add(field, "must be the resource's base URL, without /openai")
	case u.Scheme == "https":
	case u.Scheme == "http" && isLoopback(u.Hostname()):
	case u.Scheme == "http":
		e.add(field, "must use https (plain http is allowed only to loopback addresses)")
	default:
		e.add(field, "scheme must be https, not %q", u.Scheme)
	}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func validRegionName(s string) bool {
	for _, c := range s {
		if !(c == '-' || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
			return false
		}
	}
	return s != "" && len(s) <= 64
}

func validPathSegment(s string) bool {
	return s != "" && !strings.ContainsAny(s, "/?#% \t\r\n")
}

func (p Policy) validate(e *Errors) {
	switch p.Routing {
	case "", "priority", "weighted", "latency":
	default:
		e.add("policy.routing", "must be priority, weighted or latency, not %q", p.Routing)
	}
	if p.Retry.AttemptsPerRegion < 0 {
		e.add("policy.retry.attempts_per_region", "must not be negative")
	}
	nonNegative(e, "policy.retry.backoff", p.Retry.Backoff)
	nonNegative(e, "policy.retry.max_backoff", p.Retry.MaxBackoff)
	if p.Retry.MaxBackoff > 0 && p.Retry.Backoff > p.Retry.MaxBackoff {
		e.add("policy.retry.max_backoff", "must not be shorter than policy.retry.backoff (%s)", p.Retry.Backoff)
	}
	b := p.Breaker
	if b.Failures < 0 {
		e.add("policy.breaker.failures", "must not be negative")
	}
	if b.FailureRate < 0 {
		e.add("policy.breaker.failure_rate", "must not be negative (above 1 turns the rate rule off)")
	}
	if b.MinRequests < 0 {
		e.add("policy.breaker.min_requests", "must not be negative")
	}
	nonNegative(e, "policy.breaker.open_for", b.OpenFor)
	nonNegative(e, "policy.breaker.window", b.Window)
	nonNegative(e, "policy.breaker.max_open_for", b.MaxOpenFor)
	if b.MaxOpenFor > 0 && b.OpenFor > b.MaxOpenFor {
		e.add("policy.breaker.max_open_for", "must not be shorter than policy.breaker.open_for (%s)", b.OpenFor)
	}
	t := p.Timeouts
	nonNegative(e, "policy.timeouts.connect", t.Connect)
	nonNegative(e, "policy.timeouts.stream_first_byte", t.StreamFirstByte)
	nonNegative(e, "policy.timeouts.response", t.Response)
	nonNegative(e, "policy.timeouts.stream_idle", t.StreamIdle)
	if p.MaxBodyBytes < 0 {
		e.add("policy.max_body_bytes", "must not be negative")
	}
	p.Hedge.validate(e)
	switch p.Streams.Resume {
	case "", failover.ResumeReplay, failover.ResumePrefill, failover.ResumeOff:
	default:
		e.add("policy.streams.resume", "must be replay, prefill or off, not %q", p.Streams.Resume)
	}
	nonNegative(e, "policy.streams.resume_timeout", p.Streams.ResumeTimeout)
}

func (h Hedge) validate(e *Errors) {
	switch h.Delay {
	case "", HedgeAuto, HedgeOff:
	default:
		if d, err := time.ParseDuration(h.Delay); err != nil || d <= 0 {
			e.add("policy.hedge.delay", "must be auto, off or a positive duration such as \"2s\", not %q", h.Delay)
		}
	}
	nonNegative(e, "policy.hedge.min_delay", h.MinDelay)
	nonNegative(e, "policy.hedge.max_delay", h.MaxDelay)
	if h.MaxDelay > 0 && h.MinDelay > h.MaxDelay {
		e.add("policy.hedge.max_delay", "must not be shorter than policy.hedge.min_delay (%s)", h.MinDelay)
	}
	if h.Budget < 0 || h.Budget > 1 {
		e.add("policy.hedge.budget", "must be between 0 and 1 (a share of requests), not %v", h.Budget)
	}
}

func (s Server) validate(e *Errors) {
	nonNegative(e, "server.read_header_timeout", s.ReadHeaderTimeout)
	nonNegative(e, "server.idle_timeout", s.IdleTimeout)
	nonNegative(e, "server.shutdown_timeout", s.ShutdownTimeout)
	if s.MaxHeaderBytes < 0 {
		e.add("server.max_header_bytes", "must not be negative")
	}
	switch s.HTTP1 {
	case "", HTTP1Lifeline, HTTP1NetHTTP:
	default:
		e.add("server.http1", "must be lifeline or net/http, not %q", s.HTTP1)
	}
}

func nonNegative(e *Errors, field string, d Duration) {
	if d < 0 {
		e.add(field, "must not be negative, got %s", d)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sortStrings(keys)
	return keys
}

func (c *Config) validateFallbacks(e *Errors) {
	served := map[string]bool{}
	for _, n := range c.Names() {
		served[n] = true
	}
	for _, name := range sortedKeys(c.Fallbacks) {
		f := "fallbacks." + name
		if !served[name] {
			e.add(f, "no region serves the name %q", name)
		}
		seen := map[string]bool{}
		for i, fb := range c.Fallbacks[name] {
			fi := fmt.Sprintf("%s[%d]", f, i)
			switch {
			case fb == name:
				e.add(fi, "a name cannot fall back to itself")
			case !served[fb]:
				e.add(fi, "no region serves the name %q", fb)
			case seen[fb]:
				e.add(fi, "%q is listed twice", fb)
			}
			seen[fb] = true
		}
	}
}
