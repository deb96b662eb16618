package sim

import (
	"crypto"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Entra makes the simulated regions verify Microsoft Entra ID access tokens the way Azure OpenAI does: the
// signature against the authority's keys, the audience, expiry and not-before, the resource's tenant and the
// principal's role on the resource. Each failure gets Azure's own answer (docs/wire-notes.md).
type Entra struct {
	// Keys returns the authority's public signing key with a key id (the JWKS). Required.
	Keys func(kid string) (crypto.PublicKey, bool)
	// Audience the tokens must be for. Empty: https://cognitiveservices.azure.com (a trailing slash is accepted).
	Audience string
	// ClockSkew tolerated on exp and nbf. Zero: 5 minutes (the usual Microsoft token-validation default);
	// negative: none.
	ClockSkew time.Duration
}

// DefaultEntraAudience is the audience of Azure OpenAI data-plane tokens.
const DefaultEntraAudience = "https://cognitiveservices.azure.com"

// Azure's answers to tokens it does not accept.
var (
	// tokenInvalidBody: a token that is not valid (signature, audience, expiry) gets a body in API Management's
	// shape, not the {"error":{...}} one.
	tokenInvalidBody = []byte(`{"statusCode":401,"message":"Unauthorized. Access token is missing, invalid, audience is incorrect (https://cognitiveservices.azure.com), or have expired."}`)
	// permissionDeniedBody: a valid token of a principal without a data-plane role on the resource.
	permissionDeniedBody = azureError("PermissionDenied", "Principal does not have access to API/Operation.")
)

// tenantMismatchBody: a valid token from another tenant than the resource's. Azure answers 400.
func tenantMismatchBody(tid string) []byte {
	return azureError("Tenant provided in token does not match resource token", "Token tenant "+tid+" does not match resource tenant.")
}

// entraClaims are the claims of an Entra access token that the check reads.
type entraClaims struct {
	jwt.RegisteredClaims
	TenantID string `json:"tid"`
	ObjectID string `json:"oid"`
}

// looksLikeJWT tells a JWT (three base64url parts) from an opaque token or an API key.
func looksLikeJWT(tok string) bool {
	return strings.Count(tok, ".") == 2 && strings.HasPrefix(tok, "eyJ")
}

// verifyEntra checks an Entra token for this region and answers the request itself when it is refused.
func (c *call) verifyEntra(e *Entra, tok string) bool {
	skew := e.ClockSkew
	if skew == 0 {
		skew = 5 * time.Minute
	}
	skew = max(skew, 0)
	aud := e.Audience
	if aud == "" {
		aud = DefaultEntraAudience
	}
	var cl entraClaims
	_, err := jwt.ParseWithClaims(tok, &cl, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		if e.Keys == nil {
			return nil, errors.New("no keys")
		}
		k, ok := e.Keys(kid)
		if !ok {
			return nil, errors.New("unknown key")
		}
		return k, nil
	}, jwt.WithValidMethods([]string{"RS256"}), jwt.WithLeeway(skew), jwt.WithTimeFunc(c.r.sim.now),
		jwt.WithExpirationRequired())
	if err != nil || !audienceIs(cl.Audience, aud) {
		writeJSON(c.w, http.StatusUnauthorized, tokenInvalidBody)
		return false
	}
	if c.r.tenant != "" && !strings.EqualFold(cl.TenantID, c.r.tenant) {
		writeJSON(c.w, http.StatusBadRequest, tenantMismatchBody(cl.TenantID))
		return false
	}
	if c.r.users != nil && !slices.Contains(c.r.users, strings.ToLower(cl.ObjectID)) {
		writeJSON(c.w, http.StatusUnauthorized, permissionDeniedBody)
		return false
	}
	return true
}

func audienceIs(got jwt.ClaimStrings, want string) bool {
	for _, a := range got {
		if strings.TrimSuffix(a, "/") == strings.TrimSuffix(want, "/") {
			return true
		}
	}
	return false
}
