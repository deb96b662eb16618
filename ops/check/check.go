// Package check answers, before an outage, whether every region of a Lifeline config can really serve: it
// probes each region (DNS, TCP connect, TLS handshake, certificate, auth, every mapped deployment) and compares
// the regions with each other (Analyze), so that a failover does not land on a region that cannot answer or
// answers differently.
package check

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/lifeline-sre/lifeline/ops/aoai"
)

// Region is what check needs to know about one configured region.
type Region struct {
	Name        string
	Endpoint    string                 // base URL, e.g. https://contoso-eastus.openai.azure.com
	APIKey      string                 // exactly one of APIKey and Credential
	Credential  azcore.TokenCredential // Entra ID
	Priority    int                    // lower is preferred; 0 means 1
	Deployments map[string]string      // client-visible name -> deployment name in this region
}

// Options tune Run. The zero value probes without spending tokens.
type Options struct {
	// Probe sends a minimal completion (max_tokens 1) to every mapped deployment to learn the model and version
	// it serves. It costs tokens, so it is opt-in; without it a request that the region rejects as invalid tells
	// whether the deployment exists, and the model comes from the models list.
	Probe bool
	// TLSConfig is the trust for HTTPS endpoints (nil: the system roots).
	TLSConfig *tls.Config
	// Timeout bounds each network step (DNS, connect, handshake, each HTTP request); 0 means 10s.
	Timeout time.Duration
	// Resolver resolves endpoint host names; nil means net.DefaultResolver.
	Resolver *net.Resolver
	// CertWarning is how close to expiry a certificate must be to give a warning; 0 means 30 days.
	CertWarning time.Duration
	// Now is the clock for certificate expiry; nil means time.Now.
	Now func() time.Time
	// ARM, when set, lists each region's deployments through Azure Resource Manager: that tells the model and
	// version of every deployment without spending tokens. Nil: not used.
	ARM *ARM
}

// ARM says where each region's resource is in Azure Resource Manager.
type ARM struct {
	Endpoint   string                 // "": https://management.azure.com
	Credential azcore.TokenCredential // a token for https://management.azure.com/.default
	// Resources maps a region name to its resource ID,
	// /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.CognitiveServices/accounts/{name}.
	Resources map[string]string
	// Discover finds the resource of each region that Resources does not name, among the accounts of the
	// subscriptions the credential can see, by its endpoint. Regions whose resource is not found are not an error:
	// their model is then known only with Probe.
	Discover bool
}

func (o *Options) defaults() {
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Resolver == nil {
		o.Resolver = net.DefaultResolver
	}
	if o.CertWarning <= 0 {
		o.CertWarning = 30 * 24 * time.Hour
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

func (o *Options) httpClient() *http.Client {
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: o.Timeout}).DialContext,
		TLSHandshakeTimeout: o.Timeout,
		TLSClientConfig:     o.TLSConfig,
	}
	return &http.Client{Transport: tr, Timeout: 3 * o.Timeout}
}

// Run probes every region concurrently and analyses the results.
func Run(ctx context.Context, regions []Region, opts Options) *Report {
	opts.defaults()
	discovery := discoverARM(ctx, regions, &opts)
	results := make([]RegionResult, len(regions))
	var wg sync.WaitGroup
	for i, r := range regions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = probeRegion(ctx, r, &opts)
		}()
	}
	wg.Wait()
	rep := &Report{Regions: results, Probed: opts.Probe, ARMDiscovery: discovery}
	rep.Parity = ParityTable(results)
	rep.Findings = append(regionFindings(results), Analyze(results)...)
	sort.SliceStable(rep.Findings, func(i, j int) bool { return rep.Findings[i].Severity > rep.Findings[j].Severity })
	return rep
}

// discoverARM fills opts.ARM.Resources for the regions it does not name, from the accounts Resource Manager lists,
// and says what it found (for the report).
func discoverARM(ctx context.Context, regions []Region, o *Options) string {
	if o.ARM == nil || !o.ARM.Discover {
		return ""
	}
	var missing []Region
	for _, r := range regions {
		if o.ARM.Resources[r.Name] == "" {
			missing = append(missing, r)
		}
	}
	if len(missing) == 0 {
		return ""
	}
	dctx, cancel := context.WithTimeout(ctx, 3*o.Timeout)
	defer cancel()
	accounts, err := aoai.ListARMAccounts(dctx, o.httpClient(), o.ARM.Endpoint, o.ARM.Credential)
	if err != nil {
		return "not used: " + err.Error()
	}
	res := make(map[string]string, len(o.ARM.Resources)+len(missing))
	for k, v := range o.ARM.Resources {
		res[k] = v
	}
	var found []string
	for _, r := range missing {
		for _, a := range accounts {
			if a.Serves(r.Endpoint) {
				res[r.Name] = a.ID
				found = append(found, r.Name)
				break
			}
		}
	}
	o.ARM.Resources = res
	return fmt.Sprintf("found the resource of %d of %d region(s) among %d account(s)", len(found), len(missing), len(accounts))
}
