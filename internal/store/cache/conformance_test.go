package cache_test

import (
	"context"
	"testing"
	"time"

	"github.com/trellis-project/trellis/internal/store"
	"github.com/trellis-project/trellis/internal/store/bolt"
	"github.com/trellis-project/trellis/internal/store/cache"
	"github.com/trellis-project/trellis/internal/store/storetest"
)

// TestConformance runs the store suite against a cache on the bolt backend,
// with the suite's whole key space as the cache's prefix.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		b, err := bolt.Open(bolt.Options{Dir: t.TempDir(), CompactionInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		// The suite wants Progress within five seconds of going idle.
		c, err := cache.New(context.Background(), b, "/storetest/", cache.Options{ProgressInterval: 200 * time.Millisecond})
		if err != nil {
			b.Close()
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
		return c
	})
}
