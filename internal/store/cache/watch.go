package cache

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/trellis-project/trellis/internal/store"
)

// Watch streams the events under prefix, which must lie under the cache's
// prefix (a narrower one filters).
//
//   - AfterRevision 0: every event after the backend's current revision.
//   - AfterRevision the cache has passed: the kept events after it are
//     replayed first. If events after it have already left the event ring
//     (or the cache was filled after it, or it is before a compaction made
//     through the cache), the watch fails with store.ErrCompacted: the
//     client must relist (410 Gone).
//   - AfterRevision the cache has not reached: only events after it.
//
// Events arrive in revision order without gaps or duplicates. Their values
// are shared with the cache and every other watcher: do not modify them. A
// watcher that lets more than Options.WatcherBuffer events pile up is ended
// with store.ErrWatchTooSlow; so are all watchers when the cache has to
// relist. A cache that is not ready waits for it up to Options.WaitTimeout,
// then fails with ErrNotReady.
func (c *Cache) Watch(ctx context.Context, prefix string, opts store.WatchOptions) (store.Watch, error) {
	if c.closed.Load() {
		return nil, store.ErrClosed
	}
	if err := c.inPrefix("watch prefix", prefix); err != nil {
		return nil, err
	}
	after := opts.AfterRevision
	if after == 0 {
		cur, err := c.backend.CurrentRevision(ctx)
		if err != nil {
			return nil, err
		}
		after = cur
	}
	w := &watcher{
		c:              c,
		prefix:         prefix,
		after:          after,
		progressNotify: opts.ProgressNotify,
		limit:          c.opts.WatcherBuffer,
		out:            make(chan store.Event, min(watchChanSize, c.opts.WatcherBuffer)),
		quit:           make(chan struct{}),
	}
	err := c.waitLocked(ctx, func() bool { return c.ready }, false)
	if errors.Is(err, errWaitTimeout) {
		return nil, fmt.Errorf("%w: cannot watch %s yet", ErrNotReady, prefix)
	}
	if err != nil {
		return nil, err
	}
	if floor := max(c.ring.floor, c.compacted); after < floor {
		c.mu.Unlock()
		return nil, fmt.Errorf("%w: watch after %d, the cache keeps events after %d", store.ErrCompacted, after, floor)
	}
	var replay []store.Event
	if after < c.rev {
		replay = c.ring.since(after, prefix)
	}
	w.seen = c.epoch - 1 // nothing received yet
	w.slack = len(replay)
	c.watchers.add(w)
	for _, ev := range replay {
		w.deliver(ev, c.epoch)
	}
	c.mu.Unlock()

	stop := context.AfterFunc(ctx, w.Stop)
	w.mu.Lock()
	if w.done {
		w.mu.Unlock()
		stop()
	} else {
		w.stopCtx = stop
		w.mu.Unlock()
	}
	return w, nil
}

// fanoutLocked hands an applied event to the watchers of its key.
func (c *Cache) fanoutLocked(ev store.Event) {
	var slow []*watcher
	c.watchers.match(ev.KV.Key, func(w *watcher) {
		if ev.Revision <= w.after {
			return
		}
		if !w.deliver(ev, c.epoch) {
			slow = append(slow, w)
		}
	})
	for _, w := range slow {
		c.watchers.remove(w)
		w.finish(store.ErrWatchTooSlow)
	}
}

// progressMode says which ProgressNotify watchers a Progress event goes to.
//
// Backend progress arrives whenever anyone asks the backend for it (every
// consistent list of every cache over it does), so forwarding all of it
// would flood idle watchers; each gets at most about one per
// ProgressInterval unless it was asked for through Cache.RequestProgress.
type progressMode int

const (
	// progressIdle: the ProgressInterval tick, to watchers that received
	// nothing during the whole last interval.
	progressIdle progressMode = iota
	// progressForwarded: backend progress, to watchers that received nothing
	// in the current interval.
	progressForwarded
	// progressAll: to every watcher that asked for progress.
	progressAll
)

// progressLocked sends a Progress event at rev to the watchers mode picks.
func (c *Cache) progressLocked(rev int64, mode progressMode) {
	ev := store.Event{Type: store.Progress, Revision: rev}
	epoch := c.epoch
	if mode == progressIdle {
		// Counted as activity in the interval that just ended, so that an
		// idle watcher gets one every interval, not every other.
		epoch--
	}
	c.watchers.each(func(w *watcher) {
		if !w.progressNotify || rev < w.after {
			return
		}
		switch {
		case mode == progressIdle && w.seen+1 >= c.epoch:
			return
		case mode == progressForwarded && w.seen >= c.epoch:
			return
		}
		w.deliver(ev, epoch)
	})
}

// endWatchersLocked ends every watcher with err.
func (c *Cache) endWatchersLocked(err error) {
	old := c.watchers
	c.watchers = newWatchIndex()
	old.each(func(w *watcher) { w.finish(err) })
}

// watcher is one Watch of the cache.
//
// Its events go straight into out while out has room. When out is full the
// watcher switches to queueing: events wait in queue and a goroutine of its
// own moves them into out as the consumer reads, until the queue is empty
// again. So the dispatcher never blocks, and a lagging watcher costs memory
// only while it lags. out is closed by finish when no drain goroutine runs,
// else by that goroutine.
type watcher struct {
	c              *Cache
	prefix         string
	after          int64 // deliver only events after this revision
	progressNotify bool
	limit          int
	out            chan store.Event
	quit           chan struct{} // closed by finish while a drain goroutine runs

	seen uint64 // epoch of the last delivery; guarded by c.mu

	mu       sync.Mutex
	queue    []store.Event
	slack    int // extra queue allowance for the initial replay
	draining bool
	done     bool
	err      error
	stopCtx  func() bool
}

