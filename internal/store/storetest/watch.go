package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/trellis-project/trellis/internal/store"
)

func (e *env) watch(prefix string, opts store.WatchOptions) store.Watch {
	e.t.Helper()
	w, err := e.s.Watch(e.ctx, prefix, opts)
	if err != nil {
		e.t.Fatalf("Watch(%q, %+v): %v", prefix, opts, err)
	}
	e.t.Cleanup(w.Stop)
	return w
}

// next waits for the watch's next event.
func next(t *testing.T, w store.Watch) store.Event {
	t.Helper()
	select {
	case ev, ok := <-w.Events():
		if !ok {
			t.Fatalf("watch ended early: Err = %v", w.Err())
		}
		return ev
	case <-time.After(waitTimeout):
		t.Fatalf("no event within %v", waitTimeout)
	}
	panic("unreachable")
}

// expectEvents checks that the watch delivers exactly want, in order, next.
func expectEvents(t *testing.T, w store.Watch, want []store.Event) {
	t.Helper()
	for i, wantEv := range want {
		got := next(t, w)
		if !eventEqual(got, wantEv) {
			t.Fatalf("event %d of %d = %s, want %s", i+1, len(want), fmtEvent(got), fmtEvent(wantEv))
		}
	}
}

// waitEnd waits until the watch's channel closes and returns what was still
// delivered and the watch's Err.
func waitEnd(t *testing.T, w store.Watch) ([]store.Event, error) {
	t.Helper()
	var got []store.Event
	deadline := time.After(waitTimeout)
	for {
		select {
		case ev, ok := <-w.Events():
			if !ok {
				return got, w.Err()
			}
			got = append(got, ev)
		case <-deadline:
			t.Fatalf("watch still open after %v (events meanwhile: %d)", waitTimeout, len(got))
		}
	}
}

func eventEqual(got, want store.Event) bool {
	if got.Type != want.Type || got.Revision != want.Revision || got.IsCreate() != want.IsCreate() {
		return false
	}
	if (got.Prev == nil) != (want.Prev == nil) || got.Prev != nil && !kvEqual(*got.Prev, *want.Prev) {
		return false
	}
	if got.Type == store.Delete {
		// Only the key, the deletion revision and an empty value are
		// promised for a deletion's KV.
		return got.KV.Key == want.KV.Key && got.KV.ModRevision == want.KV.ModRevision && len(got.KV.Value) == 0
	}
	return kvEqual(got.KV, want.KV)
}

func fmtEvent(ev store.Event) string {
	kind := map[store.EventType]string{store.Put: "Put", store.Delete: "Delete", store.Progress: "Progress"}[ev.Type]
	if kind == "" {
		kind = fmt.Sprintf("EventType(%d)", ev.Type)
	}
	prev := "nil"
	if ev.Prev != nil {
		prev = fmtKV(*ev.Prev)
	}
	return fmt.Sprintf("%s@%d %s prev=%s", kind, ev.Revision, fmtKV(ev.KV), prev)
}

// testWatchReplaysThenFollows opens a watch from every point of a recorded
// history, then writes more: each watch must deliver exactly the history
// after its start, then the new writes, in order, without gaps or repeats.
func testWatchReplaysThenFollows(e *env) {
	prefix := e.key("w/")
	a, b := e.key("w/a"), e.key("w/b")
	r := newRecorder(e)
	start := e.rev()
	r.create(a, "a1")
	r.create(b, "b1")
	r.update(a, "a2")
	r.delete(b)
	r.create(b, "b2") // created again: IsCreate, no Prev
	r.update(a, "a3")
	r.delete(a)
	end := e.rev()

	watches := make([]store.Watch, 0, end-start+1)
	for after := start; after <= end; after++ {
		watches = append(watches, e.watch(prefix, store.WatchOptions{AfterRevision: after}))
	}
	r.update(b, "b3")
	r.create(a, "a4")
	r.delete(b)

	for i, w := range watches {
		after := start + int64(i)
		e.t.Run(fmt.Sprintf("After%+d", after-start), func(t *testing.T) {
			expectEvents(t, w, r.under(prefix, after))
		})
	}
}

