package storetest

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/trellis-project/trellis/internal/store"
)

func testCreateThenGet(e *env) {
	cases := []struct {
		name  string
		value []byte
	}{
		{"Text", []byte("v1")},
		{"Binary", []byte{0, 1, 0xff, '\n'}},
		{"Empty", []byte{}},
		{"Nil", nil},
	}
	for _, tc := range cases {
		e.t.Run(tc.name, func(t *testing.T) {
			e := e.sub(t)
			key := e.key(tc.name)
			before := e.rev()
			rev, err := e.s.Create(e.ctx, key, tc.value)
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			if rev != before+1 {
				t.Errorf("Create returned revision %d, want %d", rev, before+1)
			}
			e.expectGet(key, store.KV{Key: key, Value: tc.value, CreateRevision: rev, ModRevision: rev})
			e.expectRev(rev, "Create")
		})
	}
}

func testCreateExisting(e *env) {
	key := e.key("k")
	rev := e.create(key, "first")
	_, err := e.s.Create(e.ctx, key, []byte("second"))
	expectErr(e.t, "Create of an existing key", err, store.ErrExists)
	e.expectGet(key, store.KV{Key: key, Value: []byte("first"), CreateRevision: rev, ModRevision: rev})
	e.expectRev(rev, "a refused Create")

	// A deleted key can be created again, as a new key.
	del := e.delete(key)
	again, err := e.s.Create(e.ctx, key, []byte("third"))
	if err != nil {
		e.t.Fatalf("Create after Delete: %v", err)
	}
	if again != del.ModRevision+1 {
		e.t.Errorf("Create after Delete returned revision %d, want %d", again, del.ModRevision+1)
	}
	e.expectGet(key, store.KV{Key: key, Value: []byte("third"), CreateRevision: again, ModRevision: again})
}

func testGetMissing(e *env) {
	e.expectMissing(e.key("never"))

	deleted := e.key("deleted")
	e.create(deleted, "v")
	e.delete(deleted)
	e.expectMissing(deleted)

	// A key is not found by a longer or shorter neighbour.
	e.create(e.key("ab"), "v")
	e.expectMissing(e.key("a"))
	e.expectMissing(e.key("abc"))
}

// guardCase is one Update or Delete attempt against a key in a given state.
type guardCase struct {
	name  string
	state keyState
	// pre picks the precondition from the key's last version (zero if the
	// key never existed).
	pre  func(last store.KV) store.Precondition
	want error
}

type keyState int

const (
	// live: created, then updated once, so its two revisions differ.
	live keyState = iota
	never
	deleted
)

func unconditional(store.KV) store.Precondition { return store.Precondition{} }

var guardCases = []guardCase{
	{"Unconditional", live, unconditional, nil},
	{"MatchingRevision", live, func(kv store.KV) store.Precondition { return store.Precondition{ModRevision: kv.ModRevision} }, nil},
	{"StaleRevision", live, func(kv store.KV) store.Precondition { return store.Precondition{ModRevision: kv.CreateRevision} }, store.ErrConflict},
	{"FutureRevision", live, func(kv store.KV) store.Precondition { return store.Precondition{ModRevision: kv.ModRevision + 1000} }, store.ErrConflict},
	{"MissingUnconditional", never, unconditional, store.ErrNotFound},
	{"MissingWithRevision", never, func(store.KV) store.Precondition { return store.Precondition{ModRevision: 1} }, store.ErrNotFound},
	{"DeletedUnconditional", deleted, unconditional, store.ErrNotFound},
	{"DeletedWithLastRevision", deleted, func(kv store.KV) store.Precondition { return store.Precondition{ModRevision: kv.ModRevision} }, store.ErrNotFound},
}

// prepare puts key into the case's state and returns its last version.
func (tc guardCase) prepare(e *env, key string) store.KV {
	e.t.Helper()
	if tc.state == never {
		return store.KV{}
	}
	e.create(key, "v1")
	last := e.update(key, "v2")
	if tc.state == deleted {
		e.delete(key)
	}
	return last
}

