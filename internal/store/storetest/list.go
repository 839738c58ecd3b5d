package storetest

import (
	"fmt"
	"testing"

	"github.com/trellis-project/trellis/internal/store"
)

// seed creates the named keys under e.root, in the order given, each with
// the value "v:"+name, and returns their versions by name.
func (e *env) seed(names ...string) map[string]store.KV {
	e.t.Helper()
	kvs := make(map[string]store.KV, len(names))
	for _, name := range names {
		key, value := e.key(name), "v:"+name
		rev := e.create(key, value)
		kvs[name] = store.KV{Key: key, Value: []byte(value), CreateRevision: rev, ModRevision: rev}
	}
	return kvs
}

// pick returns the named versions, in the order named.
func pick(kvs map[string]store.KV, names ...string) []store.KV {
	out := make([]store.KV, len(names))
	for i, name := range names {
		out[i] = kvs[name]
	}
	return out
}

// expectPage checks one List result in full.
func expectPage(t *testing.T, what string, got store.ListResult, want []store.KV, wantRev int64, wantMore bool) {
	t.Helper()
	if !kvsEqual(got.KVs, want) {
		t.Errorf("%s: KVs = %s, want %s", what, fmtKVs(got.KVs), fmtKVs(want))
	}
	if got.Revision != wantRev {
		t.Errorf("%s: Revision = %d, want %d", what, got.Revision, wantRev)
	}
	if got.More != wantMore {
		t.Errorf("%s: More = %v, want %v", what, got.More, wantMore)
	}
}

func testListPrefix(e *env) {
	// Created out of order; "a/10" sorts between "a/1" and "a/2" bytewise.
	kvs := e.seed("a/3", "a/1", "ab/1", "a/10", "b/1", "a/2")
	rev := e.rev()
	cases := []struct {
		prefix string
		want   []string
	}{
		{"a/", []string{"a/1", "a/10", "a/2", "a/3"}},
		{"", []string{"a/1", "a/10", "a/2", "a/3", "ab/1", "b/1"}},
		// A prefix is a byte prefix, not a path segment.
		{"a", []string{"a/1", "a/10", "a/2", "a/3", "ab/1"}},
		{"a/1", []string{"a/1", "a/10"}},
		{"b/1", []string{"b/1"}},
		{"c/", []string{}},
	}
	for _, tc := range cases {
		e.t.Run(fmt.Sprintf("Prefix%q", tc.prefix), func(t *testing.T) {
			e := e.sub(t)
			got := e.list(e.key(tc.prefix), store.ListOptions{})
			expectPage(t, "List", got, pick(kvs, tc.want...), rev, false)
		})
	}
}

func testListLimit(e *env) {
	kvs := e.seed("a/3", "a/1", "a/10", "a/2", "b/1")
	rev := e.rev()
	all := []string{"a/1", "a/10", "a/2", "a/3"}
	cases := []struct {
		limit    int64
		want     []string
		wantMore bool
	}{
		{0, all, false},
		{1, all[:1], true},
		{3, all[:3], true},
		{4, all, false},
		{5, all, false},
	}
	for _, tc := range cases {
		e.t.Run(fmt.Sprintf("Limit%d", tc.limit), func(t *testing.T) {
			e := e.sub(t)
			got := e.list(e.key("a/"), store.ListOptions{Limit: tc.limit})
			expectPage(t, "List", got, pick(kvs, tc.want...), rev, tc.wantMore)
		})
	}
}

func testListStartKey(e *env) {
	kvs := e.seed("a/3", "a/1", "a/10", "a/2", "b/1")
	rev := e.rev()
	cases := []struct {
		name     string
		start    string
		limit    int64
		want     []string
		wantMore bool
		wantErr  error
	}{
		{"StoredKeyIsIncluded", "a/10", 0, []string{"a/10", "a/2", "a/3"}, false, nil},
		{"WithLimit", "a/10", 2, []string{"a/10", "a/2"}, true, nil},
		{"LimitReachesEnd", "a/2", 2, []string{"a/2", "a/3"}, false, nil},
		{"LastKey", "a/3", 0, []string{"a/3"}, false, nil},
		{"BetweenKeys", "a/15", 0, []string{"a/2", "a/3"}, false, nil},
		{"SuccessorOfKey", "a/1\x00", 0, []string{"a/10", "a/2", "a/3"}, false, nil},
		{"PastLastKey", "a/4", 0, []string{}, false, nil},
		{"EqualToPrefix", "a/", 0, []string{"a/1", "a/10", "a/2", "a/3"}, false, nil},
		{"OutsidePrefix", "b/1", 0, nil, false, store.ErrInvalidKey},
		{"BeforePrefix", "a", 0, nil, false, store.ErrInvalidKey},
	}
	for _, tc := range cases {
		e.t.Run(tc.name, func(t *testing.T) {
			e := e.sub(t)
			opts := store.ListOptions{StartKey: e.key(tc.start), Limit: tc.limit}
			got, err := e.s.List(e.ctx, e.key("a/"), opts)
			if tc.wantErr != nil {
				expectErr(t, "List", err, tc.wantErr)
				return
			}
			if err != nil {
				t.Fatalf("List: %v", err)
			}
			expectPage(t, "List", got, pick(kvs, tc.want...), rev, tc.wantMore)
		})
	}
}

