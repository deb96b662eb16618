package aoai

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
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

// ARMAccount is a Cognitive Services account (an Azure OpenAI or AI Services resource) as Resource Manager lists it.
type ARMAccount struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Kind       string `json:"kind"`
	Location   string `json:"location"`
	Properties struct {
		Endpoint            string            `json:"endpoint"`
		Endpoints           map[string]string `json:"endpoints"`
		CustomSubDomainName string            `json:"customSubDomainName"`
	} `json:"properties"`
}

// Serves reports whether the account answers at endpoint (a region's base URL): its endpoint, one of its
// endpoints, or its custom subdomain under an Azure host.
func (a ARMAccount) Serves(endpoint string) bool {
	host := hostOf(endpoint)
	if host == "" {
		return false
	}
	if hostOf(a.Properties.Endpoint) == host {
		return true
	}
	for _, e := range a.Properties.Endpoints {
		if hostOf(e) == host {
			return true
		}
	}
	sub, rest, _ := strings.Cut(host, ".")
	return a.Properties.CustomSubDomainName != "" && strings.EqualFold(sub, a.Properties.CustomSubDomainName) && IsAzureHost(rest)
}

func hostOf(u string) string {
	p, err := url.Parse(strings.TrimSpace(u))
	if err != nil {
		return ""
	}
	return strings.ToLower(p.Host)
}

// IsAzureHost reports whether host (or a host name under it) is one of Azure's data-plane domains for Azure
// OpenAI: openai.azure.com, cognitiveservices.azure.com, services.ai.azure.com.
func IsAzureHost(host string) bool {
	host = strings.ToLower(host)
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	for _, d := range []string{"openai.azure.com", "cognitiveservices.azure.com", "services.ai.azure.com"} {
		if host == d || strings.HasSuffix(host, "."+d) {
			return true
		}
	}
	return false
}

// ListARMAccounts lists the Cognitive Services accounts of every subscription the credential can see, so that a
// region's resource can be found from its endpoint (ARMAccount.Serves).
func ListARMAccounts(ctx context.Context, hc *http.Client, endpoint string, cred azcore.TokenCredential) ([]ARMAccount, error) {
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
	base := strings.TrimRight(endpoint, "/")
	var subs []struct {
		SubscriptionID string `json:"subscriptionId"`
	}
	if err := armList(ctx, hc, tok.Token, base+"/subscriptions?api-version=2022-12-01", &subs); err != nil {
		return nil, fmt.Errorf("azure resource manager: listing subscriptions: %w", err)
	}
	var all []ARMAccount
	for _, s := range subs {
		var accts []ARMAccount
		u := base + "/subscriptions/" + url.PathEscape(s.SubscriptionID) + "/providers/Microsoft.CognitiveServices/accounts?api-version=" + ARMAPIVersion
		if err := armList(ctx, hc, tok.Token, u, &accts); err != nil {
			return nil, fmt.Errorf("azure resource manager: listing the accounts of subscription %s: %w", s.SubscriptionID, err)
		}
		all = append(all, accts...)
	}
	return all, nil
}

// armList reads every page of an ARM list (value, nextLink) into out.
func armList[T any](ctx context.Context, hc *http.Client, token, u string, out *[]T) error {
	for page := 0; u != "" && page < 50; page++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
		resp.Body.Close()
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			e := ParseError("arm", resp, data)
			return fmt.Errorf("HTTP %d %s: %s", resp.StatusCode, e.Code, e.Message)
		}
		var body struct {
			Value    []T    `json:"value"`
			NextLink string `json:"nextLink"`
		}
		if err := json.Unmarshal(data, &body); err != nil {
			return fmt.Errorf("decoding: %w", err)
		}
		*out = append(*out, body.Value...)
		u = body.NextLink
	}
	return nil
}
