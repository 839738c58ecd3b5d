package cache_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trellis-project/trellis/internal/store"
	"github.com/trellis-project/trellis/internal/store/bolt"
	"github.com/trellis-project/trellis/internal/store/cache"
)

const prefix = "/registry/things/"

// eventTimeout bounds every wait for an event, so a lost event fails the
// test instead of hanging it.
const eventTimeout = 5 * time.Second

func openBolt(t testing.TB) *bolt.Store {
	t.Helper()
	s, err := bolt.Open(bolt.Options{Dir: t.TempDir(), CompactionInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	// Revision 0 is special (AfterRevision 0 means "from now"): start every
	// test past it, with a write outside the cache's prefix.
	create(t, s, "/registry/seed", "")
	return s
}

// catchUp waits until the cache has applied every write made so far, by a
// consistent list.
func catchUp(t testing.TB, c *cache.Cache) {
	t.Helper()
	if _, err := c.List(context.Background(), prefix, store.ListOptions{Limit: 1}); err != nil {
		t.Fatal(err)
	}
}

// start runs a cache over backend and waits until it is ready.
func start(t testing.TB, backend store.Store, opts cache.Options) *cache.Cache {
	t.Helper()
	c, err := cache.New(context.Background(), backend, prefix, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.WaitReady(ctx); err != nil {
		t.Fatalf("cache not ready: %v (last error %v)", err, c.LastError())
	}
	return c
}

func create(t testing.TB, s store.Store, key, value string) int64 {
	t.Helper()
	rev, err := s.Create(context.Background(), key, []byte(value))
	if err != nil {
		t.Fatalf("Create(%q): %v", key, err)
	}
	return rev
}

// createMany creates keys concurrently, so that the bolt backend commits
// them in a few group commits instead of one fsync each.
func createMany(t testing.TB, s store.Store, keys []string, value func(key string) []byte) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	next := atomic.Int64{}
	for range 32 {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(len(keys)) {
					return
				}
				if _, err := s.Create(context.Background(), keys[i], value(keys[i])); err != nil {
					select {
					case errs <- err:
					default:
					}
					return
				}
			}
		})
	}
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
}

func next(t testing.TB, w store.Watch) store.Event {
	t.Helper()
	select {
	case ev, ok := <-w.Events():
		if !ok {
			t.Fatalf("watch ended early: Err = %v", w.Err())
		}
		return ev
	case <-time.After(eventTimeout):
		t.Fatalf("no event within %v", eventTimeout)
	}
	panic("unreachable")
}

// nextChange skips Progress events.
func nextChange(t testing.TB, w store.Watch) store.Event {
	t.Helper()
	for {
		if ev := next(t, w); ev.Type != store.Progress {
			return ev
		}
	}
}

// drain reads the watch until it ends and returns its events and Err.
func drain(t testing.TB, w store.Watch) ([]store.Event, error) {
	t.Helper()
	var got []store.Event
	deadline := time.After(eventTimeout)
	for {
		select {
		case ev, ok := <-w.Events():
			if !ok {
				return got, w.Err()
			}
			got = append(got, ev)
		case <-deadline:
			t.Fatalf("watch still open after %v", eventTimeout)
		}
	}
}

func expectNoEvent(t testing.TB, w store.Watch, d time.Duration) {
	t.Helper()
	select {
	case ev, ok := <-w.Events():
		if ok {
			t.Fatalf("unexpected event %s", fmtEvent(ev))
		}
		t.Fatalf("watch ended: Err = %v", w.Err())
	case <-time.After(d):
	}
}

func kvEqual(a, b store.KV) bool {
	return a.Key == b.Key && bytes.Equal(a.Value, b.Value) &&
		a.CreateRevision == b.CreateRevision && a.ModRevision == b.ModRevision
}

func fmtKV(kv store.KV) string {
	return fmt.Sprintf("{%s=%q %d/%d}", kv.Key, kv.Value, kv.CreateRevision, kv.ModRevision)
}

func fmtEvent(ev store.Event) string {
	prev := "nil"
	if ev.Prev != nil {
		prev = fmtKV(*ev.Prev)
	}
	return fmt.Sprintf("%v@%d %s prev=%s", ev.Type, ev.Revision, fmtKV(ev.KV), prev)
}

func eventEqual(a, b store.Event) bool {
	if a.Type != b.Type || a.Revision != b.Revision || (a.Prev == nil) != (b.Prev == nil) {
		return false
	}
	if a.Prev != nil && !kvEqual(*a.Prev, *b.Prev) {
		return false
	}
	if a.Type == store.Delete {
		return a.KV.Key == b.KV.Key && a.KV.ModRevision == b.KV.ModRevision && len(a.KV.Value) == 0
	}
	return kvEqual(a.KV, b.KV)
}

func expectEvents(t testing.TB, w store.Watch, want []store.Event) {
	t.Helper()
	for i, wantEv := range want {
		if got := next(t, w); !eventEqual(got, wantEv) {
			t.Fatalf("event %d of %d = %s, want %s", i+1, len(want), fmtEvent(got), fmtEvent(wantEv))
		}
	}
}

// expectSameList compares a cache's list with the backend's, read as a
// second route to the same data.
func expectSameList(t testing.TB, what string, got, want store.ListResult) {
	t.Helper()
	if got.Revision != want.Revision || got.More != want.More || len(got.KVs) != len(want.KVs) {
		t.Fatalf("%s: cache list has %d KVs at revision %d (more %v), backend %d at %d (more %v)",
			what, len(got.KVs), got.Revision, got.More, len(want.KVs), want.Revision, want.More)
	}
	for i := range got.KVs {
		if !kvEqual(got.KVs[i], want.KVs[i]) {
			t.Fatalf("%s: KV %d = %s, backend has %s", what, i, fmtKV(got.KVs[i]), fmtKV(want.KVs[i]))
		}
	}
}

