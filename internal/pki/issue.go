package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"slices"
	"strings"
	"time"
)

const (
	caValidity   = 10 * 365 * 24 * time.Hour
	leafValidity = 365 * 24 * time.Hour
	// renewBefore regenerates leaves this long before they expire, so a
	// server restarted now is not handed a certificate about to lapse.
	renewBefore = 30 * 24 * time.Hour
	// backdate tolerates clients whose clocks run a little behind ours.
	backdate = time.Hour
)

// servingDNSNames are always in the serving certificate: localhost plus the
// names in-cluster clients use for the apiserver's "kubernetes" Service.
var servingDNSNames = []string{
	"localhost",
	"kubernetes",
	"kubernetes.default",
	"kubernetes.default.svc",
	"kubernetes.default.svc.cluster.local",
}

func caTemplate() *x509.Certificate {
	return &x509.Certificate{
		Subject:               pkix.Name{CommonName: "trellis-ca"},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
}

func servingTemplate(host string) *x509.Certificate {
	t := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "trellis-apiserver"},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    slices.Clone(servingDNSNames),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(strings.Trim(host, "[]"))
	ip := net.ParseIP(host)
	switch {
	case host == "", ip != nil && ip.IsUnspecified():
	case ip != nil:
		if !slices.ContainsFunc(t.IPAddresses, ip.Equal) {
			t.IPAddresses = append(t.IPAddresses, ip)
		}
	case !slices.Contains(t.DNSNames, host):
		t.DNSNames = append(t.DNSNames, host)
	}
	return t
}

func loopbackTemplate() *x509.Certificate {
	return &x509.Certificate{
		Subject:     pkix.Name{CommonName: LoopbackServerName},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    []string{LoopbackServerName},
	}
}

func adminTemplate() *x509.Certificate {
	return &x509.Certificate{
		Subject:     pkix.Name{CommonName: AdminUser, Organization: []string{AdminGroup}},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
}

// fits reports whether an existing leaf can be kept in place of a fresh one
// issued from want: same CA, not close to expiry, same subject, and every
// SAN of want covered.
func fits(have, want, ca *x509.Certificate, now time.Time) bool {
	if have.CheckSignatureFrom(ca) != nil || now.Add(renewBefore).After(have.NotAfter) {
		return false
	}
	if have.Subject.CommonName != want.Subject.CommonName ||
		!slices.Equal(have.Subject.Organization, want.Subject.Organization) {
		return false
	}
	// VerifyHostname is the same check a TLS client performs, so "covered"
	// means exactly "a client dialing this name accepts the certificate".
	for _, name := range want.DNSNames {
		if have.VerifyHostname(name) != nil {
			return false
		}
	}
	for _, ip := range want.IPAddresses {
		if have.VerifyHostname(ip.String()) != nil {
			return false
		}
	}
	return true
}

// issue generates an ECDSA P-256 key and a certificate from tmpl, signed by
// parent (self-signed when parent is nil), and writes both: key first, so a
// certificate on disk always has its key next to it.
func issue(certPath, keyPath string, tmpl *x509.Certificate, parent *tls.Certificate, now time.Time) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: generating key for %s: %w", certPath, err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: generating serial for %s: %w", certPath, err)
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore = now.Add(-backdate)
	tmpl.NotAfter = now.Add(leafValidity)

	var signer crypto.Signer = key
	signerCert := tmpl
	if parent == nil {
		tmpl.NotAfter = now.Add(caValidity)
	} else {
		// loadPair and issue only ever store crypto.Signers.
		signer, signerCert = parent.PrivateKey.(crypto.Signer), parent.Leaf
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signerCert, key.Public(), signer)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: signing %s: %w", certPath, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: %s: %w", certPath, err)
	}
	keyPEM, err := encodePrivateKey(key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: %s: %w", keyPath, err)
	}
	if err := writeFileAtomic(keyPath, keyPEM, 0o600); err != nil {
		return tls.Certificate{}, err
	}
	if err := writeFileAtomic(certPath, encodeCert(der), 0o644); err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}
