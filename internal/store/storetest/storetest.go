// Package storetest is the conformance suite every store.Store backend must
// pass. A backend's test calls Run with a constructor:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { return openForTest(t) })
//	}
//
// The suite pins down the contract written in package store, plus the choices
// below where that contract leaves room; a backend that behaves otherwise is
// wrong even if nothing in the API layer notices yet.
//
//   - Every successful write advances the revision by exactly one ("one global
//     revision counts every committed write"); a write that fails (ErrExists,
//     ErrConflict, ErrNotFound, a validation error) does not advance it.
//   - Keys, values and list prefixes are validated before anything is looked
//     up: an oversized or NUL-bearing key is ErrTooLarge or ErrInvalidKey even
//     when the key does not exist.
//   - Update and Delete report ErrNotFound for a missing key whatever the
//     precondition; ErrConflict only when the key exists at another revision.
//   - List prefixes are byte prefixes, not path segments ("/a" matches "/ab").
//     ListOptions.StartKey is any string under the prefix, stored or not; in
//     particular key+"\x00", the next possible key after key, resumes a list
//     after key. A StartKey outside the prefix is ErrInvalidKey.
//   - List with Exact reports the requested revision as ListResult.Revision,
//     and More as of that snapshot. Latest ignores Revision. NotOlderThan and
//     Exact past the newest revision are ErrFutureRevision.
//   - After Compact(rev), rev is still readable: CompactedRevision is rev-1,
//     and Exact reads at rev work while older ones are ErrCompacted.
//     Compacting at or below the compacted revision is a no-op that returns
//     nil; compacting past the newest revision is ErrFutureRevision.
//   - A watch starts from the state at AfterRevision, so that state must be
//     readable: AfterRevision at or below CompactedRevision is ErrCompacted,
//     and AfterRevision rev (the compaction point) replays from rev+1, with
//     Prev set even when that version is older than rev.
//   - A Delete event's KV has Key, ModRevision (the deletion) and an empty
//     Value; its CreateRevision is not checked. Prev of a Delete or an
//     update is the version it replaced, with that version's own revisions.
//   - A watch with AfterRevision 0 sees every write that starts after Watch
//     returns, and none that finished before it was called.
//   - A watch sends Progress events only if it asked for them, and then within
//     five seconds of going idle (the etcd test harness sets 200 ms).
//   - Watch Err after Stop or after the caller's context ends is nil (or a
//     context.Canceled error for the context); after the store's Close it is
//     ErrClosed. Every call on a closed store returns ErrClosed.
//
// The suite keeps each subtest's keys under a prefix of its own and reads
// revisions relative to CurrentRevision, so newStore may hand every subtest a
// fresh store or share one; but nothing else may write to the store while a
// subtest runs, and the subtests run one at a time. Each subtest begins with
// one write outside its prefix, so that none starts at revision 0. Some subtests Close their
// store, and newStore's own cleanup may Close it again, so a second Close
// must be harmless.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/trellis-project/trellis/internal/store"
)

// waitTimeout bounds every wait for an event or for a watch to end, so a
// backend that loses an event fails instead of hanging the test binary.
const waitTimeout = 10 * time.Second

// progressTimeout is how long an idle watch that asked for progress may go
// without a Progress event.
const progressTimeout = 5 * time.Second

// Run runs the conformance suite, one subtest per behaviour.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	// The nonce keeps runs apart when the store outlives the test binary
	// (an external etcd, say).
	nonce := fmt.Sprintf("%x", time.Now().UnixNano())
	for _, tc := range suite {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			e := &env{
				t:    t,
				s:    newStore(t),
				ctx:  ctx,
				root: "/storetest/" + nonce + "/" + tc.name + "/",
			}
			// On a fresh store the revision is 0, and a subtest that
			// starts there could not name its own start: AfterRevision 0
			// means "from now" and Exact 0 is no snapshot. One write
			// outside the subtest's prefix moves every start past 0.
			e.create(strings.TrimSuffix(e.root, "/")+".origin", "")
			tc.run(e)
		})
	}
}

