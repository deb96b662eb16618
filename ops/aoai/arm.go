package aoai

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// ARM control-plane constants.
const (
	DefaultARMEndpoint = "https://management.azure.com"
	ARMScope           = "https://management.azure.com/.default"
	ARMAPIVersion      = "2024-10-01"
)

// ARMDeployment is a deployment as Azure Resource Manager lists it.
type ARMDeployment struct {
	Name string `json:"name"`
	SKU  struct {
		Name     string `json:"name"`
		Capacity int    `json:"capacity"`
	} `json:"sku"`
	Properties struct {
		Model struct {
			Format  string `json:"format"`
			Name    string `json:"name"`
			Version string `json:"version"`
		} `json:"model"`
		ProvisioningState string `json:"provisioningState"`
	} `json:"properties"`
}

// ModelID is the deployment's model as parity compares it.
func (d ARMDeployment) ModelID() (full string, id ModelID) {
	m := d.Properties.Model
	if IsFineTuned(m.Name) || m.Version == "" || m.Version == "1" {
		return m.Name, SplitModel(m.Name)
	}
	return m.Name + "-" + m.Version, ModelID{Name: m.Name, Version: m.Version}
}

// ListARMDeployments lists the deployments of the Azure OpenAI resource with the given resource ID
// (/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.CognitiveServices/accounts/{name}).
func ListARMDeployments(ctx context.Context, hc *http.Client, endpoint string, cred azcore.TokenCredential, resourceID string) ([]ARMDeployment, error) {
	if endpoint == "" {
		endpoint = DefaultARMEndpoint
	}
	if hc == nil {
		hc = http.DefaultClient
	}
	tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{ARMScope}})
	if err != nil {
		return nil, fmt.Errorf("azure resource manager token: %w (sign in with `az login`, or set LIFELINE_ARM_TOKEN)", err)
	}
	u := strings.TrimRight(endpoint, "/") + "/" + strings.Trim(resourceID, "/") + "/deployments?api-version=" + ARMAPIVersion
	var all []ARMDeployment
	for page := 0; u != "" && page < 50; page++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+tok.Token)
		resp, err := hc.Do(req)
		if err != nil {
			return nil, fmt.Errorf("azure resource manager: listing deployments: %w", err)
		}
		data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			e := ParseError("arm", resp, data)
			return nil, fmt.Errorf("azure resource manager: listing deployments of %s: HTTP %d %s: %s", resourceID, resp.StatusCode, e.Code, e.Message)
		}
		var out struct {
			Value    []ARMDeployment `json:"value"`
			NextLink string          `json:"nextLink"`
		}
		if err := json.Unmarshal(data, &out); err != nil {
			return nil, fmt.Errorf("azure resource manager: decoding deployments: %w", err)
		}
		all = append(all, out.Value...)
		u = out.NextLink
	}
	return all, nil
}
