package cache

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/btree"

	"github.com/trellis-project/trellis/internal/store"
)

// errWaitTimeout is waitLocked's report that the condition did not hold
// within Options.WaitTimeout; callers turn it into their own error or fall
// back to the backend.
var errWaitTimeout = errors.New("wait timed out")

// waitLocked waits until cond holds, at most Options.WaitTimeout. On success
// it returns nil with c.mu held, so the caller reads the state cond saw. With
// askProgress it asks the backend for a progress event at once and again
// every progressRetry, so that the cache's revision advances even when no
// write touches its prefix.
func (c *Cache) waitLocked(ctx context.Context, cond func() bool, askProgress bool) error {
	return c.waitLockedFor(ctx, cond, askProgress, c.opts.WaitTimeout)
}

// waitLockedFor is waitLocked with its own timeout.
func (c *Cache) waitLockedFor(ctx context.Context, cond func() bool, askProgress bool, timeout time.Duration) error {
	var deadline <-chan time.Time
	var retry <-chan time.Time
	for {
		c.mu.Lock()
		if c.closed.Load() {
			c.mu.Unlock()
			return store.ErrClosed
		}
		if cond() {
			return nil
		}
		ch := c.changedLocked()
		c.mu.Unlock()
		if deadline == nil {
			t := time.NewTimer(timeout)
			defer t.Stop()
			deadline = t.C
			if askProgress && c.progress != nil {
				c.kickProgress()
				tk := time.NewTicker(progressRetry)
				defer tk.Stop()
				retry = tk.C
			}
		}
		select {
		case <-ch:
		case <-retry:
			c.kickProgress()
		case <-deadline:
			return errWaitTimeout
		case <-ctx.Done():
			return ctx.Err()
		case <-c.ctx.Done():
			return store.ErrClosed
		}
	}
}

// snapshotLocked returns a read-only copy of the index that later writes do
// not disturb. Cloning is O(1); the dispatcher pays for copy-on-write later.
func (c *Cache) snapshotLocked() (*btree.BTreeG[store.KV], int64) {
	return c.tree.Clone(), c.rev
}

// Get reads key from the backend (as kube-apiserver serves a GET without
// resourceVersion from etcd), with Options.Transform applied.
func (c *Cache) Get(ctx context.Context, key string) (store.KV, error) {
	if err := c.checkKey(key); err != nil {
		return store.KV{}, err
	}
	kv, err := c.backend.Get(ctx, key)
	if err != nil {
		return store.KV{}, err
	}
	return c.readThrough(kv)
}

// GetCached reads key from memory once the cache has applied minRevision
// (resourceVersion "0" or "not older than"); 0 means any revision. A cache
// that is not ready reads the backend instead; one that does not reach
// minRevision in time fails with ErrNotFresh.
func (c *Cache) GetCached(ctx context.Context, key string, minRevision int64) (store.KV, error) {
	if err := c.checkKey(key); err != nil {
		return store.KV{}, err
	}
	if !c.Ready() {
		return c.Get(ctx, key)
	}
	if err := c.waitFresh(ctx, minRevision); err != nil {
		return store.KV{}, err
	}
	kv, ok := c.tree.Get(store.KV{Key: key})
	c.mu.Unlock()
	if !ok {
		return store.KV{}, fmt.Errorf("%w: %s", store.ErrNotFound, key)
	}
	if !c.opts.SharedValues {
		kv.Value = append([]byte(nil), kv.Value...)
	}
	return kv, nil
}

// waitFresh waits until the cache is ready and has applied rev, and returns
// with c.mu held. A rev past the backend's newest revision is
// store.ErrFutureRevision at once.
//
// For rev > 0 it also tries, within the same time limit, to reach the newest
// write made through the cache, so that a client reading right after its
// own write sees it; that floor is given up rather than fail the read.
func (c *Cache) waitFresh(ctx context.Context, rev int64) error {
	if rev > c.Revision() {
		cur, err := c.backend.CurrentRevision(ctx)
		if err != nil {
			return err
		}
		if rev > cur {
			return fmt.Errorf("%w: %d > %d", store.ErrFutureRevision, rev, cur)
		}
	}
	target := rev
	if rev > 0 {
		target = max(rev, c.written.Load())
	}
	// Only a revision beyond the cache's own writes may need progress to be
	// seen: the events of those writes are on their way.
	ask := rev > c.written.Load()
	err := c.waitLocked(ctx, func() bool { return c.ready && c.rev >= target }, ask)
	if errors.Is(err, errWaitTimeout) {
		c.mu.Lock()
		if c.ready && c.rev >= rev {
			return nil
		}
		have := c.rev
		c.mu.Unlock()
		return fmt.Errorf("%w: %w: revision %d, cache at %d after %v", ErrNotFresh, store.ErrFutureRevision, rev, have, c.opts.WaitTimeout)
	}
	return err
}