// wantPage reads the backend's whole prefix at rev and cuts the page out of
// it here, so that the comparison does not rest on the backend's own paging.
func wantPage(t testing.TB, b store.Store, rev int64, p string, opts store.ListOptions) store.ListResult {
	t.Helper()
	all, err := b.List(context.Background(), prefix, store.ListOptions{Revision: rev, Match: store.Exact})
	if err != nil {
		t.Fatal(err)
	}
	res := store.ListResult{Revision: rev}
	for _, kv := range all.KVs {
		if !strings.HasPrefix(kv.Key, p) || kv.Key < opts.StartKey {
			continue
		}
		if opts.Limit > 0 && int64(len(res.KVs)) == opts.Limit {
			res.More = true
			break
		}
		res.KVs = append(res.KVs, kv)
	}
	return res
}

// model performs writes and records the events they must produce.
type model struct {
	t      testing.TB
	s      store.Store
	latest map[string]store.KV
	events []store.Event
}

func newModel(t testing.TB, s store.Store) *model {
	return &model{t: t, s: s, latest: map[string]store.KV{}}
}

func (m *model) create(key, value string) {
	m.t.Helper()
	rev := create(m.t, m.s, key, value)
	kv := store.KV{Key: key, Value: []byte(value), CreateRevision: rev, ModRevision: rev}
	m.latest[key] = kv
	m.events = append(m.events, store.Event{Type: store.Put, KV: kv, Revision: rev})
}

func (m *model) update(key, value string) {
	m.t.Helper()
	prev := m.latest[key]
	kv, err := m.s.Update(context.Background(), key, []byte(value), store.Precondition{})
	if err != nil {
		m.t.Fatalf("Update(%q): %v", key, err)
	}
	m.latest[key] = kv
	m.events = append(m.events, store.Event{Type: store.Put, KV: kv, Prev: &prev, Revision: kv.ModRevision})
}

func (m *model) delete(key string) {
	m.t.Helper()
	prev := m.latest[key]
	kv, err := m.s.Delete(context.Background(), key, store.Precondition{})
	if err != nil {
		m.t.Fatalf("Delete(%q): %v", key, err)
	}
	delete(m.latest, key)
	m.events = append(m.events, store.Event{Type: store.Delete, KV: store.KV{Key: key, ModRevision: kv.ModRevision}, Prev: &prev, Revision: kv.ModRevision})
}

// after returns the recorded events under p after rev.
func (m *model) after(p string, rev int64) []store.Event {
	var out []store.Event
	for _, ev := range m.events {
		if ev.Revision > rev && strings.HasPrefix(ev.KV.Key, p) {
			out = append(out, ev)
		}
	}
	return out
}

// listCases are the list shapes compared between cache and backend.
func listCases(mid string) []struct {
	name   string
	prefix string
	opts   store.ListOptions
} {
	return []struct {
		name   string
		prefix string
		opts   store.ListOptions
	}{
		{"All", prefix, store.ListOptions{}},
		{"Limit1", prefix, store.ListOptions{Limit: 1}},
		{"Limit999", prefix, store.ListOptions{Limit: 999}},
		{"Limit1000", prefix, store.ListOptions{Limit: 1000}},
		{"Limit5000", prefix, store.ListOptions{Limit: 5000}},
		{"StartKey", prefix, store.ListOptions{StartKey: mid}},
		{"StartKeySuccessor", prefix, store.ListOptions{StartKey: mid + "\x00", Limit: 10}},
		{"Namespace", prefix + "ns1/", store.ListOptions{}},
		{"BytePrefix", prefix + "ns1", store.ListOptions{}},
		{"NamespaceLimit", prefix + "ns2/", store.ListOptions{Limit: 7}},
		{"Empty", prefix + "nothing/", store.ListOptions{}},
	}
}

