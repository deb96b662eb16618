// Package sim runs simulated Azure OpenAI regions that behave like real ones on the wire: both path shapes,
// api-key and Bearer auth, the real JSON and SSE shapes, headers, error bodies, quotas, generation latency,
// files and fine-tuning, with faults injected on demand. It runs in process inside Go tests and as `lifeline sim`.
package sim

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"sort"
	"sync"
	"time"
)

// Config describes a set of simulated regions. The zero value of every field means the documented default.
type Config struct {
	// Regions to serve, each on its own address. Empty: DefaultRegions("eastus", "westus").
	Regions []RegionConfig
	// APIKey is accepted in the api-key header (both path shapes) and as a Bearer token on /openai/v1.
	// Empty: any non-empty key is accepted (auth is still required).
	APIKey string
	// VerifyToken accepts Entra bearer tokens (data plane on both shapes, and the ARM endpoint). Nil: no token is accepted.
	VerifyToken func(token string) bool
	// Entra verifies Entra ID access tokens (JWTs) on the data plane as Azure OpenAI does: signature, audience,
	// expiry, the region's tenant and role assignments (RegionConfig.TenantID, OpenAIUsers). A token VerifyToken
	// accepts is accepted first. Nil: JWTs are checked by VerifyToken alone.
	Entra *Entra
	// Seed seeds every random choice (fault rates, ids), so a scenario replays. 0 is a valid seed.
	Seed int64
	// TLS serves HTTPS with a certificate generated at Start (trust it with CertPool or ClientTLSConfig).
	TLS bool
	// TLSHosts are extra DNS names or IPs put in the certificate besides localhost, 127.0.0.1 and ::1.
	TLSHosts []string
	// FineTuneDuration is how long a fine-tuning job takes from pending to succeeded. Zero: 3s.
	FineTuneDuration time.Duration
	// ControlAddr, when set, serves ControlHandler on that address (ControlURL). Empty: no control listener
	// (in-process callers use Fault and ControlHandler directly).
	ControlAddr string
	// ContentFilterTrigger: a prompt containing this text is answered with the real content-filter 400.
	// Empty: "sim:content_filter".
	ContentFilterTrigger string
	// MaxBodyBytes bounds a JSON request body; larger bodies get 413. Zero: 32 MiB. File uploads allow 8 times more.
	MaxBodyBytes int64
	// APIVersions lists the dated api-versions the classic surface accepts; others get 400 "API version not
	// supported". Empty: any non-empty version.
	APIVersions []string
	// Now is the clock for quotas, timestamps, fine-tuning progress, Entra token validity and the Date header.
	// Nil: time.Now.
	Now func() time.Time
	// Answers is the answer mode of every region that sets none: AnswersRegion (""), AnswersDeterministic or
	// AnswersRandom.
	Answers string
}

// RegionConfig describes one simulated region.
type RegionConfig struct {
	Name        string // short name, e.g. "eastus"
	DisplayName string // x-ms-region value; empty: derived from Name ("East US")
	Addr        string // listen address; empty: "127.0.0.1:0"
	// Deployments served by the region. Empty: DefaultDeployments().
	Deployments []Deployment
	// TimeToFirstToken is the delay before the first token (before the response headers). Zero: none.
	TimeToFirstToken time.Duration
	// TokensPerSecond is the generation speed after the first token. Zero: infinite.
	TokensPerSecond float64
	// DisableLocalAuth rejects api keys with 403 AuthenticationTypeDisabled, as a resource with disableLocalAuth does.
	DisableLocalAuth bool
	// TenantID is the resource's Entra tenant (with Config.Entra): a token from another tenant gets Azure's 400
	// "Token tenant ... does not match resource tenant.". Empty: tokens of any tenant.
	TenantID string
	// OpenAIUsers are the object ids of the principals holding "Cognitive Services OpenAI User" (or Contributor)
	// on the resource (with Config.Entra); any other principal gets 401 PermissionDenied. Nil: every principal.
	OpenAIUsers []string
	// Answers is the region's answer mode; empty: Config.Answers.
	Answers string
}