// List serves the keys under prefix, which must lie under the cache's
// prefix (a narrower one, such as a namespace, filters).
//
//   - Latest (and Exact 0): a consistent read served from memory once the
//     cache has caught up with the backend's current revision; from the
//     backend if the cache is not ready or does not catch up in time.
//   - NotOlderThan rev: from memory once the cache has applied rev (rev 0:
//     at once); store.ErrFutureRevision past the backend's newest revision,
//     ErrNotFresh if the cache does not get there in time. From the backend
//     while the cache is not ready.
//   - Exact rev: from memory if rev is the cache's revision, else from the
//     backend.
//
// ListResult.Revision is the revision served.
func (c *Cache) List(ctx context.Context, prefix string, opts store.ListOptions) (store.ListResult, error) {
	if c.closed.Load() {
		return store.ListResult{}, store.ErrClosed
	}
	if err := c.inPrefix("list prefix", prefix); err != nil {
		return store.ListResult{}, err
	}
	if opts.StartKey != "" && (len(opts.StartKey) < len(prefix) || opts.StartKey[:len(prefix)] != prefix) {
		return store.ListResult{}, fmt.Errorf("%w: start key %q is not under prefix %q", store.ErrInvalidKey, opts.StartKey, prefix)
	}
	match := opts.Match
	if match == store.Exact && opts.Revision == 0 {
		match = store.Latest
	}
	switch match {
	case store.Exact:
		c.mu.Lock()
		if !c.ready || c.rev != opts.Revision {
			c.mu.Unlock()
			return c.listThrough(ctx, prefix, opts)
		}
	case store.NotOlderThan:
		if !c.Ready() {
			return c.listThrough(ctx, prefix, opts)
		}
		if err := c.waitFresh(ctx, opts.Revision); err != nil {
			return store.ListResult{}, err
		}
	default:
		if !c.Ready() {
			return c.listThrough(ctx, prefix, opts)
		}
		cur, err := c.backend.CurrentRevision(ctx)
		if err != nil {
			return store.ListResult{}, err
		}
		err = c.waitLockedFor(ctx, func() bool { return c.ready && c.rev >= cur }, cur > c.written.Load(), c.opts.ConsistentReadWait)
		if errors.Is(err, errWaitTimeout) {
			// kube-apiserver falls back to etcd here too: slower, still
			// consistent.
			return c.listThrough(ctx, prefix, opts)
		}
		if err != nil {
			return store.ListResult{}, err
		}
	}
	tree, rev := c.snapshotLocked()
	c.mu.Unlock()
	return c.page(tree, rev, prefix, opts), nil
}

// page reads one page of a snapshot.
func (c *Cache) page(tree *btree.BTreeG[store.KV], rev int64, prefix string, opts store.ListOptions) store.ListResult {
	start := prefix
	if opts.StartKey != "" {
		start = opts.StartKey
	}
	end := store.PrefixEnd(prefix)
	res := store.ListResult{Revision: rev}
	switch {
	case opts.Limit > 0:
		res.KVs = make([]store.KV, 0, min(opts.Limit, int64(tree.Len())))
	case prefix == c.prefix:
		res.KVs = make([]store.KV, 0, tree.Len())
	}
	size := 0
	tree.AscendGreaterOrEqual(store.KV{Key: start}, func(kv store.KV) bool {
		if end != "" && kv.Key >= end {
			return false
		}
		if opts.Limit > 0 && int64(len(res.KVs)) == opts.Limit {
			res.More = true
			return false
		}
		res.KVs = append(res.KVs, kv)
		size += len(kv.Value)
		return true
	})
	if !c.opts.SharedValues {
		// One allocation for the page; each value gets a capacity of its
		// own length so an append by the caller cannot reach its neighbour.
		buf := make([]byte, 0, size)
		for i := range res.KVs {
			v := res.KVs[i].Value
			if v == nil {
				continue
			}
			off := len(buf)
			buf = append(buf, v...)
			res.KVs[i].Value = buf[off:len(buf):len(buf)]
		}
	}
	return res
}

