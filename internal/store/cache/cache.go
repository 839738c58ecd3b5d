// Package cache is the watch cache: an in-memory copy of one resource's keys
// (one key prefix), kept current by a watch on the backend, from which lists
// and watches are served without touching the backend or decoding anything.
//
// A Cache is itself a store.Store, scoped to its prefix. Writes and plain Gets
// go to the backend; List and Watch are answered from memory whenever that
// gives the same answer the backend would:
//
//   - List with Latest is a consistent read, as in kube-apiserver 1.31+: the
//     cache learns the backend's current revision, waits (at most
//     Options.WaitTimeout, with a progress request so that writes to other
//     prefixes count) until it has applied everything up to it, then serves
//     from memory. If it cannot catch up in time, or is not ready, the list
//     falls back to the backend.
//   - List with NotOlderThan waits the same way for the requested revision
//     (and, if it can, for the newest write made through the cache, so a
//     client reads its own writes) and fails with ErrNotFresh if the cache
//     does not get there; NotOlderThan 0 serves whatever the cache holds.
//   - List with Exact is served from memory only at the cache's own
//     revision; older snapshots (the next pages of a paginated list, mostly)
//     come from the backend.
//   - Watch replays from a ring of recent events, then follows live events.
//     Watches that ask for progress get store.Progress events when idle.
//
// Every value the cache hands out has been through Options.Transform; the
// values it holds went through it once, on the way in.
//
// One goroutine applies backend events; it never blocks on a watcher. Each
// watcher has a small channel and, only while its consumer lags, an overflow
// queue drained by a goroutine of its own; a watcher that falls more than
// Options.WatcherBuffer events behind is ended with store.ErrWatchTooSlow.
package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/btree"

	"github.com/trellis-project/trellis/internal/store"
)

// Defaults for the zero Options.
const (
	DefaultEventRing        = 10000
	DefaultWatcherBuffer    = 1000
	DefaultProgressInterval = 2 * time.Second
	DefaultWaitTimeout      = 3 * time.Second
	// DefaultConsistentReadWait bounds how long a consistent list waits
	// for the backend's progress before reading through to it instead.
	DefaultConsistentReadWait = 250 * time.Millisecond
)

const (
	// fillPageSize is the page size of the (re)list that fills the cache.
	fillPageSize = 1000
	// progressRetry is how often a waiting read asks the backend for
	// progress again: a request can race a commit and report the revision
	// just before it.
	progressRetry = 50 * time.Millisecond
	// watchChanSize caps a watcher's channel; events beyond it wait in the
	// watcher's overflow queue, which costs memory only while it is used.
	watchChanSize = 64
	btreeDegree   = 32
	maxBackoff    = 5 * time.Second
)

// Errors the cache reports besides those of package store.
var (
	// ErrNotReady means the cache has not finished its (re)list within
	// Options.WaitTimeout. Retry later; kube-apiserver answers 429 with
	// Retry-After in this state.
	ErrNotReady = errors.New("watch cache is not ready")
	// ErrNotFresh means the cache did not reach the revision a read asked for
	// within Options.WaitTimeout. Errors that wrap it also wrap
	// store.ErrFutureRevision: kube-apiserver reports both as 504 "Too large
	// resource version".
	ErrNotFresh = errors.New("watch cache has not caught up with the requested revision")
)

// ProgressRequester is implemented by stores that can be asked to send a
// store.Progress event at their current revision to every watch that set
// ProgressNotify. The bolt backend and Cache implement it.
type ProgressRequester interface {
	RequestProgress(ctx context.Context) error
}

