// Package pki bootstraps the certificates `trellis serve` needs on first
// start, the way kubeadm-style setups do for kube-apiserver: a private CA, a
// serving certificate signed by it, an admin client certificate in the
// system:masters group, and a service-account signing keypair.
//
// Everything lives in one directory. The first start generates the files;
// later starts load and reuse them, so the CA stays the same across restarts
// and kubeconfigs written earlier keep working. Leaf certificates are cheap
// and are regenerated whenever they no longer fit (new listen host, CA
// replaced, close to expiry); the CA and the service-account key never are,
// because replacing them would silently invalidate every issued credential.
//
// Files in the directory:
//
//	ca.crt, ca.key            self-signed CA; signs serving and admin certs
//	serving.crt, serving.key  server certificate (unless Options.CertFile is set)
//	admin.crt, admin.key      client cert: CN "trellis-admin", O "system:masters"
//	sa.key, sa.pub            service-account token signing keypair (ECDSA P-256)
//
// Private keys are written with mode 0600, certificates with 0644; every
// write is atomic (temp file + rename), so a crash never leaves half a file.
package pki

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Well-known names of the generated admin identity. Kubernetes authenticates
// a client certificate as user = Subject.CommonName and groups =
// Subject.Organization; system:masters bypasses authorization.
const (
	AdminUser  = "trellis-admin"
	AdminGroup = "system:masters"
)

// File names inside the PKI directory.
const (
	CACertFile       = "ca.crt"
	CAKeyFile        = "ca.key"
	ServingCertFile  = "serving.crt"
	ServingKeyFile   = "serving.key"
	AdminCertFile    = "admin.crt"
	AdminKeyFile     = "admin.key"
	LoopbackCertFile = "loopback.crt"
	LoopbackKeyFile  = "loopback.key"
	SAKeyFile        = "sa.key"
	SAPubFile        = "sa.pub"
)

// LoopbackServerName is the TLS server name the server's own clients (its
// controllers and informers) ask for; the server answers it with the
// Loopback certificate, which the generated CA signs, so they connect
// whatever serving certificate the user supplied. kube-apiserver uses the
// same name for the same purpose.
const LoopbackServerName = "apiserver-loopback-client"

// Options adjusts what EnsureDevPKI generates or loads.
type Options struct {
	// Host is the host the server listens on or is reached by ("10.0.0.5",
	// "api.example.test"; a "host:port" form is accepted too). It is added to
	// the serving certificate's SANs. Empty and unspecified addresses
	// (0.0.0.0, ::) add nothing: they name no single address to certify.
	Host string

	// CertFile and KeyFile name a user-provided serving certificate (PEM,
	// may carry intermediates after the leaf) and its key. Set both or
	// neither; when set, no serving certificate is generated and the SAN
	// check is the user's business.
	CertFile, KeyFile string

	// ClientCAFile names a user-provided PEM bundle of CAs that client
	// certificates must chain to. It replaces the generated CA in the client
	// pool rather than adding to it: someone who configures their own client
	// CA should not also get a dev system:masters cert accepted behind their
	// back. (Point it at a bundle that includes ca.crt to keep the admin
	// kubeconfig working.)
	ClientCAFile string
}

// Paths records where each file of a Bundle lives. ServingCert, ServingKey
// and ClientCA point at the user's files when Options override them.
type Paths struct {
	CACert, CAKey                        string
	ServingCert, ServingKey              string
	ClientCA                             string
	AdminCert, AdminKey                  string
	LoopbackCert, LoopbackKey            string
	ServiceAccountKey, ServiceAccountPub string
}