func testUpdate(e *env) {
	for _, tc := range guardCases {
		e.t.Run(tc.name, func(t *testing.T) {
			e := e.sub(t)
			key := e.key(tc.name)
			last := tc.prepare(e, key)
			before := e.rev()
			got, err := e.s.Update(e.ctx, key, []byte("v3"), tc.pre(last))
			if tc.want != nil {
				expectErr(t, "Update", err, tc.want)
				e.expectRev(before, "a refused Update")
				if tc.state == live {
					e.expectGet(key, last)
				} else {
					e.expectMissing(key)
				}
				return
			}
			if err != nil {
				t.Fatalf("Update: %v", err)
			}
			want := store.KV{Key: key, Value: []byte("v3"), CreateRevision: last.CreateRevision, ModRevision: before + 1}
			if !kvEqual(got, want) {
				t.Errorf("Update = %s, want %s", fmtKV(got), fmtKV(want))
			}
			e.expectGet(key, want)
			e.expectRev(before+1, "Update")
		})
	}
}

func testDelete(e *env) {
	for _, tc := range guardCases {
		e.t.Run(tc.name, func(t *testing.T) {
			e := e.sub(t)
			key := e.key(tc.name)
			last := tc.prepare(e, key)
			before := e.rev()
			got, err := e.s.Delete(e.ctx, key, tc.pre(last))
			if tc.want != nil {
				expectErr(t, "Delete", err, tc.want)
				e.expectRev(before, "a refused Delete")
				if tc.state == live {
					e.expectGet(key, last)
				} else {
					e.expectMissing(key)
				}
				return
			}
			if err != nil {
				t.Fatalf("Delete: %v", err)
			}
			// The last version, stamped with the deletion's revision.
			want := last
			want.ModRevision = before + 1
			if !kvEqual(got, want) {
				t.Errorf("Delete = %s, want %s", fmtKV(got), fmtKV(want))
			}
			e.expectMissing(key)
			e.expectRev(before+1, "Delete")
			_, err = e.s.Delete(e.ctx, key, store.Precondition{})
			expectErr(t, "second Delete", err, store.ErrNotFound)
		})
	}
}

// testRevisionsCountWrites follows a mixed sequence of writes on two keys and
// checks that each takes the next revision and that create revisions survive
// updates but not a delete.
func testRevisionsCountWrites(e *env) {
	a, b := e.key("a"), e.key("b")
	r := newRecorder(e)
	start := e.rev()
	steps := []struct {
		op    string
		key   string
		value string
	}{
		{"create", a, "a1"},
		{"create", b, "b1"},
		{"update", a, "a2"},
		{"delete", b, ""},
		{"create", b, "b2"},
		{"update", b, "b3"},
		{"update", a, "a3"},
		{"delete", a, ""},
	}
	for i, step := range steps {
		var rev int64
		switch step.op {
		case "create":
			rev = r.create(step.key, step.value).ModRevision
		case "update":
			rev = r.update(step.key, step.value).ModRevision
		case "delete":
			rev = r.delete(step.key).ModRevision
		}
		if want := start + int64(i) + 1; rev != want {
			e.t.Errorf("step %d (%s %s): revision %d, want %d", i, step.op, step.key, rev, want)
		}
	}
	e.expectRev(start+int64(len(steps)), "the writes")
	e.expectMissing(a)
	// b was created again at step 4 and updated at step 5.
	e.expectGet(b, store.KV{Key: b, Value: []byte("b3"), CreateRevision: start + 5, ModRevision: start + 6})
}