func testWatchFromNow(e *env) {
	prefix := e.key("w/")
	old, fresh := e.key("w/old"), e.key("w/new")
	r := newRecorder(e)
	r.create(old, "before the watch")
	seen := len(r.events)

	w := e.watch(prefix, store.WatchOptions{})
	r.create(fresh, "after the watch")
	r.update(old, "updated after the watch")
	r.delete(fresh)
	expectEvents(e.t, w, r.events[seen:])
}

func testWatchPrefixIsolation(e *env) {
	r := newRecorder(e)
	prefixes := []string{"a/", "a", "ab", "b/", "c/"}
	start := e.rev()
	watches := make(map[string]store.Watch, len(prefixes))
	for _, p := range prefixes {
		watches[p] = e.watch(e.key(p), store.WatchOptions{AfterRevision: start})
	}
	r.create(e.key("ab"), "x")
	r.create(e.key("a"), "x")
	r.create(e.key("b/x"), "x")
	r.create(e.key("ab/1"), "x")
	r.update(e.key("a"), "y")
	r.create(e.key("a/1"), "x")
	r.delete(e.key("ab"))
	r.update(e.key("a/1"), "y")
	// A write under every prefix last, so each watch has a final event to
	// wait for and anything it should not have seen arrives before it.
	for _, p := range prefixes {
		r.create(e.key(p+"/last"), "x")
	}
	for _, p := range prefixes {
		e.t.Run(fmt.Sprintf("Prefix%q", p), func(t *testing.T) {
			expectEvents(t, watches[p], r.under(e.key(p), start))
		})
	}
}

// watchErr opens a watch that must fail, and returns how: from Watch itself
// or as the watch's Err, before any event.
func watchErr(t *testing.T, e *env, prefix string, opts store.WatchOptions) error {
	t.Helper()
	w, err := e.s.Watch(e.ctx, prefix, opts)
	if err != nil {
		return err
	}
	defer w.Stop()
	got, err := waitEnd(t, w)
	if len(got) > 0 {
		t.Errorf("watch from a compacted revision delivered %d events before failing, first %s", len(got), fmtEvent(got[0]))
	}
	return err
}

func testWatchCompacted(e *env) {
	prefix := e.key("w/")
	k, other := e.key("w/k"), e.key("w/other")
	r := newRecorder(e)
	r.create(k, "1")
	r.update(k, "2")
	point := r.create(other, "x").ModRevision
	r.update(k, "3") // replaces the version written before the point
	if err := e.s.Compact(e.ctx, point); err != nil {
		e.t.Fatalf("Compact(%d): %v", point, err)
	}
	// A watch starts from the state at AfterRevision (the first event's Prev
	// comes from it), so that state must still be readable.
	for _, after := range []int64{point - 2, point - 1} {
		e.t.Run(fmt.Sprintf("After%d", after-point), func(t *testing.T) {
			err := watchErr(t, e, prefix, store.WatchOptions{AfterRevision: after})
			expectErr(t, fmt.Sprintf("watch after %d, compacted through %d", after, point-1), err, store.ErrCompacted)
		})
	}
	// The compaction point is the oldest start that works. The first event
	// it replays is an update whose Prev was written before the point: the
	// snapshot at the point still holds it.
	e.t.Run("AfterCompactionPoint", func(t *testing.T) {
		e := e.sub(t)
		w := e.watch(prefix, store.WatchOptions{AfterRevision: point})
		r.delete(k)
		expectEvents(t, w, r.under(prefix, point))
	})
}