// listThrough reads from the backend, transforming the values.
func (c *Cache) listThrough(ctx context.Context, prefix string, opts store.ListOptions) (store.ListResult, error) {
	res, err := c.backend.List(ctx, prefix, opts)
	if err != nil {
		return res, err
	}
	if c.opts.Transform != nil {
		for i := range res.KVs {
			if res.KVs[i].Value, err = c.transform(res.KVs[i], true); err != nil {
				return store.ListResult{}, err
			}
		}
	}
	return res, nil
}

// readThrough transforms a KV read from the backend.
func (c *Cache) readThrough(kv store.KV) (store.KV, error) {
	if c.opts.Transform == nil {
		return kv, nil
	}
	v, err := c.transform(kv, true)
	if err != nil {
		return kv, err
	}
	kv.Value = v
	return kv, nil
}

// checkKey validates a key the way the backends do, then checks that it is
// under the cache's prefix.
func (c *Cache) checkKey(key string) error {
	if c.closed.Load() {
		return store.ErrClosed
	}
	if err := store.ValidateKey(key); err != nil {
		return err
	}
	return c.inPrefix("key", key)
}

// Create writes through to the backend.
func (c *Cache) Create(ctx context.Context, key string, value []byte) (int64, error) {
	if err := c.checkKey(key); err != nil {
		return 0, err
	}
	rev, err := c.backend.Create(ctx, key, value)
	if err == nil {
		c.wrote(rev)
	}
	return rev, err
}

// wrote records the revision of a write made through the cache.
func (c *Cache) wrote(rev int64) {
	for {
		old := c.written.Load()
		if rev <= old || c.written.CompareAndSwap(old, rev) {
			return
		}
	}
}

// Update writes through to the backend and returns the new version with
// Options.Transform applied. Should the transform fail, the write has still
// happened: the untransformed version is returned with the error.
func (c *Cache) Update(ctx context.Context, key string, value []byte, pre store.Precondition) (store.KV, error) {
	if err := c.checkKey(key); err != nil {
		return store.KV{}, err
	}
	kv, err := c.backend.Update(ctx, key, value, pre)
	if err != nil {
		return kv, err
	}
	c.wrote(kv.ModRevision)
	return c.readThrough(kv)
}

// Delete writes through to the backend and returns the last version, stamped
// with the deletion's revision, with Options.Transform applied to it as
// such (as for Update, a failed transform leaves the delete done).
func (c *Cache) Delete(ctx context.Context, key string, pre store.Precondition) (store.KV, error) {
	if err := c.checkKey(key); err != nil {
		return store.KV{}, err
	}
	kv, err := c.backend.Delete(ctx, key, pre)
	if err != nil {
		return kv, err
	}
	c.wrote(kv.ModRevision)
	return c.readThrough(kv)
}

// CurrentRevision is the backend's: the revision of the newest write to any
// prefix. Revision is the cache's own.
func (c *Cache) CurrentRevision(ctx context.Context) (int64, error) {
	if c.closed.Load() {
		return 0, store.ErrClosed
	}
	return c.backend.CurrentRevision(ctx)
}

// Compact compacts the backend. Watches of the cache then refuse to start
// before rev, as the backend's do. (Compactions the backend runs on its own
// do not limit the cache's watches: the event ring does.)
func (c *Cache) Compact(ctx context.Context, rev int64) error {
	if c.closed.Load() {
		return store.ErrClosed
	}
	if err := c.backend.Compact(ctx, rev); err != nil {
		return err
	}
	c.mu.Lock()
	c.compacted = max(c.compacted, rev)
	c.mu.Unlock()
	return nil
}

// CompactedRevision is the backend's.
func (c *Cache) CompactedRevision(ctx context.Context) (int64, error) {
	if c.closed.Load() {
		return 0, store.ErrClosed
	}
	return c.backend.CompactedRevision(ctx)
}