// Options configure a Cache. The zero value picks the defaults.
type Options struct {
	// Transform, if set, computes the value the cache keeps and hands out for
	// a stored KV; it is applied exactly once to every value that enters the
	// cache, and to values read through to the backend, so callers only ever
	// see transformed values. The API layer uses it to stamp
	// metadata.resourceVersion into the JSON. It must be a pure function of
	// kv, safe for concurrent use; it may return kv.Value itself. A value
	// it rejects keeps the cache from becoming ready (LastError says why)
	// until that key is written or deleted.
	Transform func(kv store.KV) ([]byte, error)
	// EventRing is how many recent events are kept for watches that resume
	// from a revision (default DefaultEventRing). A watch from before the
	// oldest kept event is store.ErrCompacted.
	EventRing int
	// WatcherBuffer is how many undelivered events one watcher may have
	// before it is ended with store.ErrWatchTooSlow (default
	// DefaultWatcherBuffer). A watch that starts with a replay may lag by its
	// replay on top of this until it first catches up.
	WatcherBuffer int
	// ProgressInterval: a watch with ProgressNotify that received nothing
	// for this long gets a store.Progress event at the cache's revision
	// (default DefaultProgressInterval, so within twice that of going idle;
	// negative disables these). Progress the backend sends, whenever anyone
	// asks it for some, is forwarded to the watches that have received
	// nothing else in the current interval; RequestProgress reaches all.
	ProgressInterval time.Duration
	// WaitTimeout bounds how long a read waits for the cache to become ready
	// or to reach a revision (default DefaultWaitTimeout, kube-apiserver's).
	WaitTimeout time.Duration
	// ConsistentReadWait bounds how long a consistent list (no
	// resourceVersion) waits for the cache to catch up with the backend
	// before it reads through to the backend, which is just as consistent
	// (default DefaultConsistentReadWait). etcd withholds the progress
	// notification the cache asks for while any watch on the stream is
	// still catching up, so the wait can otherwise last until the next
	// write to the prefix.
	ConsistentReadWait time.Duration
	// SharedValues skips copying values handed out by List and GetCached:
	// they are then the cache's own and must not be modified. By default
	// each list copies them, as the store contract requires. Watch event
	// values are always shared between watchers, as with the backends.
	SharedValues bool
}

func (o *Options) defaults() {
	if o.EventRing <= 0 {
		o.EventRing = DefaultEventRing
	}
	if o.WatcherBuffer <= 0 {
		o.WatcherBuffer = DefaultWatcherBuffer
	}
	if o.ProgressInterval == 0 {
		o.ProgressInterval = DefaultProgressInterval
	}
	if o.ConsistentReadWait <= 0 {
		o.ConsistentReadWait = DefaultConsistentReadWait
	}
	if o.WaitTimeout <= 0 {
		o.WaitTimeout = DefaultWaitTimeout
	}
}

// Cache is the watch cache of one key prefix. It is safe for concurrent use.
type Cache struct {
	backend  store.Store
	prefix   string
	opts     Options
	progress ProgressRequester // nil if the backend cannot be asked

	ctx    context.Context // ends when the cache stops
	cancel context.CancelFunc
	wg     sync.WaitGroup
	kick   chan struct{} // capacity 1: "ask the backend for progress"

	stopOnce  sync.Once
	closeOnce sync.Once
	closeErr  error

	revision atomic.Int64 // mirrors rev for lock-free reads
	written  atomic.Int64 // newest revision of a write made through the cache
	isReady  atomic.Bool
	closed   atomic.Bool

	// objects and valueBytes mirror the tree's size, for Stats.
	objects, valueBytes atomic.Int64

	mu        sync.Mutex
	tree      *btree.BTreeG[store.KV] // transformed values, by key
	rev       int64                   // every event up to rev is applied
	ready     bool
	ring      ring
	compacted int64 // newest revision passed to a successful Compact
	watchers  watchIndex
	epoch     uint64 // counts ProgressInterval ticks
	// forceProgress: the next backend progress at or after this revision
	// goes to every ProgressNotify watcher (RequestProgress); 0 if none.
	forceProgress int64
	changed       chan struct{} // closed when rev, ready or closed change; nil until someone waits
	lastErr       error
}

var (
	_ store.Store       = (*Cache)(nil)
	_ ProgressRequester = (*Cache)(nil)
)

// New starts a cache of the keys under prefix in backend and returns at once;
// the cache fills in the background (see Ready and WaitReady). Reads made
// before it is ready fall back to the backend or wait, as documented on each
// method. The cache runs until ctx ends or Stop or Close is called.
func New(ctx context.Context, backend store.Store, prefix string, opts Options) (*Cache, error) {
	if err := store.ValidateKey(prefix); err != nil {
		return nil, fmt.Errorf("cache prefix: %w", err)
	}
	opts.defaults()
	c := &Cache{
		backend:  backend,
		prefix:   prefix,
		opts:     opts,
		kick:     make(chan struct{}, 1),
		tree:     btree.NewG(btreeDegree, lessKV),
		ring:     ring{size: opts.EventRing},
		watchers: newWatchIndex(),
		epoch:    1, // so that a new watcher's seen, epoch-1, is valid
	}
	c.progress, _ = backend.(ProgressRequester)
	c.ctx, c.cancel = context.WithCancel(ctx)
	c.wg.Add(1)
	go c.run()
	if c.progress != nil {
		c.wg.Add(1)
		go c.requestLoop()
	}
	return c, nil
}

