package bolt_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trellis-project/trellis/internal/store"
	"github.com/trellis-project/trellis/internal/store/bolt"
)

func open(t testing.TB, dir string) *bolt.Store {
	t.Helper()
	s, err := bolt.Open(bolt.Options{Dir: dir, CompactionInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestReopenKeepsDataAndRevision(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s := open(t, dir)
	if _, err := s.Create(ctx, "/a/1", []byte("one")); err != nil {
		t.Fatal(err)
	}
	kv, err := s.Update(ctx, "/a/1", []byte("two"), store.Precondition{ModRevision: 1})
	if err != nil {
		t.Fatal(err)
	}
	if kv.ModRevision != 2 || kv.CreateRevision != 1 {
		t.Fatalf("update revisions = %d/%d, want 2/1", kv.ModRevision, kv.CreateRevision)
	}
	s.Close()

	s = open(t, dir)
	got, err := s.Get(ctx, "/a/1")
	if err != nil || string(got.Value) != "two" || got.ModRevision != 2 {
		t.Fatalf("after reopen: %+v %v", got, err)
	}
	rev, _ := s.CurrentRevision(ctx)
	if rev != 2 {
		t.Fatalf("revision after reopen = %d, want 2", rev)
	}
	// Watches resume across the restart from retained history.
	w, err := s.Watch(ctx, "/a/", store.WatchOptions{AfterRevision: 0 + 1})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	ev := <-w.Events()
	if ev.Revision != 2 || ev.Prev == nil || string(ev.Prev.Value) != "one" {
		t.Fatalf("replayed event = %+v", ev)
	}
}

func TestSecondOpenFailsAtOnce(t *testing.T) {
	dir := t.TempDir()
	open(t, dir)
	start := time.Now()
	_, err := bolt.Open(bolt.Options{Dir: dir})
	if err == nil || !strings.Contains(err.Error(), "in use by another process") {
		t.Fatalf("second open: %v", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Fatalf("second open took %v", time.Since(start))
	}
}

func TestCorruptFileGivesClearError(t *testing.T) {
	for name, damage := range map[string]func(path string) error{
		"garbage": func(p string) error {
			return os.WriteFile(p, []byte(strings.Repeat("not a database ", 1000)), 0o600)
		},
		"truncated": func(p string) error { return os.Truncate(p, 100) },
		"lost-tail": func(p string) error { return os.Truncate(p, 5*4096) },
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := bolt.Open(bolt.Options{Dir: dir, CompactionInterval: -1})
			if err != nil {
				t.Fatal(err)
			}
			for i := range 200 {
				if _, err := s.Create(context.Background(), fmt.Sprintf("/k/%04d", i), make([]byte, 500)); err != nil {
					t.Fatal(err)
				}
			}
			s.Close()
			path := filepath.Join(dir, bolt.FileName)
			if err := damage(path); err != nil {
				t.Fatal(err)
			}
			s, err = bolt.Open(bolt.Options{Dir: dir, CompactionInterval: -1})
			if err == nil {
				// Some damage is only seen on read: it must surface as an
				// error naming the file, never a panic.
				_, err = s.List(context.Background(), "/k/", store.ListOptions{})
				s.Close()
			}
			if err == nil || !strings.Contains(err.Error(), path) {
				t.Fatalf("damaged file: err = %v, want an error naming %s", err, path)
			}
		})
	}
}

func TestGroupCommitUniqueRevisions(t *testing.T) {
	s := open(t, t.TempDir())
	ctx := context.Background()
	var mu sync.Mutex
	seen := map[int64]bool{}
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				rev, err := s.Create(ctx, fmt.Sprintf("/g/%02d/%03d", g, i), []byte("x"))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if seen[rev] {
					t.Errorf("revision %d handed out twice", rev)
				}
				seen[rev] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != 800 {
		t.Fatalf("got %d revisions, want 800", len(seen))
	}
}

func TestCompactionDropsOldHistory(t *testing.T) {
	s := open(t, t.TempDir())
	ctx := context.Background()
	s.Create(ctx, "/c/a", []byte("1"))                       // rev 1
	s.Update(ctx, "/c/a", []byte("2"), store.Precondition{}) // rev 2
	s.Create(ctx, "/c/b", []byte("1"))                       // rev 3
	s.Delete(ctx, "/c/b", store.Precondition{})              // rev 4
	s.Update(ctx, "/c/a", []byte("3"), store.Precondition{}) // rev 5
	if err := s.Compact(ctx, 4); err != nil {
		t.Fatal(err)
	}
	if _, err := s.List(ctx, "/c/", store.ListOptions{Revision: 3, Match: store.Exact}); !errors.Is(err, store.ErrCompacted) {
		t.Fatalf("list at compacted revision: %v", err)
	}
	res, err := s.List(ctx, "/c/", store.ListOptions{Revision: 4, Match: store.Exact})
	if err != nil || len(res.KVs) != 1 || string(res.KVs[0].Value) != "2" {
		t.Fatalf("list at 4 = %+v, %v", res, err)
	}
	if _, err := s.Watch(ctx, "/c/", store.WatchOptions{AfterRevision: 2}); !errors.Is(err, store.ErrCompacted) {
		t.Fatalf("watch from compacted revision: %v", err)
	}
	w, err := s.Watch(ctx, "/c/", store.WatchOptions{AfterRevision: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	ev := <-w.Events()
	if ev.Revision != 5 || ev.Prev == nil || string(ev.Prev.Value) != "2" {
		t.Fatalf("event after compaction = %+v", ev)
	}
}

func TestAutomaticCompactionByRevisionCount(t *testing.T) {
	s, err := bolt.Open(bolt.Options{Dir: t.TempDir(), RetainRevisions: 10, RetainAge: time.Nanosecond, CompactionInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	for i := range 30 {
		s.Create(ctx, fmt.Sprintf("/x/%d", i), []byte("v"))
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, _ := s.CompactedRevision(ctx)
		if c >= 19 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("compacted revision stayed at %d, want 20", c)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if c, _ := s.CompactedRevision(ctx); c > 19 {
		t.Fatalf("compacted to %d, past the 10 retained revisions", c)
	}
}
