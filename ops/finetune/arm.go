package finetune

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/lifeline-sre/lifeline/ops/aoai"
)

// ARM defaults.
const (
	DefaultARMEndpoint   = aoai.DefaultARMEndpoint
	ARMScope             = aoai.ARMScope
	ARMDeploymentVersion = aoai.ARMAPIVersion
)

// Deployer creates model deployments through Azure Resource Manager.
type Deployer struct {
	Endpoint   string                 // "": DefaultARMEndpoint
	Credential azcore.TokenCredential // ARM token (scope ARMScope)
	HTTP       *http.Client           // nil: http.DefaultClient
	// PollInterval is how often a deployment that is still provisioning is read again. Zero: 10s.
	PollInterval time.Duration
}

// Deployment says what to deploy where.
type Deployment struct {
	Subscription  string
	ResourceGroup string
	Account       string // the Azure OpenAI resource (account) name
	Name          string // deployment name
	Model         string // e.g. gpt-4o-mini-2024-07-18.ft-...
	Version       string // "": "1", as fine-tuned models use
	SKU           string // "": "Standard"
	Capacity      int    // 0: 1 (thousands of tokens per minute for Standard)
}

func (d Deployment) path() string {
	return fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.CognitiveServices/accounts/%s/deployments/%s",
		url.PathEscape(d.Subscription), url.PathEscape(d.ResourceGroup), url.PathEscape(d.Account), url.PathEscape(d.Name))
}

// Deploy creates or updates the deployment (PUT is idempotent, so a rerun is safe) and waits until ARM reports it
// provisioned. It returns the final provisioning state.
func (dp *Deployer) Deploy(ctx context.Context, d Deployment) (string, error) {
	if d.Subscription == "" || d.ResourceGroup == "" || d.Account == "" {
		return "", fmt.Errorf("--deploy needs --subscription, --resource-group and --account (the target resource in Azure Resource Manager)")
	}
	if d.Version == "" {
		d.Version = "1"
	}
	if d.SKU == "" {
		d.SKU = "Standard"
	}
	if d.Capacity == 0 {
		d.Capacity = 1
	}
	body := map[string]any{
		"sku":        map[string]any{"name": d.SKU, "capacity": d.Capacity},
		"properties": map[string]any{"model": map[string]any{"format": "OpenAI", "name": d.Model, "version": d.Version}},
	}
	state, err := dp.call(ctx, http.MethodPut, d, body)
	for err == nil && !terminal(state) {
		if err = sleep(ctx, dp.interval()); err == nil {
			state, err = dp.call(ctx, http.MethodGet, d, nil)
		}
	}
	if err != nil {
		return state, err
	}
	if !strings.EqualFold(state, "Succeeded") {
		return state, fmt.Errorf("deployment %s in %s ended %s; see the resource's activity log in the Azure portal", d.Name, d.Account, state)
	}
	return state, nil
}

func terminal(state string) bool {
	switch strings.ToLower(state) {
	case "succeeded", "failed", "canceled", "cancelled":
		return true
	}
	return false
}

func (dp *Deployer) interval() time.Duration {
	if dp.PollInterval > 0 {
		return dp.PollInterval
	}
	return 10 * time.Second
}

func (dp *Deployer) call(ctx context.Context, method string, d Deployment, in any) (string, error) {
	if dp.Credential == nil {
		return "", fmt.Errorf("no Azure Resource Manager credential: sign in with `az login` or set AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET")
	}
	tok, err := dp.Credential.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{ARMScope}})
	if err != nil {
		return "", fmt.Errorf("getting an Azure Resource Manager token: %w (sign in with `az login` or configure a managed identity)", err)
	}
	var rd io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		rd = bytes.NewReader(b)
	}
	base := dp.Endpoint
	if base == "" {
		base = DefaultARMEndpoint
	}
	u := strings.TrimRight(base, "/") + d.path() + "?api-version=" + ARMDeploymentVersion
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+tok.Token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := dp.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("azure resource manager: %s deployment %s: %w", method, d.Name, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode >= 300 {
		return "", armError(d, resp, data)
	}
	var out struct {
		Properties struct {
			ProvisioningState string `json:"provisioningState"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return "", fmt.Errorf("azure resource manager: decoding deployment %s: %w", d.Name, err)
	}
	return out.Properties.ProvisioningState, nil
}

func armError(d Deployment, resp *http.Response, data []byte) error {
	e := aoai.ParseError("arm:"+d.Account, resp, data)
	fix := ""
	switch {
	case resp.StatusCode == 401:
		fix = "the token was refused (expired, or for another tenant): sign in again (az login) or refresh LIFELINE_ARM_TOKEN"
	case resp.StatusCode == 403:
		fix = "the identity needs 'Cognitive Services Contributor' (or Owner) on the account to create deployments"
	case e.Kind == aoai.KindQuota || strings.Contains(strings.ToLower(e.Code), "quota"):
		fix = "the region has no quota left for this model; lower --capacity or request quota for the region"
	case resp.StatusCode == 404:
		fix = "check --subscription, --resource-group and --account (the account is the resource name of the target region)"
	}
	msg := fmt.Sprintf("azure resource manager: deploying %s as %s in %s: HTTP %d %s: %s", d.Model, d.Name, d.Account, resp.StatusCode, e.Code, e.Message)
	if fix != "" {
		msg += "; " + fix
	}
	return fmt.Errorf("%s", msg)
}