func lessKV(a, b store.KV) bool { return a.Key < b.Key }

// Prefix is the key prefix the cache holds.
func (c *Cache) Prefix() string { return c.prefix }

// Revision is the newest revision the cache has applied: its contents are
// the backend's at this revision, restricted to the prefix.
func (c *Cache) Revision() int64 { return c.revision.Load() }

// Stats reports how many objects the cache holds and the total size of
// their values, without taking the cache's lock. Both are zero until the
// cache is first filled.
func (c *Cache) Stats() (objects, valueBytes int64) {
	return c.objects.Load(), c.valueBytes.Load()
}

// Ready reports whether the cache holds a complete copy and follows the
// backend. It is false before the first fill and during a relist.
func (c *Cache) Ready() bool { return c.isReady.Load() }

// WaitReady blocks until the cache is ready, ctx ends or the cache stops.
func (c *Cache) WaitReady(ctx context.Context) error {
	for {
		c.mu.Lock()
		if c.ready {
			c.mu.Unlock()
			return nil
		}
		ch := c.changedLocked()
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-c.ctx.Done():
			return store.ErrClosed
		}
	}
}

// LastError is the error that last made the cache relist or kept it from
// filling, or nil.
func (c *Cache) LastError() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastErr
}

// Stop ends the cache without closing the backend: its goroutines exit, its
// watches end with store.ErrClosed and every later call returns
// store.ErrClosed. Use it when several caches share one backend.
func (c *Cache) Stop() {
	c.stopOnce.Do(func() {
		c.cancel()
		c.wg.Wait()
	})
}

// Close stops the cache and closes the backend. A second Close returns the
// first one's result.
func (c *Cache) Close() error {
	c.closeOnce.Do(func() {
		c.Stop()
		c.closeErr = c.backend.Close()
	})
	return c.closeErr
}

// shutdown runs when the cache's context ends.
func (c *Cache) shutdown() {
	c.closed.Store(true)
	c.mu.Lock()
	c.setReadyLocked(false)
	c.endWatchersLocked(store.ErrClosed)
	c.mu.Unlock()
}

// run fills the cache and keeps it following the backend until the cache
// stops.
//
// The backend watch is opened before the list that fills the cache, and
// events the list already contains are skipped: a watch "from now" that
// starts before the list cannot miss a write, whereas one that starts after
// it could (AfterRevision 0 cannot say "after revision 0"). When a watch
// ends for any other reason than compaction, a new one resumes from the
// cache's revision without disturbing the cache's watchers.
func (c *Cache) run() {
	defer c.wg.Done()
	defer c.shutdown()
	defer c.cancel() // a closed backend stops the cache for good
	relist := true
	var backoff time.Duration
	for c.ctx.Err() == nil {
		after := c.Revision()
		if after == 0 {
			relist = true
		}
		if relist {
			after = 0
		}
		w, err := c.backend.Watch(c.ctx, c.prefix, store.WatchOptions{AfterRevision: after, ProgressNotify: true})
		if err == nil && relist {
			c.becomeUnready()
			if err = c.fill(); err != nil {
				w.Stop()
			}
		}
		if err != nil {
			if errors.Is(err, store.ErrClosed) {
				return
			}
			if errors.Is(err, store.ErrCompacted) {
				relist = true
			}
			c.setLastErr(err)
			backoff = c.sleep(backoff)
			continue
		}
		relist = false
		started := time.Now()
		err = c.follow(w)
		w.Stop()
		if c.ctx.Err() != nil || errors.Is(err, store.ErrClosed) {
			return
		}
		var tErr *transformError
		if errors.Is(err, store.ErrCompacted) || errors.As(err, &tErr) {
			relist = true
		}
		if err != nil {
			c.setLastErr(err)
		}
		if time.Since(started) > maxBackoff {
			backoff = 0
		} else {
			backoff = c.sleep(backoff)
		}
	}
}

// sleep waits before a retry, doubling the previous wait up to maxBackoff.
func (c *Cache) sleep(prev time.Duration) time.Duration {
	next := min(max(2*prev, 50*time.Millisecond), maxBackoff)
	t := time.NewTimer(prev)
	defer t.Stop()
	select {
	case <-t.C:
	case <-c.ctx.Done():
	}
	return next
}

