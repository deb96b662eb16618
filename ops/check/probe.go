package check

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/lifeline-sre/lifeline/ops/aoai"
)

// RegionResult is what the probes found for one region.
type RegionResult struct {
	Name     string `json:"name"`
	Endpoint string `json:"endpoint"`
	Priority int    `json:"priority"`

	Addrs     []string  `json:"addrs,omitempty"`
	DNSMs     *float64  `json:"dns_ms,omitempty"` // nil: an IP literal, nothing to resolve
	ConnectMs *float64  `json:"connect_ms,omitempty"`
	TLSMs     *float64  `json:"tls_ms,omitempty"` // nil: plain HTTP
	Cert      *CertInfo `json:"cert,omitempty"`
	// Network is empty when the region was reachable, else what failed: "dns: ...", "connect: ...", "tls: ...".
	Network string `json:"network_error,omitempty"`

	// ARM is empty when Resource Manager was not asked, "listed" when it was, else its error.
	ARM string `json:"arm,omitempty"`
	// ClockSkewMs is the region's clock (its Date header) minus this host's, in milliseconds; nil: no answer.
	ClockSkewMs *float64           `json:"clock_skew_ms,omitempty"`
	Auth        AuthResult         `json:"auth"`
	Models      []string           `json:"models,omitempty"` // ids from the models list
	Deployments []DeploymentResult `json:"deployments"`
}

// CertInfo describes the region's TLS certificate.
type CertInfo struct {
	Subject  string    `json:"subject"`
	Issuer   string    `json:"issuer"`
	NotAfter time.Time `json:"not_after"`
	DaysLeft int       `json:"days_left"`
	Error    string    `json:"error,omitempty"` // verification failure
}

// AuthResult says whether the region accepted the configured credential.
type AuthResult struct {
	Method  string    `json:"method"` // "api-key" | "entra"
	OK      bool      `json:"ok"`
	Kind    aoai.Kind `json:"kind,omitempty"` // wrong_key, key_auth_disabled, missing_role, ...
	Message string    `json:"message,omitempty"`
	Fix     string    `json:"fix,omitempty"`
	// Entra is the region's Entra credential and token (method "entra"); never the token itself.
	Entra *EntraResult `json:"entra,omitempty"`
}

// Deployment status values.
const (
	StatusOK        = "ok"        // answered (probe) or exists (invalid-request check)
	StatusMissing   = "missing"   // 404 DeploymentNotFound
	StatusThrottled = "throttled" // 429: exists but busy
	StatusError     = "error"     // any other failure
	StatusUnchecked = "unchecked" // the region could not be reached or authenticated
)

// DeploymentResult is one mapped deployment in one region.
type DeploymentResult struct {
	Name       string       `json:"name"`       // client-visible
	Deployment string       `json:"deployment"` // in this region
	Status     string       `json:"status"`
	Model      string       `json:"model,omitempty"` // full model id when known
	ID         aoai.ModelID `json:"model_id,omitzero"`
	Source     string       `json:"source,omitempty"` // "probe" | "models" | "name": where the model came from
	LatencyMs  float64      `json:"latency_ms,omitempty"`
	Kind       ModelKind    `json:"kind,omitempty"`  // chat, completion, embedding, image, audio, realtime
	Probe      string       `json:"probe,omitempty"` // what checked it: "exists", or the operation sent with --probe
	Error      string       `json:"error,omitempty"`
}

func ms(d time.Duration) *float64 {
	v := float64(d.Microseconds()) / 1000
	return &v
}

func probeRegion(ctx context.Context, r Region, o *Options) RegionResult {
	res := RegionResult{Name: r.Name, Endpoint: r.Endpoint, Priority: r.Priority}
	if res.Priority == 0 {
		res.Priority = 1
	}
	res.Auth.Method = "api-key"
	if r.Credential != nil {
		res.Auth.Method = "entra"
	}
	names := make([]string, 0, len(r.Deployments))
	for n := range r.Deployments {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		res.Deployments = append(res.Deployments, DeploymentResult{Name: n, Deployment: r.Deployments[n], Status: StatusUnchecked})
	}
	if err := probeNetwork(ctx, r.Endpoint, o, &res); err != nil {
		res.Network = err.Error()
		return res
	}
	if res.Cert != nil && res.Cert.Error != "" {
		return res // every request would fail the same way; the certificate finding says why
	}
	hc := o.httpClient()
	dates := &dateRecorder{next: hc.Transport, now: o.Now}
	hc.Transport = dates
	c := &aoai.Client{Region: r.Name, Endpoint: r.Endpoint, APIKey: r.APIKey, Credential: r.Credential, HTTP: hc}
	if r.Credential != nil && !probeEntra(ctx, r, o, &res, c) {
		return res // no token: the region cannot be asked anything
	}
	probeAuth(ctx, c, o, &res)
	res.ClockSkewMs = dates.value()
	explainEntra(&res)
	if res.Auth.OK {
		for i := range res.Deployments {
			probeDeployment(ctx, c, o, &res, &res.Deployments[i])
		}
	}
	listARM(ctx, o, &res)
	return res
}

