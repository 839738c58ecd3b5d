// Package bolt is Trellis's embedded MVCC store: one bbolt file in a data
// directory, with group commit, retained history for watches and old reads,
// and automatic compaction.
//
// Every write goes through a single committer goroutine. Writers queue their
// operations; the committer applies everything queued in one bbolt
// transaction and one fsync, then acknowledges each writer. Under load the
// cost of an fsync is shared by every write that arrived while the previous
// one was running; no write is acknowledged before its data is durable.
package bolt

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/trellis-project/trellis/internal/store"
)

// FileName is the data file inside the data directory.
const FileName = "trellis.db"

// Options configure the embedded store. Zero values pick the defaults.
type Options struct {
	// Dir is the data directory; it is created if missing.
	Dir string
	// RetainRevisions keeps at least this many most recent revisions when
	// compacting (default 10,000).
	RetainRevisions int64
	// RetainAge keeps every revision younger than this (default 5 minutes,
	// kube-apiserver's compaction interval).
	RetainAge time.Duration
	// CompactionInterval is how often automatic compaction runs (default 1
	// minute); negative disables it.
	CompactionInterval time.Duration
	// MaxBatch caps the writes that share one transaction (default 1,000).
	MaxBatch int
	// WatchQueueLimit is how many undelivered events a watcher may hold
	// before it is dropped with store.ErrWatchTooSlow (default 100,000).
	WatchQueueLimit int
}

func (o *Options) defaults() {
	if o.RetainRevisions == 0 {
		o.RetainRevisions = 10000
	}
	if o.RetainAge == 0 {
		o.RetainAge = 5 * time.Minute
	}
	if o.CompactionInterval == 0 {
		o.CompactionInterval = time.Minute
	}
	if o.MaxBatch == 0 {
		o.MaxBatch = 1000
	}
	if o.WatchQueueLimit == 0 {
		o.WatchQueueLimit = 100000
	}
}

// Store is the embedded backend. It is safe for concurrent use.
type Store struct {
	db   *bbolt.DB
	path string
	opts Options

	writes chan *writeOp
	hub    *hub

	rev       atomic.Int64 // newest committed revision
	compacted atomic.Int64 // last compaction point (still readable)
	closed    atomic.Bool

	compactMu sync.Mutex // one compaction at a time
	samples   []revSample

	stop          chan struct{}
	committerDone chan struct{}
	wg            sync.WaitGroup
	closeOnce     sync.Once
	closeErr      error
}

type revSample struct {
	rev int64
	at  time.Time
}

var _ store.Store = (*Store)(nil)

// Open opens (or creates) the store in opts.Dir. A second process opening
// the same directory fails at once: bbolt holds an exclusive file lock.
func Open(opts Options) (s *Store, err error) {
	opts.defaults()
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	path := filepath.Join(opts.Dir, FileName)
	// bbolt panics on some kinds of corrupt files instead of returning an
	// error; a data file must never crash the process.
	defer func() {
		if r := recover(); r != nil {
			s, err = nil, fmt.Errorf("data file %s is corrupt: %v", path, r)
		}
	}()
	if err := checkFileSize(path); err != nil {
		return nil, err
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{
		Timeout:         50 * time.Millisecond,
		NoFreelistSync:  true,
		FreelistType:    bbolt.FreelistMapType,
		InitialMmapSize: 64 << 20,
	})
	if err != nil {
		if errors.Is(err, bbolt.ErrTimeout) {
			return nil, fmt.Errorf("data directory %s is in use by another process (lock on %s held)", opts.Dir, path)
		}
		return nil, fmt.Errorf("open data file %s: %w", path, err)
	}
	s = &Store{
		db:            db,
		path:          path,
		opts:          opts,
		writes:        make(chan *writeOp, 4096),
		stop:          make(chan struct{}),
		committerDone: make(chan struct{}),
	}
	if err := s.init(); err != nil {
		db.Close()
		return nil, fmt.Errorf("data file %s: %w", path, err)
	}
	s.hub = newHub(s, s.rev.Load())
	s.samples = []revSample{{rev: s.rev.Load(), at: time.Now()}}
	s.wg.Add(1)
	go s.commitLoop()
	s.wg.Add(1)
	go s.progressLoop()
	if opts.CompactionInterval > 0 {
		s.wg.Add(1)
		go s.compactLoop()
	}
	return s, nil
}

