// Package entratest runs local stand-ins of the Microsoft Entra ID endpoints that the real azidentity credentials
// talk to, so that tests can prove every way in without leaving loopback:
//
//   - Authority: an Entra authority over HTTPS with its own test CA (OpenID metadata, signing keys, the
//     client-credentials token endpoint for client secrets and federated assertions), answering errors with the
//     bodies Entra gives (docs/wire-notes.md);
//   - ManagedIdentity: the App Service / Container Apps managed-identity endpoint (IDENTITY_ENDPOINT and
//     IDENTITY_HEADER) and the VM / AKS instance metadata service (IMDS), the latter through an HTTP proxy on
//     loopback because azidentity always sends IMDS requests to 169.254.169.254;
//   - Cluster: a Kubernetes service-account issuer that writes the federated token file of workload identity.
//
// Tokens are JWTs signed with the authority's RSA key, shaped like Entra's v1 access tokens for Azure OpenAI.
package entratest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// CA is a test certificate authority and one server certificate it signed for 127.0.0.1, ::1 and localhost.
type CA struct {
	cert    *x509.Certificate
	pem     []byte
	pool    *x509.CertPool
	serving tls.Certificate
}

// NewCA makes a CA valid for a day around now and a server certificate signed by it.
func NewCA() (*CA, error) {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "Lifeline test Entra CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	caCert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "login.test.invalid"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return &CA{
		cert:    caCert,
		pem:     pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pool:    pool,
		serving: tls.Certificate{Certificate: [][]byte{leafDER}, PrivateKey: key},
	}, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	return n
}

// Pool is a certificate pool that trusts only this CA.
func (c *CA) Pool() *x509.CertPool { return c.pool }

// PEM is the CA certificate in PEM.
func (c *CA) PEM() []byte { return c.pem }

// WriteFile writes the CA certificate to dir/entra-ca.pem and returns the path: point SSL_CERT_FILE at it in a
// child process and Go's system roots are this CA alone.
func (c *CA) WriteFile(dir string) (string, error) {
	p := filepath.Join(dir, "entra-ca.pem")
	if err := os.WriteFile(p, c.pem, 0o644); err != nil {
		return "", fmt.Errorf("writing the test CA: %w", err)
	}
	return p, nil
}

// ServerConfig is the TLS config of a server with the CA's server certificate.
func (c *CA) ServerConfig() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{c.serving}, MinVersion: tls.VersionTLS12}
}

// ClientConfig trusts only the CA.
func (c *CA) ClientConfig() *tls.Config {
	return &tls.Config{RootCAs: c.pool, MinVersion: tls.VersionTLS12}
}