// listARM fills in the model of every deployment that the probes did not identify, from Resource Manager.
func listARM(ctx context.Context, o *Options, res *RegionResult) {
	if o.ARM == nil || o.ARM.Resources[res.Name] == "" {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, 3*o.Timeout)
	defer cancel()
	deps, err := aoai.ListARMDeployments(rctx, o.httpClient(), o.ARM.Endpoint, o.ARM.Credential, o.ARM.Resources[res.Name])
	if err != nil {
		res.ARM = err.Error()
		return
	}
	res.ARM = "listed"
	byName := map[string]aoai.ARMDeployment{}
	for _, d := range deps {
		byName[d.Name] = d
	}
	for i := range res.Deployments {
		d := &res.Deployments[i]
		a, ok := byName[d.Deployment]
		if !ok || d.Source == "probe" {
			continue
		}
		d.Model, d.ID = a.ModelID()
		d.Source = "arm"
	}
}

// probeNetwork times DNS, TCP connect and the TLS handshake, and reads the certificate.
func probeNetwork(ctx context.Context, endpoint string, o *Options, res *RegionResult) error {
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return fmt.Errorf("endpoint: %q is not a URL", endpoint)
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = map[string]string{"https": "443", "http": "80"}[u.Scheme]
	}
	addrs := []string{host}
	if net.ParseIP(host) == nil {
		dctx, cancel := context.WithTimeout(ctx, o.Timeout)
		start := time.Now()
		addrs, err = o.Resolver.LookupHost(dctx, host)
		cancel()
		if err != nil {
			return fmt.Errorf("dns: %s: %w", host, unwrapNet(err))
		}
		res.DNSMs = ms(time.Since(start))
	}
	res.Addrs = addrs
	d := net.Dialer{Timeout: o.Timeout}
	start := time.Now()
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(addrs[0], port))
	if err != nil {
		return fmt.Errorf("connect: %s: %w", net.JoinHostPort(addrs[0], port), unwrapNet(err))
	}
	res.ConnectMs = ms(time.Since(start))
	defer conn.Close()
	if u.Scheme != "https" {
		return nil
	}
	return probeTLS(ctx, conn, host, o, res)
}

func probeTLS(ctx context.Context, conn net.Conn, host string, o *Options, res *RegionResult) error {
	cfg := &tls.Config{}
	if o.TLSConfig != nil {
		cfg = o.TLSConfig.Clone()
	}
	cfg.ServerName = host
	// Verify by hand so that an invalid certificate is still described.
	cfg.InsecureSkipVerify = true
	tc := tls.Client(conn, cfg)
	hctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	start := time.Now()
	if err := tc.HandshakeContext(hctx); err != nil {
		return fmt.Errorf("tls: handshake with %s: %w", host, err)
	}
	res.TLSMs = ms(time.Since(start))
	certs := tc.ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return errors.New("tls: the server sent no certificate")
	}
	leaf := certs[0]
	now := o.Now()
	res.Cert = &CertInfo{Subject: leaf.Subject.String(), Issuer: leaf.Issuer.String(), NotAfter: leaf.NotAfter,
		DaysLeft: int(leaf.NotAfter.Sub(now).Hours() / 24)}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	var roots *x509.CertPool
	if o.TLSConfig != nil {
		roots = o.TLSConfig.RootCAs
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: roots, Intermediates: inter, CurrentTime: now}); err != nil {
		res.Cert.Error = err.Error()
	}
	return nil
}

func unwrapNet(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return errors.New(dns.Err)
	}
	return err
}

// probeAuth lists the models: it needs a working credential, costs nothing, and tells what the region offers.
func probeAuth(ctx context.Context, c *aoai.Client, o *Options, res *RegionResult) {
	rctx, cancel := context.WithTimeout(ctx, 3*o.Timeout)
	defer cancel()
	models, err := c.Models(rctx)
	if err != nil {
		res.Auth.Message = err.Error()
		if e, ok := aoai.AsAPIError(err); ok {
			res.Auth.Kind, res.Auth.Message, res.Auth.Fix = e.Kind, e.Error(), e.Explain()
		}
		return
	}
	res.Auth.OK = true
	for _, m := range models {
		res.Models = append(res.Models, m.ID)
	}
	sort.Strings(res.Models)
}