func testWatchProgress(e *env) {
	prefix := e.key("w/")
	r := newRecorder(e)
	start := e.rev()
	r.create(e.key("w/1"), "x")
	r.create(e.key("w/2"), "x")
	last := r.create(e.key("w/3"), "x").ModRevision

	w := e.watch(prefix, store.WatchOptions{AfterRevision: start, ProgressNotify: true})
	plain := e.watch(prefix, store.WatchOptions{AfterRevision: start})
	// Progress may only follow the events it vouches for.
	expectEvents(e.t, w, r.under(prefix, start))

	deadline := time.After(progressTimeout)
	var progress store.Event
	for progress.Type != store.Progress {
		select {
		case ev, ok := <-w.Events():
			if !ok {
				e.t.Fatalf("watch ended while idle: Err = %v", w.Err())
			}
			if ev.Type != store.Progress {
				e.t.Fatalf("idle watch delivered %s, want a Progress event", fmtEvent(ev))
			}
			progress = ev
		case <-deadline:
			e.t.Fatalf("no Progress event within %v of an idle watch that asked for them", progressTimeout)
		}
	}
	if now := e.rev(); progress.Revision < last || progress.Revision > now {
		e.t.Errorf("Progress revision %d, want between the last write %d and the current revision %d", progress.Revision, last, now)
	}
	if progress.KV.Key != "" || progress.Prev != nil {
		e.t.Errorf("Progress event carries a key: %s", fmtEvent(progress))
	}

	// The next write comes after the progress mark, whatever more progress
	// arrives in between.
	r.create(e.key("w/4"), "x")
	want := r.events[len(r.events)-1]
	for {
		ev := next(e.t, w)
		if ev.Type == store.Progress {
			if ev.Revision < progress.Revision {
				e.t.Fatalf("Progress revision went back from %d to %d", progress.Revision, ev.Revision)
			}
			progress = ev
			continue
		}
		if !eventEqual(ev, want) || ev.Revision <= progress.Revision {
			e.t.Fatalf("after Progress@%d got %s, want %s", progress.Revision, fmtEvent(ev), fmtEvent(want))
		}
		break
	}

	// A watch that did not ask sees only the writes.
	expectEvents(e.t, plain, r.under(prefix, start))
}

// testConcurrentWriters races many writers and checks that every write got
// its own revision, that together they used every revision in the range, and
// that a live watch and a replaying one both see all of them in order.
func testConcurrentWriters(e *env) {
	const writers, perWriter = 16, 50
	prefix := e.key("c/")
	start := e.rev()
	live := e.watch(prefix, store.WatchOptions{AfterRevision: start})

	type write struct {
		key string
		rev int64
	}
	results := make(chan write, writers*perWriter)
	errs := make(chan error, writers)
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for i := range perWriter {
				key := e.key(fmt.Sprintf("c/%02d/%03d", g, i))
				rev, err := e.s.Create(e.ctx, key, []byte(key))
				if err != nil {
					errs <- fmt.Errorf("Create(%q): %w", key, err)
					return
				}
				results <- write{key, rev}
			}
		})
	}

	// Consume the live watch while the writers run.
	liveEvents := make(chan []store.Event, 1)
	go func() {
		var got []store.Event
		for len(got) < writers*perWriter {
			select {
			case ev, ok := <-live.Events():
				if !ok {
					liveEvents <- got
					return
				}
				got = append(got, ev)
			case <-time.After(waitTimeout):
				liveEvents <- got
				return
			}
		}
		liveEvents <- got
	}()

	wg.Wait()
	close(results)
	close(errs)
	for err := range errs {
		e.t.Fatal(err)
	}
	byRev := make(map[int64]string, writers*perWriter)
	for w := range results {
		if other, dup := byRev[w.rev]; dup {
			e.t.Errorf("revision %d given to both %q and %q", w.rev, other, w.key)
		}
		byRev[w.rev] = w.key
	}
	end := start + writers*perWriter
	for rev := start + 1; rev <= end; rev++ {
		if _, ok := byRev[rev]; !ok {
			e.t.Errorf("revision %d in (%d, %d] was not returned by any Create", rev, start, end)
		}
	}
	e.expectRev(end, fmt.Sprintf("%d concurrent creates", writers*perWriter))

	check := func(t *testing.T, got []store.Event) {
		t.Helper()
		if len(got) != writers*perWriter {
			t.Fatalf("watch delivered %d events, want %d", len(got), writers*perWriter)
		}
		for i, ev := range got {
			rev := start + int64(i) + 1
			key := byRev[rev]
			want := store.Event{Type: store.Put, KV: store.KV{Key: key, Value: []byte(key), CreateRevision: rev, ModRevision: rev}, Revision: rev}
			if !eventEqual(ev, want) {
				t.Fatalf("event %d = %s, want %s", i, fmtEvent(ev), fmtEvent(want))
			}
		}
	}
	e.t.Run("Live", func(t *testing.T) { check(t, <-liveEvents) })
	e.t.Run("Replay", func(t *testing.T) {
		e := e.sub(t)
		w := e.watch(prefix, store.WatchOptions{AfterRevision: start})
		got := make([]store.Event, 0, writers*perWriter)
		for range writers * perWriter {
			got = append(got, next(t, w))
		}
		check(t, got)
	})
}

