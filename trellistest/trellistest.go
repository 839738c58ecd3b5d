// Package trellistest starts an in-process Trellis API server for a Go
// test and returns a client config for it:
//
//	func TestMyController(t *testing.T) {
//		cfg := trellistest.Start(t)
//		client := kubernetes.NewForConfigOrDie(cfg)
//		...
//	}
//
// Each server listens on an ephemeral loopback port with its data in a
// temporary directory, and is stopped when the test ends, so many can run
// in parallel in one process.
package trellistest

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/trellis-project/trellis/internal/pki"
	"github.com/trellis-project/trellis/server"
)

// Option adjusts how the server is started.
type Option func(*options)

type options struct {
	cfg      server.Config
	crdPaths []string
}

// WithConfig edits the server configuration before start.
func WithConfig(f func(*server.Config)) Option { return func(o *options) { f(&o.cfg) } }

// WithCRDs installs the CustomResourceDefinitions found in paths (YAML or
// JSON files, or folders of them, several documents per file allowed)
// and waits until each is Established before Start returns, as envtest's
// CRDInstallOptions do.
func WithCRDs(paths ...string) Option {
	return func(o *options) { o.crdPaths = append(o.crdPaths, paths...) }
}

// Server is a running test server.
type Server struct {
	*server.Server
	Config *rest.Config
}

// Start runs a server for the duration of t and returns an admin client
// config for it.
func Start(t testing.TB, opts ...Option) *rest.Config {
	return StartServer(t, opts...).Config
}

// StartServer is Start that also returns the server.
func StartServer(t testing.TB, opts ...Option) *Server {
	t.Helper()
	o := options{cfg: server.Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0", ShutdownTimeout: 5 * time.Second}}
	if err := copySharedPKI(filepath.Join(o.cfg.DataDir, "pki")); err != nil {
		t.Fatalf("trellistest: %v", err)
	}
	for _, opt := range opts {
		opt(&o)
	}
	srv, err := server.New(o.cfg)
	if err != nil {
		t.Fatalf("trellistest: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	select {
	case <-srv.Ready():
	case err := <-done:
		cancel()
		t.Fatalf("trellistest: server stopped before ready: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("trellistest: server shutdown: %v", err)
		}
	})
	ts := &Server{Server: srv, Config: srv.AdminConfig()}
	if len(o.crdPaths) > 0 {
		if err := installCRDs(ts.Config, o.crdPaths); err != nil {
			t.Fatalf("trellistest: %v", err)
		}
	}
	return ts
}

// Generating and fsyncing certificates is most of a server's start-up;
// servers in one test process share one set, generated once. Each server
// still has its own copy, so none can disturb another's.
var (
	pkiOnce sync.Once
	pkiDir  string
	pkiErr  error
)

func copySharedPKI(dst string) error {
	pkiOnce.Do(func() {
		dir, err := os.MkdirTemp("", "trellistest-pki-")
		if err != nil {
			pkiErr = err
			return
		}
		pkiDir = dir
		_, pkiErr = pki.EnsureDevPKI(dir, pki.Options{Host: "127.0.0.1"})
	})
	if pkiErr != nil {
		return pkiErr
	}
	entries, err := os.ReadDir(pkiDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return err
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(pkiDir, e.Name()))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), data, 0o600); err != nil {
			return err
		}
	}
	return nil
}
