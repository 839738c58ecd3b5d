package etcd_test

import (
	"bytes"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/trellis-project/trellis/internal/store"
	"github.com/trellis-project/trellis/internal/store/etcd"
	"github.com/trellis-project/trellis/internal/store/etcd/etcdtest"
)

// The benchmarks here and in package bolt have the same names, shapes and
// metrics, so that the two backends can be compared line by line; lists and
// watch fan-out through the watch cache are in package cache.

// benchValue is the size of a typical small Kubernetes object.
var benchValue = bytes.Repeat([]byte("x"), 1024)

// BenchmarkCreate measures durable creates (etcd fsyncs its WAL before it
// answers) from one writer and from sixteen, where etcd can batch fsyncs.
func BenchmarkCreate(b *testing.B) {
	s := open(b, etcdtest.Start(b), 0)
	var seq atomic.Int64 // keys stay unique across the b.N rounds
	for _, conc := range []int{1, 16} {
		b.Run(fmt.Sprintf("concurrency=%d", conc), func(b *testing.B) {
			benchCreate(b, s, conc, &seq)
		})
	}
}

func BenchmarkGet(b *testing.B) {
	benchGet(b, open(b, etcdtest.Start(b), 0))
}

// benchCreate makes b.N creates of benchValue from conc goroutines and
// reports their rate. seq numbers the keys.
func benchCreate(b *testing.B, s store.Store, conc int, seq *atomic.Int64) {
	ctx := b.Context()
	var done atomic.Int64
	b.SetBytes(int64(len(benchValue)))
	b.ResetTimer()
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for done.Add(1) <= int64(b.N) {
				key := fmt.Sprintf("/bench/create/%010d", seq.Add(1))
				if _, err := s.Create(ctx, key, benchValue); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "creates/s")
}

// benchGet reads one key of benchValue's size.
func benchGet(b *testing.B, s store.Store) {
	ctx := b.Context()
	if _, err := s.Create(ctx, "/bench/get", benchValue); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(benchValue)))
	for b.Loop() {
		if _, err := s.Get(ctx, "/bench/get"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkList reads 10,000 values of 1 KiB straight from etcd: whole, as
// an unpaginated list that misses the watch cache does, and in pages of 500
// at one revision, as a client paginates.
func BenchmarkList(b *testing.B) {
	const keys = 10000
	s := open(b, etcdtest.Start(b), 0)
	fill(b, s, "/bench/list/", keys)
	ctx := b.Context()

	b.Run("whole", func(b *testing.B) {
		b.SetBytes(keys * int64(len(benchValue)))
		for b.Loop() {
			res, err := s.List(ctx, "/bench/list/", store.ListOptions{})
			if err != nil {
				b.Fatal(err)
			}
			if len(res.KVs) != keys {
				b.Fatalf("listed %d keys, want %d", len(res.KVs), keys)
			}
		}
	})
	b.Run("pages=500", func(b *testing.B) {
		b.SetBytes(keys * int64(len(benchValue)))
		for b.Loop() {
			opts := store.ListOptions{Limit: 500}
			n := 0
			for {
				res, err := s.List(ctx, "/bench/list/", opts)
				if err != nil {
					b.Fatal(err)
				}
				n += len(res.KVs)
				if !res.More {
					break
				}
				opts = store.ListOptions{
					StartKey: res.KVs[len(res.KVs)-1].Key + "\x00",
					Limit:    500,
					Revision: res.Revision,
					Match:    store.Exact,
				}
			}
			if n != keys {
				b.Fatalf("listed %d keys, want %d", n, keys)
			}
		}
	})
}

// fill creates n keys under prefix from sixteen writers.
func fill(b *testing.B, s *etcd.Store, prefix string, n int) {
	b.Helper()
	ctx := b.Context()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				if _, err := s.Create(ctx, fmt.Sprintf("%s%06d", prefix, i), benchValue); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
}