func TestFillCopiesBackendAcrossPages(t *testing.T) {
	b := openBolt(t)
	// More keys than one fill page, in several namespaces, with history
	// (updates and deletes) and neighbours outside the prefix.
	var keys []string
	for i := range 2500 {
		keys = append(keys, fmt.Sprintf("%sns%d/obj-%04d", prefix, i%12, i))
	}
	createMany(t, b, keys, func(k string) []byte { return []byte("v1 " + k) })
	createMany(t, b, []string{"/registry/thingsx/a", "/registry/other/a", "/registry/thing"}, func(string) []byte { return []byte("outside") })
	ctx := context.Background()
	for i := 0; i < len(keys); i += 7 {
		if _, err := b.Update(ctx, keys[i], []byte("v2"), store.Precondition{}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 3; i < len(keys); i += 11 {
		if _, err := b.Delete(ctx, keys[i], store.Precondition{}); err != nil {
			t.Fatal(err)
		}
	}

	c := start(t, b, cache.Options{})
	cur, _ := b.CurrentRevision(ctx)
	if c.Revision() != cur || !c.Ready() {
		t.Fatalf("after fill: Revision %d, Ready %v; backend at %d", c.Revision(), c.Ready(), cur)
	}
	for _, tc := range listCases(keys[1234]) {
		t.Run(tc.name, func(t *testing.T) {
			got, err := c.List(ctx, tc.prefix, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			expectSameList(t, "List", got, wantPage(t, b, cur, tc.prefix, tc.opts))
		})
	}
}

// TestListFollowsWrites applies random writes through the cache and checks
// after each round that every list shape, and reads at older revisions,
// match the backend's.
func TestListFollowsWrites(t *testing.T) {
	b := openBolt(t)
	c := start(t, b, cache.Options{})
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	live := map[string]bool{}
	var revs []int64
	for round := range 6 {
		for range 40 {
			key := fmt.Sprintf("%sns%d/k%02d", prefix, rng.IntN(3), rng.IntN(30))
			var err error
			switch {
			case !live[key]:
				_, err = c.Create(ctx, key, fmt.Appendf(nil, "r%d", round))
				live[key] = true
			case rng.IntN(3) == 0:
				_, err = c.Delete(ctx, key, store.Precondition{})
				live[key] = false
			default:
				_, err = c.Update(ctx, key, fmt.Appendf(nil, "r%d-%d", round, rng.Int()), store.Precondition{})
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		rev, _ := b.CurrentRevision(ctx)
		revs = append(revs, rev)
		for _, tc := range listCases(prefix + "ns1/k15") {
			got, err := c.List(ctx, tc.prefix, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			expectSameList(t, fmt.Sprintf("round %d %s", round, tc.name), got, wantPage(t, b, rev, tc.prefix, tc.opts))
		}
	}
	// Exact reads: the cache's own revision from memory, older ones through
	// the backend; NotOlderThan from memory.
	for _, rev := range revs {
		for _, opts := range []store.ListOptions{
			{Revision: rev, Match: store.Exact},
			{Revision: rev, Match: store.Exact, Limit: 5},
		} {
			got, err := c.List(ctx, prefix, opts)
			if err != nil {
				t.Fatal(err)
			}
			expectSameList(t, fmt.Sprintf("Exact %d", rev), got, wantPage(t, b, rev, prefix, opts))
		}
	}
	got, err := c.List(ctx, prefix, store.ListOptions{Revision: revs[0], Match: store.NotOlderThan})
	if err != nil {
		t.Fatal(err)
	}
	expectSameList(t, "NotOlderThan", got, wantPage(t, b, revs[len(revs)-1], prefix, store.ListOptions{}))
}

// noProgress hides the backend's RequestProgress.
type noProgress struct{ store.Store }

// TestConsistentListAfterWriteElsewhere writes to another prefix only: the
// cache sees no event, and must learn the revision from a progress event.
func TestConsistentListAfterWriteElsewhere(t *testing.T) {
	b := openBolt(t)
	c := start(t, b, cache.Options{WaitTimeout: time.Minute})
	create(t, c, prefix+"a", "x")
	rev := create(t, b, "/registry/other/x", "y")

	// Were the cache to wait for the minute-long timeout and fall back, the
	// context would end first.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	res, err := c.List(ctx, prefix, store.ListOptions{})
	if err != nil {
		t.Fatalf("consistent List: %v", err)
	}
	if res.Revision < rev || len(res.KVs) != 1 {
		t.Fatalf("consistent List = %d KVs at revision %d, want 1 at >= %d", len(res.KVs), res.Revision, rev)
	}
	if c.Revision() < rev {
		t.Fatalf("cache Revision %d after a consistent list at %d", c.Revision(), rev)
	}

	rev = create(t, b, "/registry/other/y", "y")
	res, err = c.List(ctx, prefix, store.ListOptions{Revision: rev, Match: store.NotOlderThan})
	if err != nil || res.Revision < rev {
		t.Fatalf("NotOlderThan %d: revision %d, %v", rev, res.Revision, err)
	}
	rev = create(t, b, "/registry/other/z", "y")
	if kv, err := c.GetCached(ctx, prefix+"a", rev); err != nil || string(kv.Value) != "x" {
		t.Fatalf("GetCached at %d = %s, %v", rev, fmtKV(kv), err)
	}
}

// TestWaitsTimeOut uses a backend that cannot be asked for progress, so a
// write elsewhere leaves the cache behind.
func TestWaitsTimeOut(t *testing.T) {
	b := openBolt(t)
	c := start(t, noProgress{b}, cache.Options{WaitTimeout: 200 * time.Millisecond})
	create(t, c, prefix+"a", "x")
	rev := create(t, b, "/registry/other/x", "y")
	ctx := context.Background()

	// A consistent list falls back to the backend.
	res, err := c.List(ctx, prefix, store.ListOptions{})
	if err != nil || res.Revision != rev || len(res.KVs) != 1 {
		t.Fatalf("consistent List = %d KVs at %d, %v; want 1 at %d", len(res.KVs), res.Revision, err, rev)
	}
	// A read that must come from memory fails clearly.
	begin := time.Now()
	_, err = c.List(ctx, prefix, store.ListOptions{Revision: rev, Match: store.NotOlderThan})
	if !errors.Is(err, cache.ErrNotFresh) || !errors.Is(err, store.ErrFutureRevision) {
		t.Fatalf("NotOlderThan a revision the cache cannot reach: %v, want ErrNotFresh", err)
	}
	if d := time.Since(begin); d > 2*time.Second {
		t.Fatalf("NotOlderThan took %v with a 200ms timeout", d)
	}
	_, err = c.GetCached(ctx, prefix+"a", rev)
	if !errors.Is(err, cache.ErrNotFresh) {
		t.Fatalf("GetCached at an unreachable revision: %v, want ErrNotFresh", err)
	}
	// The caller's context ends the wait first.
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	_, err = c.List(short, prefix, store.ListOptions{Revision: rev, Match: store.NotOlderThan})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("NotOlderThan with an ending context: %v", err)
	}
	// Past the backend's newest revision is refused at once.
	_, err = c.List(ctx, prefix, store.ListOptions{Revision: rev + 10, Match: store.NotOlderThan})
	if !errors.Is(err, store.ErrFutureRevision) || errors.Is(err, cache.ErrNotFresh) {
		t.Fatalf("NotOlderThan the future: %v, want ErrFutureRevision", err)
	}
}

func TestWatchReplaysFromRing(t *testing.T) {
	b := openBolt(t)
	c := start(t, b, cache.Options{})
	m := newModel(t, c)
	begin := c.Revision()
	m.create(prefix+"a", "a1")
	m.create(prefix+"b", "b1")
	create(t, b, "/registry/other/x", "not in the cache") // a gap in the prefix's revisions
	m.update(prefix+"a", "a2")
	m.delete(prefix + "b")
	m.create(prefix+"b", "b2")
	m.update(prefix+"a", "a3")
	m.delete(prefix + "a")
	end, _ := b.CurrentRevision(context.Background())

	var watches []store.Watch
	for after := begin; after <= end; after++ {
		w, err := c.Watch(context.Background(), prefix, store.WatchOptions{AfterRevision: after})
		if err != nil {
			t.Fatalf("Watch after %d: %v", after, err)
		}
		t.Cleanup(w.Stop)
		watches = append(watches, w)
	}
	m.update(prefix+"b", "b3")
	m.create(prefix+"a", "a4")
	for i, w := range watches {
		after := begin + int64(i)
		t.Run(fmt.Sprintf("After%+d", after-begin), func(t *testing.T) {
			expectEvents(t, w, m.after(prefix, after))
			expectNoEvent(t, w, 20*time.Millisecond)
		})
	}
}

// TestWatchReplayLongerThanChannel replays more events than a watcher's
// channel holds, while live events keep coming.
func TestWatchReplayLongerThanChannel(t *testing.T) {
	b := openBolt(t)
	c := start(t, b, cache.Options{WatcherBuffer: 50})
	m := newModel(t, c)
	begin := c.Revision()
	for i := range 300 {
		m.create(fmt.Sprintf("%sk%03d", prefix, i), "v")
	}
	w, err := c.Watch(context.Background(), prefix, store.WatchOptions{AfterRevision: begin})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	for i := range 20 {
		m.update(fmt.Sprintf("%sk%03d", prefix, i), "v2")
	}
	expectEvents(t, w, m.after(prefix, begin))
}

func TestWatchTooOld(t *testing.T) {
	ctx := context.Background()
	b := openBolt(t)
	// Events from before the cache was filled are not in its ring.
	for i := range 3 {
		create(t, b, fmt.Sprintf("%searly%d", prefix, i), "v")
	}
	c := start(t, b, cache.Options{EventRing: 4})
	filled := c.Revision()
	if _, err := c.Watch(ctx, prefix, store.WatchOptions{AfterRevision: filled - 1}); !errors.Is(err, store.ErrCompacted) {
		t.Fatalf("watch from before the fill: %v, want ErrCompacted", err)
	}

	m := newModel(t, c)
	for i := range 10 {
		m.create(fmt.Sprintf("%sk%d", prefix, i), "v")
	}
	catchUp(t, c)
	// The ring holds the last 4 events; the one before them is the floor.
	floor := filled + 6
	if _, err := c.Watch(ctx, prefix, store.WatchOptions{AfterRevision: floor - 1}); !errors.Is(err, store.ErrCompacted) {
		t.Fatalf("watch from before the ring: %v, want ErrCompacted", err)
	}
	w, err := c.Watch(ctx, prefix, store.WatchOptions{AfterRevision: floor})
	if err != nil {
		t.Fatalf("watch from the ring's floor: %v", err)
	}
	defer w.Stop()
	expectEvents(t, w, m.after(prefix, floor))

	// A compaction through the cache limits watches as the backend's does.
	if err := c.Compact(ctx, floor+2); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Watch(ctx, prefix, store.WatchOptions{AfterRevision: floor + 1}); !errors.Is(err, store.ErrCompacted) {
		t.Fatalf("watch from before the compaction: %v, want ErrCompacted", err)
	}
	w2, err := c.Watch(ctx, prefix, store.WatchOptions{AfterRevision: floor + 2})
	if err != nil {
		t.Fatalf("watch from the compaction point: %v", err)
	}
	defer w2.Stop()
	expectEvents(t, w2, m.after(prefix, floor+2))
}

func TestSlowWatcherIsDropped(t *testing.T) {
	b := openBolt(t)
	c := start(t, b, cache.Options{WatcherBuffer: 20})
	ctx := context.Background()
	slow, err := c.Watch(ctx, prefix, store.WatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Stop()
	fast, err := c.Watch(ctx, prefix, store.WatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer fast.Stop()
	const n = 200
	got := make(chan []store.Event, 1)
	go func() {
		var evs []store.Event
		for len(evs) < n {
			select {
			case ev, ok := <-fast.Events():
				if !ok {
					got <- evs
					return
				}
				evs = append(evs, ev)
			case <-time.After(eventTimeout):
				got <- evs
				return
			}
		}
		got <- evs
	}()

	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("%sk%03d", prefix, i)
	}
	// One writer: the fast watcher reads each event while the next write
	// commits, so only the watcher that does not read falls behind.
	writersDone := make(chan struct{})
	go func() {
		defer close(writersDone)
		for _, k := range keys {
			if _, err := c.Create(ctx, k, []byte("v")); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	select {
	case <-writersDone:
	case <-time.After(eventTimeout):
		t.Fatal("writers blocked by a watcher that does not read")
	}

	evs := <-got
	if len(evs) != n {
		t.Fatalf("fast watcher got %d events, want %d", len(evs), n)
	}
	for i := 1; i < len(evs); i++ {
		if evs[i].Revision != evs[i-1].Revision+1 {
			t.Fatalf("fast watcher: revision %d after %d", evs[i].Revision, evs[i-1].Revision)
		}
	}
	slowGot, err := drain(t, slow)
	if !errors.Is(err, store.ErrWatchTooSlow) {
		t.Fatalf("slow watcher Err = %v, want ErrWatchTooSlow", err)
	}
	if len(slowGot) > 21 {
		t.Fatalf("slow watcher got %d events with a buffer of 20", len(slowGot))
	}
	if last, _ := b.CurrentRevision(ctx); c.Revision() != last {
		t.Fatalf("cache at %d, backend at %d", c.Revision(), last)
	}
}

// TestTransform checks that every value a caller sees went through
// Transform, and that values served from memory went through it once.
func TestTransform(t *testing.T) {
	b := openBolt(t)
	ctx := context.Background()
	r1 := create(t, b, prefix+"old", "o")
	var calls atomic.Int64
	stamp := func(kv store.KV) ([]byte, error) {
		calls.Add(1)
		return fmt.Appendf(nil, "%s@%d", kv.Value, kv.ModRevision), nil
	}
	c := start(t, b, cache.Options{Transform: stamp})
	w, err := c.Watch(ctx, prefix, store.WatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()

	r2 := create(t, c, prefix+"new", "n")
	kv, err := c.Update(ctx, prefix+"new", []byte("n2"), store.Precondition{})
	r3 := kv.ModRevision
	if err != nil || string(kv.Value) != fmt.Sprintf("n2@%d", r3) {
		t.Fatalf("Update = %s, %v", fmtKV(kv), err)
	}
	kv, err = c.Delete(ctx, prefix+"old", store.Precondition{})
	r4 := kv.ModRevision
	if err != nil || string(kv.Value) != fmt.Sprintf("o@%d", r4) {
		t.Fatalf("Delete = %s, %v", fmtKV(kv), err)
	}

	wantNew := fmt.Sprintf("n2@%d", r3)
	expectEvents(t, w, []store.Event{
		{Type: store.Put, KV: store.KV{Key: prefix + "new", Value: fmt.Appendf(nil, "n@%d", r2), CreateRevision: r2, ModRevision: r2}, Revision: r2},
		{Type: store.Put, KV: store.KV{Key: prefix + "new", Value: []byte(wantNew), CreateRevision: r2, ModRevision: r3},
			Prev: &store.KV{Key: prefix + "new", Value: fmt.Appendf(nil, "n@%d", r2), CreateRevision: r2, ModRevision: r2}, Revision: r3},
		{Type: store.Delete, KV: store.KV{Key: prefix + "old", ModRevision: r4},
			Prev: &store.KV{Key: prefix + "old", Value: fmt.Appendf(nil, "o@%d", r1), CreateRevision: r1, ModRevision: r1}, Revision: r4},
	})

	before := calls.Load()
	res, err := c.List(ctx, prefix, store.ListOptions{})
	if err != nil || len(res.KVs) != 1 || string(res.KVs[0].Value) != wantNew {
		t.Fatalf("List = %v, %v", res.KVs, err)
	}
	if kv, err := c.GetCached(ctx, prefix+"new", 0); err != nil || string(kv.Value) != wantNew {
		t.Fatalf("GetCached = %s, %v", fmtKV(kv), err)
	}
	if n := calls.Load() - before; n != 0 {
		t.Fatalf("reads from memory called Transform %d times", n)
	}
	if kv, err := c.Get(ctx, prefix+"new"); err != nil || string(kv.Value) != wantNew {
		t.Fatalf("Get = %s, %v", fmtKV(kv), err)
	}
	// An old snapshot comes from the backend, transformed too.
	res, err = c.List(ctx, prefix, store.ListOptions{Revision: r2, Match: store.Exact})
	if err != nil || len(res.KVs) != 2 || string(res.KVs[0].Value) != fmt.Sprintf("n@%d", r2) || string(res.KVs[1].Value) != fmt.Sprintf("o@%d", r1) {
		t.Fatalf("List at %d = %v, %v", r2, res.KVs, err)
	}
}

// TestTransformFailure: a value Transform rejects keeps the cache unready
// until the key is gone, and ends its watches so their clients relist.
func TestTransformFailure(t *testing.T) {
	b := openBolt(t)
	ctx := context.Background()
	reject := func(kv store.KV) ([]byte, error) {
		if string(kv.Value) == "bad" {
			return nil, errors.New("not JSON")
		}
		return kv.Value, nil
	}
	c := start(t, b, cache.Options{Transform: reject})
	w, err := c.Watch(ctx, prefix, store.WatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	create(t, c, prefix+"good", "ok")
	create(t, c, prefix+"bad", "bad")
	got, err := drain(t, w)
	if !errors.Is(err, store.ErrWatchTooSlow) || len(got) != 1 {
		t.Fatalf("watch across a rejected value: %d events, Err %v; want 1 and ErrWatchTooSlow", len(got), err)
	}
	if c.Ready() {
		t.Fatal("cache ready with a value it cannot transform")
	}
	if _, err := c.List(ctx, prefix, store.ListOptions{}); err == nil || !strings.Contains(err.Error(), "not JSON") {
		t.Fatalf("List while unready: %v, want the transform error", err)
	}
	if err := c.LastError(); err == nil || !strings.Contains(err.Error(), prefix+"bad") {
		t.Fatalf("LastError = %v, want it to name the key", err)
	}
	if _, err := b.Delete(ctx, prefix+"bad", store.Precondition{}); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := c.WaitReady(wctx); err != nil {
		t.Fatalf("cache not ready after the rejected key was deleted: %v", err)
	}
	res, err := c.List(ctx, prefix, store.ListOptions{})
	if err != nil || len(res.KVs) != 1 || res.KVs[0].Key != prefix+"good" {
		t.Fatalf("List after recovery = %v, %v", res.KVs, err)
	}
}

func TestNarrowWatchPrefix(t *testing.T) {
	b := openBolt(t)
	c := start(t, b, cache.Options{})
	ctx := context.Background()
	m := newModel(t, c)
	begin := c.Revision()
	m.create(prefix+"ns1/a", "v")
	m.create(prefix+"ns10/a", "v")
	m.create(prefix+"ns2/a", "v")
	mid := c.Revision()
	prefixes := []string{prefix, prefix + "ns1/", prefix + "ns1", prefix + "ns2/", prefix + "ns3/", prefix + "ns1/a"}
	watches := map[string][2]store.Watch{}
	for _, p := range prefixes {
		var pair [2]store.Watch
		// One replays from the ring, one starts live.
		for i, after := range []int64{begin, mid} {
			w, err := c.Watch(ctx, p, store.WatchOptions{AfterRevision: after})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(w.Stop)
			pair[i] = w
		}
		watches[p] = pair
	}
	m.update(prefix+"ns1/a", "v2")
	m.create(prefix+"ns1/ab", "v")
	m.delete(prefix + "ns10/a")
	m.update(prefix+"ns2/a", "v2")
	for _, p := range prefixes {
		m.create(p+"/last", "v") // a final event for every watch
	}
	for _, p := range prefixes {
		t.Run("Prefix"+strings.TrimPrefix(p, prefix), func(t *testing.T) {
			expectEvents(t, watches[p][0], m.after(p, begin))
			expectEvents(t, watches[p][1], m.after(p, mid))
		})
	}
	// Stopping the watches of some prefixes leaves those of a prefix of the
	// same length working.
	for _, p := range []string{prefix + "ns2/", prefix + "ns3/", prefix} {
		watches[p][0].Stop()
		watches[p][1].Stop()
	}
	mark, _ := b.CurrentRevision(ctx)
	m.update(prefix+"ns2/a", "v3")
	m.update(prefix+"ns1/a", "v3")
	expectEvents(t, watches[prefix+"ns1/"][1], m.after(prefix+"ns1/", mark))
	if _, err := c.Watch(ctx, "/registry/other/", store.WatchOptions{}); !errors.Is(err, store.ErrInvalidKey) {
		t.Fatalf("watch outside the cache's prefix: %v, want ErrInvalidKey", err)
	}
}

func TestWatchEndsWithContext(t *testing.T) {
	b := openBolt(t)
	c := start(t, b, cache.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	w, err := c.Watch(ctx, prefix, store.WatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	create(t, c, prefix+"a", "v")
	if ev := next(t, w); ev.KV.Key != prefix+"a" {
		t.Fatalf("first event %s", fmtEvent(ev))
	}
	cancel()
	got, err := drain(t, w)
	if len(got) != 0 || err != nil {
		t.Fatalf("after cancel: %d events, Err %v; want none and nil", len(got), err)
	}
	// A context that has already ended gives a watch that is already over.
	w, err = c.Watch(ctx, prefix, store.WatchOptions{})
	if err == nil {
		if _, err := drain(t, w); err != nil {
			t.Fatalf("watch on an ended context: Err %v", err)
		}
	}
}

func TestWatchFromFutureRevision(t *testing.T) {
	b := openBolt(t)
	c := start(t, b, cache.Options{})
	m := newModel(t, c)
	cur := c.Revision()
	w, err := c.Watch(context.Background(), prefix, store.WatchOptions{AfterRevision: cur + 3})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	for i := range 6 {
		m.create(fmt.Sprintf("%sk%d", prefix, i), "v")
	}
	expectEvents(t, w, m.after(prefix, cur+3))
	expectNoEvent(t, w, 20*time.Millisecond)
}

func TestKeysOutsidePrefixAreRejected(t *testing.T) {
	b := openBolt(t)
	c := start(t, b, cache.Options{})
	ctx := context.Background()
	before, _ := b.CurrentRevision(ctx)
	outside := "/registry/other/a"
	calls := map[string]func() error{
		"Create": func() error { _, err := c.Create(ctx, outside, nil); return err },
		"Update": func() error { _, err := c.Update(ctx, outside, nil, store.Precondition{}); return err },
		"Delete": func() error { _, err := c.Delete(ctx, outside, store.Precondition{}); return err },
		"Get":    func() error { _, err := c.Get(ctx, outside); return err },
		"GetCached": func() error {
			_, err := c.GetCached(ctx, outside, 0)
			return err
		},
		"List":         func() error { _, err := c.List(ctx, "/registry/", store.ListOptions{}); return err },
		"ListStartKey": func() error { _, err := c.List(ctx, prefix, store.ListOptions{StartKey: outside}); return err },
		"Watch":        func() error { _, err := c.Watch(ctx, "/registry/thing", store.WatchOptions{}); return err },
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			if err := call(); !errors.Is(err, store.ErrInvalidKey) {
				t.Fatalf("%s outside the prefix: %v, want ErrInvalidKey", name, err)
			}
		})
	}
	if rev, _ := b.CurrentRevision(ctx); rev != before {
		t.Fatalf("a refused write reached the backend: revision %d", rev)
	}
}

func TestProgress(t *testing.T) {
	b := openBolt(t)
	c := start(t, b, cache.Options{ProgressInterval: 20 * time.Millisecond})
	ctx := context.Background()
	rev := create(t, c, prefix+"a", "v")
	w, err := c.Watch(ctx, prefix, store.WatchOptions{ProgressNotify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	plain, err := c.Watch(ctx, prefix, store.WatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Stop()

	// Idle: progress at the cache's revision.
	if ev := next(t, w); ev.Type != store.Progress || ev.Revision != rev {
		t.Fatalf("idle watch got %s, want Progress@%d", fmtEvent(ev), rev)
	}
	// Forwarded from the backend, at a revision written elsewhere.
	other := create(t, b, "/registry/other/x", "v")
	if err := c.RequestProgress(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(eventTimeout)
	for seen := false; !seen; {
		select {
		case ev := <-w.Events():
			if ev.Type != store.Progress {
				t.Fatalf("got %s, want Progress", fmtEvent(ev))
			}
			seen = ev.Revision >= other
		case <-deadline:
			t.Fatalf("no Progress at or after %d", other)
		}
	}
	// The next change follows the progress marks.
	next := create(t, c, prefix+"b", "v")
	if ev := nextChange(t, w); ev.Revision != next {
		t.Fatalf("after progress: %s, want the create at %d", fmtEvent(ev), next)
	}
	if ev := nextChange(t, plain); ev.Revision != next {
		t.Fatalf("watch without ProgressNotify: %s, want the create at %d", fmtEvent(ev), next)
	}
	expectNoEvent(t, plain, 100*time.Millisecond)
}

// TestForwardedProgressIsThrottled: backend progress that others asked for
// (here, consistent lists after writes elsewhere) reaches an idle watcher
// once per ProgressInterval, while RequestProgress reaches it every time.
func TestForwardedProgressIsThrottled(t *testing.T) {
	b := openBolt(t)
	c := start(t, b, cache.Options{ProgressInterval: time.Hour})
	ctx := context.Background()
	w, err := c.Watch(ctx, prefix, store.WatchOptions{ProgressNotify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	var last int64
	for i := range 5 {
		last = create(t, b, fmt.Sprintf("/registry/other/%d", i), "v")
		if res, err := c.List(ctx, prefix, store.ListOptions{}); err != nil || res.Revision < last {
			t.Fatalf("consistent list: revision %d, %v; want >= %d", res.Revision, err, last)
		}
	}
	if ev := next(t, w); ev.Type != store.Progress {
		t.Fatalf("got %s, want Progress", fmtEvent(ev))
	}
	expectNoEvent(t, w, 100*time.Millisecond)
	for range 2 {
		if err := c.RequestProgress(ctx); err != nil {
			t.Fatal(err)
		}
		if ev := next(t, w); ev.Type != store.Progress || ev.Revision < last {
			t.Fatalf("after RequestProgress: %s, want Progress at or after %d", fmtEvent(ev), last)
		}
	}
}

// listFails is a backend whose lists fail, so a cache over it never fills.
type listFails struct{ store.Store }

func (listFails) List(context.Context, string, store.ListOptions) (store.ListResult, error) {
	return store.ListResult{}, errors.New("backend list unavailable")
}

func TestNotReady(t *testing.T) {
	b := openBolt(t)
	c, err := cache.New(context.Background(), listFails{b}, prefix, cache.Options{WaitTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	ctx := context.Background()
	rev := create(t, c, prefix+"a", "v")
	if c.Ready() {
		t.Fatal("ready without a list")
	}
	// Reads that the backend can answer go to it.
	if kv, err := c.GetCached(ctx, prefix+"a", rev); err != nil || kv.ModRevision != rev {
		t.Fatalf("GetCached while not ready = %s, %v", fmtKV(kv), err)
	}
	if _, err := c.List(ctx, prefix, store.ListOptions{}); err == nil || !strings.Contains(err.Error(), "backend list unavailable") {
		t.Fatalf("List while not ready: %v, want the backend's error", err)
	}
	// A watch cannot be served, and says so.
	if _, err := c.Watch(ctx, prefix, store.WatchOptions{}); !errors.Is(err, cache.ErrNotReady) {
		t.Fatalf("Watch while not ready: %v, want ErrNotReady", err)
	}
	if err := c.LastError(); err == nil || !strings.Contains(err.Error(), "backend list unavailable") {
		t.Fatalf("LastError = %v", err)
	}
}

// breakable lets a test end the backend watches the cache holds.
type breakable struct {
	*bolt.Store
	mu      sync.Mutex
	watches []*proxyWatch
	opened  atomic.Int64
}

func (b *breakable) Watch(ctx context.Context, p string, opts store.WatchOptions) (store.Watch, error) {
	inner, err := b.Store.Watch(ctx, p, opts)
	if err != nil {
		return nil, err
	}
	pw := &proxyWatch{inner: inner, out: make(chan store.Event), kill: make(chan error, 1), stop: make(chan struct{})}
	go pw.run()
	b.mu.Lock()
	b.watches = append(b.watches, pw)
	b.mu.Unlock()
	b.opened.Add(1)
	return pw, nil
}

// breakAll ends every open backend watch with err.
func (b *breakable) breakAll(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, pw := range b.watches {
		select {
		case pw.kill <- err:
		default:
		}
	}
	b.watches = nil
}

type proxyWatch struct {
	inner    store.Watch
	out      chan store.Event
	kill     chan error
	stop     chan struct{}
	stopOnce sync.Once
	mu       sync.Mutex
	err      error
}

func (p *proxyWatch) run() {
	defer close(p.out)
	defer p.inner.Stop()
	for {
		select {
		case ev, ok := <-p.inner.Events():
			if !ok {
				p.setErr(p.inner.Err())
				return
			}
			select {
			case p.out <- ev:
			case err := <-p.kill:
				p.setErr(err)
				return
			case <-p.stop:
				return
			}
		case err := <-p.kill:
			p.setErr(err)
			return
		case <-p.stop:
			return
		}
	}
}

func (p *proxyWatch) setErr(err error) {
	p.mu.Lock()
	p.err = err
	p.mu.Unlock()
}

func (p *proxyWatch) Events() <-chan store.Event { return p.out }
func (p *proxyWatch) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}
func (p *proxyWatch) Stop() { p.stopOnce.Do(func() { close(p.stop) }) }

// TestBackendWatchBreaks: a backend watch that ends is resumed from the
// cache's revision without disturbing the cache's watchers; one that ends
// with ErrCompacted makes the cache relist and end them.
func TestBackendWatchBreaks(t *testing.T) {
	bs := openBolt(t)
	b := &breakable{Store: bs}
	c := start(t, b, cache.Options{})
	ctx := context.Background()
	m := newModel(t, c)
	begin := c.Revision()
	w, err := c.Watch(ctx, prefix, store.WatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()

	m.create(prefix+"a", "v")
	b.breakAll(store.ErrWatchTooSlow)
	m.create(prefix+"b", "v") // while the backend watch is down, perhaps
	m.update(prefix+"a", "v2")
	expectEvents(t, w, m.after(prefix, begin))
	if n := b.opened.Load(); n < 2 {
		t.Fatalf("backend watches opened: %d, want a second one", n)
	}

	b.breakAll(fmt.Errorf("watch: %w", store.ErrCompacted))
	m.delete(prefix + "b")
	if _, err := drain(t, w); !errors.Is(err, store.ErrWatchTooSlow) {
		t.Fatalf("cache watcher across a relist: Err %v, want ErrWatchTooSlow", err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := c.WaitReady(wctx); err != nil {
		t.Fatal(err)
	}
	got, err := c.List(ctx, prefix, store.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	expectSameList(t, "after relist", got, wantPage(t, bs, got.Revision, prefix, store.ListOptions{}))
	w2, err := c.Watch(ctx, prefix, store.WatchOptions{AfterRevision: got.Revision})
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Stop()
	m.create(prefix+"c", "v")
	expectEvents(t, w2, m.after(prefix, got.Revision))
}

func TestStopAndClose(t *testing.T) {
	b := openBolt(t)
	c := start(t, b, cache.Options{})
	ctx := context.Background()
	w, err := c.Watch(ctx, prefix, store.WatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c.Stop()
	if _, err := drain(t, w); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("watch Err after Stop = %v, want ErrClosed", err)
	}
	if _, err := c.List(ctx, prefix, store.ListOptions{}); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("List after Stop: %v", err)
	}
	if _, err := c.Create(ctx, prefix+"a", nil); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Create after Stop: %v", err)
	}
	// Stop leaves the backend to its other users; Close closes it.
	if _, err := b.Create(ctx, prefix+"a", nil); err != nil {
		t.Fatalf("backend after Stop: %v", err)
	}
	c2 := start(t, b, cache.Options{})
	if err := c2.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c2.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	// (A Get: a bolt write after Close may block, see the report.)
	if _, err := b.Get(ctx, prefix+"a"); err == nil {
		t.Fatal("backend still readable after the cache's Close")
	}
}

// TestReturnedValuesAreCopies: by default a caller may modify listed values;
// with SharedValues lists hand out the cache's own.
func TestReturnedValuesAreCopies(t *testing.T) {
	b := openBolt(t)
	c := start(t, b, cache.Options{})
	ctx := context.Background()
	create(t, c, prefix+"a", "value")
	res, _ := c.List(ctx, prefix, store.ListOptions{})
	copy(res.KVs[0].Value, "XXXXX")
	res.KVs[0].Value = append(res.KVs[0].Value, "more"...)
	kv, _ := c.GetCached(ctx, prefix+"a", 0)
	copy(kv.Value, "YYYYY")
	res, _ = c.List(ctx, prefix, store.ListOptions{})
	if string(res.KVs[0].Value) != "value" {
		t.Fatalf("value after the caller wrote to a listed copy: %q", res.KVs[0].Value)
	}

	shared := start(t, b, cache.Options{SharedValues: true})
	r1, _ := shared.List(ctx, prefix, store.ListOptions{})
	r2, _ := shared.List(ctx, prefix, store.ListOptions{})
	if &r1.KVs[0].Value[0] != &r2.KVs[0].Value[0] {
		t.Fatal("SharedValues lists copied the value")
	}
}

// TestConcurrentReadersAndWriters races lists, cached gets and watches with
// writers, for the race detector, and checks every watch saw every write.
func TestConcurrentReadersAndWriters(t *testing.T) {
	b := openBolt(t)
	c := start(t, b, cache.Options{})
	ctx := context.Background()
	begin := c.Revision()
	const writers, perWriter = 8, 40
	var watches []store.Watch
	for i := range 4 {
		w, err := c.Watch(ctx, prefix, store.WatchOptions{AfterRevision: begin, ProgressNotify: i%2 == 0})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Stop()
		watches = append(watches, w)
	}
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for range 4 {
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				res, err := c.List(ctx, prefix, store.ListOptions{Limit: 50})
				if err != nil {
					t.Error(err)
					return
				}
				if len(res.KVs) > 0 {
					if _, err := c.GetCached(ctx, res.KVs[0].Key, res.Revision); err != nil && !errors.Is(err, store.ErrNotFound) {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for i := range perWriter {
				key := fmt.Sprintf("%sw%d/%03d", prefix, g, i)
				if _, err := c.Create(ctx, key, []byte("v")); err != nil {
					t.Error(err)
					return
				}
				if i%3 == 0 {
					if _, err := c.Delete(ctx, key, store.Precondition{}); err != nil {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	end, _ := b.CurrentRevision(ctx)
	for i, w := range watches {
		var revs []int64
		for int64(len(revs)) < end-begin {
			revs = append(revs, nextChange(t, w).Revision)
		}
		for j, r := range revs {
			if r != begin+int64(j)+1 {
				t.Fatalf("watch %d: event %d at revision %d, want %d", i, j, r, begin+int64(j)+1)
			}
		}
	}
}

// Stats follows the objects the cache holds: the fill, creates, updates
// that change a value's size, and deletes.
func TestStatsCountObjectsAndBytes(t *testing.T) {
	b := openBolt(t)
	create(t, b, prefix+"a", "12345")
	create(t, b, prefix+"b", "123")
	create(t, b, "/registry/other/x", "not counted")
	c := start(t, b, cache.Options{})
	check := func(what string, objects, size int64) {
		t.Helper()
		catchUp(t, c)
		if n, s := c.Stats(); n != objects || s != size {
			t.Errorf("%s: Stats() = %d objects, %d bytes; want %d, %d", what, n, s, objects, size)
		}
	}
	check("after the fill", 2, 8)
	create(t, b, prefix+"c", "1")
	check("after a create", 3, 9)
	if _, err := b.Update(context.Background(), prefix+"a", []byte("12"), store.Precondition{}); err != nil {
		t.Fatal(err)
	}
	check("after an update", 3, 6)
	if _, err := b.Delete(context.Background(), prefix+"b", store.Precondition{}); err != nil {
		t.Fatal(err)
	}
	check("after a delete", 2, 3)
}