// init creates the buckets of a new file, or checks an existing one and
// loads its revisions.
func (s *Store) init() error {
	return s.db.Update(func(tx *bbolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			if tx.Bucket(bucketHistory) != nil || tx.Bucket(bucketLog) != nil {
				return errors.New("not a Trellis data file: meta bucket missing")
			}
			var err error
			if meta, err = tx.CreateBucket(bucketMeta); err != nil {
				return err
			}
			if _, err := tx.CreateBucket(bucketHistory); err != nil {
				return err
			}
			if _, err := tx.CreateBucket(bucketLog); err != nil {
				return err
			}
			if err := meta.Put(metaFormat, formatVersion); err != nil {
				return err
			}
			if err := meta.Put(metaRev, be64(0)); err != nil {
				return err
			}
			return meta.Put(metaCompacted, be64(0))
		}
		if f := meta.Get(metaFormat); string(f) != string(formatVersion) {
			return fmt.Errorf("unsupported data format %q (want %q)", f, formatVersion)
		}
		if tx.Bucket(bucketHistory) == nil || tx.Bucket(bucketLog) == nil {
			return errors.New("data file is missing a bucket")
		}
		s.rev.Store(readBE64(meta.Get(metaRev)))
		s.compacted.Store(readBE64(meta.Get(metaCompacted)))
		if s.compacted.Load() > s.rev.Load() {
			return fmt.Errorf("compacted revision %d is newer than current revision %d", s.compacted.Load(), s.rev.Load())
		}
		return nil
	})
}

// Close stops the committer, ends every watch and closes the file. Writes
// already acknowledged are durable; writes still queued fail with ErrClosed.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		close(s.stop)
		s.wg.Wait()
		s.hub.closeAll(store.ErrClosed)
		s.closeErr = s.db.Close()
	})
	return s.closeErr
}

// Path is the data file's path.
func (s *Store) Path() string { return s.path }

func (s *Store) CurrentRevision(ctx context.Context) (int64, error) {
	if s.closed.Load() {
		return 0, store.ErrClosed
	}
	return s.rev.Load(), nil
}

// CompactedRevision is one less than the last compaction point, which
// stays readable.
func (s *Store) CompactedRevision(ctx context.Context) (int64, error) {
	if s.closed.Load() {
		return 0, store.ErrClosed
	}
	return max(s.compacted.Load()-1, 0), nil
}

// view runs fn in a read transaction, converting a bbolt panic on a
// damaged page into an error that names the file.
func (s *Store) view(fn func(tx *bbolt.Tx) error) (err error) {
	if s.closed.Load() {
		return store.ErrClosed
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("data file %s is corrupt: %v", s.path, r)
		}
	}()
	return s.db.View(fn)
}

func (s *Store) Get(ctx context.Context, key string) (store.KV, error) {
	if err := store.ValidateKey(key); err != nil {
		return store.KV{}, err
	}
	var kv store.KV
	err := s.view(func(tx *bbolt.Tx) error {
		rec, rev, ok, err := latestVersion(tx.Bucket(bucketHistory), key, 0)
		if err != nil {
			return err
		}
		if !ok || rec.tombstone {
			return store.ErrNotFound
		}
		kv = rec.kv(key, rev)
		return nil
	})
	return kv, err
}

// latestVersion finds key's newest version at or before atRev (0: newest).
func latestVersion(b *bbolt.Bucket, key string, atRev int64) (record, int64, bool, error) {
	c := b.Cursor()
	var k, v []byte
	if atRev > 0 {
		k, _ = c.Seek(historyKey(key, atRev+1))
	} else {
		k, _ = c.Seek(versionsEnd(key))
	}
	if k == nil {
		k, v = c.Last()
	} else {
		k, v = c.Prev()
	}
	if k == nil {
		return record{}, 0, false, nil
	}
	hkKey, rev, err := splitHistoryKey(k)
	if err != nil {
		return record{}, 0, false, err
	}
	if hkKey != key {
		return record{}, 0, false, nil
	}
	rec, err := decodeRecord(v)
	return rec, rev, err == nil, err
}