// Bundle is the loaded PKI: what the server needs to serve TLS and
// authenticate clients, plus the admin credential for kubeconfigs and tests.
// Treat it as read-only.
type Bundle struct {
	Paths Paths

	// CA is the generated CA certificate. It signs Admin, and Serving unless
	// Options.CertFile overrode it.
	CA *x509.Certificate

	// Serving is the server's certificate chain and key; Serving.Leaf is set.
	Serving tls.Certificate

	// ClientCAs verifies client certificates: CA, or the contents of
	// Options.ClientCAFile.
	ClientCAs *x509.CertPool

	// Admin is the CN=trellis-admin, O=system:masters client certificate;
	// Admin.Leaf is set.
	Admin tls.Certificate

	// Loopback is the certificate served to clients that ask for
	// LoopbackServerName; the generated CA signs it.
	Loopback tls.Certificate

	// ServiceAccountKey signs service-account tokens; sa.pub holds its
	// public half for verifiers.
	ServiceAccountKey crypto.Signer
}

// EnsureDevPKI loads the PKI in dir, generating whatever is absent. dir is
// created (mode 0700) if needed.
//
// Absent files are generated; present files are reused. A file that exists
// but cannot be read or parsed is an error naming that file, never a reason
// to overwrite it. The serving and admin certificates are regenerated (with
// the same CA) when they are not signed by the CA, expire within 30 days, or
// — for the serving certificate — do not cover localhost, 127.0.0.1, ::1,
// the kubernetes.default service names, and opts.Host.
func EnsureDevPKI(dir string, opts Options) (*Bundle, error) {
	if (opts.CertFile == "") != (opts.KeyFile == "") {
		return nil, errors.New("pki: serving CertFile and KeyFile must be set together")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	b := &Bundle{Paths: Paths{
		CACert:            filepath.Join(dir, CACertFile),
		CAKey:             filepath.Join(dir, CAKeyFile),
		ServingCert:       filepath.Join(dir, ServingCertFile),
		ServingKey:        filepath.Join(dir, ServingKeyFile),
		ClientCA:          filepath.Join(dir, CACertFile),
		AdminCert:         filepath.Join(dir, AdminCertFile),
		AdminKey:          filepath.Join(dir, AdminKeyFile),
		LoopbackCert:      filepath.Join(dir, LoopbackCertFile),
		LoopbackKey:       filepath.Join(dir, LoopbackKeyFile),
		ServiceAccountKey: filepath.Join(dir, SAKeyFile),
		ServiceAccountPub: filepath.Join(dir, SAPubFile),
	}}
	p := &b.Paths
	now := time.Now()

	ca, err := ensureCA(p.CACert, p.CAKey, now)
	if err != nil {
		return nil, err
	}
	b.CA = ca.Leaf

	if opts.CertFile != "" {
		p.ServingCert, p.ServingKey = opts.CertFile, opts.KeyFile
		b.Serving, err = loadPair(p.ServingCert, p.ServingKey)
	} else {
		b.Serving, err = ensureLeaf(p.ServingCert, p.ServingKey, ca, servingTemplate(opts.Host), now)
	}
	if err != nil {
		return nil, err
	}

	if b.Admin, err = ensureLeaf(p.AdminCert, p.AdminKey, ca, adminTemplate(), now); err != nil {
		return nil, err
	}

	b.ClientCAs = x509.NewCertPool()
	if opts.ClientCAFile != "" {
		p.ClientCA = opts.ClientCAFile
		certs, err := readCerts(p.ClientCA)
		if err != nil {
			return nil, err
		}
		for _, c := range certs {
			b.ClientCAs.AddCert(c)
		}
	} else {
		b.ClientCAs.AddCert(b.CA)
	}

	if b.ServiceAccountKey, err = ensureServiceAccountKey(p.ServiceAccountKey, p.ServiceAccountPub); err != nil {
		return nil, err
	}
	if b.Loopback, err = ensureLeaf(p.LoopbackCert, p.LoopbackKey, ca, loopbackTemplate(), now); err != nil {
		return nil, err
	}
	return b, nil
}

// ServingTLSConfig returns a fresh server-side TLS config: the serving
// certificate (the Loopback one for clients asking for LoopbackServerName), client certificates verified against ClientCAs when offered
// (VerifyClientCertIfGiven, so token and anonymous clients still connect, as
// with kube-apiserver), TLS 1.2 or newer, and ALPN for h2 and http/1.1.
func (b *Bundle) ServingTLSConfig() *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{b.Serving},
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			if hello.ServerName == LoopbackServerName {
				return &b.Loopback, nil
			}
			return &b.Serving, nil
		},
		ClientAuth: tls.VerifyClientCertIfGiven,
		ClientCAs:  b.ClientCAs,
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
	}
}

