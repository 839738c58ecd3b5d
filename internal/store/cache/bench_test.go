package cache_test

import (
	"bytes"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trellis-project/trellis/internal/store"
	"github.com/trellis-project/trellis/internal/store/cache"
	"github.com/trellis-project/trellis/internal/store/etcd"
	"github.com/trellis-project/trellis/internal/store/etcd/etcdtest"
)

// benchBackends are the stores the cache benchmarks run a cache on; each
// benchmark runs once per backend, as a sub-benchmark named after it. open
// returns a fresh store that closes when the benchmark ends.
var benchBackends = []struct {
	name string
	open func(testing.TB) store.Store
}{
	{"bolt", func(tb testing.TB) store.Store { return openBolt(tb) }},
	{"etcd", openEtcd},
}

// openEtcd starts an etcd member inside the process and connects to it. As
// openBolt does, it writes once outside the cache's prefix first.
func openEtcd(tb testing.TB) store.Store {
	tb.Helper()
	s, err := etcd.New(tb.Context(), etcd.Config{Endpoints: etcdtest.Start(tb)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	create(tb, s, "/registry/seed", "")
	return s
}

// benchValue is the size of a typical small Kubernetes object.
var benchValue = bytes.Repeat([]byte("x"), 1024)

// BenchmarkList lists 10,000 objects of 1 KiB across 50 namespaces, as a
// list of the whole resource does. Cache/Consistent/SharedValues is how the
// API server's caches serve a list without resourceVersion; the others show
// what copying the values, skipping the consistency check (resourceVersion
// "0") and reading the backend instead cost.
func BenchmarkList(b *testing.B) {
	keys := make([]string, 10000)
	for i := range keys {
		keys[i] = fmt.Sprintf("%sns%02d/object-%05d", prefix, i%50, i)
	}
	for _, backend := range benchBackends {
		b.Run(backend.name, func(b *testing.B) {
			s := backend.open(b)
			createMany(b, s, keys, func(string) []byte { return benchValue })
			shared := start(b, s, cache.Options{SharedValues: true})
			copying := start(b, s, cache.Options{})
			list := func(s store.Store, opts store.ListOptions) func(*testing.B) {
				return func(b *testing.B) {
					ctx := b.Context()
					b.ReportAllocs()
					for b.Loop() {
						res, err := s.List(ctx, prefix, opts)
						if err != nil || len(res.KVs) != len(keys) {
							b.Fatalf("List: %d KVs, %v; want %d", len(res.KVs), err, len(keys))
						}
					}
				}
			}
			b.Run("Cache/Consistent/SharedValues", list(shared, store.ListOptions{}))
			b.Run("Cache/Consistent", list(copying, store.ListOptions{}))
			b.Run("Cache/NotOlderThan0/SharedValues", list(shared, store.ListOptions{Match: store.NotOlderThan}))
			b.Run("Backend", list(s, store.ListOptions{}))
		})
	}
}

// BenchmarkWatchFanout updates one key, through a cache with 100 watchers of
// its prefix, and measures how long after the update is acknowledged each
// watcher has the event. p50-µs and p99-µs are over every watcher of every
// update; a watcher that has the event before the update returns counts as
// 0. ns/op is the update plus the wait for the last watcher.
func BenchmarkWatchFanout(b *testing.B) {
	for _, backend := range benchBackends {
		b.Run(backend.name, func(b *testing.B) {
			benchFanout(b, backend.open(b), 100)
		})
	}
}

func benchFanout(b *testing.B, backend store.Store, watchers int) {
	c := start(b, backend, cache.Options{SharedValues: true})
	ctx := b.Context()
	key := prefix + "hot"
	create(b, c, key, "v")
	var (
		recv    = make([]time.Time, watchers)
		pending atomic.Int64
		all     = make(chan struct{}, 1) // the last watcher to receive says so
	)
	for i := range watchers {
		w, err := c.Watch(ctx, prefix, store.WatchOptions{})
		if err != nil {
			b.Fatal(err)
		}
		defer w.Stop()
		go func() {
			for range w.Events() {
				recv[i] = time.Now()
				if pending.Add(-1) == 0 {
					all <- struct{}{}
				}
			}
		}()
	}
	lat := make([]time.Duration, 0, 256*watchers)
	for b.Loop() {
		pending.Store(int64(watchers))
		if _, err := c.Update(ctx, key, benchValue, store.Precondition{}); err != nil {
			b.Fatal(err)
		}
		acked := time.Now()
		select {
		case <-all:
		case <-time.After(eventTimeout):
			b.Fatalf("%d of %d watchers lack the event after %v", pending.Load(), watchers, eventTimeout)
		}
		for _, t := range recv {
			lat = append(lat, max(t.Sub(acked), 0))
		}
	}
	slices.Sort(lat)
	micros := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	b.ReportMetric(micros(lat[len(lat)/2]), "p50-µs")
	b.ReportMetric(micros(lat[len(lat)*99/100]), "p99-µs")
	b.ReportMetric(micros(lat[len(lat)-1]), "max-µs")
}