// Deployment is a model deployed in a region under a name.
type Deployment struct {
	Name       string `json:"name" yaml:"name"`
	Model      string `json:"model" yaml:"model"`                     // e.g. "gpt-4o"; empty: Name
	Version    string `json:"version" yaml:"version"`                 // e.g. "2024-11-20"; fine-tuned models use "1"
	TPM        int    `json:"tpm,omitempty" yaml:"tpm"`               // tokens per minute; 0: unlimited
	RPM        int    `json:"rpm,omitempty" yaml:"rpm"`               // requests per minute; 0: unlimited
	Dimensions int    `json:"dimensions,omitempty" yaml:"dimensions"` // embedding models: vector length; 0: from the model
	// Prefill: the deployment continues a trailing assistant message (the answer is the rest of what the same
	// prompt without it gets), as a deployment that supports assistant prefill does. Otherwise such a message is
	// part of the prompt like any other.
	Prefill bool `json:"prefill,omitempty" yaml:"prefill"`
	// NoStreaming: the model cannot stream; a streamed request gets 400 (param "stream", unsupported_value), as
	// models without streaming support answered.
	NoStreaming bool `json:"no_streaming,omitempty" yaml:"no_streaming"`
	// ContextWindow is the most prompt tokens the model takes; a longer prompt gets Azure's 400
	// context_length_exceeded (what name fallbacks act on). 0: no limit.
	ContextWindow int `json:"context_window,omitempty" yaml:"context_window"`
}

// DefaultDeployments are served by a region whose config lists none.
func DefaultDeployments() []Deployment {
	return []Deployment{
		{Name: "gpt-4o", Model: "gpt-4o", Version: "2024-11-20"},
		{Name: "gpt-4o-mini", Model: "gpt-4o-mini", Version: "2024-07-18"},
		{Name: "text-embedding-3-small", Model: "text-embedding-3-small", Version: "1", Dimensions: 1536},
	}
}

// DefaultRegions returns one RegionConfig per name, each with DefaultDeployments on 127.0.0.1:0.
func DefaultRegions(names ...string) []RegionConfig {
	out := make([]RegionConfig, 0, len(names))
	for _, n := range names {
		out = append(out, RegionConfig{Name: n, Deployments: DefaultDeployments()})
	}
	return out
}

// Sim is a running set of simulated regions.
type Sim struct {
	cfg     Config
	regions []*Region
	byName  map[string]*Region
	cert    *generatedCert
	rngMu   sync.Mutex
	rng     *rand.Rand
	control *http.Server
	ctrlURL string
	closeMu sync.Mutex
	closed  bool
	trigger string
	maxBody int64
	ftDur   time.Duration
}

// Start starts every region on its address and returns once all of them accept connections.
func Start(cfg Config) (*Sim, error) {
	if len(cfg.Regions) == 0 {
		cfg.Regions = DefaultRegions("eastus", "westus")
	}
	s := &Sim{
		cfg:     cfg,
		byName:  map[string]*Region{},
		rng:     rand.New(rand.NewPCG(uint64(cfg.Seed), 0x5eed)),
		trigger: cfg.ContentFilterTrigger,
		maxBody: cfg.MaxBodyBytes,
		ftDur:   cfg.FineTuneDuration,
	}
	if s.trigger == "" {
		s.trigger = "sim:content_filter"
	}
	if s.maxBody <= 0 {
		s.maxBody = 32 << 20
	}
	if s.ftDur <= 0 {
		s.ftDur = 3 * time.Second
	}
	if err := validAnswers(cfg.Answers); err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	if cfg.TLS {
		c, err := generateCert(cfg.TLSHosts, s.now())
		if err != nil {
			return nil, fmt.Errorf("sim: generating the TLS certificate: %w", err)
		}
		s.cert = c
	}
	for i, rc := range cfg.Regions {
		if rc.Name == "" {
			return nil, fmt.Errorf("sim: regions[%d].name is required", i)
		}
		if _, dup := s.byName[rc.Name]; dup {
			return nil, fmt.Errorf("sim: regions[%d].name: region %q is listed twice", i, rc.Name)
		}
		r, err := newRegion(s, rc)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("sim: regions[%d] (%s): %w", i, rc.Name, err)
		}
		s.regions = append(s.regions, r)
		s.byName[rc.Name] = r
		if err := r.open(); err != nil {
			s.Close()
			return nil, fmt.Errorf("sim: region %s: listening on %s: %w (choose a free port)", rc.Name, r.listen, err)
		}
	}
	if cfg.ControlAddr != "" {
		if err := s.startControl(cfg.ControlAddr); err != nil {
			s.Close()
			return nil, fmt.Errorf("sim: control API on %s: %w (choose a free address with --control)", cfg.ControlAddr, err)
		}
	}
	return s, nil
}

func (s *Sim) startControl(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	s.control = &http.Server{Handler: s.ControlHandler(), ReadHeaderTimeout: 10 * time.Second}
	s.ctrlURL = "http://" + hostForURL(ln.Addr())
	go s.control.Serve(ln)
	return nil
}

// ControlURL is the base URL of the control listener, or "" when Config.ControlAddr was empty.
func (s *Sim) ControlURL() string { return s.ctrlURL }