func (c *Cache) setLastErr(err error) {
	c.mu.Lock()
	c.lastErr = err
	c.mu.Unlock()
}

// becomeUnready marks the cache stale ahead of a relist. Its watchers are
// ended with store.ErrWatchTooSlow, as kube-apiserver's cacher does: the
// events between the old and the new list are lost, so their clients must
// relist too.
func (c *Cache) becomeUnready() {
	c.mu.Lock()
	c.setReadyLocked(false)
	c.endWatchersLocked(store.ErrWatchTooSlow)
	c.mu.Unlock()
}

// fill lists the prefix, page by page from one snapshot, and installs the
// result as the cache's contents.
func (c *Cache) fill() error {
	tree := btree.NewG(btreeDegree, lessKV)
	opts := store.ListOptions{Limit: fillPageSize}
	var rev, size int64
	for {
		res, err := c.backend.List(c.ctx, c.prefix, opts)
		if err != nil {
			return fmt.Errorf("list %s: %w", c.prefix, err)
		}
		rev = res.Revision
		for _, kv := range res.KVs {
			if kv.Value, err = c.transform(kv, true); err != nil {
				return err
			}
			tree.ReplaceOrInsert(kv)
			size += int64(len(kv.Value))
		}
		if !res.More || len(res.KVs) == 0 {
			break
		}
		opts = store.ListOptions{
			StartKey: res.KVs[len(res.KVs)-1].Key + "\x00",
			Limit:    fillPageSize,
			Revision: rev,
			Match:    store.Exact,
		}
	}
	c.mu.Lock()
	c.tree = tree
	c.objects.Store(int64(tree.Len()))
	c.valueBytes.Store(size)
	c.ring.reset(rev)
	c.setRevLocked(rev)
	c.setReadyLocked(true)
	c.lastErr = nil
	c.mu.Unlock()
	return nil
}

// follow applies the backend watch's events until it ends, and sends idle
// progress on the ProgressInterval ticks meanwhile.
func (c *Cache) follow(w store.Watch) error {
	var tick <-chan time.Time
	if c.opts.ProgressInterval > 0 {
		t := time.NewTicker(c.opts.ProgressInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case ev, ok := <-w.Events():
			if !ok {
				return w.Err()
			}
			if err := c.apply(ev); err != nil {
				return err
			}
		case <-tick:
			c.mu.Lock()
			c.epoch++
			c.progressLocked(c.rev, progressIdle)
			c.mu.Unlock()
		case <-c.ctx.Done():
			return c.ctx.Err()
		}
	}
}

// transformError marks a value Options.Transform rejected.
type transformError struct {
	key string
	rev int64
	err error
}

func (e *transformError) Error() string {
	return fmt.Sprintf("transform %s at revision %d: %v", e.key, e.rev, e.err)
}

func (e *transformError) Unwrap() error { return e.err }

// transform computes the value the cache keeps for kv. Unless owned (the
// caller owns kv.Value, as it does a list result), the result never aliases
// kv.Value: an event's value may be the buffer its writer passed in.
func (c *Cache) transform(kv store.KV, owned bool) ([]byte, error) {
	if c.opts.Transform == nil {
		if owned {
			return kv.Value, nil
		}
		return bytes.Clone(kv.Value), nil
	}
	v, err := c.opts.Transform(kv)
	if err != nil {
		return nil, &transformError{key: kv.Key, rev: kv.ModRevision, err: err}
	}
	if !owned && len(v) > 0 && len(kv.Value) > 0 && &v[0] == &kv.Value[0] {
		v = bytes.Clone(v)
	}
	return v, nil
}