// testListExactRevision reads every revision of a short history and checks
// each snapshot in full, including keys deleted or changed since.
func testListExactRevision(e *env) {
	k1, k2, k3 := e.key("s/1"), e.key("s/2"), e.key("s/3")
	r0 := e.rev()
	r := newRecorder(e)
	v1a := r.create(k1, "1a") // r0+1
	v2a := r.create(k2, "2a") // r0+2
	v1b := r.update(k1, "1b") // r0+3
	r.delete(k2)              // r0+4
	v3a := r.create(k3, "3a") // r0+5
	v2b := r.create(k2, "2b") // r0+6
	r.update(k3, "3b")        // r0+7, the newest
	if got := e.rev(); got != r0+7 {
		e.t.Fatalf("CurrentRevision = %d after seven writes from %d", got, r0)
	}
	cases := []struct {
		rev      int64
		limit    int64
		want     []store.KV
		wantMore bool
	}{
		{r0, 0, []store.KV{}, false},
		{r0 + 1, 0, []store.KV{v1a}, false},
		{r0 + 2, 0, []store.KV{v1a, v2a}, false},
		{r0 + 2, 1, []store.KV{v1a}, true},
		{r0 + 3, 0, []store.KV{v1b, v2a}, false},
		{r0 + 4, 0, []store.KV{v1b}, false},
		// More is judged in the snapshot: s/2 and s/3 exist now, not then.
		{r0 + 4, 1, []store.KV{v1b}, false},
		{r0 + 5, 0, []store.KV{v1b, v3a}, false},
		{r0 + 6, 0, []store.KV{v1b, v2b, v3a}, false},
		{r0 + 6, 2, []store.KV{v1b, v2b}, true},
	}
	for _, tc := range cases {
		e.t.Run(fmt.Sprintf("Rev%+dLimit%d", tc.rev-r0, tc.limit), func(t *testing.T) {
			e := e.sub(t)
			got := e.list(e.key("s/"), store.ListOptions{Revision: tc.rev, Match: store.Exact, Limit: tc.limit})
			expectPage(t, "List", got, tc.want, tc.rev, tc.wantMore)
		})
	}
}

func testListRevisionMatch(e *env) {
	k := e.key("k")
	old := e.create(k, "old")
	now := e.update(k, "new")
	cur := now.ModRevision
	cases := []struct {
		name    string
		opts    store.ListOptions
		want    []store.KV
		wantRev int64
		wantErr error
	}{
		{"LatestIgnoresRevision", store.ListOptions{Revision: cur + 100, Match: store.Latest}, []store.KV{now}, cur, nil},
		{"NotOlderThanOld", store.ListOptions{Revision: old, Match: store.NotOlderThan}, []store.KV{now}, cur, nil},
		{"NotOlderThanCurrent", store.ListOptions{Revision: cur, Match: store.NotOlderThan}, []store.KV{now}, cur, nil},
		{"NotOlderThanFuture", store.ListOptions{Revision: cur + 1, Match: store.NotOlderThan}, nil, 0, store.ErrFutureRevision},
		{"ExactCurrent", store.ListOptions{Revision: cur, Match: store.Exact}, []store.KV{now}, cur, nil},
		{"ExactFuture", store.ListOptions{Revision: cur + 1, Match: store.Exact}, nil, 0, store.ErrFutureRevision},
		{"ExactFarFuture", store.ListOptions{Revision: cur + 1000, Match: store.Exact}, nil, 0, store.ErrFutureRevision},
	}
	for _, tc := range cases {
		e.t.Run(tc.name, func(t *testing.T) {
			got, err := e.s.List(e.ctx, e.root, tc.opts)
			if tc.wantErr != nil {
				expectErr(t, "List", err, tc.wantErr)
				return
			}
			if err != nil {
				t.Fatalf("List: %v", err)
			}
			expectPage(t, "List", got, tc.want, tc.wantRev, false)
		})
	}
}

