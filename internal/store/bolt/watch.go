package bolt

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/trellis-project/trellis/internal/store"
)

// hub fans committed events out to watchers. publish only appends to each
// watcher's queue, so a slow watcher never delays the committer or the
// other watchers; a watcher whose queue passes the limit is dropped.
type hub struct {
	s        *Store
	mu       sync.Mutex
	rev      int64 // newest revision published
	watchers map[*watcher]struct{}
}

func newHub(s *Store, rev int64) *hub {
	return &hub{s: s, rev: rev, watchers: map[*watcher]struct{}{}}
}

func (h *hub) publish(events []store.Event, rev int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.rev = rev
	for w := range h.watchers {
		w.enqueue(events)
	}
}

// progress queues a Progress event at the newest revision for every
// watcher that asked for them.
func (h *hub) progress() {
	h.mu.Lock()
	defer h.mu.Unlock()
	ev := []store.Event{{Type: store.Progress, Revision: h.rev}}
	for w := range h.watchers {
		if w.progressNotify {
			w.enqueue(ev)
		}
	}
}

func (h *hub) closeAll(err error) {
	h.mu.Lock()
	ws := h.watchers
	h.watchers = map[*watcher]struct{}{}
	h.mu.Unlock()
	for w := range ws {
		w.finish(err)
	}
}

func (h *hub) remove(w *watcher) {
	h.mu.Lock()
	delete(h.watchers, w)
	h.mu.Unlock()
}

type watcher struct {
	hub            *hub
	prefix         string
	after          int64 // deliver only events newer than this
	liveFrom       int64 // queue holds events newer than this
	progressNotify bool
	limit          int

	mu      sync.Mutex
	queue   []store.Event
	wake    chan struct{} // capacity 1: "queue changed"
	err     error
	done    bool
	stopped chan struct{}
	stop    sync.Once

	out chan store.Event
}

var _ store.Watch = (*watcher)(nil)

func (w *watcher) Events() <-chan store.Event { return w.out }

func (w *watcher) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

func (w *watcher) Stop() {
	w.stop.Do(func() { close(w.stopped) })
}