var suite = []struct {
	name string
	run  func(e *env)
}{
	{"CreateThenGet", testCreateThenGet},
	{"CreateExisting", testCreateExisting},
	{"GetMissing", testGetMissing},
	{"Update", testUpdate},
	{"Delete", testDelete},
	{"RevisionsCountWrites", testRevisionsCountWrites},
	{"Limits", testLimits},
	{"ReturnedValuesBelongToCaller", testReturnedValuesBelongToCaller},
	{"ListPrefix", testListPrefix},
	{"ListLimit", testListLimit},
	{"ListStartKey", testListStartKey},
	{"ListExactRevision", testListExactRevision},
	{"ListRevisionMatch", testListRevisionMatch},
	{"ListPaginationSnapshot", testListPaginationSnapshot},
	{"Compact", testCompact},
	{"WatchReplaysThenFollows", testWatchReplaysThenFollows},
	{"WatchFromNow", testWatchFromNow},
	{"WatchPrefixIsolation", testWatchPrefixIsolation},
	{"WatchCompacted", testWatchCompacted},
	{"WatchProgress", testWatchProgress},
	{"ConcurrentWriters", testConcurrentWriters},
	{"WatchContextCanceled", testWatchContextCanceled},
	{"WatchStop", testWatchStop},
	{"Close", testClose},
}

// env is one subtest's store and key space.
type env struct {
	t    *testing.T
	s    store.Store
	ctx  context.Context
	root string
}

// sub returns e for a nested t.Run.
func (e *env) sub(t *testing.T) *env {
	c := *e
	c.t = t
	return &c
}

func (e *env) key(name string) string { return e.root + name }

func (e *env) rev() int64 {
	e.t.Helper()
	rev, err := e.s.CurrentRevision(e.ctx)
	if err != nil {
		e.t.Fatalf("CurrentRevision: %v", err)
	}
	return rev
}

// expectRev checks that the store is at revision want: that no write was
// lost or counted twice.
func (e *env) expectRev(want int64, after string) {
	e.t.Helper()
	if got := e.rev(); got != want {
		e.t.Errorf("after %s: CurrentRevision = %d, want %d", after, got, want)
	}
}

func (e *env) create(key, value string) int64 {
	e.t.Helper()
	rev, err := e.s.Create(e.ctx, key, []byte(value))
	if err != nil {
		e.t.Fatalf("Create(%q): %v", key, err)
	}
	return rev
}

func (e *env) update(key, value string) store.KV {
	e.t.Helper()
	kv, err := e.s.Update(e.ctx, key, []byte(value), store.Precondition{})
	if err != nil {
		e.t.Fatalf("Update(%q): %v", key, err)
	}
	return kv
}

func (e *env) delete(key string) store.KV {
	e.t.Helper()
	kv, err := e.s.Delete(e.ctx, key, store.Precondition{})
	if err != nil {
		e.t.Fatalf("Delete(%q): %v", key, err)
	}
	return kv
}

func (e *env) get(key string) store.KV {
	e.t.Helper()
	kv, err := e.s.Get(e.ctx, key)
	if err != nil {
		e.t.Fatalf("Get(%q): %v", key, err)
	}
	return kv
}

func (e *env) expectGet(key string, want store.KV) {
	e.t.Helper()
	if got := e.get(key); !kvEqual(got, want) {
		e.t.Errorf("Get(%q) = %s, want %s", key, fmtKV(got), fmtKV(want))
	}
}

func (e *env) expectMissing(key string) {
	e.t.Helper()
	kv, err := e.s.Get(e.ctx, key)
	if !errors.Is(err, store.ErrNotFound) {
		e.t.Errorf("Get(%q) = %s, %v; want ErrNotFound", key, fmtKV(kv), err)
	}
}

