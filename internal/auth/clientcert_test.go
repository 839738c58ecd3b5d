package auth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/trellis-project/trellis/internal/auth"
)

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestCA(t *testing.T) testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return testCA{cert, key}
}

func (ca testCA) issue(t *testing.T, cn string, notAfter time.Time, orgs ...string) *x509.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: cn, Organization: orgs},
		NotBefore: time.Now().Add(-2 * time.Hour), NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return cert
}

// TestClientCertVerification: the authenticator, not the handshake,
// decides; per request or once per connection, with the same answers.
func TestClientCertVerification(t *testing.T) {
	ca, other := newTestCA(t), newTestCA(t)
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	authn := auth.ClientCert{Roots: roots}
	later := time.Now().Add(time.Hour)
	for _, tc := range []struct {
		name string
		cert *x509.Certificate
		ok   bool
	}{
		{"signed by the client CA", ca.issue(t, "ann", later, "ops"), true},
		{"signed by another CA", other.issue(t, "ann", later, "system:masters"), false},
		{"expired", ca.issue(t, "ann", time.Now().Add(-time.Hour)), false},
	} {
		for _, perConn := range []bool{false, true} {
			ctx := context.Background()
			if perConn {
				ctx = auth.WithConnVerification(ctx)
			}
			for range 2 { // the second request of a connection uses the memo
				r := httptest.NewRequest("GET", "/api", nil).WithContext(ctx)
				r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{tc.cert}}
				u, ok, err := authn.Authenticate(r)
				if ok != tc.ok || (err == nil) != tc.ok {
					t.Fatalf("%s (per connection %v): ok=%v err=%v", tc.name, perConn, ok, err)
				}
				if ok && (u.Name != "ann" || !slices.Equal(u.Groups, []string{"ops", "system:authenticated"})) {
					t.Fatalf("%s: user %+v", tc.name, u)
				}
			}
		}
	}
	// No certificate: no opinion.
	r := httptest.NewRequest("GET", "/api", nil)
	r.TLS = &tls.ConnectionState{}
	if _, ok, err := authn.Authenticate(r); ok || err != nil {
		t.Fatalf("no certificate: ok=%v err=%v", ok, err)
	}
}