// enqueue is called with the hub lock held.
func (w *watcher) enqueue(events []store.Event) {
	w.mu.Lock()
	if w.done {
		w.mu.Unlock()
		return
	}
	for _, ev := range events {
		if ev.Type != store.Progress && !strings.HasPrefix(ev.KV.Key, w.prefix) {
			continue
		}
		w.queue = append(w.queue, ev)
	}
	tooSlow := len(w.queue) > w.limit
	w.mu.Unlock()
	if tooSlow {
		w.finishLocked(store.ErrWatchTooSlow)
		return
	}
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// finishLocked ends the watch from under the hub lock.
func (w *watcher) finishLocked(err error) {
	delete(w.hub.watchers, w)
	w.finish(err)
}

func (w *watcher) finish(err error) {
	w.mu.Lock()
	if !w.done {
		w.done = true
		w.err = err
		w.queue = nil
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (s *Store) Watch(ctx context.Context, prefix string, opts store.WatchOptions) (store.Watch, error) {
	if s.closed.Load() {
		return nil, store.ErrClosed
	}
	if err := validatePrefix(prefix); err != nil {
		return nil, err
	}
	if compacted := s.compacted.Load(); opts.AfterRevision > 0 && opts.AfterRevision < compacted {
		return nil, fmt.Errorf("%w: watch after %d, compacted at %d", store.ErrCompacted, opts.AfterRevision, compacted)
	}
	w := &watcher{
		hub:            s.hub,
		prefix:         prefix,
		progressNotify: opts.ProgressNotify,
		limit:          s.opts.WatchQueueLimit,
		wake:           make(chan struct{}, 1),
		stopped:        make(chan struct{}),
		out:            make(chan store.Event, 100),
	}
	s.hub.mu.Lock()
	w.liveFrom = s.hub.rev
	w.after = opts.AfterRevision
	if w.after == 0 {
		w.after = w.liveFrom
	}
	s.hub.watchers[w] = struct{}{}
	s.hub.mu.Unlock()

	go w.run(ctx)
	return w, nil
}

func (w *watcher) run(ctx context.Context) {
	defer close(w.out)
	defer w.hub.remove(w)
	if w.after < w.liveFrom {
		if err := w.replay(ctx); err != nil {
			w.finish(err)
			return
		}
	}
	for {
		w.mu.Lock()
		batch, done, err := w.queue, w.done, w.err
		w.queue = nil
		w.mu.Unlock()
		if done {
			_ = err
			return
		}
		for _, ev := range batch {
			if ev.Revision <= w.after && (ev.Type != store.Progress || ev.Revision < w.after) {
				continue // before the watch's start (progress: below it)
			}
			if !w.send(ctx, ev) {
				return
			}
		}
		select {
		case <-w.wake:
		case <-ctx.Done():
			w.finish(nil)
			return
		case <-w.stopped:
			w.finish(nil)
			return
		}
	}
}

func (w *watcher) send(ctx context.Context, ev store.Event) bool {
	select {
	case w.out <- ev:
		return true
	case <-ctx.Done():
		w.finish(nil)
	case <-w.stopped:
		w.finish(nil)
	}
	return false
}

// replay sends the retained history in (after, liveFrom] from one read
// transaction; the live queue covers everything after liveFrom.
func (w *watcher) replay(ctx context.Context) error {
	var events []store.Event
	err := w.hub.s.view(func(tx *bbolt.Tx) error {
		if c := readBE64(tx.Bucket(bucketMeta).Get(metaCompacted)); w.after < c {
			return fmt.Errorf("%w: watch after %d, compacted at %d", store.ErrCompacted, w.after, c)
		}
		hist := tx.Bucket(bucketHistory)
		c := tx.Bucket(bucketLog).Cursor()
		for k, v := c.Seek(be64(w.after + 1)); k != nil; k, v = c.Next() {
			rev := readBE64(k)
			if rev > w.liveFrom {
				break
			}
			key := string(v)
			if !strings.HasPrefix(key, w.prefix) {
				continue
			}
			ev, err := historyEvent(hist, key, rev)
			if err != nil {
				return err
			}
			events = append(events, ev)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, ev := range events {
		if !w.send(ctx, ev) {
			return nil
		}
	}
	w.after = w.liveFrom
	return nil
}

// historyEvent rebuilds the event of revision rev from key's versions.
func historyEvent(hist *bbolt.Bucket, key string, rev int64) (store.Event, error) {
	c := hist.Cursor()
	k, v := c.Seek(historyKey(key, rev))
	if k == nil {
		return store.Event{}, fmt.Errorf("history of %s lacks revision %d", key, rev)
	}
	if _, r, err := splitHistoryKey(k); err != nil || r != rev {
		return store.Event{}, fmt.Errorf("history of %s lacks revision %d", key, rev)
	}
	rec, err := decodeRecord(v)
	if err != nil {
		return store.Event{}, err
	}
	var prev *store.KV
	if pk, pv := c.Prev(); pk != nil {
		if pkey, prevRev, err := splitHistoryKey(pk); err == nil && pkey == key {
			if p, err := decodeRecord(pv); err == nil && !p.tombstone {
				kv := p.kv(key, prevRev)
				prev = &kv
			}
		}
	}
	if rec.tombstone {
		if prev == nil {
			return store.Event{}, fmt.Errorf("history of %s lacks the version deleted at %d", key, rev)
		}
		return store.Event{Type: store.Delete, KV: store.KV{Key: key, ModRevision: rev}, Prev: prev, Revision: rev}, nil
	}
	if rec.createRev == rev {
		prev = nil
	}
	return store.Event{Type: store.Put, KV: rec.kv(key, rev), Prev: prev, Revision: rev}, nil
}

// RequestProgress makes every watch that asked for progress notifications
// receive a Progress event at the current revision, after all events
// before it.
func (s *Store) RequestProgress(ctx context.Context) error {
	s.hub.progress()
	return nil
}

// progressInterval is how often idle watches that asked for progress
// notifications get one.
const progressInterval = time.Second

func (s *Store) progressLoop() {
	defer s.wg.Done()
	t := time.NewTicker(progressInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.hub.progress()
		}
	}
}
