package etcd_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/trellis-project/trellis/internal/store"
	"github.com/trellis-project/trellis/internal/store/etcd"
	"github.com/trellis-project/trellis/internal/store/etcd/etcdtest"
	"github.com/trellis-project/trellis/internal/store/storetest"
)

// open connects a Store to endpoints and closes it when the test ends.
func open(tb testing.TB, endpoints []string, buffer int) *etcd.Store {
	tb.Helper()
	s, err := etcd.New(tb.Context(), etcd.Config{Endpoints: endpoints, WatchBuffer: buffer})
	if err != nil {
		tb.Fatalf("etcd.New: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return s
}

// TestConformance runs the shared suite against one etcd member; every
// subtest gets its own client, as separate replicas would have.
func TestConformance(t *testing.T) {
	endpoints := etcdtest.Start(t)
	storetest.Run(t, func(t *testing.T) store.Store { return open(t, endpoints, 0) })
}

// TestReplicasSeeEachOther checks that two Stores on one cluster share
// revisions and see each other's writes through Watch, which is what lets
// several Trellis replicas run on one etcd.
func TestReplicasSeeEachOther(t *testing.T) {
	endpoints := etcdtest.Start(t)
	ctx := t.Context()
	one, two := open(t, endpoints, 0), open(t, endpoints, 0)

	w1, err := one.Watch(ctx, "/r/", store.WatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w1.Stop()
	w2, err := two.Watch(ctx, "/r/", store.WatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Stop()

	rev, err := one.Create(ctx, "/r/a", []byte("from one"))
	if err != nil {
		t.Fatal(err)
	}
	kv, err := two.Update(ctx, "/r/a", []byte("from two"), store.Precondition{ModRevision: rev})
	if err != nil {
		t.Fatalf("second replica's Update with the first's revision: %v", err)
	}
	if _, err := one.Update(ctx, "/r/a", []byte("stale"), store.Precondition{ModRevision: rev}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("first replica's Update with its stale revision: %v, want ErrConflict", err)
	}
	del, err := one.Delete(ctx, "/r/a", store.Precondition{ModRevision: kv.ModRevision})
	if err != nil {
		t.Fatal(err)
	}

	want := []string{
		fmt.Sprintf("Put /r/a=from one @%d create", rev),
		fmt.Sprintf("Put /r/a=from two @%d prev=from one", kv.ModRevision),
		fmt.Sprintf("Delete /r/a @%d prev=from two", del.ModRevision),
	}
	for name, w := range map[string]store.Watch{"one": w1, "two": w2} {
		for i, wantEv := range want {
			select {
			case ev := <-w.Events():
				if got := describe(ev); got != wantEv {
					t.Errorf("replica %s, event %d = %q, want %q", name, i, got, wantEv)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("replica %s: no event %d", name, i)
			}
		}
	}
	for name, s := range map[string]*etcd.Store{"one": one, "two": two} {
		if cur, err := s.CurrentRevision(ctx); err != nil || cur != del.ModRevision {
			t.Errorf("replica %s: CurrentRevision = %d, %v; want %d", name, cur, err, del.ModRevision)
		}
	}
}

func describe(ev store.Event) string {
	switch ev.Type {
	case store.Put:
		s := fmt.Sprintf("Put %s=%s @%d", ev.KV.Key, ev.KV.Value, ev.Revision)
		if ev.IsCreate() {
			return s + " create"
		}
		return fmt.Sprintf("%s prev=%s", s, ev.Prev.Value)
	case store.Delete:
		return fmt.Sprintf("Delete %s @%d prev=%s", ev.KV.Key, ev.Revision, ev.Prev.Value)
	}
	return fmt.Sprintf("event type %d", ev.Type)
}

// TestSlowWatcherIsDropped fills a watch's buffer without reading it: the
// watch must end with ErrWatchTooSlow after delivering exactly the events
// that fit, in order, rather than block etcd's stream or skip ahead.
func TestSlowWatcherIsDropped(t *testing.T) {
	const buffer = 4
	endpoints := etcdtest.Start(t)
	ctx := t.Context()
	s := open(t, endpoints, buffer)
	start, err := s.CurrentRevision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w, err := s.Watch(ctx, "/slow/", store.WatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	for i := range 3 * buffer {
		if _, err := s.Create(ctx, fmt.Sprintf("/slow/%02d", i), nil); err != nil {
			t.Fatal(err)
		}
	}

	// Events reach the watch after the writes return; read nothing until
	// it has given up, or reading would make room.
	deadline := time.Now().Add(10 * time.Second)
	for w.Err() == nil {
		if time.Now().After(deadline) {
			t.Fatal("slow watch not dropped")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !errors.Is(w.Err(), store.ErrWatchTooSlow) {
		t.Errorf("Err = %v, want ErrWatchTooSlow", w.Err())
	}
	var revs []int64
	for ev := range w.Events() {
		revs = append(revs, ev.Revision)
	}
	want := []int64{start + 1, start + 2, start + 3, start + 4}
	if fmt.Sprint(revs) != fmt.Sprint(want) {
		t.Errorf("delivered revisions %v, want %v", revs, want)
	}
}

func TestNewFailsFast(t *testing.T) {
	// A port that was free a moment ago: nothing answers there.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close()

	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		cfg  etcd.Config
	}{
		{"NoEndpoints", etcd.Config{}},
		{"Unreachable", etcd.Config{Endpoints: []string{dead}, DialTimeout: 300 * time.Millisecond}},
		{"MissingCAFile", etcd.Config{Endpoints: []string{dead}, CAFile: filepath.Join(dir, "missing.pem")}},
		{"CAFileNotPEM", etcd.Config{Endpoints: []string{dead}, CAFile: notPEM}},
		{"CertWithoutKey", etcd.Config{Endpoints: []string{dead}, CertFile: notPEM}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			begin := time.Now()
			s, err := etcd.New(context.Background(), tc.cfg)
			if err == nil {
				s.Close()
				t.Fatal("New succeeded")
			}
			if d := time.Since(begin); d > 5*time.Second {
				t.Errorf("New took %v to fail", d)
			}
		})
	}
}

// TestTLS connects with the CA, client certificate and key files, and checks
// that the member refuses a client that lacks either half.
func TestTLS(t *testing.T) {
	m := etcdtest.StartTLS(t)
	ctx := t.Context()
	s, err := etcd.New(ctx, etcd.Config{Endpoints: m.Endpoints, CAFile: m.CAFile, CertFile: m.CertFile, KeyFile: m.KeyFile})
	if err != nil {
		t.Fatalf("New with TLS: %v", err)
	}
	defer s.Close()
	rev, err := s.Create(ctx, "/tls/k", []byte("v"))
	if err != nil {
		t.Fatalf("Create over TLS: %v", err)
	}
	if kv, err := s.Get(ctx, "/tls/k"); err != nil || kv.ModRevision != rev {
		t.Fatalf("Get over TLS = %+v, %v; want revision %d", kv, err, rev)
	}

	refused := []struct {
		name string
		cfg  etcd.Config
	}{
		{"NoClientCertificate", etcd.Config{Endpoints: m.Endpoints, CAFile: m.CAFile}},
		{"UnknownAuthority", etcd.Config{Endpoints: m.Endpoints, CertFile: m.CertFile, KeyFile: m.KeyFile}},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.DialTimeout = time.Second
			s, err := etcd.New(ctx, tc.cfg)
			if err == nil {
				s.Close()
				t.Fatal("New succeeded")
			}
		})
	}
}
