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
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/trellis-project/trellis/server"
)

// Option adjusts the server configuration.
type Option func(*server.Config)

// WithConfig edits the server configuration before start.
func WithConfig(f func(*server.Config)) Option { return Option(f) }

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
	cfg := server.Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0", ShutdownTimeout: 5 * time.Second}
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := server.New(cfg)
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
	return &Server{Server: srv, Config: srv.AdminConfig()}
}
