package storetest_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/trellis-project/trellis/internal/store"
)

// memStore is a deliberately plain reference store: it keeps every event and
// answers a read at an old revision by replaying the log. It exists to check
// the suite from a second direction (a model that passes it) and, through
// its fault switch, to show that the suite notices each kind of mistake.
type memStore struct {
	fault string // one of the faults in faults_test.go, or ""

	mu        sync.Mutex
	rev       int64
	compacted int64
	log       []store.Event // log[i].Revision == i+1
	latest    map[string]store.KV
	changed   chan struct{} // closed and replaced on every write
	done      chan struct{} // closed by Close
	closed    bool
}

var _ store.Store = (*memStore)(nil)

func newMemStore(fault string) *memStore {
	return &memStore{
		fault:   fault,
		latest:  map[string]store.KV{},
		changed: make(chan struct{}),
		done:    make(chan struct{}),
	}
}

func cloneKV(kv store.KV) store.KV {
	kv.Value = bytes.Clone(kv.Value)
	return kv
}

func (m *memStore) has(fault string) bool { return m.fault == fault }

// write appends ev at the next revision; m.mu is held.
func (m *memStore) write(ev store.Event) {
	m.rev++
	ev.Revision = m.rev
	ev.KV.ModRevision = m.rev
	if ev.Type == store.Put {
		if ev.Prev == nil {
			ev.KV.CreateRevision = m.rev
		}
		m.latest[ev.KV.Key] = ev.KV
	} else {
		delete(m.latest, ev.KV.Key)
	}
	m.log = append(m.log, ev)
	close(m.changed)
	m.changed = make(chan struct{})
}

func (m *memStore) lockOpen() error {
	m.mu.Lock()
	if m.closed && !m.has("open-after-close") {
		m.mu.Unlock()
		return store.ErrClosed
	}
	return nil
}

func (m *memStore) Get(_ context.Context, key string) (store.KV, error) {
	if err := store.ValidateKey(key); err != nil {
		return store.KV{}, err
	}
	if err := m.lockOpen(); err != nil {
		return store.KV{}, err
	}
	defer m.mu.Unlock()
	kv, ok := m.latest[key]
	if !ok {
		return store.KV{}, store.ErrNotFound
	}
	if m.has("shared-values") {
		return kv, nil
	}
	return cloneKV(kv), nil
}

func (m *memStore) Create(_ context.Context, key string, value []byte) (int64, error) {
	if err := errors.Join(store.ValidateKey(key), store.ValidateValue(value)); err != nil {
		return 0, err
	}
	if err := m.lockOpen(); err != nil {
		return 0, err
	}
	defer m.mu.Unlock()
	var prev *store.KV
	if cur, ok := m.latest[key]; ok {
		if !m.has("create-overwrites") {
			return 0, store.ErrExists
		}
		prev = &cur
	}
	kv := store.KV{Key: key, Value: bytes.Clone(value)}
	if prev != nil {
		kv.CreateRevision = prev.CreateRevision
	}
	m.write(store.Event{Type: store.Put, KV: kv, Prev: prev})
	return m.rev, nil
}

// guard applies a precondition to key; m.mu is held.
func (m *memStore) guard(key string, pre store.Precondition) (store.KV, error) {
	cur, ok := m.latest[key]
	if !ok {
		return store.KV{}, store.ErrNotFound
	}
	if pre.ModRevision != 0 && pre.ModRevision != cur.ModRevision && !m.has("ignore-precondition") {
		return store.KV{}, store.ErrConflict
	}
	return cur, nil
}

func (m *memStore) Update(_ context.Context, key string, value []byte, pre store.Precondition) (store.KV, error) {
	if err := errors.Join(store.ValidateKey(key), store.ValidateValue(value)); err != nil {
		return store.KV{}, err
	}
	if err := m.lockOpen(); err != nil {
		return store.KV{}, err
	}
	defer m.mu.Unlock()
	cur, err := m.guard(key, pre)
	if err != nil {
		return store.KV{}, err
	}
	kv := store.KV{Key: key, Value: bytes.Clone(value), CreateRevision: cur.CreateRevision}
	m.write(store.Event{Type: store.Put, KV: kv, Prev: &cur})
	return cloneKV(m.latest[key]), nil
}

func (m *memStore) Delete(_ context.Context, key string, pre store.Precondition) (store.KV, error) {
	if err := store.ValidateKey(key); err != nil {
		return store.KV{}, err
	}
	if err := m.lockOpen(); err != nil {
		return store.KV{}, err
	}
	defer m.mu.Unlock()
	cur, err := m.guard(key, pre)
	if err != nil {
		return store.KV{}, err
	}
	m.write(store.Event{Type: store.Delete, KV: store.KV{Key: key}, Prev: &cur})
	out := cloneKV(cur)
	if !m.has("delete-keeps-revision") {
		out.ModRevision = m.rev
	}
	return out, nil
}

