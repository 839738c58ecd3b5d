package bolt

import (
	"context"
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/trellis-project/trellis/internal/store"
)

// compactChunk bounds the revisions one compaction transaction covers, so
// that writers are never held up for long.
const compactChunk = 5000

// Compact discards every version superseded at or before rev, and every
// deletion at or before rev. Reads and watches at revisions before rev then
// fail with store.ErrCompacted.
func (s *Store) Compact(ctx context.Context, rev int64) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	s.compactMu.Lock()
	defer s.compactMu.Unlock()
	if cur := s.rev.Load(); rev > cur {
		return fmt.Errorf("%w: compact to %d, current is %d", store.ErrFutureRevision, rev, cur)
	}
	from := s.compacted.Load()
	if rev <= from {
		return nil
	}
	for from < rev {
		if err := ctx.Err(); err != nil {
			return err
		}
		to := min(from+compactChunk, rev)
		if err := s.compactRange(from, to); err != nil {
			return fmt.Errorf("compact %s: %w", s.path, err)
		}
		s.compacted.Store(to)
		from = to
	}
	return nil
}

// compactRange removes the history that revisions (from, to] made obsolete.
func (s *Store) compactRange(from, to int64) error {
	return s.db.Update(func(tx *bbolt.Tx) error {
		hist := tx.Bucket(bucketHistory)
		log := tx.Bucket(bucketLog)
		seen := map[string]bool{}
		lc := log.Cursor()
		for k, v := lc.Seek(be64(from + 1)); k != nil && readBE64(k) <= to; k, v = lc.Next() {
			key := string(v)
			if !seen[key] {
				seen[key] = true
				if err := pruneKey(hist, key, to); err != nil {
					return err
				}
			}
		}
		// Deleting while a cursor walks the bucket skips entries, so the log
		// is trimmed in a second pass over the collected keys.
		var revs [][]byte
		for k, _ := lc.Seek(be64(from + 1)); k != nil && readBE64(k) <= to; k, _ = lc.Next() {
			revs = append(revs, append([]byte(nil), k...))
		}
		for _, k := range revs {
			if err := log.Delete(k); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(metaCompacted, be64(to))
	})
}

// pruneKey keeps only key's newest version at or before rev (dropping it
// too if it is a deletion) and every version after rev.
func pruneKey(hist *bbolt.Bucket, key string, rev int64) error {
	var doomed [][]byte
	c := hist.Cursor()
	var keepRaw []byte
	for k, v := c.Seek(historyKey(key, 0)); k != nil; k, v = c.Next() {
		kk, r, err := splitHistoryKey(k)
		if err != nil {
			return err
		}
		if kk != key || r > rev {
			break
		}
		if keepRaw != nil {
			doomed = append(doomed, keepRaw)
		}
		keepRaw = append([]byte(nil), k...)
		if len(v) > 0 && v[0]&recTombstone != 0 {
			doomed = append(doomed, keepRaw)
			keepRaw = nil
		}
	}
	for _, k := range doomed {
		if err := hist.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// compactLoop compacts on a timer to the newest revision that is both
// RetainRevisions behind the head and older than RetainAge.
func (s *Store) compactLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.opts.CompactionInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case now := <-t.C:
			if target := s.compactionTarget(now); target > s.compacted.Load() {
				_ = s.Compact(context.Background(), target)
			}
		}
	}
}

// compactionTarget records a (revision, time) sample and picks the
// revision to compact to.
func (s *Store) compactionTarget(now time.Time) int64 {
	cur := s.rev.Load()
	s.samples = append(s.samples, revSample{rev: cur, at: now})
	byAge := int64(0)
	keepFrom := 0
	for i, sm := range s.samples {
		if now.Sub(sm.at) >= s.opts.RetainAge {
			byAge = sm.rev
			keepFrom = i
		}
	}
	s.samples = s.samples[keepFrom:]
	return min(byAge, cur-s.opts.RetainRevisions)
}
