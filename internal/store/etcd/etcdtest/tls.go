package etcdtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
)

// TLSMember is a member started by StartTLS and the files a client needs to
// reach it.
type TLSMember struct {
	Endpoints []string
	// CAFile holds the certificate authority that signed both the server's
	// and the client's certificates.
	CAFile string
	// CertFile and KeyFile are a client certificate the member accepts.
	CertFile, KeyFile string
}

// StartTLS is Start for a member that serves clients over TLS and requires a
// client certificate, as production clusters do. Its certificates come from a
// throwaway authority written under tb.TempDir.
func StartTLS(tb testing.TB) TLSMember {
	tb.Helper()
	dir := tb.TempDir()
	ca := newAuthority(tb)
	m := TLSMember{
		CAFile:   writePEM(tb, dir, "ca.pem", "CERTIFICATE", ca.der),
		CertFile: filepath.Join(dir, "client.pem"),
		KeyFile:  filepath.Join(dir, "client-key.pem"),
	}
	ca.issue(tb, dir, "client", m.CertFile, m.KeyFile, x509.ExtKeyUsageClientAuth)
	serverCert, serverKey := filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem")
	ca.issue(tb, dir, "server", serverCert, serverKey, x509.ExtKeyUsageServerAuth)
	m.Endpoints = start(tb, "https", transport.TLSInfo{
		CertFile:       serverCert,
		KeyFile:        serverKey,
		TrustedCAFile:  m.CAFile,
		ClientCertAuth: true,
	})
	return m
}

type authority struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	der  []byte
}

func newAuthority(tb testing.TB) authority {
	tb.Helper()
	key := newKey(tb)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "etcdtest CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatalf("etcdtest: create CA: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatalf("etcdtest: parse CA: %v", err)
	}
	return authority{cert: cert, key: key, der: der}
}

// issue writes a certificate for 127.0.0.1, signed by ca, and its key.
func (ca authority) issue(tb testing.TB, dir, name, certFile, keyFile string, usage x509.ExtKeyUsage) {
	tb.Helper()
	key := newKey(tb)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		tb.Fatalf("etcdtest: create %s certificate: %v", name, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatalf("etcdtest: encode %s key: %v", name, err)
	}
	writePEM(tb, dir, filepath.Base(certFile), "CERTIFICATE", der)
	writePEM(tb, dir, filepath.Base(keyFile), "PRIVATE KEY", keyDER)
}

func newKey(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatalf("etcdtest: generate key: %v", err)
	}
	return key
}

func writePEM(tb testing.TB, dir, name, kind string, der []byte) string {
	tb.Helper()
	path := filepath.Join(dir, name)
	data := pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der})
	if err := os.WriteFile(path, data, 0o600); err != nil {
		tb.Fatalf("etcdtest: write %s: %v", path, err)
	}
	return path
}
