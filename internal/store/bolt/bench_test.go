package bolt_test

import (
	"bytes"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/trellis-project/trellis/internal/store"
)

// The benchmarks here and in package etcd have the same names, shapes and
// metrics, so that the two backends can be compared line by line; lists and
// watch fan-out through the watch cache are in package cache.

// benchValue is the size of a typical small Kubernetes object.
var benchValue = bytes.Repeat([]byte("x"), 1024)

// BenchmarkCreate measures durable creates (each is acknowledged only after
// its group commit's fsync) from one writer and from sixteen, whose writes
// share fsyncs.
func BenchmarkCreate(b *testing.B) {
	s := open(b, b.TempDir())
	var seq atomic.Int64 // keys stay unique across the b.N rounds
	for _, conc := range []int{1, 16} {
		b.Run(fmt.Sprintf("concurrency=%d", conc), func(b *testing.B) {
			benchCreate(b, s, conc, &seq)
		})
	}
}

func BenchmarkGet(b *testing.B) {
	benchGet(b, open(b, b.TempDir()))
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
