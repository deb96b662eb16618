package check

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/golang-jwt/jwt/v5"

	"github.com/lifeline-sre/lifeline/internal/entra"
	"github.com/lifeline-sre/lifeline/ops/aoai"
)

// EntraResult is what check learned of a region's Entra credential and token. It never holds the token.
type EntraResult struct {
	Identity   string     `json:"identity"`             // what the config asks for, e.g. "service principal <id> in tenant <id>"
	Credential string     `json:"credential,omitempty"` // the credential that answered, e.g. "WorkloadIdentityCredential"
	Audience   string     `json:"audience,omitempty"`   // the token's aud
	ExpiresAt  *time.Time `json:"expires_at,omitempty"` // the token's exp
	TenantID   string     `json:"tenant_id,omitempty"`  // the token's tid
	ObjectID   string     `json:"object_id,omitempty"`  // the principal (oid): the one to assign roles to
	AppID      string     `json:"app_id,omitempty"`     // the client id (appid)
}

// describedCredential is a credential built by internal/entra: it says what it is and which credential answered.
type describedCredential interface {
	azcore.TokenCredential
	Source() string
	Spec() entra.Spec
}

// Problems with a region's Entra credential or token, beyond the kinds of aoai.
const (
	KindClockSkew aoai.Kind = "clock_skew" // this host's clock and the region's differ
	// clockSkewWarning is the difference worth a warning; Azure tolerates about five minutes on a token.
	clockSkewWarning = 2 * time.Minute
	clockSkewError   = 5 * time.Minute
)

// probeEntra gets the region's token (which tells whether the identity works at all, and which credential
// answered), reads what the token says, and points the client at that token so that the region is asked with
// exactly it. It reports false when there is no token.
func probeEntra(ctx context.Context, r Region, o *Options, res *RegionResult, c *aoai.Client) bool {
	e := &EntraResult{Identity: "the credential given to check"}
	spec := entra.Spec{}
	if d, ok := r.Credential.(describedCredential); ok {
		spec = d.Spec()
		e.Identity = spec.Identity()
	}
	res.Auth.Entra = e
	tctx, cancel := context.WithTimeout(ctx, 3*o.Timeout)
	defer cancel()
	tok, err := r.Credential.GetToken(tctx, policy.TokenRequestOptions{Scopes: []string{aoai.CognitiveScope}})
	if d, ok := r.Credential.(describedCredential); ok {
		e.Credential = d.Source()
	}
	if err != nil {
		d := entra.Diagnose(spec, err)
		res.Auth.Kind, res.Auth.Message, res.Auth.Fix = aoai.Kind(d.Problem), "no Entra token: "+d.Cause, d.Fix
		return false
	}
	var cl struct {
		jwt.RegisteredClaims
		TenantID string `json:"tid"`
		ObjectID string `json:"oid"`
		AppID    string `json:"appid"`
		AZP      string `json:"azp"`
	}
	if _, _, err := jwt.NewParser().ParseUnverified(tok.Token, &cl); err == nil {
		e.Audience = strings.Join(cl.Audience, " ")
		if cl.ExpiresAt != nil {
			t := cl.ExpiresAt.UTC()
			e.ExpiresAt = &t
		}
		e.TenantID, e.ObjectID, e.AppID = cl.TenantID, cl.ObjectID, cl.AppID
		if e.AppID == "" {
			e.AppID = cl.AZP
		}
	}
	if e.ExpiresAt == nil && !tok.ExpiresOn.IsZero() {
		t := tok.ExpiresOn.UTC()
		e.ExpiresAt = &t
	}
	c.Credential = staticToken(tok)
	return true
}

type staticToken azcore.AccessToken

func (s staticToken) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken(s), nil
}

