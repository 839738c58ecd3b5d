// Package etcd implements store.Store on an etcd v3 cluster, so several
// Trellis replicas can share one data set.
//
// Revisions are etcd's own: etcd already keeps one global revision that every
// committed write advances by one, and per-key create and modification
// revisions, which is exactly the store model. Each Store call is one etcd
// request (a transaction where a check and a write must be atomic), so two
// Stores on the same cluster see each other's writes and watches.
//
// etcd must accept requests of a little over store.MaxValueBytes: run it with
// --max-request-bytes of at least 3 MiB, or writes of large values fail with
// store.ErrTooLarge.
package etcd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/trellis-project/trellis/internal/store"
)

const (
	defaultDialTimeout = 5 * time.Second

	// DefaultWatchBuffer is how many events a watch holds for a consumer
	// that has not read them yet before it gives up on it.
	DefaultWatchBuffer = 1024

	// maxCallSendBytes fits a value of store.MaxValueBytes, a key of
	// store.MaxKeyBytes and the request framing; the client's default of
	// 2 MiB would refuse the largest values the store allows.
	maxCallSendBytes = store.MaxValueBytes + store.MaxKeyBytes + 64*1024

	// probeKey is read for revision-only requests (CurrentRevision,
	// CompactedRevision); its value never matters and it is never written.
	probeKey = "/trellis/\x00probe"
)

// Config says how to reach etcd.
type Config struct {
	// Endpoints are client URLs, such as "https://10.0.0.1:2379".
	Endpoints []string
	// CAFile verifies the server's certificate; CertFile and KeyFile
	// authenticate this client. Setting any of them turns on TLS.
	CAFile, CertFile, KeyFile string
	// DialTimeout bounds New's first contact with the cluster; zero means
	// five seconds.
	DialTimeout time.Duration
	// WatchBuffer is how many undelivered events a watch may hold before it
	// ends with store.ErrWatchTooSlow; zero means DefaultWatchBuffer.
	WatchBuffer int
}

// Store is a store.Store backed by etcd. It is safe for concurrent use.
type Store struct {
	client      *clientv3.Client
	watchBuffer int

	// mu orders Watch registrations against Close, so Close can wait for
	// every watch goroutine without racing a late wg.Add.
	mu      sync.Mutex
	closed  atomic.Bool
	watches sync.WaitGroup
	// done is canceled, with store.ErrClosed as its cause, by Close.
	done   context.Context
	cancel context.CancelCauseFunc
}

var _ store.Store = (*Store)(nil)