// apply folds one backend event into the cache and fans it out.
func (c *Cache) apply(ev store.Event) error {
	switch ev.Type {
	case store.Progress:
		c.mu.Lock()
		if ev.Revision > c.rev {
			c.setRevLocked(ev.Revision)
		}
		mode := progressForwarded
		if c.forceProgress > 0 && c.rev >= c.forceProgress {
			mode, c.forceProgress = progressAll, 0
		}
		c.progressLocked(c.rev, mode)
		c.mu.Unlock()
		return nil
	case store.Put:
		if ev.Revision <= c.Revision() {
			return nil // the list that filled the cache has it
		}
		value, err := c.transform(ev.KV, false)
		if err != nil {
			return err
		}
		kv := ev.KV
		kv.Value = value
		out := store.Event{Type: store.Put, KV: kv, Revision: ev.Revision}
		c.mu.Lock()
		size := int64(len(kv.Value))
		if old, had := c.tree.ReplaceOrInsert(kv); had {
			out.Prev = &old
			size -= int64(len(old.Value))
		} else {
			c.objects.Add(1)
		}
		c.valueBytes.Add(size)
		c.commitLocked(out)
		c.mu.Unlock()
		return nil
	case store.Delete:
		if ev.Revision <= c.Revision() {
			return nil
		}
		out := store.Event{Type: store.Delete, KV: store.KV{Key: ev.KV.Key, ModRevision: ev.Revision}, Revision: ev.Revision}
		c.mu.Lock()
		if old, had := c.tree.Delete(store.KV{Key: ev.KV.Key}); had {
			out.Prev = &old
			c.objects.Add(-1)
			c.valueBytes.Add(-int64(len(old.Value)))
		} else if ev.Prev != nil {
			// Not expected: the cache holds every live key. Keep the
			// event's own previous version rather than drop the event.
			prev := *ev.Prev
			if v, err := c.transform(prev, false); err == nil {
				prev.Value = v
				out.Prev = &prev
			}
		}
		c.commitLocked(out)
		c.mu.Unlock()
		return nil
	}
	return fmt.Errorf("unknown event type %d at revision %d", ev.Type, ev.Revision)
}

// commitLocked records an applied event and hands it to the watchers.
func (c *Cache) commitLocked(ev store.Event) {
	c.ring.push(ev)
	c.setRevLocked(ev.Revision)
	c.fanoutLocked(ev)
}

func (c *Cache) setReadyLocked(ready bool) {
	c.ready = ready
	c.isReady.Store(ready)
	c.notifyLocked()
}

func (c *Cache) setRevLocked(rev int64) {
	c.rev = rev
	c.revision.Store(rev)
	c.notifyLocked()
}

// changedLocked returns a channel closed at the next change of rev, ready
// or closed.
func (c *Cache) changedLocked() <-chan struct{} {
	if c.changed == nil {
		c.changed = make(chan struct{})
	}
	return c.changed
}

func (c *Cache) notifyLocked() {
	if c.changed != nil {
		close(c.changed)
		c.changed = nil
	}
}

// requestLoop asks the backend for progress once per kick. Kicks that
// arrive while a request runs merge into the next request, which starts after
// all of them, so every waiter gets a request issued after its kick.
func (c *Cache) requestLoop() {
	defer c.wg.Done()
	for {
		select {
		case <-c.kick:
			_ = c.progress.RequestProgress(c.ctx)
		case <-c.ctx.Done():
			return
		}
	}
}

func (c *Cache) kickProgress() {
	if c.progress == nil {
		return
	}
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// RequestProgress makes every watch of the cache that set ProgressNotify
// receive a store.Progress event, after the events before it, at the
// backend's current revision or later. If the backend can be asked for
// progress, the event comes asynchronously with the backend's; otherwise
// RequestProgress waits (as a consistent list does) until the cache has
// reached the backend's revision and sends it at once.
func (c *Cache) RequestProgress(ctx context.Context) error {
	if c.closed.Load() {
		return store.ErrClosed
	}
	cur, err := c.backend.CurrentRevision(ctx)
	if err != nil {
		return err
	}
	if c.progress != nil {
		c.mu.Lock()
		c.forceProgress = max(c.forceProgress, cur)
		c.mu.Unlock()
		c.kickProgress()
		return nil
	}
	err = c.waitLocked(ctx, func() bool { return c.ready && c.rev >= cur }, false)
	if errors.Is(err, errWaitTimeout) {
		return fmt.Errorf("%w: %w: revision %d, cache at %d after %v", ErrNotFresh, store.ErrFutureRevision, cur, c.Revision(), c.opts.WaitTimeout)
	}
	if err != nil {
		return err
	}
	c.progressLocked(c.rev, progressAll)
	c.mu.Unlock()
	return nil
}

// inPrefix checks that key (a key, list prefix or watch prefix) lies under
// the cache's prefix.
func (c *Cache) inPrefix(what, key string) error {
	if strings.IndexByte(key, 0) >= 0 {
		return fmt.Errorf("%w: %s contains a NUL byte", store.ErrInvalidKey, what)
	}
	if !strings.HasPrefix(key, c.prefix) {
		return fmt.Errorf("%w: %s %q is not under the cache's prefix %q", store.ErrInvalidKey, what, key, c.prefix)
	}
	return nil
}
