package bolt

import (
	"bytes"
	"context"
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/trellis-project/trellis/internal/store"
)

type opKind int

const (
	opCreate opKind = iota
	opUpdate
	opDelete
)

// writeOp is one queued write. The committer fills result and closes done.
type writeOp struct {
	kind  opKind
	key   string
	value []byte
	pre   store.Precondition

	done   chan struct{}
	result store.KV
	prev   *store.KV
	err    error
}

func (s *Store) Create(ctx context.Context, key string, value []byte) (int64, error) {
	op := &writeOp{kind: opCreate, key: key, value: value}
	if err := s.submit(ctx, op); err != nil {
		return 0, err
	}
	return op.result.ModRevision, nil
}

func (s *Store) Update(ctx context.Context, key string, value []byte, pre store.Precondition) (store.KV, error) {
	op := &writeOp{kind: opUpdate, key: key, value: value, pre: pre}
	if err := s.submit(ctx, op); err != nil {
		return store.KV{}, err
	}
	return op.result, nil
}

func (s *Store) Delete(ctx context.Context, key string, pre store.Precondition) (store.KV, error) {
	op := &writeOp{kind: opDelete, key: key, pre: pre}
	if err := s.submit(ctx, op); err != nil {
		return store.KV{}, err
	}
	return op.result, nil
}

// submit queues op and waits for the committer. Once queued, a write is
// carried out even if ctx ends: the caller then merely stops waiting.
func (s *Store) submit(ctx context.Context, op *writeOp) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	if err := store.ValidateKey(op.key); err != nil {
		return err
	}
	if err := store.ValidateValue(op.value); err != nil {
		return err
	}
	// Watchers share the event's value; the caller may reuse its buffer.
	op.value = bytes.Clone(op.value)
	op.done = make(chan struct{})
	select {
	case s.writes <- op:
	case <-s.stop:
		return store.ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-op.done:
		return op.err
	case <-s.committerDone:
		// Queued as Close ran: the committer may have exited first.
		select {
		case <-op.done:
			return op.err
		default:
			return store.ErrClosed
		}
	case <-ctx.Done():
		return ctx.Err()
	}
}

// commitLoop is the single writer. Each iteration takes everything queued
// (up to MaxBatch), applies it in one transaction and fsync, then publishes
// the events and acknowledges the writers.
func (s *Store) commitLoop() {
	defer s.wg.Done()
	defer close(s.committerDone)
	batch := make([]*writeOp, 0, s.opts.MaxBatch)
	lastSize := 0
	for {
		batch = batch[:0]
		select {
		case op := <-s.writes:
			batch = append(batch, op)
		case <-s.stop:
			s.failQueued()
			return
		}
	drain:
		for len(batch) < s.opts.MaxBatch {
			select {
			case op := <-s.writes:
				batch = append(batch, op)
			default:
				break drain
			}
		}
		if len(batch) < lastSize && len(batch) < s.opts.MaxBatch {
			batch = s.linger(batch, lastSize)
		}
		lastSize = len(batch)
		s.commit(batch)
	}
}

// groupLinger bounds how long the committer waits for writers it has just
// acknowledged. Without it, batches alternate between the writers that
// queued during the last fsync and those it just woke, so each commit
// carries half the writers.
const groupLinger = 150 * time.Microsecond

// linger waits briefly for the batch to grow back to the previous batch's
// size. A lone writer (previous batch of one) never waits.
func (s *Store) linger(batch []*writeOp, want int) []*writeOp {
	timer := time.NewTimer(groupLinger)
	defer timer.Stop()
	for len(batch) < want && len(batch) < s.opts.MaxBatch {
		select {
		case op := <-s.writes:
			batch = append(batch, op)
		case <-timer.C:
			return batch
		case <-s.stop:
			return batch
		}
	}
	return batch
}

func (s *Store) failQueued() {
	for {
		select {
		case op := <-s.writes:
			op.err = store.ErrClosed
			close(op.done)
		default:
			return
		}
	}
}

