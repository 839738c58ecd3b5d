// Package store defines the MVCC key-value contract every Trellis resource is
// stored through, and the errors its backends report.
//
// The model is etcd's: one global revision counts every committed write; each
// key remembers the revision that created it and the one that last modified
// it. The API layer exposes the modification revision as resourceVersion, so a
// backend must never hand out a revision twice or let it go backwards, even
// across restarts.
package store

import (
	"context"
	"errors"
	"fmt"
)

// Limits every backend enforces so that a bad request cannot poison the data
// files. kube-apiserver refuses objects over 1.5 MiB before they reach etcd;
// the store adds a little headroom for encoding overhead.
const (
	MaxKeyBytes   = 2048
	MaxValueBytes = 2 * 1024 * 1024
)

// Sentinel errors. Backends wrap them with context; callers test with errors.Is.
var (
	// ErrNotFound means the key does not exist at the requested revision.
	ErrNotFound = errors.New("key not found")
	// ErrExists means Create found the key already present.
	ErrExists = errors.New("key already exists")
	// ErrConflict means the key's modification revision differs from the
	// one the caller expected (optimistic concurrency failed).
	ErrConflict = errors.New("revision conflict")
	// ErrCompacted means the requested revision is older than the oldest one
	// the store still holds. The API maps it to 410 Gone.
	ErrCompacted = errors.New("required revision has been compacted")
	// ErrFutureRevision means the requested revision has not been written yet.
	ErrFutureRevision = errors.New("required revision is in the future")
	// ErrTooLarge means a key or value exceeds the store's limits.
	ErrTooLarge = errors.New("key or value too large")
	// ErrInvalidKey means the key is empty or contains a forbidden byte.
	ErrInvalidKey = errors.New("invalid key")
	// ErrClosed means the store (or a watch) has been closed.
	ErrClosed = errors.New("store closed")
	// ErrWatchTooSlow means a watcher fell too far behind and was dropped;
	// its consumer must relist.
	ErrWatchTooSlow = errors.New("watcher fell too far behind")
)

// KV is one version of a key. Value is owned by the caller once returned:
// backends never modify a slice after handing it out.
type KV struct {
	Key            string
	Value          []byte
	CreateRevision int64
	ModRevision    int64
}

// RevisionMatch says how ListOptions.Revision is interpreted.
type RevisionMatch int

const (
	// Latest ignores Revision and reads the newest data.
	Latest RevisionMatch = iota
	// Exact reads the data as of Revision; ErrCompacted if that is gone.
	Exact
	// NotOlderThan reads data at least as new as Revision (the newest is fine).
	NotOlderThan
)

// ListOptions narrow a List.
type ListOptions struct {
	// StartKey, if set, is the first key (inclusive) to return; it must lie
	// under the prefix. Used to resume a paginated list.
	StartKey string
	// Limit caps the number of KVs returned; 0 means no limit.
	Limit int64
	// Revision and Match select the snapshot to read.
	Revision int64
	Match    RevisionMatch
}

// ListResult is one page of a List.
type ListResult struct {
	KVs []KV
	// Revision is the snapshot the page was read from; pass it with Exact to
	// read the next page from the same snapshot.
	Revision int64
	// More is true when keys beyond the page exist under the prefix.
	More bool
}

// Precondition guards Update and Delete. A zero ModRevision means
// "unconditional".
type Precondition struct {
	ModRevision int64
}

// EventType is the kind of change an Event reports.
type EventType int

const (
	// Put is a create or an update; IsCreate tells which.
	Put EventType = iota
	// Delete removes a key; Event.Prev holds its last value.
	Delete
	// Progress carries no key: it tells the watcher that every event up to
	// Revision has been delivered. Watch caches use it to serve consistent
	// reads without waiting for a write to their own prefix.
	Progress
)

// Event is one change seen by a watch.
type Event struct {
	Type EventType
	// KV is the new state for Put; for Delete, Key and ModRevision (the
	// deletion revision) are set and Value is empty.
	KV KV
	// Prev is the previous state: always set for Delete, set for Put when the
	// key existed before.
	Prev *KV
	// Revision equals KV.ModRevision for Put and Delete.
	Revision int64
}

// IsCreate reports whether a Put event created its key.
func (e Event) IsCreate() bool {
	return e.Type == Put && e.KV.CreateRevision == e.KV.ModRevision
}

// WatchOptions narrow a Watch.
type WatchOptions struct {
	// AfterRevision: deliver every event with a revision greater than this.
	// Zero means "from now on".
	AfterRevision int64
	// ProgressNotify asks for Progress events when the watch is idle.
	ProgressNotify bool
}

// Watch is a stream of events in revision order, without gaps or duplicates.
type Watch interface {
	// Events is closed when the watch ends; Err then tells why (nil if the
	// caller stopped it).
	Events() <-chan Event
	Err() error
	// Stop ends the watch and releases its resources. Safe to call twice.
	Stop()
}

// Store is the MVCC contract. Keys are byte strings without NUL; by
// convention "/registry/<resource>/<namespace>/<name>".
type Store interface {
	Get(ctx context.Context, key string) (KV, error)
	List(ctx context.Context, prefix string, opts ListOptions) (ListResult, error)
	// Create writes a key that must not exist; it returns the new revision.
	Create(ctx context.Context, key string, value []byte) (int64, error)
	// Update replaces an existing key; ErrNotFound if absent, ErrConflict if
	// the precondition fails. It returns the new version.
	Update(ctx context.Context, key string, value []byte, pre Precondition) (KV, error)
	// Delete removes a key and returns its last version, with ModRevision
	// set to the revision of the deletion.
	Delete(ctx context.Context, key string, pre Precondition) (KV, error)
	Watch(ctx context.Context, prefix string, opts WatchOptions) (Watch, error)
	// CurrentRevision is the revision of the newest committed write.
	CurrentRevision(ctx context.Context) (int64, error)
	// Compact discards history older than rev (rev itself stays readable).
	// Reads and watches at older revisions then fail with ErrCompacted.
	// Compacting at or below an earlier compaction is a no-op.
	Compact(ctx context.Context, rev int64) error
	// CompactedRevision is the newest revision no longer readable: after
	// Compact(rev) it is rev-1. Exact reads at or before it fail with
	// ErrCompacted, and a watch must start after it.
	CompactedRevision(ctx context.Context) (int64, error)
	Close() error
}

// ValidateKey checks a key against the limits every backend shares.
func ValidateKey(key string) error {
	if key == "" {
		return fmt.Errorf("%w: empty key", ErrInvalidKey)
	}
	if len(key) > MaxKeyBytes {
		return fmt.Errorf("%w: key of %d bytes exceeds %d", ErrTooLarge, len(key), MaxKeyBytes)
	}
	for i := 0; i < len(key); i++ {
		if key[i] == 0 {
			return fmt.Errorf("%w: key contains a NUL byte", ErrInvalidKey)
		}
	}
	return nil
}

// ValidateValue checks a value against the limits every backend shares.
func ValidateValue(value []byte) error {
	if len(value) > MaxValueBytes {
		return fmt.Errorf("%w: value of %d bytes exceeds %d", ErrTooLarge, len(value), MaxValueBytes)
	}
	return nil
}

// PrefixEnd returns the smallest key greater than every key with the prefix.
func PrefixEnd(prefix string) string {
	b := []byte(prefix)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1])
		}
	}
	return "" // prefix of all 0xff: no upper bound
}