// serverCAPEM returns the PEM certificate clients should trust to verify the
// serving certificate: the generated CA when it signed the serving cert;
// otherwise the top of a user-provided chain if it is self-signed; otherwise
// nil, meaning "use the system roots".
func (b *Bundle) serverCAPEM() []byte {
	if b.Serving.Leaf.CheckSignatureFrom(b.CA) == nil {
		return encodeCert(b.CA.Raw)
	}
	top, err := x509.ParseCertificate(b.Serving.Certificate[len(b.Serving.Certificate)-1])
	if err == nil && top.CheckSignatureFrom(top) == nil {
		return encodeCert(top.Raw)
	}
	return nil
}

// ensureCA loads the CA, or generates it if ca.crt is absent. The key is
// written before the certificate, so ca.crt existing means the CA was fully
// written: a stray ca.key without ca.crt is from an interrupted first start
// and is replaced, while ca.crt without ca.key is an error (we cannot sign,
// and replacing the CA would break existing kubeconfigs).
func ensureCA(certPath, keyPath string, now time.Time) (tls.Certificate, error) {
	if _, err := os.Stat(certPath); err == nil {
		ca, err := loadPair(certPath, keyPath)
		if errors.Is(err, fs.ErrNotExist) {
			return tls.Certificate{}, fmt.Errorf("pki: %s exists but %s is missing; remove %s to generate a new CA", certPath, keyPath, certPath)
		}
		if err == nil && !ca.Leaf.IsCA {
			err = fmt.Errorf("pki: %s is not a CA certificate", certPath)
		}
		return ca, err
	} else if !errors.Is(err, fs.ErrNotExist) {
		return tls.Certificate{}, fmt.Errorf("pki: %w", err)
	}
	return issue(certPath, keyPath, caTemplate(), nil, now)
}

// ensureLeaf loads the leaf certificate at certPath/keyPath if it still fits
// want (see fits) and issues a new one from want otherwise. Absent files are
// (re)generated; unparseable ones are an error.
func ensureLeaf(certPath, keyPath string, ca tls.Certificate, want *x509.Certificate, now time.Time) (tls.Certificate, error) {
	leaf, err := loadPair(certPath, keyPath)
	switch {
	case err == nil && fits(leaf.Leaf, want, ca.Leaf, now):
		return leaf, nil
	case err == nil, errors.Is(err, fs.ErrNotExist):
		return issue(certPath, keyPath, want, &ca, now)
	default:
		return tls.Certificate{}, err
	}
}

// loadPair reads a PEM certificate chain and its private key and checks that
// they belong together. Errors name the offending file; a missing file
// yields an error wrapping fs.ErrNotExist.
func loadPair(certPath, keyPath string) (tls.Certificate, error) {
	certs, err := readCerts(certPath)
	if err != nil {
		return tls.Certificate{}, err
	}
	key, err := readPrivateKey(keyPath)
	if err != nil {
		return tls.Certificate{}, err
	}
	if !samePublicKey(certs[0].PublicKey, key.Public()) {
		return tls.Certificate{}, fmt.Errorf("pki: %s: private key does not match certificate %s", keyPath, certPath)
	}
	c := tls.Certificate{PrivateKey: key, Leaf: certs[0]}
	for _, cert := range certs {
		c.Certificate = append(c.Certificate, cert.Raw)
	}
	return c, nil
}

func samePublicKey(a, b crypto.PublicKey) bool {
	eq, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(b)
}
