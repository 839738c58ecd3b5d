package pki_test

import (
	"bytes"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/trellis-project/trellis/internal/pki"
)

var allFiles = []string{
	pki.CACertFile, pki.CAKeyFile,
	pki.ServingCertFile, pki.ServingKeyFile,
	pki.AdminCertFile, pki.AdminKeyFile,
	pki.SAKeyFile, pki.SAPubFile,
}

var (
	seedOnce sync.Once
	seedDir  string
	seedErr  error
)

// seededDir returns a fresh temp dir holding a copy of one PKI generated
// once per test binary (RSA key generation is slow enough to matter when
// every table case would otherwise pay for it).
func seededDir(t *testing.T) string {
	t.Helper()
	seedOnce.Do(func() {
		if seedDir, seedErr = os.MkdirTemp("", "pki-seed-"); seedErr == nil {
			_, seedErr = pki.EnsureDevPKI(seedDir, pki.Options{})
		}
	})
	if seedErr != nil {
		t.Fatalf("seeding PKI: %v", seedErr)
	}
	dir := t.TempDir()
	for _, name := range allFiles {
		src := filepath.Join(seedDir, name)
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, fi.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if seedDir != "" {
		os.RemoveAll(seedDir)
	}
	os.Exit(code)
}

func mustEnsure(t *testing.T, dir string, opts pki.Options) *pki.Bundle {
	t.Helper()
	b, err := pki.EnsureDevPKI(dir, opts)
	if err != nil {
		t.Fatalf("EnsureDevPKI(%s, %+v): %v", dir, opts, err)
	}
	return b
}

func TestEnsureDevPKIGeneratesEverything(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki") // also checks dir is created
	b := mustEnsure(t, dir, pki.Options{})

	for _, name := range allFiles {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("%s not written: %v", name, err)
		}
	}
	if !b.CA.IsCA {
		t.Error("CA certificate is not a CA")
	}
	if err := b.Serving.Leaf.CheckSignatureFrom(b.CA); err != nil {
		t.Errorf("serving cert not signed by CA: %v", err)
	}
	if got := b.Admin.Leaf.Subject; got.CommonName != "trellis-admin" || !slices.Equal(got.Organization, []string{"system:masters"}) {
		t.Errorf("admin subject = %v, want CN=trellis-admin O=system:masters", got)
	}
	if _, err := b.Admin.Leaf.Verify(x509.VerifyOptions{
		Roots: b.ClientCAs, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err != nil {
		t.Errorf("admin cert does not verify as a client cert against ClientCAs: %v", err)
	}
	if _, err := b.Serving.Leaf.Verify(x509.VerifyOptions{
		Roots: pool(b.CA), DNSName: "kubernetes.default.svc", KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}); err != nil {
		t.Errorf("serving cert does not verify as a server cert: %v", err)
	}
	if b.ServiceAccountKey == nil {
		t.Error("no service-account key")
	}
}

func TestPrivateKeysAreOwnerOnly(t *testing.T) {
	dir := t.TempDir()
	b := mustEnsure(t, dir, pki.Options{})
	kubeconfig := filepath.Join(dir, "admin.kubeconfig")
	if err := pki.WriteKubeconfig(kubeconfig, "https://127.0.0.1:6443", b); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{b.Paths.CAKey, b.Paths.ServingKey, b.Paths.AdminKey, b.Paths.ServiceAccountKey, kubeconfig} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != 0o600 {
			t.Errorf("%s: mode %o, want 600", filepath.Base(path), got)
		}
	}
}

func TestServingCertificateSANs(t *testing.T) {
	defaults := []string{
		"127.0.0.1", "::1",
		"kubernetes", "kubernetes.default", "kubernetes.default.svc",
		"kubernetes.default.svc.cluster.local", "localhost",
	}
	for _, tc := range []struct {
		host  string
		extra string // SAN added beyond defaults, "" for none
	}{
		{host: "", extra: ""},
		{host: "0.0.0.0", extra: ""},
		{host: "::", extra: ""},
		{host: "127.0.0.1", extra: ""},
		{host: "10.1.2.3", extra: "10.1.2.3"},
		{host: "10.1.2.3:6443", extra: "10.1.2.3"},
		{host: "[fd00::5]:6443", extra: "fd00::5"},
		{host: "API.Example.test", extra: "api.example.test"},
	} {
		t.Run(tc.host, func(t *testing.T) {
			b := mustEnsure(t, seededDir(t), pki.Options{Host: tc.host})
			want := slices.Clone(defaults)
			if tc.extra != "" {
				want = append(want, tc.extra)
			}
			slices.Sort(want)
			if got := sans(b.Serving.Leaf); !slices.Equal(got, want) {
				t.Errorf("SANs = %v, want %v", got, want)
			}
		})
	}
}

func sans(c *x509.Certificate) []string {
	out := slices.Clone(c.DNSNames)
	for _, ip := range c.IPAddresses {
		out = append(out, ip.String())
	}
	slices.Sort(out)
	return out
}

func TestRestartReusesPKI(t *testing.T) {
	dir := seededDir(t)
	first := mustEnsure(t, dir, pki.Options{Host: "10.0.0.1"})
	second := mustEnsure(t, dir, pki.Options{Host: "10.0.0.1"})

	same := func(what string, a, b []byte) {
		t.Helper()
		if !bytes.Equal(a, b) {
			t.Errorf("%s changed across restart", what)
		}
	}
	same("CA", first.CA.Raw, second.CA.Raw)
	same("serving cert", first.Serving.Leaf.Raw, second.Serving.Leaf.Raw)
	same("admin cert", first.Admin.Leaf.Raw, second.Admin.Leaf.Raw)
	if !second.ServiceAccountKey.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(first.ServiceAccountKey.Public()) {
		t.Error("service-account key changed across restart")
	}

	// A new listen host invalidates only the serving certificate.
	moved := mustEnsure(t, dir, pki.Options{Host: "serve.example.test"})
	same("CA after host change", first.CA.Raw, moved.CA.Raw)
	same("admin cert after host change", first.Admin.Leaf.Raw, moved.Admin.Leaf.Raw)
	if bytes.Equal(first.Serving.Leaf.Raw, moved.Serving.Leaf.Raw) {
		t.Error("serving cert not regenerated for a new host")
	}
	if err := moved.Serving.Leaf.VerifyHostname("serve.example.test"); err != nil {
		t.Errorf("regenerated serving cert: %v", err)
	}
	if err := moved.Serving.Leaf.CheckSignatureFrom(first.CA); err != nil {
		t.Errorf("regenerated serving cert not signed by the kept CA: %v", err)
	}
}

func TestNewCAReissuesLeaves(t *testing.T) {
	dir := seededDir(t)
	old := mustEnsure(t, dir, pki.Options{})
	for _, name := range []string{pki.CACertFile, pki.CAKeyFile} {
		if err := os.Remove(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	b := mustEnsure(t, dir, pki.Options{})
	if bytes.Equal(old.CA.Raw, b.CA.Raw) {
		t.Fatal("CA not regenerated after removal")
	}
	for name, c := range map[string]*x509.Certificate{"serving": b.Serving.Leaf, "admin": b.Admin.Leaf} {
		if err := c.CheckSignatureFrom(b.CA); err != nil {
			t.Errorf("%s cert not reissued by the new CA: %v", name, err)
		}
	}
}

func TestBrokenFilesAreErrorsNamingTheFile(t *testing.T) {
	garbage := []byte("this is not PEM\n")
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir string) pki.Options // breaks something
		file  string                                     // file in dir the error must name
	}{
		{name: "garbage " + pki.CACertFile, file: pki.CACertFile, setup: overwrite(pki.CACertFile, garbage)},
		{name: "garbage " + pki.CAKeyFile, file: pki.CAKeyFile, setup: overwrite(pki.CAKeyFile, garbage)},
		{name: "garbage " + pki.ServingCertFile, file: pki.ServingCertFile, setup: overwrite(pki.ServingCertFile, garbage)},
		{name: "garbage " + pki.ServingKeyFile, file: pki.ServingKeyFile, setup: overwrite(pki.ServingKeyFile, garbage)},
		{name: "garbage " + pki.AdminCertFile, file: pki.AdminCertFile, setup: overwrite(pki.AdminCertFile, garbage)},
		{name: "garbage " + pki.AdminKeyFile, file: pki.AdminKeyFile, setup: overwrite(pki.AdminKeyFile, garbage)},
		{name: "garbage " + pki.SAKeyFile, file: pki.SAKeyFile, setup: overwrite(pki.SAKeyFile, garbage)},
		{name: "garbage " + pki.SAPubFile, file: pki.SAPubFile, setup: overwrite(pki.SAPubFile, garbage)},
		{
			name: "corrupt DER inside valid PEM", file: pki.CACertFile,
			setup: overwrite(pki.CACertFile, []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")),
		},
		{
			name: "key of another pair", file: pki.ServingKeyFile,
			setup: func(t *testing.T, dir string) pki.Options {
				copyFile(t, filepath.Join(dir, pki.AdminKeyFile), filepath.Join(dir, pki.ServingKeyFile))
				return pki.Options{}
			},
		},
		{
			name: "CA key missing", file: pki.CAKeyFile,
			setup: func(t *testing.T, dir string) pki.Options {
				if err := os.Remove(filepath.Join(dir, pki.CAKeyFile)); err != nil {
					t.Fatal(err)
				}
				return pki.Options{}
			},
		},
		{
			name: "sa.pub of another key", file: pki.SAPubFile,
			setup: func(t *testing.T, dir string) pki.Options {
				other := mustEnsure(t, t.TempDir(), pki.Options{})
				copyFile(t, other.Paths.ServiceAccountPub, filepath.Join(dir, pki.SAPubFile))
				return pki.Options{}
			},
		},
		{
			name: "garbage user cert", file: "user.crt",
			setup: func(t *testing.T, dir string) pki.Options {
				return pki.Options{CertFile: writeFile(t, dir, "user.crt", garbage), KeyFile: filepath.Join(dir, pki.ServingKeyFile)}
			},
		},
		{
			name: "garbage user key", file: "user.key",
			setup: func(t *testing.T, dir string) pki.Options {
				return pki.Options{CertFile: filepath.Join(dir, pki.ServingCertFile), KeyFile: writeFile(t, dir, "user.key", garbage)}
			},
		},
		{
			name: "missing user client CA", file: "nope.crt",
			setup: func(t *testing.T, dir string) pki.Options {
				return pki.Options{ClientCAFile: filepath.Join(dir, "nope.crt")}
			},
		},
		{
			name: "garbage user client CA", file: "clients.crt",
			setup: func(t *testing.T, dir string) pki.Options {
				return pki.Options{ClientCAFile: writeFile(t, dir, "clients.crt", garbage)}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := seededDir(t)
			opts := tc.setup(t, dir)
			before := snapshot(t, dir)

			_, err := pki.EnsureDevPKI(dir, opts)
			if err == nil {
				t.Fatal("EnsureDevPKI succeeded, want error")
			}
			t.Log(err)
			// The full path: temp dir names embed the test name, which
			// may itself contain tc.file.
			if path := filepath.Join(dir, tc.file); !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name %s", err, path)
			}
			// A broken file is reported, not "repaired" by overwriting it.
			if after := snapshot(t, dir); !maps.Equal(before, after) {
				t.Error("PKI files changed despite the error")
			}
		})
	}
}

func TestUserProvidedFilesOverrideGeneration(t *testing.T) {
	user := mustEnsure(t, seededDir(t), pki.Options{Host: "user.example.test"}) // stands in for the user's own PKI

	dir := t.TempDir()
	b := mustEnsure(t, dir, pki.Options{
		CertFile:     user.Paths.ServingCert,
		KeyFile:      user.Paths.ServingKey,
		ClientCAFile: user.Paths.CACert,
	})
	if !bytes.Equal(b.Serving.Leaf.Raw, user.Serving.Leaf.Raw) {
		t.Error("serving cert is not the user-provided one")
	}
	if _, err := os.Stat(filepath.Join(dir, pki.ServingCertFile)); !os.IsNotExist(err) {
		t.Errorf("serving.crt generated despite CertFile: stat err = %v", err)
	}
	if b.Paths.ServingCert != user.Paths.ServingCert || b.Paths.ClientCA != user.Paths.CACert {
		t.Errorf("Paths = %+v, want user files for serving cert and client CA", b.Paths)
	}

	verifies := func(c *x509.Certificate) bool {
		_, err := c.Verify(x509.VerifyOptions{Roots: b.ClientCAs, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
		return err == nil
	}
	if !verifies(user.Admin.Leaf) {
		t.Error("client signed by the user's client CA is not accepted")
	}
	if verifies(b.Admin.Leaf) {
		t.Error("generated admin cert accepted although ClientCAFile replaced the client CA")
	}
}

func TestCertFileRequiresKeyFile(t *testing.T) {
	if _, err := pki.EnsureDevPKI(t.TempDir(), pki.Options{CertFile: "x.crt"}); err == nil {
		t.Error("CertFile without KeyFile accepted")
	}
}

// TestKubeconfigAuthenticatesAsAdmin runs the whole path a user takes: start,
// write a kubeconfig, restart, and connect with client-go's transport to a
// server configured by ServingTLSConfig.
func TestKubeconfigAuthenticatesAsAdmin(t *testing.T) {
	dir := seededDir(t)
	first := mustEnsure(t, dir, pki.Options{})
	kubeconfig := filepath.Join(t.TempDir(), "kube", "config")

	// Restart: the server runs with a freshly loaded bundle, the client
	// with the kubeconfig written before it.
	b := mustEnsure(t, dir, pki.Options{})
	ts, hits := startWhoami(t, b)
	if err := pki.WriteKubeconfig(kubeconfig, ts.URL, first); err != nil {
		t.Fatal(err)
	}

	cfg, err := clientcmd.LoadFromFile(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.CurrentContext != "trellis" || cfg.Contexts["trellis"] == nil ||
		cfg.Contexts["trellis"].Cluster != "trellis" || cfg.Contexts["trellis"].AuthInfo != "trellis" {
		t.Errorf("kubeconfig contexts = %v (current %q), want a trellis context for cluster and user trellis", cfg.Contexts, cfg.CurrentContext)
	}
	restConfig, err := clientcmd.NewDefaultClientConfig(*cfg, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	rt, err := rest.TransportFor(restConfig)
	if err != nil {
		t.Fatal(err)
	}

	status, body, err := get(&http.Client{Transport: rt}, ts.URL)
	if err != nil {
		t.Fatalf("GET with kubeconfig: %v", err)
	}
	// client-go negotiates h2 when offered, so HTTP/2.0 pins NextProtos too.
	if want := "trellis-admin system:masters HTTP/2.0"; status != http.StatusOK || body != want {
		t.Errorf("GET = %d %q, want 200 %q", status, body, want)
	}

	t.Run("no client cert is anonymous, not refused", func(t *testing.T) {
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool(b.CA)}}}
		status, _, err := get(client, ts.URL)
		if err != nil || status != http.StatusUnauthorized {
			t.Errorf("GET without client cert = %d, %v; want 401 from the handler", status, err)
		}
	})

	t.Run("client cert from another CA is rejected", func(t *testing.T) {
		other := mustEnsure(t, t.TempDir(), pki.Options{})
		before := hits.Load()
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
			RootCAs:      pool(b.CA),
			Certificates: []tls.Certificate{other.Admin},
		}}}
		status, body, err := get(client, ts.URL)
		if err == nil {
			t.Fatalf("GET with foreign client cert = %d %q, want TLS handshake failure", status, body)
		}
		t.Log(err)
		if !strings.Contains(err.Error(), "unknown certificate authority") {
			t.Errorf("error %q is not the server's unknown-CA alert", err)
		}
		if hits.Load() != before {
			t.Error("handler reached with a foreign client cert")
		}
	})
}