func testWatchContextCanceled(e *env) {
	ctx, cancel := context.WithCancel(e.ctx)
	w, err := e.s.Watch(ctx, e.root, store.WatchOptions{})
	if err != nil {
		e.t.Fatalf("Watch: %v", err)
	}
	defer w.Stop()
	e.create(e.key("before-cancel"), "x")
	if ev := next(e.t, w); ev.KV.Key != e.key("before-cancel") {
		e.t.Fatalf("first event %s, want the create of %q", fmtEvent(ev), e.key("before-cancel"))
	}
	cancel()
	got, err := waitEnd(e.t, w)
	if len(got) > 0 {
		e.t.Errorf("canceled watch delivered %s", fmtEvent(got[0]))
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		e.t.Errorf("Err after the context was canceled = %v, want nil or context.Canceled", err)
	}
}

func testWatchStop(e *env) {
	w, err := e.s.Watch(e.ctx, e.root, store.WatchOptions{})
	if err != nil {
		e.t.Fatalf("Watch: %v", err)
	}
	w.Stop()
	got, err := waitEnd(e.t, w)
	if len(got) > 0 {
		e.t.Errorf("stopped watch delivered %s", fmtEvent(got[0]))
	}
	if err != nil {
		e.t.Errorf("Err after Stop = %v, want nil", err)
	}
	w.Stop() // a second Stop must be harmless
	if err := w.Err(); err != nil {
		e.t.Errorf("Err after a second Stop = %v, want nil", err)
	}
}

func testClose(e *env) {
	key := e.key("k")
	e.create(key, "v")
	w := e.watch(e.root, store.WatchOptions{})
	if err := e.s.Close(); err != nil {
		e.t.Fatalf("Close: %v", err)
	}
	if _, err := waitEnd(e.t, w); !errors.Is(err, store.ErrClosed) {
		e.t.Errorf("watch Err after Close = %v, want ErrClosed", err)
	}

	ctx := e.ctx
	value := []byte("v")
	calls := []struct {
		name string
		call func() error
	}{
		{"Get", func() error { _, err := e.s.Get(ctx, key); return err }},
		{"List", func() error { _, err := e.s.List(ctx, e.root, store.ListOptions{}); return err }},
		{"Create", func() error { _, err := e.s.Create(ctx, e.key("new"), value); return err }},
		{"Update", func() error { _, err := e.s.Update(ctx, key, value, store.Precondition{}); return err }},
		{"Delete", func() error { _, err := e.s.Delete(ctx, key, store.Precondition{}); return err }},
		{"Watch", func() error {
			w, err := e.s.Watch(ctx, e.root, store.WatchOptions{})
			if err == nil {
				w.Stop()
			}
			return err
		}},
		{"CurrentRevision", func() error { _, err := e.s.CurrentRevision(ctx); return err }},
		{"Compact", func() error { return e.s.Compact(ctx, 1) }},
		{"CompactedRevision", func() error { _, err := e.s.CompactedRevision(ctx); return err }},
	}
	for _, c := range calls {
		e.t.Run(c.name, func(t *testing.T) {
			expectErr(t, c.name+" after Close", c.call(), store.ErrClosed)
		})
	}
}