// New connects to etcd and checks that the cluster answers within
// cfg.DialTimeout (or ctx's deadline, if sooner).
func New(ctx context.Context, cfg Config) (*Store, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("etcd: no endpoints")
	}
	tlsConfig, err := cfg.tlsConfig()
	if err != nil {
		return nil, err
	}
	dialTimeout := cfg.DialTimeout
	if dialTimeout <= 0 {
		dialTimeout = defaultDialTimeout
	}
	client, err := clientv3.New(clientv3.Config{
		Endpoints:          cfg.Endpoints,
		DialTimeout:        dialTimeout,
		TLS:                tlsConfig,
		MaxCallSendMsgSize: maxCallSendBytes,
		// The client logs every refused request at warning level, and the
		// store turns compacted and future-revision refusals into ordinary
		// errors; only the client's own failures are worth a log line.
		LogConfig: &zap.Config{
			Level:            zap.NewAtomicLevelAt(zap.ErrorLevel),
			Encoding:         "json",
			EncoderConfig:    zap.NewProductionEncoderConfig(),
			OutputPaths:      []string{"stderr"},
			ErrorOutputPaths: []string{"stderr"},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("etcd: connect to %v: %w", cfg.Endpoints, err)
	}
	// The client dials lazily; one linearizable read proves that a member
	// with a leader answers before New reports success.
	pingCtx, cancelPing := context.WithTimeout(ctx, dialTimeout)
	defer cancelPing()
	if _, err := client.Get(pingCtx, probeKey, clientv3.WithCountOnly()); err != nil {
		client.Close()
		return nil, fmt.Errorf("etcd: reach %v: %w", cfg.Endpoints, err)
	}
	buffer := cfg.WatchBuffer
	if buffer <= 0 {
		buffer = DefaultWatchBuffer
	}
	done, cancel := context.WithCancelCause(context.Background())
	return &Store{client: client, watchBuffer: buffer, done: done, cancel: cancel}, nil
}

func (cfg Config) tlsConfig() (*tls.Config, error) {
	if cfg.CAFile == "" && cfg.CertFile == "" && cfg.KeyFile == "" {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("etcd: read CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("etcd: CA file %s holds no PEM certificate", cfg.CAFile)
		}
		tc.RootCAs = pool
	}
	if (cfg.CertFile == "") != (cfg.KeyFile == "") {
		return nil, errors.New("etcd: CertFile and KeyFile must be set together")
	}
	if cfg.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("etcd: load client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// Get reads the newest version of key.
func (s *Store) Get(ctx context.Context, key string) (store.KV, error) {
	if err := s.check(key); err != nil {
		return store.KV{}, err
	}
	resp, err := s.client.Get(ctx, key)
	if err != nil {
		return store.KV{}, s.mapErr(err)
	}
	if len(resp.Kvs) == 0 {
		return store.KV{}, fmt.Errorf("get %q: %w", key, store.ErrNotFound)
	}
	return toKV(resp.Kvs[0]), nil
}

// List reads the keys under prefix in key order, one page at a time.
func (s *Store) List(ctx context.Context, prefix string, opts store.ListOptions) (store.ListResult, error) {
	if err := s.checkPrefix(prefix); err != nil {
		return store.ListResult{}, err
	}
	start := prefix
	if opts.StartKey != "" {
		if !strings.HasPrefix(opts.StartKey, prefix) {
			return store.ListResult{}, fmt.Errorf("%w: start key %q is not under prefix %q", store.ErrInvalidKey, opts.StartKey, prefix)
		}
		start = opts.StartKey
	}
	if opts.Limit < 0 {
		return store.ListResult{}, fmt.Errorf("list %q: negative limit %d", prefix, opts.Limit)
	}
	if opts.Revision < 0 {
		return store.ListResult{}, fmt.Errorf("list %q: negative revision %d", prefix, opts.Revision)
	}
	start, end := keyRange(start, prefix)
	ops := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(opts.Limit)}
	exact := opts.Match == store.Exact && opts.Revision > 0
	if exact {
		ops = append(ops, clientv3.WithRev(opts.Revision))
	}
	// etcd returns a range sorted by key unless told otherwise, and reports
	// in More whether the limit cut it short.
	resp, err := s.client.Get(ctx, start, ops...)
	if err != nil {
		return store.ListResult{}, s.mapErr(err)
	}
	// The header carries the newest revision even for a read at an older
	// one; the snapshot read is the one asked for.
	rev := resp.Header.Revision
	if exact {
		rev = opts.Revision
	}
	if opts.Match == store.NotOlderThan && rev < opts.Revision {
		return store.ListResult{}, fmt.Errorf("list %q at revision %d, newest is %d: %w", prefix, opts.Revision, rev, store.ErrFutureRevision)
	}
	kvs := make([]store.KV, len(resp.Kvs))
	for i, kv := range resp.Kvs {
		kvs[i] = toKV(kv)
	}
	return store.ListResult{KVs: kvs, Revision: rev, More: resp.More}, nil
}

// Create writes key only if it does not exist.
func (s *Store) Create(ctx context.Context, key string, value []byte) (int64, error) {
	if err := s.checkWrite(key, value); err != nil {
		return 0, err
	}
	resp, err := s.client.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(value))).
		Commit()
	if err != nil {
		return 0, s.mapErr(err)
	}
	if !resp.Succeeded {
		return 0, fmt.Errorf("create %q: %w", key, store.ErrExists)
	}
	return resp.Header.Revision, nil
}