func (s *Store) commit(batch []*writeOp) {
	base := s.rev.Load()
	next := base
	var events []store.Event
	err := s.db.Update(func(tx *bbolt.Tx) error {
		hist := tx.Bucket(bucketHistory)
		log := tx.Bucket(bucketLog)
		events = events[:0]
		next = base
		for _, op := range batch {
			op.err = nil
			ev, ok, err := s.apply(hist, op, next+1)
			if err != nil {
				return err
			}
			if !ok {
				continue // precondition failed; op.err says why
			}
			next++
			if err := log.Put(be64(next), []byte(op.key)); err != nil {
				return err
			}
			events = append(events, ev)
		}
		if next == base {
			return nil
		}
		return tx.Bucket(bucketMeta).Put(metaRev, be64(next))
	})
	if err != nil {
		err = fmt.Errorf("commit to %s: %w", s.path, err)
		for _, op := range batch {
			op.err = err
			close(op.done)
		}
		return
	}
	if next != base {
		s.rev.Store(next)
		s.hub.publish(events, next)
	}
	for _, op := range batch {
		close(op.done)
	}
}

// apply performs one write inside the batch transaction. It returns ok=false
// with op.err set when the write's own precondition fails; a returned error
// aborts the whole batch.
func (s *Store) apply(hist *bbolt.Bucket, op *writeOp, rev int64) (store.Event, bool, error) {
	cur, curRev, exists, err := latestVersion(hist, op.key, 0)
	if err != nil {
		return store.Event{}, false, err
	}
	exists = exists && !cur.tombstone
	var prev *store.KV
	if exists {
		p := cur.kv(op.key, curRev)
		prev = &p
	}
	switch op.kind {
	case opCreate:
		if exists {
			op.err = fmt.Errorf("%w: %s", store.ErrExists, op.key)
			return store.Event{}, false, nil
		}
		rec := record{createRev: rev, value: op.value}
		if err := hist.Put(historyKey(op.key, rev), encodeRecord(rec)); err != nil {
			return store.Event{}, false, err
		}
		op.result = rec.kv(op.key, rev)
		return store.Event{Type: store.Put, KV: op.result, Revision: rev}, true, nil
	case opUpdate:
		if !exists {
			op.err = fmt.Errorf("%w: %s", store.ErrNotFound, op.key)
			return store.Event{}, false, nil
		}
		if op.pre.ModRevision != 0 && op.pre.ModRevision != curRev {
			op.err = fmt.Errorf("%w: %s is at revision %d, not %d", store.ErrConflict, op.key, curRev, op.pre.ModRevision)
			return store.Event{}, false, nil
		}
		rec := record{createRev: cur.createRev, value: op.value}
		if err := hist.Put(historyKey(op.key, rev), encodeRecord(rec)); err != nil {
			return store.Event{}, false, err
		}
		op.result = rec.kv(op.key, rev)
		return store.Event{Type: store.Put, KV: op.result, Prev: prev, Revision: rev}, true, nil
	default: // opDelete
		if !exists {
			op.err = fmt.Errorf("%w: %s", store.ErrNotFound, op.key)
			return store.Event{}, false, nil
		}
		if op.pre.ModRevision != 0 && op.pre.ModRevision != curRev {
			op.err = fmt.Errorf("%w: %s is at revision %d, not %d", store.ErrConflict, op.key, curRev, op.pre.ModRevision)
			return store.Event{}, false, nil
		}
		rec := record{tombstone: true, createRev: cur.createRev}
		if err := hist.Put(historyKey(op.key, rev), encodeRecord(rec)); err != nil {
			return store.Event{}, false, err
		}
		op.result = store.KV{Key: op.key, Value: cur.value, CreateRevision: cur.createRev, ModRevision: rev}
		return store.Event{Type: store.Delete, KV: store.KV{Key: op.key, ModRevision: rev}, Prev: prev, Revision: rev}, true, nil
	}
}