func (e *env) list(prefix string, opts store.ListOptions) store.ListResult {
	e.t.Helper()
	res, err := e.s.List(e.ctx, prefix, opts)
	if err != nil {
		e.t.Fatalf("List(%q, %+v): %v", prefix, opts, err)
	}
	return res
}

// expectErr fails unless err wraps want.
func expectErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: error %v, want %v", what, err, want)
	}
}

// recorder performs writes through the store and models the events they must
// produce, checking each write's result against the model as it goes.
type recorder struct {
	e      *env
	latest map[string]store.KV
	events []store.Event
}

func newRecorder(e *env) *recorder {
	return &recorder{e: e, latest: map[string]store.KV{}}
}

func (r *recorder) create(key, value string) store.KV {
	r.e.t.Helper()
	rev := r.e.create(key, value)
	kv := store.KV{Key: key, Value: []byte(value), CreateRevision: rev, ModRevision: rev}
	r.latest[key] = kv
	r.events = append(r.events, store.Event{Type: store.Put, KV: kv, Revision: rev})
	return kv
}

func (r *recorder) update(key, value string) store.KV {
	r.e.t.Helper()
	prev, ok := r.latest[key]
	if !ok {
		r.e.t.Fatalf("recorder: update of %q, which the model does not hold", key)
	}
	got := r.e.update(key, value)
	want := store.KV{Key: key, Value: []byte(value), CreateRevision: prev.CreateRevision, ModRevision: got.ModRevision}
	if !kvEqual(got, want) {
		r.e.t.Errorf("Update(%q) = %s, want %s", key, fmtKV(got), fmtKV(want))
	}
	r.latest[key] = want
	r.events = append(r.events, store.Event{Type: store.Put, KV: want, Prev: &prev, Revision: want.ModRevision})
	return want
}

func (r *recorder) delete(key string) store.KV {
	r.e.t.Helper()
	prev, ok := r.latest[key]
	if !ok {
		r.e.t.Fatalf("recorder: delete of %q, which the model does not hold", key)
	}
	got := r.e.delete(key)
	want := prev
	want.ModRevision = got.ModRevision
	if !kvEqual(got, want) {
		r.e.t.Errorf("Delete(%q) = %s, want %s", key, fmtKV(got), fmtKV(want))
	}
	delete(r.latest, key)
	r.events = append(r.events, store.Event{
		Type:     store.Delete,
		KV:       store.KV{Key: key, ModRevision: got.ModRevision},
		Prev:     &prev,
		Revision: got.ModRevision,
	})
	return got
}

// under returns the recorded events whose key has the prefix, after rev.
func (r *recorder) under(prefix string, after int64) []store.Event {
	var out []store.Event
	for _, ev := range r.events {
		if ev.Revision > after && strings.HasPrefix(ev.KV.Key, prefix) {
			out = append(out, ev)
		}
	}
	return out
}

func kvEqual(a, b store.KV) bool {
	return a.Key == b.Key && bytes.Equal(a.Value, b.Value) &&
		a.CreateRevision == b.CreateRevision && a.ModRevision == b.ModRevision
}

func kvsEqual(a, b []store.KV) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !kvEqual(a[i], b[i]) {
			return false
		}
	}
	return true
}

func fmtKV(kv store.KV) string {
	v := kv.Value
	suffix := ""
	if len(v) > 24 {
		v, suffix = v[:24], fmt.Sprintf("...(%d bytes)", len(kv.Value))
	}
	return fmt.Sprintf("{%s=%q%s create=%d mod=%d}", kv.Key, v, suffix, kv.CreateRevision, kv.ModRevision)
}

func fmtKVs(kvs []store.KV) string {
	parts := make([]string, len(kvs))
	for i, kv := range kvs {
		parts[i] = fmtKV(kv)
	}
	return "[" + strings.Join(parts, " ") + "]"
}