// Update replaces key if it exists and, when pre asks, if its modification
// revision still matches.
func (s *Store) Update(ctx context.Context, key string, value []byte, pre store.Precondition) (store.KV, error) {
	if err := s.checkWrite(key, value); err != nil {
		return store.KV{}, err
	}
	// The prior version comes back with the put so the new version's create
	// revision needs no second read.
	resp, err := s.client.Txn(ctx).
		If(guard(key, pre)).
		Then(clientv3.OpPut(key, string(value), clientv3.WithPrevKV())).
		Else(clientv3.OpGet(key, clientv3.WithKeysOnly())).
		Commit()
	if err != nil {
		return store.KV{}, s.mapErr(err)
	}
	if !resp.Succeeded {
		return store.KV{}, guardFailed("update", key, pre, resp)
	}
	prev := resp.Responses[0].GetResponsePut().GetPrevKv()
	if prev == nil {
		// The guard proved the key existed inside the same transaction.
		return store.KV{}, fmt.Errorf("etcd: update %q: put returned no previous version", key)
	}
	return store.KV{
		Key:            key,
		Value:          value,
		CreateRevision: prev.CreateRevision,
		ModRevision:    resp.Header.Revision,
	}, nil
}

// Delete removes key if it exists and, when pre asks, if its modification
// revision still matches. It returns the removed version with ModRevision set
// to the revision of the deletion.
func (s *Store) Delete(ctx context.Context, key string, pre store.Precondition) (store.KV, error) {
	if err := s.check(key); err != nil {
		return store.KV{}, err
	}
	resp, err := s.client.Txn(ctx).
		If(guard(key, pre)).
		Then(clientv3.OpDelete(key, clientv3.WithPrevKV())).
		Else(clientv3.OpGet(key, clientv3.WithKeysOnly())).
		Commit()
	if err != nil {
		return store.KV{}, s.mapErr(err)
	}
	if !resp.Succeeded {
		return store.KV{}, guardFailed("delete", key, pre, resp)
	}
	prevs := resp.Responses[0].GetResponseDeleteRange().GetPrevKvs()
	if len(prevs) != 1 {
		return store.KV{}, fmt.Errorf("etcd: delete %q: removed %d versions, want 1", key, len(prevs))
	}
	kv := toKV(prevs[0])
	kv.ModRevision = resp.Header.Revision
	return kv, nil
}

// guard is the transaction condition for Update and Delete: the key exists
// and, if pre names a revision, was last modified at it. A missing key has
// modification revision 0, which no precondition names, so both forms fail
// on a missing key.
func guard(key string, pre store.Precondition) clientv3.Cmp {
	if pre.ModRevision == 0 {
		return clientv3.Compare(clientv3.CreateRevision(key), ">", 0)
	}
	return clientv3.Compare(clientv3.ModRevision(key), "=", pre.ModRevision)
}

// guardFailed tells a missing key from a stale precondition using the read
// the transaction's else branch made.
func guardFailed(op, key string, pre store.Precondition, resp *clientv3.TxnResponse) error {
	current := resp.Responses[0].GetResponseRange().GetKvs()
	if len(current) == 0 {
		return fmt.Errorf("%s %q: %w", op, key, store.ErrNotFound)
	}
	return fmt.Errorf("%s %q: expected revision %d, found %d: %w", op, key, pre.ModRevision, current[0].ModRevision, store.ErrConflict)
}

// CurrentRevision asks the cluster for its newest revision.
func (s *Store) CurrentRevision(ctx context.Context) (int64, error) {
	if s.closed.Load() {
		return 0, store.ErrClosed
	}
	resp, err := s.client.Get(ctx, probeKey, clientv3.WithCountOnly())
	if err != nil {
		return 0, s.mapErr(err)
	}
	return resp.Header.Revision, nil
}

// Compact discards history older than rev. Compacting at or below a revision
// already compacted does nothing; compacting past the newest revision fails
// with store.ErrFutureRevision.
func (s *Store) Compact(ctx context.Context, rev int64) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	if rev <= 0 {
		return nil
	}
	// etcd keeps rev itself readable and drops what is older, which is the
	// store's meaning. The compaction is logical at once; etcd frees the
	// space in the background.
	_, err := s.client.Compact(ctx, rev)
	if err != nil {
		err = s.mapErr(err)
		if errors.Is(err, store.ErrCompacted) {
			return nil
		}
		return err
	}
	return nil
}