func (m *memStore) List(_ context.Context, prefix string, opts store.ListOptions) (store.ListResult, error) {
	if prefix != "" {
		if err := store.ValidateKey(prefix); err != nil {
			return store.ListResult{}, err
		}
	}
	if opts.StartKey != "" && !strings.HasPrefix(opts.StartKey, prefix) {
		return store.ListResult{}, store.ErrInvalidKey
	}
	if err := m.lockOpen(); err != nil {
		return store.ListResult{}, err
	}
	defer m.mu.Unlock()
	rev := m.rev
	switch opts.Match {
	case store.Exact:
		if opts.Revision > m.rev {
			return store.ListResult{}, store.ErrFutureRevision
		}
		if opts.Revision <= m.compacted && !m.has("read-compacted") {
			return store.ListResult{}, store.ErrCompacted
		}
		if opts.Revision > 0 && !m.has("exact-reads-latest") {
			rev = opts.Revision
		}
	case store.NotOlderThan:
		if opts.Revision > m.rev {
			return store.ListResult{}, store.ErrFutureRevision
		}
	}
	state := map[string]store.KV{}
	for _, ev := range m.log[:rev] {
		if ev.Type == store.Put {
			state[ev.KV.Key] = ev.KV
		} else {
			delete(state, ev.KV.Key)
		}
	}
	var keys []string
	for k := range state {
		if !strings.HasPrefix(k, prefix) || k < opts.StartKey || (m.has("start-key-exclusive") && k == opts.StartKey) {
			continue
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	res := store.ListResult{Revision: rev, KVs: []store.KV{}}
	if opts.Match == store.Exact && opts.Revision > 0 {
		res.Revision = opts.Revision
	}
	if opts.Limit > 0 && int64(len(keys)) > opts.Limit && !m.has("ignore-limit") {
		keys = keys[:opts.Limit]
		res.More = !m.has("never-more")
	}
	for _, k := range keys {
		res.KVs = append(res.KVs, cloneKV(state[k]))
	}
	return res, nil
}

func (m *memStore) CurrentRevision(context.Context) (int64, error) {
	if err := m.lockOpen(); err != nil {
		return 0, err
	}
	defer m.mu.Unlock()
	return m.rev, nil
}

func (m *memStore) Compact(_ context.Context, rev int64) error {
	if err := m.lockOpen(); err != nil {
		return err
	}
	defer m.mu.Unlock()
	if rev > m.rev {
		return store.ErrFutureRevision
	}
	if rev-1 > m.compacted {
		m.compacted = rev - 1
	}
	return nil
}

func (m *memStore) CompactedRevision(context.Context) (int64, error) {
	if err := m.lockOpen(); err != nil {
		return 0, err
	}
	defer m.mu.Unlock()
	return m.compacted, nil
}

func (m *memStore) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.closed {
		m.closed = true
		close(m.done)
	}
	return nil
}

// memProgressInterval is how long a memStore watch stays idle before it
// sends a Progress event.
const memProgressInterval = 20 * time.Millisecond

func (m *memStore) Watch(ctx context.Context, prefix string, opts store.WatchOptions) (store.Watch, error) {
	if prefix != "" {
		if err := store.ValidateKey(prefix); err != nil {
			return nil, err
		}
	}
	if err := m.lockOpen(); err != nil {
		return nil, err
	}
	after := opts.AfterRevision
	if after == 0 {
		after = m.rev
		if m.has("from-now-replays-last") && after > 0 {
			after--
		}
	}
	if m.compacted > 0 && after <= m.compacted {
		m.mu.Unlock()
		return nil, store.ErrCompacted
	}
	m.mu.Unlock()
	if m.has("watch-sees-siblings") {
		prefix = strings.TrimSuffix(prefix, "/")
	}
	w := &memWatch{events: make(chan store.Event), stop: make(chan struct{}), ended: make(chan struct{})}
	go w.run(ctx, m, prefix, after, opts.ProgressNotify)
	return w, nil
}

type memWatch struct {
	events   chan store.Event
	stop     chan struct{}
	stopOnce sync.Once
	ended    chan struct{}

	mu  sync.Mutex
	err error
}

func (w *memWatch) Events() <-chan store.Event { return w.events }

func (w *memWatch) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

func (w *memWatch) Stop() {
	w.stopOnce.Do(func() { close(w.stop) })
	<-w.ended
}

func (w *memWatch) run(ctx context.Context, m *memStore, prefix string, after int64, progress bool) {
	defer close(w.ended)
	defer close(w.events)
	end := func(err error) {
		w.mu.Lock()
		w.err = err
		w.mu.Unlock()
	}
	next := after + 1
	skipped := false
	for {
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			end(store.ErrClosed)
			return
		}
		if next <= m.rev {
			ev := m.log[next-1]
			m.mu.Unlock()
			next++
			if !strings.HasPrefix(ev.KV.Key, prefix) {
				continue
			}
			if m.has("watch-skips-first") && !skipped {
				skipped = true
				continue
			}
			ev.KV = cloneKV(ev.KV)
			if ev.Prev != nil {
				p := cloneKV(*ev.Prev)
				ev.Prev = &p
			}
			if ev.Type == store.Delete && m.has("delete-event-without-prev") {
				ev.Prev = nil
			}
			select {
			case w.events <- ev:
			case <-ctx.Done():
				return
			case <-w.stop:
				return
			case <-m.done:
				end(store.ErrClosed)
				return
			}
			continue
		}
		changed := m.changed
		m.mu.Unlock()
		var tick <-chan time.Time
		if progress && !m.has("no-progress") {
			tick = time.After(memProgressInterval)
		}
		select {
		case <-changed:
		case <-tick:
			select {
			case w.events <- store.Event{Type: store.Progress, Revision: next - 1}:
			case <-ctx.Done():
				return
			case <-w.stop:
				return
			case <-m.done:
				end(store.ErrClosed)
				return
			}
		case <-ctx.Done():
			return
		case <-w.stop:
			return
		case <-m.done:
			end(store.ErrClosed)
			return
		}
	}
}