// testListPaginationSnapshot pages through a list while other writes land
// between pages: reading each page at the first page's revision must yield
// exactly the snapshot the first page saw.
func testListPaginationSnapshot(e *env) {
	names := make([]string, 10)
	for i := range names {
		names[i] = fmt.Sprintf("p/%02d", i)
	}
	kvs := e.seed(names...)
	snapshot := pick(kvs, names...)

	first := e.list(e.key("p/"), store.ListOptions{Limit: 4})
	rev := first.Revision
	expectPage(e.t, "page 1", first, snapshot[:4], e.rev(), true)
	got := append([]store.KV(nil), first.KVs...)

	// Changes ahead of the cursor, behind it, and a new key in between.
	e.update(e.key("p/05"), "changed")
	e.delete(e.key("p/07"))
	e.delete(e.key("p/01"))
	e.create(e.key("p/045"), "new")
	e.create(e.key("p/99"), "new")

	wantPages := [][]store.KV{snapshot[4:8], snapshot[8:]}
	last := first
	for page := 2; last.More; page++ {
		if page > 3 {
			e.t.Fatalf("page %d: More still true after the snapshot's 10 keys", page)
		}
		opts := store.ListOptions{
			StartKey: last.KVs[len(last.KVs)-1].Key + "\x00",
			Limit:    4,
			Revision: rev,
			Match:    store.Exact,
		}
		last = e.list(e.key("p/"), opts)
		expectPage(e.t, fmt.Sprintf("page %d", page), last, wantPages[page-2], rev, page == 2)
		got = append(got, last.KVs...)
	}
	if !kvsEqual(got, snapshot) {
		e.t.Errorf("pages joined = %s, want the snapshot %s", fmtKVs(got), fmtKVs(snapshot))
	}
}

func testCompact(e *env) {
	c1, c2 := e.key("c/1"), e.key("c/2")
	r := newRecorder(e)
	r1 := r.create(c1, "1a").ModRevision
	r2 := r.update(c1, "1b").ModRevision
	v2 := r.create(c2, "2a") // r3, the compaction point
	r3 := v2.ModRevision
	v1 := r.update(c1, "1c") // r4
	r5 := r.delete(c2).ModRevision
	if before, err := e.s.CompactedRevision(e.ctx); err != nil || before >= r1 {
		e.t.Fatalf("CompactedRevision before Compact = %d, %v; want below %d", before, err, r1)
	}

	if err := e.s.Compact(e.ctx, r3); err != nil {
		e.t.Fatalf("Compact(%d): %v", r3, err)
	}
	expectCompacted := func(t *testing.T, want int64) {
		t.Helper()
		got, err := e.s.CompactedRevision(e.ctx)
		if err != nil {
			t.Fatalf("CompactedRevision: %v", err)
		}
		if got != want {
			t.Errorf("CompactedRevision = %d, want %d", got, want)
		}
	}
	expectCompacted(e.t, r3-1)

	e.t.Run("Reads", func(t *testing.T) {
		v1b := store.KV{Key: c1, Value: []byte("1b"), CreateRevision: r1, ModRevision: r2}
		cases := []struct {
			name    string
			opts    store.ListOptions
			want    []store.KV
			wantRev int64
			wantErr error
		}{
			{"ExactFirst", store.ListOptions{Revision: r1, Match: store.Exact}, nil, 0, store.ErrCompacted},
			{"ExactJustBefore", store.ListOptions{Revision: r2, Match: store.Exact}, nil, 0, store.ErrCompacted},
			{"ExactCompactionPoint", store.ListOptions{Revision: r3, Match: store.Exact}, []store.KV{v1b, v2}, r3, nil},
			{"ExactAfter", store.ListOptions{Revision: r5 - 1, Match: store.Exact}, []store.KV{v1, v2}, r5 - 1, nil},
			{"Latest", store.ListOptions{}, []store.KV{v1}, r5, nil},
			{"NotOlderThanCompacted", store.ListOptions{Revision: r1, Match: store.NotOlderThan}, []store.KV{v1}, r5, nil},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				got, err := e.s.List(e.ctx, e.key("c/"), tc.opts)
				if tc.wantErr != nil {
					expectErr(t, "List", err, tc.wantErr)
					return
				}
				if err != nil {
					t.Fatalf("List: %v", err)
				}
				expectPage(t, "List", got, tc.want, tc.wantRev, false)
			})
		}
		e := e.sub(t)
		e.expectGet(c1, v1)
	})

	e.t.Run("CompactAgain", func(t *testing.T) {
		for _, rev := range []int64{r3, r2, r1} {
			if err := e.s.Compact(e.ctx, rev); err != nil {
				t.Errorf("Compact(%d) after Compact(%d): %v, want nil", rev, r3, err)
			}
		}
		expectCompacted(t, r3-1)
	})

	e.t.Run("Future", func(t *testing.T) {
		err := e.s.Compact(e.ctx, r5+1)
		expectErr(t, fmt.Sprintf("Compact(%d) at newest %d", r5+1, r5), err, store.ErrFutureRevision)
		expectCompacted(t, r3-1)
	})

	e.t.Run("Newest", func(t *testing.T) {
		e := e.sub(t)
		if err := e.s.Compact(e.ctx, r5); err != nil {
			t.Fatalf("Compact(%d), the newest revision: %v", r5, err)
		}
		expectCompacted(t, r5-1)
		got := e.list(e.key("c/"), store.ListOptions{Revision: r5, Match: store.Exact})
		expectPage(t, "List at the newest revision", got, []store.KV{v1}, r5, false)
		// Writes go on after compacting everything.
		rev := e.create(c2, "2b")
		if rev != r5+1 {
			t.Errorf("Create after Compact returned revision %d, want %d", rev, r5+1)
		}
	})
}
