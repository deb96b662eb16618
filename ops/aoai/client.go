// Package aoai is the small Azure OpenAI data-plane client that the operations commands share: it sets a
// region's credential, adds the api-version, and turns error responses into *APIError with a Kind that says
// what went wrong (wrong key, key auth disabled, missing role, quota, ...). It never puts a secret in an error.
package aoai

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// DefaultAPIVersion is the dated GA data-plane version used for every request.
const DefaultAPIVersion = "2024-10-21"

// CognitiveScope is the Entra scope of the Azure OpenAI data plane.
const CognitiveScope = "https://cognitiveservices.azure.com/.default"

// Client talks to one region's data plane.
type Client struct {
	Region     string                 // for error messages
	Endpoint   string                 // base URL without /openai
	APIKey     string                 // sent as api-key; exactly one of APIKey, Credential
	Credential azcore.TokenCredential // Entra: Authorization: Bearer <token for CognitiveScope>
	HTTP       *http.Client           // nil: http.DefaultClient
	APIVersion string                 // "": DefaultAPIVersion
}

func (c *Client) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return http.DefaultClient
}

// URL returns the full URL of path (which starts with /openai/) with the api-version added.
func (c *Client) URL(path string) string {
	v := c.APIVersion
	if v == "" {
		v = DefaultAPIVersion
	}
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	return strings.TrimRight(c.Endpoint, "/") + path + sep + "api-version=" + v
}

// Do sends a request to path with the region's credential and returns the response as it is (any status).
func (c *Client) Do(ctx context.Context, method, path string, body []byte, contentType string) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.URL(path), rd)
	if err != nil {
		return nil, fmt.Errorf("region %s: %w", c.Region, err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if err := c.authorize(ctx, req); err != nil {
		return nil, err
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return nil, fmt.Errorf("region %s: %s %s: %w", c.Region, method, path, err)
	}
	return resp, nil
}

func (c *Client) authorize(ctx context.Context, req *http.Request) error {
	switch {
	case c.Credential != nil:
		tok, err := c.Credential.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{CognitiveScope}})
		if err != nil {
			return &APIError{Region: c.Region, Kind: KindTokenUnavailable, Message: "getting an Entra token: " + err.Error()}
		}
		req.Header.Set("Authorization", "Bearer "+tok.Token)
	case c.APIKey != "":
		req.Header.Set("api-key", c.APIKey)
	}
	return nil
}

// JSON sends in (when not nil) as JSON and decodes a 2xx answer into out (when not nil). Any other status is
// returned as *APIError.
func (c *Client) JSON(ctx context.Context, method, path string, in, out any) error {
	var body []byte
	ct := ""
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body, ct = b, "application/json"
	}
	resp, err := c.Do(ctx, method, path, body, ct)
	if err != nil {
		return err
	}
	return c.Decode(resp, out)
}

// Decode reads resp: a 2xx body goes into out (when not nil), anything else becomes *APIError.
func (c *Client) Decode(resp *http.Response, out any) error {
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("region %s: reading response: %w", c.Region, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return ParseError(c.Region, resp, data)
	}
	if out == nil || len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("region %s: decoding %s response: %w", c.Region, resp.Request.URL.Path, err)
	}
	return nil
}

// Kind says what an error response means for an operator.
type Kind string

const (
	KindWrongKey           Kind = "wrong_key"          // 401 with an API key
	KindTokenRejected      Kind = "token_rejected"     // 401 with an Entra token that is not accepted
	KindMissingRole        Kind = "missing_role"       // 401/403 PermissionDenied: the principal lacks the data action
	KindKeyAuthDisabled    Kind = "key_auth_disabled"  // 403 AuthenticationTypeDisabled
	KindTokenUnavailable   Kind = "token_unavailable"  // the credential could not produce a token
	KindDeploymentNotFound Kind = "deployment_missing" // 404 DeploymentNotFound
	KindNotFound           Kind = "not_found"          // other 404
	KindQuota              Kind = "quota"              // quota exceeded (fine-tuning jobs, deployments)
	KindThrottled          Kind = "throttled"          // 429 rate limit
	KindBadRequest         Kind = "bad_request"        // other 4xx
	KindServer             Kind = "server_error"       // 5xx
	KindWrongTenant        Kind = "wrong_tenant"       // 400: an Entra token from another tenant than the resource's
)

// tenantMismatchCode is the error code of Azure's 400 to an Entra token from another tenant (docs/wire-notes.md).
const tenantMismatchCode = "tenant provided in token does not match resource token"