// CompactedRevision reports the cluster's compaction point, whoever compacted
// it (this Store, another replica, or etcd's own auto-compaction).
//
// etcd has no request that returns it, so it is inferred in two steps. A read
// at revision 1 succeeds exactly when nothing older than revision 1 was
// discarded, which is the answer 0 and the common case. Otherwise a watch
// from revision 1 is refused with the compaction revision in its response;
// etcd answers that from memory, without scanning history, though its watch
// loop may take up to 100 ms to do so.
func (s *Store) CompactedRevision(ctx context.Context) (int64, error) {
	if s.closed.Load() {
		return 0, store.ErrClosed
	}
	_, err := s.client.Get(ctx, probeKey, clientv3.WithRev(1), clientv3.WithCountOnly())
	if err == nil {
		return 0, nil
	}
	if err = s.mapErr(err); !errors.Is(err, store.ErrCompacted) {
		return 0, err
	}
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	for resp := range s.client.Watch(wctx, probeKey, clientv3.WithRev(1)) {
		if resp.CompactRevision != 0 {
			return resp.CompactRevision - 1, nil
		}
		if err := resp.Err(); err != nil {
			return 0, s.mapErr(err)
		}
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return 0, s.mapErr(errors.New("etcd: compaction probe watch closed"))
}

// Close ends every watch with store.ErrClosed and closes the client. Later
// calls return nil.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		return nil
	}
	s.closed.Store(true)
	s.mu.Unlock()
	s.cancel(store.ErrClosed)
	s.watches.Wait()
	if err := s.client.Close(); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("etcd: close client: %w", err)
	}
	return nil
}

func (s *Store) check(key string) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	return store.ValidateKey(key)
}

func (s *Store) checkWrite(key string, value []byte) error {
	if err := s.check(key); err != nil {
		return err
	}
	return store.ValidateValue(value)
}

// checkPrefix accepts "" (every key) and otherwise what a key may be.
func (s *Store) checkPrefix(prefix string) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	if prefix == "" {
		return nil
	}
	return store.ValidateKey(prefix)
}

// keyRange turns a start key and the prefix bounding it into etcd's
// half-open [key, end) range. etcd writes "from key to the end of the
// keyspace" as end "\x00", and refuses the empty key.
func keyRange(start, prefix string) (key, end string) {
	end = store.PrefixEnd(prefix)
	if end == "" {
		end = "\x00"
	}
	if start == "" {
		start = "\x00"
	}
	return start, end
}

// mapErr turns etcd's errors into the store's sentinels, keeping etcd's
// message for the log.
func (s *Store) mapErr(err error) error {
	if err == nil {
		return nil
	}
	if s.closed.Load() {
		return fmt.Errorf("%w: %v", store.ErrClosed, err)
	}
	switch rpctypes.Error(err) {
	case rpctypes.ErrCompacted:
		return fmt.Errorf("etcd: %w", store.ErrCompacted)
	case rpctypes.ErrFutureRev:
		return fmt.Errorf("etcd: %w", store.ErrFutureRevision)
	case rpctypes.ErrRequestTooLarge:
		return fmt.Errorf("etcd refused the request size (raise --max-request-bytes): %w", store.ErrTooLarge)
	}
	return fmt.Errorf("etcd: %w", err)
}

// toKV copies nothing: the client decodes every response into fresh slices
// that nothing else holds.
func toKV(kv *mvccpb.KeyValue) store.KV {
	return store.KV{
		Key:            string(kv.Key),
		Value:          kv.Value,
		CreateRevision: kv.CreateRevision,
		ModRevision:    kv.ModRevision,
	}
}

// RequestProgress asks etcd to send a progress notification on every watch
// of this client that asked for them, so a watch cache learns the current
// revision without a write to its own prefix. The client multiplexes
// watches onto gRPC streams keyed by the context's metadata: the request
// must carry the same metadata as Watch's contexts (RequireLeader), or it
// goes to a stream with no watches and nothing is notified.
func (s *Store) RequestProgress(ctx context.Context) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	return s.client.RequestProgress(clientv3.WithRequireLeader(ctx))
}