var _ store.Watch = (*watcher)(nil)

func (w *watcher) Events() <-chan store.Event { return w.out }

func (w *watcher) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Stop ends the watch; Err is then nil, unless the watch had already ended
// for another reason. Safe to call twice.
func (w *watcher) Stop() {
	w.c.mu.Lock()
	w.c.watchers.remove(w)
	w.c.mu.Unlock()
	w.finish(nil)
}

// deliver queues ev for the consumer without blocking. It reports false when
// the watcher is too far behind and must be ended; a Progress event that
// finds no room is dropped instead (a later one says the same). Called with
// c.mu held.
func (w *watcher) deliver(ev store.Event, epoch uint64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return true
	}
	progress := ev.Type == store.Progress
	if !w.draining {
		select {
		case w.out <- ev:
			w.seen = epoch
			return true
		default:
		}
		if progress {
			return true
		}
	}
	if len(w.queue)+len(w.out) >= w.limit+w.slack {
		return progress
	}
	w.queue = append(w.queue, ev)
	w.seen = epoch
	if !w.draining {
		w.draining = true
		go w.drain()
	}
	return true
}

// drain moves queued events into out until the queue is empty or the watch
// ends.
func (w *watcher) drain() {
	for {
		w.mu.Lock()
		if w.done {
			w.mu.Unlock()
			close(w.out)
			return
		}
		if len(w.queue) == 0 {
			w.draining = false
			w.queue = nil
			w.slack = 0
			w.mu.Unlock()
			return
		}
		ev := w.queue[0]
		w.queue[0] = store.Event{}
		w.queue = w.queue[1:]
		w.mu.Unlock()
		select {
		case w.out <- ev:
		case <-w.quit:
			close(w.out)
			return
		}
	}
}

// finish ends the watch with err (nil: stopped by its consumer). The caller
// has removed it from the cache's index.
func (w *watcher) finish(err error) {
	w.mu.Lock()
	if w.done {
		w.mu.Unlock()
		return
	}
	w.done = true
	w.err = err
	w.queue = nil
	if w.draining {
		close(w.quit)
	} else {
		close(w.out)
	}
	stop := w.stopCtx
	w.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// watchIndex finds the watchers of a key without looking at the others:
// watchers are grouped by prefix, and a key's groups are found by looking up
// its own prefixes of each length in use.
type watchIndex struct {
	groups map[string]map[*watcher]struct{}
	lens   []int       // distinct lengths of the prefixes in groups, ascending
	perLen map[int]int // number of groups with a prefix of each length
}

func newWatchIndex() watchIndex {
	return watchIndex{groups: map[string]map[*watcher]struct{}{}, perLen: map[int]int{}}
}

func (x *watchIndex) add(w *watcher) {
	g := x.groups[w.prefix]
	if g == nil {
		g = map[*watcher]struct{}{}
		x.groups[w.prefix] = g
		n := len(w.prefix)
		if x.perLen[n]++; x.perLen[n] == 1 {
			i, _ := slices.BinarySearch(x.lens, n)
			x.lens = slices.Insert(slices.Clone(x.lens), i, n)
		}
	}
	g[w] = struct{}{}
}

func (x *watchIndex) remove(w *watcher) {
	g := x.groups[w.prefix]
	if _, ok := g[w]; !ok {
		return
	}
	delete(g, w)
	if len(g) > 0 {
		return
	}
	delete(x.groups, w.prefix)
	n := len(w.prefix)
	if x.perLen[n]--; x.perLen[n] == 0 {
		delete(x.perLen, n)
		i, _ := slices.BinarySearch(x.lens, n)
		x.lens = slices.Delete(slices.Clone(x.lens), i, i+1)
	}
}

// match calls fn for every watcher whose prefix the key has. fn must not
// change the index.
func (x *watchIndex) match(key string, fn func(*watcher)) {
	for _, n := range x.lens {
		if n > len(key) {
			return
		}
		for w := range x.groups[key[:n]] {
			fn(w)
		}
	}
}

// each calls fn for every watcher. fn must not change the index.
func (x *watchIndex) each(fn func(*watcher)) {
	for _, g := range x.groups {
		for w := range g {
			fn(w)
		}
	}
}

// ring keeps the newest applied events, oldest first, for watches that
// resume from a revision.
type ring struct {
	size  int
	buf   []store.Event // grows to size, then wraps
	head  int           // index of the oldest event once buf is full
	floor int64         // every event after floor is in buf
}

func (r *ring) reset(floor int64) {
	r.buf, r.head, r.floor = nil, 0, floor
}

func (r *ring) push(ev store.Event) {
	if len(r.buf) < r.size {
		r.buf = append(r.buf, ev)
		return
	}
	r.floor = r.buf[r.head].Revision
	r.buf[r.head] = ev
	r.head = (r.head + 1) % len(r.buf)
}

func (r *ring) at(i int) *store.Event {
	return &r.buf[(r.head+i)%len(r.buf)]
}

// since returns the kept events after rev under prefix.
func (r *ring) since(rev int64, prefix string) []store.Event {
	n := len(r.buf)
	i := sort.Search(n, func(i int) bool { return r.at(i).Revision > rev })
	var out []store.Event
	for ; i < n; i++ {
		if ev := r.at(i); strings.HasPrefix(ev.KV.Key, prefix) {
			out = append(out, *ev)
		}
	}
	return out
}