// explainEntra makes the region's answer to the token say what to do about it: which principal needs the role,
// which tenant the token is from, or that the clocks disagree.
func explainEntra(res *RegionResult) {
	e, a := res.Auth.Entra, &res.Auth
	if e == nil || a.OK || a.Entra.Audience == "" && a.Kind == "" {
		return
	}
	principal := orText(e.ObjectID, "<principal object id>")
	switch a.Kind {
	case aoai.KindMissingRole:
		a.Message = fmt.Sprintf("principal %s (%s) has no data-plane role on this resource: %s", principal, e.Identity, a.Message)
		a.Fix = fmt.Sprintf(`assign it "Cognitive Services OpenAI User": az role assignment create --role "Cognitive Services OpenAI User" --assignee-object-id %s --assignee-principal-type ServicePrincipal --scope <this resource's id> (role assignments take a few minutes)`, principal)
	case aoai.KindWrongTenant:
		a.Message = fmt.Sprintf("the token is from tenant %s, the resource is in another tenant: %s", orText(e.TenantID, "?"), a.Message)
		a.Fix = "use an identity of the resource's own tenant: tenant_id (or AZURE_TENANT_ID) must be the tenant of the Azure OpenAI resource, with an app or managed identity that lives there"
	case aoai.KindTokenRejected:
		if res.ClockSkewMs != nil && math.Abs(*res.ClockSkewMs) >= float64(clockSkewError.Milliseconds()) {
			a.Kind = KindClockSkew
			a.Message = fmt.Sprintf("the region rejected the token (audience %s, expires %s) and its clock is %s this host's: %s",
				e.Audience, timeText(e.ExpiresAt), skewText(*res.ClockSkewMs), a.Message)
			a.Fix = "set this host's clock right (NTP): tokens are valid from their issue time to their expiry, give or take five minutes"
			return
		}
		a.Message = fmt.Sprintf("the region rejected the token (audience %s, expires %s): %s", e.Audience, timeText(e.ExpiresAt), a.Message)
		a.Fix = "the token must be for https://cognitiveservices.azure.com and current; check that the endpoint is this identity's Azure OpenAI resource"
	}
}

func timeText(t *time.Time) string {
	if t == nil {
		return "?"
	}
	return t.Format(time.RFC3339)
}

func skewText(ms float64) string {
	d := time.Duration(math.Abs(ms)) * time.Millisecond
	dir := "ahead of"
	if ms < 0 {
		dir = "behind"
	}
	return d.Round(time.Second).String() + " " + dir
}

// dateRecorder remembers the Date header of the region's answers, to compare its clock with this host's.
type dateRecorder struct {
	next http.RoundTripper
	now  func() time.Time
	mu   sync.Mutex
	skew *float64 // region - local, in ms
}

func (d *dateRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := d.next.RoundTrip(req)
	if err == nil {
		if t, perr := http.ParseTime(resp.Header.Get("Date")); perr == nil {
			ms := float64(t.Sub(d.now()).Milliseconds())
			d.mu.Lock()
			d.skew = &ms
			d.mu.Unlock()
		}
	}
	return resp, err
}

func (d *dateRecorder) value() *float64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.skew
}

// clockFinding warns about a clock that differs from an Entra region's, even when tokens still pass (keys do not
// care about clocks).
func clockFinding(r RegionResult) (Finding, bool) {
	if r.Auth.Entra == nil || r.ClockSkewMs == nil || math.Abs(*r.ClockSkewMs) < float64(clockSkewWarning.Milliseconds()) || r.Auth.Kind == KindClockSkew {
		return Finding{}, false
	}
	return Finding{Severity: Warning, Kind: string(KindClockSkew), Region: r.Name,
		Message: "this host's clock is " + skewText(-*r.ClockSkewMs) + " the region's (its Date header)",
		Fix:     "set the clock right (NTP): beyond about five minutes Azure rejects tokens as expired or not yet valid"}, true
}

// writeEntra is the ENTRA table of the text report: per Entra region, the identity, the credential that
// answered, the principal, the token's tenant, audience and expiry.
func (r *Report) writeEntra(w io.Writer) {
	var rows []RegionResult
	for _, g := range r.Regions {
		if g.Auth.Entra != nil {
			rows = append(rows, g)
		}
	}
	if len(rows) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ENTRA\tIDENTITY\tCREDENTIAL\tPRINCIPAL\tTENANT\tAUDIENCE\tEXPIRES")
	for _, g := range rows {
		e := g.Auth.Entra
		exp := "-"
		if e.ExpiresAt != nil {
			exp = e.ExpiresAt.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", g.Name, e.Identity, orText(e.Credential, "-"), orText(e.ObjectID, "-"),
			orText(e.TenantID, "-"), orText(e.Audience, "-"), exp)
	}
	tw.Flush()
	fmt.Fprintln(w)
}