// Close stops every region and the control listener, closing held and hijacked connections too.
func (s *Sim) Close() {
	s.closeMu.Lock()
	if s.closed {
		s.closeMu.Unlock()
		return
	}
	s.closed = true
	s.closeMu.Unlock()
	if s.control != nil {
		s.control.Close()
	}
	for _, r := range s.regions {
		r.shutdown()
	}
}

// Region returns the region with that name, or nil.
func (s *Sim) Region(name string) *Region { return s.byName[name] }

// Regions returns every region in config order.
func (s *Sim) Regions() []*Region { return append([]*Region(nil), s.regions...) }

// Fault sets (or with mode "clear" removes) the fault of a region.
func (s *Sim) Fault(region string, f Fault) error {
	r := s.byName[region]
	if r == nil {
		return fmt.Errorf("sim: unknown region %q (have %v)", region, s.names())
	}
	return r.SetFault(f)
}

// AddDeployment adds (or replaces) a deployment in a region. A fine-tuned model (name containing ".ft-") must have
// been produced by a succeeded fine-tuning job in that region.
func (s *Sim) AddDeployment(region string, d Deployment) error {
	r := s.byName[region]
	if r == nil {
		return fmt.Errorf("sim: unknown region %q (have %v)", region, s.names())
	}
	return r.AddDeployment(d)
}

// CertPool returns a pool that trusts the generated certificate, or nil when TLS is off.
func (s *Sim) CertPool() *x509.CertPool {
	if s.cert == nil {
		return nil
	}
	return s.cert.pool
}

// TLSConfig returns a client TLS config that trusts the regions' certificate, or nil when TLS is off.
func (s *Sim) TLSConfig() *tls.Config {
	if s.cert == nil {
		return nil
	}
	return &tls.Config{RootCAs: s.cert.pool, MinVersion: tls.VersionTLS12}
}

// CertPEM returns the generated certificate in PEM form (for clients in other processes), or nil when TLS is off.
func (s *Sim) CertPEM() []byte {
	if s.cert == nil {
		return nil
	}
	return append([]byte(nil), s.cert.certPEM...)
}

// Client returns an http.Client that trusts the simulator (TLS or not), for tests.
func (s *Sim) Client() *http.Client {
	tr := &http.Transport{TLSClientConfig: s.TLSConfig(), MaxIdleConnsPerHost: 64}
	return &http.Client{Transport: tr}
}

func (s *Sim) names() []string {
	out := make([]string, 0, len(s.regions))
	for _, r := range s.regions {
		out = append(out, r.name)
	}
	sort.Strings(out)
	return out
}

func (s *Sim) now() time.Time {
	if s.cfg.Now != nil {
		return s.cfg.Now()
	}
	return time.Now()
}

const idAlphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// randomID returns prefix followed by n characters from the seeded source.
func (s *Sim) randomID(prefix string, n int, alphabet string) string {
	b := make([]byte, len(prefix)+n)
	copy(b, prefix)
	s.rngMu.Lock()
	for i := len(prefix); i < len(b); i++ {
		b[i] = alphabet[s.rng.IntN(len(alphabet))]
	}
	s.rngMu.Unlock()
	return string(b)
}

// intN draws from the seeded source.
func (s *Sim) intN(n int) int {
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	return s.rng.IntN(n)
}

// SetAnswers sets the answer mode of one region, or of every region when region is "".
func (s *Sim) SetAnswers(region, mode string) error {
	if err := validAnswers(mode); err != nil {
		return err
	}
	if region == "" {
		for _, r := range s.regions {
			r.SetAnswers(mode)
		}
		return nil
	}
	r := s.byName[region]
	if r == nil {
		return fmt.Errorf("sim: unknown region %q (have %v)", region, s.names())
	}
	return r.SetAnswers(mode)
}

func (s *Sim) uuid() string {
	s.rngMu.Lock()
	hi, lo := s.rng.Uint64(), s.rng.Uint64()
	s.rngMu.Unlock()
	hi = hi&^(0xf<<12) | 0x4<<12
	lo = lo&^(0x3<<62) | 0x2<<62
	return fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", hi>>32, (hi>>16)&0xffff, hi&0xffff, lo>>48, lo&0xffffffffffff)
}

func hostForURL(a net.Addr) string {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return a.String()
	}
	ip := ta.IP
	if ip == nil || ip.IsUnspecified() {
		ip = net.IPv4(127, 0, 0, 1) // Go's listeners on every interface are dual-stack
	}
	return net.JoinHostPort(ip.String(), fmt.Sprint(ta.Port))
}

var errClosed = errors.New("sim: closed")