// TestKubeconfigCAData pins which CA the kubeconfig tells clients to trust
// for the serving certificate.
func TestKubeconfigCAData(t *testing.T) {
	// The user's own PKI; not seededDir, which would share our CA.
	user := mustEnsure(t, t.TempDir(), pki.Options{})
	read := func(path string) []byte {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	for _, tc := range []struct {
		name string
		cert []byte // user serving cert file contents; nil to generate
		want []byte
	}{
		{name: "generated serving cert trusts the generated CA"},
		{
			name: "user chain ending in a self-signed root trusts that root",
			cert: append(read(user.Paths.ServingCert), read(user.Paths.CACert)...),
			want: read(user.Paths.CACert),
		},
		{
			name: "user leaf without its issuer leaves trust to the system roots",
			cert: read(user.Paths.ServingCert),
			want: nil,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := seededDir(t)
			var opts pki.Options
			if tc.cert != nil {
				opts.CertFile, opts.KeyFile = writeFile(t, dir, "user.crt", tc.cert), user.Paths.ServingKey
			} else {
				tc.want = read(filepath.Join(dir, pki.CACertFile))
			}
			b := mustEnsure(t, dir, opts)
			path := filepath.Join(dir, "kubeconfig")
			if err := pki.WriteKubeconfig(path, "https://127.0.0.1:6443", b); err != nil {
				t.Fatal(err)
			}
			cfg, err := clientcmd.LoadFromFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Clusters["trellis"].CertificateAuthorityData; !bytes.Equal(got, tc.want) {
				t.Errorf("certificate-authority-data = %q, want %q", got, tc.want)
			}
		})
	}
}

