// Package budget bounds the memory of values that are costly to build but
// can always be rebuilt: the compiled schemas of CustomResourceDefinitions.
// A server with hundreds of large CRDs, most of them idle, keeps only the
// recently used ones compiled; the others are rebuilt on their next use.
//
// Eviction is the clock (second-chance) algorithm: a Get only sets a bit,
// so the hot path takes no lock; the pool's hand clears bits and evicts
// the first value found unused since its last pass.
package budget

import (
	"sync"
	"sync/atomic"
)

// Pool holds built values up to a total cost. The zero Pool is not
// usable; a nil *Pool keeps every value (no limit).
type Pool struct {
	limit int64

	mu    sync.Mutex
	used  int64
	ring  []evictable
	hand  int
	stats Stats
}

// Stats counts what a pool did.
type Stats struct {
	Builds, Evictions int64
	// Used is the cost of the values held now.
	Used int64
}

// evictable is a Value as the pool sees it.
type evictable interface {
	// referenced reports and clears the value's use bit.
	referenced() bool
	// drop forgets the built value; its owner rebuilds on the next Get.
	drop()
	cost() int64
}

// NewPool returns a pool that holds values up to limit in total cost.
func NewPool(limit int64) *Pool { return &Pool{limit: limit} }

// Stats returns the pool's counters.
func (p *Pool) Stats() Stats {
	if p == nil {
		return Stats{}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	s.Used = p.used
	return s
}

// add accounts for a newly built value and evicts others until the pool
// is within its limit. It returns the evicted values, whose owners are
// told outside the pool's lock.
func (p *Pool) add(v evictable) []evictable {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stats.Builds++
	p.ring = append(p.ring, v)
	p.used += v.cost()
	var evicted []evictable
	// Two passes of the hand clear every bit, so the loop ends; the value
	// just added is never evicted by its own arrival.
	for steps := 0; p.used > p.limit && len(p.ring) > 1 && steps < 2*len(p.ring)+1; steps++ {
		if p.hand >= len(p.ring) {
			p.hand = 0
		}
		e := p.ring[p.hand]
		if e == v || e.referenced() {
			p.hand++
			continue
		}
		p.removeAt(p.hand)
		e.drop()
		evicted = append(evicted, e)
		p.stats.Evictions++
	}
	return evicted
}

func (p *Pool) removeAt(i int) {
	p.used -= p.ring[i].cost()
	last := len(p.ring) - 1
	p.ring[i] = p.ring[last]
	p.ring[last] = nil
	p.ring = p.ring[:last]
}

// remove forgets v, whose owner is gone.
func (p *Pool) remove(v evictable) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, e := range p.ring {
		if e == v {
			p.removeAt(i)
			return
		}
	}
}

// Value is a value built on first use, kept while its pool has room, and
// rebuilt after an eviction.
type Value[T any] struct {
	pool *Pool
	// build returns the value and its cost in the pool's unit.
	build func() (T, int64, error)
	// evicted, if set, runs after the value was dropped (outside the
	// pool's lock), to shrink what a rebuild needs.
	evicted func()

	mu    sync.Mutex // serializes builds
	v     atomic.Pointer[T]
	used  atomic.Bool
	price atomic.Int64
}

// NewValue returns a value that build makes when needed. evicted may be
// nil.
func NewValue[T any](pool *Pool, build func() (T, int64, error), evicted func()) *Value[T] {
	return &Value[T]{pool: pool, build: build, evicted: evicted}
}

// Get returns the value, building it if it is not held. A failed build is
// not remembered: the next Get tries again.
func (v *Value[T]) Get() (T, error) {
	if p := v.v.Load(); p != nil {
		if !v.used.Load() {
			v.used.Store(true)
		}
		return *p, nil
	}
	v.mu.Lock()
	if p := v.v.Load(); p != nil {
		v.mu.Unlock()
		v.used.Store(true)
		return *p, nil
	}
	t, c, err := v.build()
	if err != nil {
		v.mu.Unlock()
		return t, err
	}
	v.price.Store(c)
	v.used.Store(true)
	v.v.Store(&t)
	v.mu.Unlock()
	if v.pool != nil {
		for _, e := range v.pool.add(v) {
			if ev, ok := e.(interface{ afterEviction() }); ok {
				ev.afterEviction()
			}
		}
	}
	return t, nil
}

// Held returns the value if it is held now, without building it or
// counting a use.
func (v *Value[T]) Held() (T, bool) {
	if p := v.v.Load(); p != nil {
		return *p, true
	}
	var zero T
	return zero, false
}

// Built reports whether the value is held now.
func (v *Value[T]) Built() bool { return v.v.Load() != nil }

// Release drops the value and takes it out of its pool, for an owner that
// is going away.
func (v *Value[T]) Release() {
	if v.pool != nil {
		v.pool.remove(v)
	}
	v.v.Store(nil)
}

func (v *Value[T]) referenced() bool { return v.used.Swap(false) }
func (v *Value[T]) drop()            { v.v.Store(nil) }
func (v *Value[T]) cost() int64      { return v.price.Load() }

func (v *Value[T]) afterEviction() {
	if v.evicted != nil {
		v.evicted()
	}
}
