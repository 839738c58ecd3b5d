package budget

import (
	"errors"
	"sync"
	"testing"
)

func counted(pool *Pool, cost int64, builds *int) *Value[int] {
	return NewValue(pool, func() (int, int64, error) {
		*builds++
		return *builds, cost, nil
	}, nil)
}

func TestValueBuiltOnceWhileHeld(t *testing.T) {
	var builds int
	v := counted(NewPool(10), 4, &builds)
	if v.Built() {
		t.Fatal("built before first Get")
	}
	for range 3 {
		if got, err := v.Get(); err != nil || got != 1 {
			t.Fatalf("Get = %d, %v; want 1, nil", got, err)
		}
	}
	if builds != 1 {
		t.Fatalf("%d builds, want 1", builds)
	}
}

func TestPoolEvictsUnusedFirst(t *testing.T) {
	pool := NewPool(10)
	var ba, bb, bc int
	a, b, c := counted(pool, 4, &ba), counted(pool, 4, &bb), counted(pool, 4, &bc)
	a.Get()
	b.Get()
	// Both have their use bit set; the hand clears a's and b's, then
	// evicts a (the first found unused) to make room for c.
	c.Get()
	if got := pool.Stats(); got.Evictions != 1 || got.Used != 8 {
		t.Fatalf("stats %+v, want 1 eviction and 8 used", got)
	}
	if a.Built() || !b.Built() || !c.Built() {
		t.Fatalf("built: a %v b %v c %v; want a evicted", a.Built(), b.Built(), c.Built())
	}
	// b is used again, so the next eviction (to rebuild a) takes c.
	b.Get()
	a.Get()
	if ba != 2 || b.Built() != true || c.Built() {
		t.Fatalf("a built %d times (want 2), b held %v (want true), c held %v (want false)", ba, b.Built(), c.Built())
	}
}

func TestEvictedHookRunsAfterEviction(t *testing.T) {
	pool := NewPool(5)
	var told int
	a := NewValue(pool, func() (int, int64, error) { return 1, 5, nil }, func() { told++ })
	b := NewValue(pool, func() (int, int64, error) { return 2, 5, nil }, nil)
	a.Get()
	b.Get()
	if told != 1 || a.Built() {
		t.Fatalf("evicted hook ran %d times, a held %v; want 1, false", told, a.Built())
	}
}

func TestFailedBuildIsRetried(t *testing.T) {
	fail := true
	v := NewValue(NewPool(10), func() (int, int64, error) {
		if fail {
			return 0, 0, errors.New("not yet")
		}
		return 7, 1, nil
	}, nil)
	if _, err := v.Get(); err == nil {
		t.Fatal("want the build's error")
	}
	fail = false
	if got, err := v.Get(); err != nil || got != 7 {
		t.Fatalf("Get = %d, %v; want 7, nil", got, err)
	}
}

func TestReleaseFreesItsCost(t *testing.T) {
	pool := NewPool(100)
	var n int
	v := counted(pool, 30, &n)
	v.Get()
	v.Release()
	if got := pool.Stats().Used; got != 0 || v.Built() {
		t.Fatalf("used %d, held %v after Release; want 0, false", got, v.Built())
	}
}

func TestNilPoolKeepsEverything(t *testing.T) {
	var n int
	v := counted(nil, 1<<40, &n)
	v.Get()
	v.Get()
	if n != 1 {
		t.Fatalf("%d builds, want 1", n)
	}
}

// Many goroutines getting values from a pool far too small for them all:
// every Get returns its own value, and the pool stays within its limit
// but for the value being added.
func TestConcurrentGets(t *testing.T) {
	pool := NewPool(20)
	values := make([]*Value[int], 16)
	for i := range values {
		values[i] = NewValue(pool, func() (int, int64, error) { return i, 5, nil }, func() {})
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for n := range 500 {
				i := (g*7 + n) % len(values)
				if got, err := values[i].Get(); err != nil || got != i {
					t.Errorf("value %d: got %d, %v", i, got, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if used := pool.Stats().Used; used > 20+5*8 {
		t.Fatalf("pool holds %d, limit 20", used)
	}
}