// probeDeployment checks one deployment with an operation its model supports. The first request is free for
// every model: an empty chat request, which a deployment that exists refuses (400) before any tokens, a chat model
// because the messages are empty, any other model with OperationNotSupported naming its model. With --probe the
// deployment then does one cheap real request of its kind: a one-token chat completion (or, for a model that only
// answers the Responses API, a response), a one-word embedding, a one-token completion. Image, audio and Realtime
// models are never asked to generate (that costs money): that they exist is the check.
func probeDeployment(ctx context.Context, c *aoai.Client, o *Options, res *RegionResult, d *DeploymentResult) {
	rctx, cancel := context.WithTimeout(ctx, 3*o.Timeout)
	defer cancel()
	base := "/openai/deployments/" + url.PathEscape(d.Deployment) + "/"
	start := time.Now()
	model, err := postModel(rctx, c, base+"chat/completions", `{"messages":[],"max_tokens":1}`)
	d.Kind, d.Probe = ModelChat, "exists"
	refused := modelFromRefusal(err)
	if refused != "" {
		model, d.Kind = refused, modelKind(refused)
	}
	if o.Probe && isBadRequest(err) {
		model, err = probeKind(rctx, c, d, base, refused != "")
		if refused != "" && model == "" {
			model = refused
		}
	}
	d.LatencyMs = *ms(time.Since(start))
	switch e, _ := aoai.AsAPIError(err); {
	case err == nil:
		d.Status = StatusOK
	case e != nil && e.Kind == aoai.KindDeploymentNotFound:
		d.Status, d.Error, d.Probe = StatusMissing, e.Error(), ""
	case e != nil && e.Kind == aoai.KindThrottled:
		d.Status, d.Error = StatusThrottled, e.Error()
	case e != nil && e.Kind == aoai.KindBadRequest && !o.Probe:
		d.Status = StatusOK
	default:
		d.Status, d.Error = StatusError, err.Error()
	}
	identify(d, model, res.Models)
}

// probeKind makes the one real request that --probe makes, by the deployment's model kind. refusedChat says the
// model refused the chat operation by name (so a chat-kind model there answers the Responses API only).
func probeKind(ctx context.Context, c *aoai.Client, d *DeploymentResult, base string, refusedChat bool) (string, error) {
	switch d.Kind {
	case ModelEmbedding:
		d.Probe = "embeddings"
		return postModel(ctx, c, base+"embeddings", `{"input":"ping"}`)
	case ModelCompletion:
		d.Probe = "completions"
		return postModel(ctx, c, base+"completions", `{"prompt":"ping","max_tokens":1}`)
	case ModelImage, ModelAudio, ModelRealtime:
		return "", nil // exists; generating would cost money
	}
	if refusedChat {
		d.Probe = "responses"
		return postModel(ctx, c, "/openai/v1/responses", `{"model":`+strconv.Quote(d.Deployment)+`,"input":"ping","max_output_tokens":16}`)
	}
	d.Probe = "chat/completions"
	model, err := postModel(ctx, c, base+"chat/completions", `{"messages":[{"role":"user","content":"ping"}],"max_tokens":1}`)
	// A model whose kind its name did not tell: an embeddings or a completions model answers on its own route.
	for _, alt := range []struct{ op, body string }{{"embeddings", `{"input":"ping"}`}, {"completions", `{"prompt":"ping","max_tokens":1}`}} {
		if !isBadRequest(err) {
			break
		}
		d.Probe = alt.op
		model, err = postModel(ctx, c, base+alt.op, alt.body)
	}
	if isBadRequest(err) {
		d.Probe = "exists" // every operation was refused as a bad request: the deployment exists, its kind is unknown
		return "", nil
	}
	return model, err
}

// identify fills in the model: from the answer, else from the models list when the deployment is named after
// a model (as fine-tuned deployments usually are).
func identify(d *DeploymentResult, answered string, models []string) {
	switch {
	case answered != "":
		d.Model, d.Source = answered, "probe"
	case contains(models, d.Deployment):
		d.Model, d.Source = d.Deployment, "models"
	case aoai.IsFineTuned(d.Deployment):
		d.Model, d.Source = d.Deployment, "name"
	default:
		return
	}
	d.ID = aoai.SplitModel(d.Model)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func isBadRequest(err error) bool {
	e, ok := aoai.AsAPIError(err)
	return ok && e.Kind == aoai.KindBadRequest
}

func postModel(ctx context.Context, c *aoai.Client, path, body string) (string, error) {
	resp, err := c.Do(ctx, http.MethodPost, path, []byte(body), "application/json")
	if err != nil {
		return "", err
	}
	var out struct {
		Model string `json:"model"`
	}
	if err := c.Decode(resp, &out); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return "", nil
		}
		return "", err
	}
	return strings.TrimSpace(out.Model), nil
}