func testLimits(e *env) {
	existing := e.key("existing")
	rev := e.create(existing, "v")
	maxKey := e.root + strings.Repeat("k", store.MaxKeyBytes-len(e.root))
	longKey := maxKey + "k"
	nulKey := e.key("a\x00b")
	maxValue := pattern(store.MaxValueBytes)
	bigValue := pattern(store.MaxValueBytes + 1)
	small := []byte("v")

	type call func(ctx context.Context, s store.Store) error
	create := func(key string, value []byte) call {
		return func(ctx context.Context, s store.Store) error { _, err := s.Create(ctx, key, value); return err }
	}
	update := func(key string, value []byte) call {
		return func(ctx context.Context, s store.Store) error {
			_, err := s.Update(ctx, key, value, store.Precondition{})
			return err
		}
	}
	get := func(key string) call {
		return func(ctx context.Context, s store.Store) error { _, err := s.Get(ctx, key); return err }
	}
	del := func(key string) call {
		return func(ctx context.Context, s store.Store) error {
			_, err := s.Delete(ctx, key, store.Precondition{})
			return err
		}
	}
	cases := []struct {
		name string
		call call
		want error
	}{
		{"CreateEmptyKey", create("", small), store.ErrInvalidKey},
		{"CreateNULKey", create(nulKey, small), store.ErrInvalidKey},
		{"CreateLongKey", create(longKey, small), store.ErrTooLarge},
		{"CreateBigValue", create(e.key("big"), bigValue), store.ErrTooLarge},
		{"UpdateEmptyKey", update("", small), store.ErrInvalidKey},
		{"UpdateNULKey", update(nulKey, small), store.ErrInvalidKey},
		{"UpdateLongKey", update(longKey, small), store.ErrTooLarge},
		{"UpdateBigValue", update(existing, bigValue), store.ErrTooLarge},
		{"GetEmptyKey", get(""), store.ErrInvalidKey},
		{"GetNULKey", get(nulKey), store.ErrInvalidKey},
		{"GetLongKey", get(longKey), store.ErrTooLarge},
		{"DeleteEmptyKey", del(""), store.ErrInvalidKey},
		{"DeleteNULKey", del(nulKey), store.ErrInvalidKey},
		{"DeleteLongKey", del(longKey), store.ErrTooLarge},
		{"ListNULPrefix", func(ctx context.Context, s store.Store) error {
			_, err := s.List(ctx, nulKey, store.ListOptions{})
			return err
		}, store.ErrInvalidKey},
		{"WatchNULPrefix", func(ctx context.Context, s store.Store) error {
			w, err := s.Watch(ctx, nulKey, store.WatchOptions{})
			if err == nil {
				w.Stop()
			}
			return err
		}, store.ErrInvalidKey},
	}
	for _, tc := range cases {
		e.t.Run(tc.name, func(t *testing.T) {
			expectErr(t, tc.name, tc.call(e.ctx, e.s), tc.want)
		})
	}
	e.expectRev(rev, "refused writes")
	e.expectGet(existing, store.KV{Key: existing, Value: small, CreateRevision: rev, ModRevision: rev})

	// Exactly at the limits is allowed, and round-trips intact.
	maxRev, err := e.s.Create(e.ctx, maxKey, maxValue)
	if err != nil {
		e.t.Fatalf("Create with a key of MaxKeyBytes and a value of MaxValueBytes: %v", err)
	}
	got := e.get(maxKey)
	if got.Key != maxKey || !bytes.Equal(got.Value, maxValue) || got.ModRevision != maxRev {
		e.t.Errorf("Get of the largest key and value = %s, want %d-byte key, %d-byte value at revision %d",
			fmtKV(got), len(maxKey), len(maxValue), maxRev)
	}
}

// pattern returns n bytes that are not all alike, so a truncated or shifted
// value does not compare equal.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}

func testReturnedValuesBelongToCaller(e *env) {
	key := e.key("k")
	rev := e.create(key, "original")
	want := store.KV{Key: key, Value: []byte("original"), CreateRevision: rev, ModRevision: rev}

	got := e.get(key)
	copy(got.Value, "XXXXXXXX")
	e.expectGet(key, want)

	res := e.list(e.root, store.ListOptions{})
	if len(res.KVs) != 1 {
		e.t.Fatalf("List = %s, want one KV", fmtKVs(res.KVs))
	}
	copy(res.KVs[0].Value, "YYYYYYYY")
	if res := e.list(e.root, store.ListOptions{}); !kvsEqual(res.KVs, []store.KV{want}) {
		e.t.Errorf("List after the caller scribbled on a listed value = %s, want %s", fmtKVs(res.KVs), fmtKV(want))
	}
}