// startWhoami serves b's TLS config with a handler that echoes the verified
// client certificate's user (CN), groups (O) and the protocol, or answers
// 401 for a connection without a client certificate.
func startWhoami(t *testing.T, b *pki.Bundle) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	hits := new(atomic.Int32)
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
			http.Error(w, "anonymous", http.StatusUnauthorized)
			return
		}
		c := r.TLS.VerifiedChains[0][0]
		fmt.Fprintf(w, "%s %s %s", c.Subject.CommonName, strings.Join(c.Subject.Organization, ","), r.Proto)
	}))
	ts.TLS = b.ServingTLSConfig()
	ts.EnableHTTP2 = true
	ts.Config.ErrorLog = log.New(io.Discard, "", 0) // rejected handshakes are expected
	ts.StartTLS()
	t.Cleanup(ts.Close)
	return ts, hits
}

func get(c *http.Client, url string) (int, string, error) {
	c.Timeout = 10 * time.Second
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

func pool(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

func overwrite(name string, data []byte) func(*testing.T, string) pki.Options {
	return func(t *testing.T, dir string) pki.Options {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
		return pki.Options{}
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// snapshot maps each file in dir to its contents.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		m[e.Name()] = string(data)
	}
	return m
}

// The server's own clients ask for LoopbackServerName and must trust what
// they get even when the user's serving certificate comes from a CA they
// do not know.
func TestLoopbackServerNameGetsTheLoopbackCertificate(t *testing.T) {
	user := mustEnsure(t, seededDir(t), pki.Options{Host: "user.example.test"})
	b := mustEnsure(t, t.TempDir(), pki.Options{CertFile: user.Paths.ServingCert, KeyFile: user.Paths.ServingKey})
	ts, _ := startWhoami(t, b)

	dial := func(serverName string, caPEM []byte) error {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(caPEM)
		conn, err := tls.Dial("tcp", strings.TrimPrefix(ts.URL, "https://"), &tls.Config{RootCAs: pool, ServerName: serverName})
		if err == nil {
			conn.Close()
		}
		return err
	}
	if err := dial(pki.LoopbackServerName, b.LoopbackCAPEM()); err != nil {
		t.Errorf("loopback client: %v", err)
	}
	if err := dial("user.example.test", user.ServerCAPEM()); err != nil {
		t.Errorf("client of the user's serving certificate: %v", err)
	}
	if err := dial("user.example.test", b.LoopbackCAPEM()); err == nil {
		t.Error("the loopback CA verified the user's serving certificate; the test cannot tell which was served")
	}
}