// APIError is an error answer from a region.
type APIError struct {
	Region     string
	Status     int
	Code       string // error.code from the body
	Message    string // error.message from the body
	Kind       Kind
	RetryAfter time.Duration
	UsedKey    bool // the request carried an API key (not a token)
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "region %s: ", e.Region)
	if e.Status != 0 {
		fmt.Fprintf(&b, "HTTP %d ", e.Status)
	}
	if e.Code != "" {
		fmt.Fprintf(&b, "%s: ", e.Code)
	}
	b.WriteString(e.Message)
	return strings.TrimSpace(b.String())
}

// Explain says what the error means and how to fix it, in one line, for the kinds an operator can act on.
func (e *APIError) Explain() string {
	switch e.Kind {
	case KindWrongKey:
		return "the API key is wrong or belongs to another resource; copy Key 1 of this resource (Azure portal: Keys and Endpoint) into api_key"
	case KindTokenRejected:
		return "the Entra token was rejected; check the tenant and that the endpoint is the resource the identity has access to"
	case KindMissingRole:
		return "the identity lacks a role on the resource; assign 'Cognitive Services OpenAI User' (inference) or 'Cognitive Services OpenAI Contributor' (fine-tuning)"
	case KindWrongTenant:
		return "the Entra token is from another tenant than the resource's; use an identity of the resource's tenant (tenant_id, or AZURE_TENANT_ID)"
	case KindKeyAuthDisabled:
		return "key authentication is disabled on this resource (disableLocalAuth); use `entra:` for this region instead of api_key"
	case KindTokenUnavailable:
		return "no Entra token: check the credential (az login, managed identity, or tenant_id/client_id/client_secret)"
	case KindDeploymentNotFound:
		return "the deployment does not exist in this region; create it or fix the name in deployments"
	case KindQuota:
		return "the region's quota is exhausted; request more quota for this region or free some (delete idle deployments or finished jobs)"
	case KindThrottled:
		return "the region is rate limiting; try again later or raise the deployment's TPM"
	}
	return ""
}

// ParseError builds an *APIError from a non-2xx response and its body.
func ParseError(region string, resp *http.Response, body []byte) *APIError {
	e := &APIError{Region: region, Status: resp.StatusCode}
	if resp.Request != nil {
		e.UsedKey = resp.Request.Header.Get("api-key") != ""
	}
	var env struct {
		Error struct {
			Code    any    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
		StatusCode int    `json:"statusCode"`
		Msg        string `json:"message"`
	}
	if json.Unmarshal(body, &env) == nil {
		switch c := env.Error.Code.(type) {
		case string:
			e.Code = c
		case float64:
			e.Code = fmt.Sprint(int(c))
		}
		e.Message = env.Error.Message
		if e.Message == "" {
			e.Message = env.Msg
		}
	}
	if e.Message == "" {
		e.Message = strings.TrimSpace(http.StatusText(resp.StatusCode))
	}
	e.RetryAfter = retryAfter(resp.Header)
	e.Kind = classify(e)
	return e
}

func retryAfter(h http.Header) time.Duration {
	var ms, s int
	if _, err := fmt.Sscan(h.Get("retry-after-ms"), &ms); err == nil && ms > 0 {
		return time.Duration(ms) * time.Millisecond
	}
	if _, err := fmt.Sscan(h.Get("Retry-After"), &s); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	return 0
}

func classify(e *APIError) Kind {
	code := strings.ToLower(e.Code)
	msg := strings.ToLower(e.Message)
	switch {
	case code == "authenticationtypedisabled" || strings.Contains(msg, "key based authentication is disabled"):
		return KindKeyAuthDisabled
	case code == tenantMismatchCode || strings.Contains(msg, "does not match resource tenant"):
		return KindWrongTenant
	case code == "permissiondenied" || strings.Contains(msg, "lacks the required data action") ||
		strings.Contains(msg, "does not have access"):
		return KindMissingRole
	case code == "quotaexceeded" || code == "insufficientquota" ||
		e.Status != http.StatusTooManyRequests && strings.Contains(msg, "quota"): // a rate-limit 429 links to quotaincrease
		return KindQuota
	case e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden:
		if e.UsedKey {
			return KindWrongKey
		}
		return KindTokenRejected
	case code == "deploymentnotfound":
		return KindDeploymentNotFound
	case e.Status == http.StatusNotFound:
		return KindNotFound
	case e.Status == http.StatusTooManyRequests:
		return KindThrottled
	case e.Status >= 500:
		return KindServer
	}
	return KindBadRequest
}

// AsAPIError unwraps err into an *APIError.
func AsAPIError(err error) (*APIError, bool) {
	var e *APIError
	ok := errors.As(err, &e)
	return e, ok
}
