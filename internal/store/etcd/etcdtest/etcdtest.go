// Package etcdtest starts a single-member etcd server inside the test process,
// so tests that need etcd pass on a machine with nothing installed.
//
//	endpoints := etcdtest.Start(t)
//	s, err := etcd.New(ctx, etcd.Config{Endpoints: endpoints})
package etcdtest

import (
	"bytes"
	"net/url"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

const (
	// startTimeout bounds how long Start waits for the member to serve.
	startTimeout = 30 * time.Second

	// maxRequestBytes lets a value of store.MaxValueBytes, its key and the
	// request framing through; etcd's default of 1.5 MiB is below the
	// store's limit.
	maxRequestBytes = 3 * 1024 * 1024

	// ProgressNotifyInterval is how often the member sends progress events
	// to idle watches that asked for them (etcd's default is ten minutes).
	// The setting is process-wide in etcd, so every member started here
	// shares it.
	ProgressNotifyInterval = 200 * time.Millisecond
)

// Start runs a fresh etcd member on loopback with random ports and a data
// directory under tb.TempDir, waits until it serves, and returns its client
// endpoints. The member stops when the test ends; cleanups registered after
// Start (closing clients) run before it.
//
// Writes are durable, as in production: etcd fsyncs its WAL before it
// acknowledges. The member's log is kept in memory and printed only if the
// test fails, because a healthy shutdown logs errors too.
func Start(tb testing.TB) []string {
	tb.Helper()
	return start(tb, "http", transport.TLSInfo{})
}

// start runs a member whose client URLs use scheme, secured by tlsInfo when
// the scheme is https.
func start(tb testing.TB, scheme string, tlsInfo transport.TLSInfo) []string {
	tb.Helper()
	logs := &syncBuffer{}
	cfg := embed.NewConfig()
	cfg.Name = "etcdtest"
	cfg.Dir = tb.TempDir()
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(newLogger(logs))
	// Port 0 asks the kernel for a free port; a lone member never dials its
	// own peer URL, so advertising port 0 is harmless.
	clientURL := url.URL{Scheme: scheme, Host: "127.0.0.1:0"}
	peerURL := url.URL{Scheme: "http", Host: "127.0.0.1:0"}
	cfg.ListenClientUrls = []url.URL{clientURL}
	cfg.AdvertiseClientUrls = []url.URL{clientURL}
	cfg.ListenPeerUrls = []url.URL{peerURL}
	cfg.AdvertisePeerUrls = []url.URL{peerURL}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.ClientTLSInfo = tlsInfo
	cfg.MaxRequestBytes = maxRequestBytes
	cfg.WatchProgressNotifyInterval = ProgressNotifyInterval
	// A short heartbeat lets the lone member elect itself in milliseconds.
	cfg.TickMs = 10
	cfg.ElectionMs = 50

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		tb.Fatalf("etcdtest: start etcd: %v\n%s", err, logs)
	}
	tb.Cleanup(func() {
		e.Close()
		if tb.Failed() {
			tb.Logf("etcdtest: etcd log:\n%s", logs)
		}
	})
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		tb.Fatalf("etcdtest: etcd failed: %v", err)
	case <-time.After(startTimeout):
		tb.Fatalf("etcdtest: etcd not ready after %v", startTimeout)
	}
	endpoints := make([]string, 0, len(e.Clients))
	for _, l := range e.Clients {
		endpoints = append(endpoints, scheme+"://"+l.Addr().String())
	}
	return endpoints
}

func newLogger(w zapcore.WriteSyncer) *zap.Logger {
	enc := zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig())
	return zap.New(zapcore.NewCore(enc, w, zap.WarnLevel))
}

// syncBuffer collects log lines from etcd's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) Sync() error { return nil }

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