func (s *Store) List(ctx context.Context, prefix string, opts store.ListOptions) (store.ListResult, error) {
	if err := validatePrefix(prefix); err != nil {
		return store.ListResult{}, err
	}
	if opts.StartKey != "" && (len(opts.StartKey) < len(prefix) || opts.StartKey[:len(prefix)] != prefix) {
		return store.ListResult{}, fmt.Errorf("%w: start key %q is not under prefix %q", store.ErrInvalidKey, opts.StartKey, prefix)
	}
	var res store.ListResult
	err := s.view(func(tx *bbolt.Tx) error {
		current := readBE64(tx.Bucket(bucketMeta).Get(metaRev))
		compacted := readBE64(tx.Bucket(bucketMeta).Get(metaCompacted))
		at := current
		switch opts.Match {
		case store.Exact:
			if opts.Revision > current {
				return fmt.Errorf("%w: %d > %d", store.ErrFutureRevision, opts.Revision, current)
			}
			if opts.Revision < compacted && opts.Revision != 0 {
				return fmt.Errorf("%w: %d < %d", store.ErrCompacted, opts.Revision, compacted)
			}
			if opts.Revision > 0 {
				at = opts.Revision
			}
		case store.NotOlderThan:
			if opts.Revision > current {
				return fmt.Errorf("%w: %d > %d", store.ErrFutureRevision, opts.Revision, current)
			}
		}
		res.Revision = at
		return scanAt(tx.Bucket(bucketHistory), prefix, opts, at, &res)
	})
	return res, err
}

// scanAt collects the live keys under prefix as of revision at.
func scanAt(b *bbolt.Bucket, prefix string, opts store.ListOptions, at int64, res *store.ListResult) error {
	start := prefix
	if opts.StartKey != "" {
		start = opts.StartKey
	}
	end := store.PrefixEnd(prefix)
	c := b.Cursor()

	var (
		curKey  string
		best    []byte // raw record of curKey's newest version <= at
		bestRev int64
		have    bool
	)
	// flush emits curKey's chosen version; it reports false once the page
	// is full and another live key proves there is more.
	flush := func() (bool, error) {
		if !have {
			return true, nil
		}
		have = false
		rec, err := decodeRecord(best)
		if err != nil {
			return false, err
		}
		if rec.tombstone {
			return true, nil
		}
		if opts.Limit > 0 && int64(len(res.KVs)) >= opts.Limit {
			res.More = true
			return false, nil
		}
		res.KVs = append(res.KVs, rec.kv(curKey, bestRev))
		return true, nil
	}
	for k, v := c.Seek([]byte(start)); k != nil; k, v = c.Next() {
		if end != "" && string(k) >= end {
			break
		}
		key, rev, err := splitHistoryKey(k)
		if err != nil {
			return err
		}
		if key < start {
			// start = K+"\x00" (resume after K) seeks into K's versions,
			// whose history keys are K+"\x00"+rev.
			continue
		}
		if key != curKey {
			if more, err := flush(); err != nil || !more {
				return err
			}
			curKey = key
		}
		if rev <= at {
			best, bestRev, have = v, rev, true
		}
	}
	_, err := flush()
	return err
}

// validatePrefix refuses list and watch prefixes no key could match.
func validatePrefix(prefix string) error {
	if strings.IndexByte(prefix, 0) >= 0 {
		return fmt.Errorf("%w: prefix contains a NUL byte", store.ErrInvalidKey)
	}
	if len(prefix) > store.MaxKeyBytes {
		return fmt.Errorf("%w: prefix of %d bytes exceeds %d", store.ErrTooLarge, len(prefix), store.MaxKeyBytes)
	}
	return nil
}
