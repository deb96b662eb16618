package entratest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"os"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Cluster is a Kubernetes service-account token issuer (an AKS cluster's OIDC issuer) that the authority trusts
// for federated credentials.
type Cluster struct {
	Issuer string
	key    *ecdsa.PrivateKey
}

// NewCluster makes an issuer and registers its key with the authority.
func (a *Authority) NewCluster(issuer string) (*Cluster, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	a.issuers[issuer] = &key.PublicKey
	a.mu.Unlock()
	return &Cluster{Issuer: issuer, key: key}, nil
}

// Token is a projected service-account token for subject (system:serviceaccount:NAMESPACE:NAME) with audience
// api://AzureADTokenExchange, valid from now for lifetime (negative: already expired).
func (c *Cluster) Token(subject string, lifetime time.Duration) string {
	now := time.Now()
	iat := now
	if lifetime < 0 {
		iat = now.Add(2 * lifetime)
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
		"iss": c.Issuer, "sub": subject, "aud": []string{FederatedAudience},
		"iat": iat.Unix(), "nbf": iat.Unix(), "exp": now.Add(lifetime).Unix(),
	})
	s, err := tok.SignedString(c.key)
	if err != nil {
		panic("entratest: signing a service-account token: " + err.Error())
	}
	return s
}

// WriteToken writes Token(subject, lifetime) to path, as the kubelet writes the projected token file
// (AZURE_FEDERATED_TOKEN_FILE).
func (c *Cluster) WriteToken(path, subject string, lifetime time.Duration) error {
	return os.WriteFile(path, []byte(c.Token(subject, lifetime)), 0o600)
}
