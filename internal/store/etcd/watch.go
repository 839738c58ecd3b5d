package etcd

import (
	"context"
	"errors"
	"fmt"
	"sync"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/trellis-project/trellis/internal/store"
)

// errStopped is the cancellation cause Stop gives; it never reaches callers.
var errStopped = errors.New("watch stopped")

// Watch streams the changes under prefix after opts.AfterRevision.
//
// Events pass through a buffer of Config.WatchBuffer; a consumer that lets it
// fill is dropped with store.ErrWatchTooSlow rather than allowed to hold up
// the etcd stream, which other watches of this client share. A start at or
// below the compacted revision is reported by the watch's Err, not by Watch.
func (s *Store) Watch(ctx context.Context, prefix string, opts store.WatchOptions) (store.Watch, error) {
	if err := s.checkPrefix(prefix); err != nil {
		return nil, err
	}
	if opts.AfterRevision < 0 {
		return nil, fmt.Errorf("watch %q: negative revision %d", prefix, opts.AfterRevision)
	}
	// The store's watch starts from the state at AfterRevision, which must
	// still be readable: the first event's Prev is a version from that state.
	// etcd checks only that the first event's revision is, so it would
	// accept a start one revision into compacted history and then send an
	// update without its previous version. Asking etcd for the events from
	// AfterRevision itself makes it apply the store's rule; pump drops the
	// extra event.
	after, first := opts.AfterRevision, opts.AfterRevision
	if after == 0 {
		// A watch without a revision starts wherever etcd is when the
		// request reaches it, which may be after writes that follow this
		// call. Pinning the start makes "from now on" mean "after Watch".
		// The newest revision is never compacted away, so the watch can
		// start just past it, which etcd serves without a catch-up scan.
		rev, err := s.CurrentRevision(ctx)
		if err != nil {
			return nil, err
		}
		after, first = rev, rev+1
	}

	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		return nil, store.ErrClosed
	}
	s.watches.Add(1)
	s.mu.Unlock()

	// RequireLeader makes a member cut off from its cluster end the watch
	// instead of leaving it silently stale.
	wctx, cancel := context.WithCancelCause(clientv3.WithRequireLeader(ctx))
	unlink := context.AfterFunc(s.done, func() { cancel(store.ErrClosed) })
	key, end := keyRange(prefix, prefix)
	ops := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithRev(first), clientv3.WithPrevKV()}
	if opts.ProgressNotify {
		ops = append(ops, clientv3.WithProgressNotify())
	}
	w := &watch{
		store:    s,
		events:   make(chan store.Event, s.watchBuffer),
		cancel:   cancel,
		done:     make(chan struct{}),
		progress: opts.ProgressNotify,
		after:    after,
	}
	responses := s.client.Watch(wctx, key, ops...)
	go func() {
		defer s.watches.Done()
		defer unlink()
		w.finish(w.pump(wctx, responses))
	}()
	return w, nil
}

// watch adapts one etcd watch to store.Watch.
type watch struct {
	store    *Store
	events   chan store.Event
	cancel   context.CancelCauseFunc
	done     chan struct{} // closed after events
	progress bool
	after    int64 // events at or before it are not delivered

	mu  sync.Mutex
	err error
}

var _ store.Watch = (*watch)(nil)

func (w *watch) Events() <-chan store.Event { return w.events }

func (w *watch) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Stop ends the watch and waits until its goroutine has let go of the etcd
// stream. It never waits for the consumer, so it is safe from any goroutine.
func (w *watch) Stop() {
	w.cancel(errStopped)
	<-w.done
}

// pump forwards etcd's responses until the watch ends and returns why.
func (w *watch) pump(ctx context.Context, responses clientv3.WatchChan) error {
	for {
		var resp clientv3.WatchResponse
		var ok bool
		select {
		case <-ctx.Done():
			return stopReason(ctx)
		case resp, ok = <-responses:
		}
		if ctx.Err() != nil {
			// The client closes the channel, or reports a canceled
			// stream, when the context ends; the context knows why.
			return stopReason(ctx)
		}
		if !ok {
			return w.store.mapErr(errors.New("watch stream closed"))
		}
		if resp.CompactRevision != 0 {
			return fmt.Errorf("etcd: watch after revision %d, compacted through %d: %w", w.after, resp.CompactRevision-1, store.ErrCompacted)
		}
		if err := resp.Err(); err != nil {
			return w.store.mapErr(err)
		}
		if resp.IsProgressNotify() {
			if w.progress {
				// A progress event that finds the buffer full is dropped:
				// it carries no data and the next one supersedes it.
				select {
				case w.events <- store.Event{Type: store.Progress, Revision: resp.Header.Revision}:
				default:
				}
			}
			continue
		}
		for _, ev := range resp.Events {
			if ev.Kv.ModRevision <= w.after {
				continue
			}
			e, err := toEvent(ev)
			if err != nil {
				return err
			}
			select {
			case w.events <- e:
			default:
				return fmt.Errorf("etcd: watch buffer of %d events full at revision %d: %w", cap(w.events), e.Revision, store.ErrWatchTooSlow)
			}
		}
	}
}

// finish records why the watch ended, releases the etcd watch and closes the
// channel. Events already buffered stay readable; err is set before the close
// so a consumer that sees the channel closed reads the final Err.
func (w *watch) finish(err error) {
	w.mu.Lock()
	w.err = err
	w.mu.Unlock()
	w.cancel(errStopped)
	close(w.events)
	close(w.done)
}

// stopReason reports an ended context as the watch's error: nil when the
// caller stopped it (Stop or its own context), ErrClosed when the store did.
func stopReason(ctx context.Context) error {
	if errors.Is(context.Cause(ctx), store.ErrClosed) {
		return store.ErrClosed
	}
	return nil
}

// toEvent converts one etcd event. etcd attaches the previous version on
// request (WithPrevKV) but leaves it out when that version was compacted
// away before the event was sent; the store promises Prev, so such an event
// ends the watch and the consumer relists.
func toEvent(ev *clientv3.Event) (store.Event, error) {
	var prev *store.KV
	if ev.PrevKv != nil {
		p := toKV(ev.PrevKv)
		prev = &p
	}
	switch ev.Type {
	case clientv3.EventTypePut:
		if prev == nil && ev.Kv.Version > 1 {
			return store.Event{}, fmt.Errorf("etcd: update of %q at revision %d arrived without its previous version", ev.Kv.Key, ev.Kv.ModRevision)
		}
		kv := toKV(ev.Kv)
		return store.Event{Type: store.Put, KV: kv, Prev: prev, Revision: kv.ModRevision}, nil
	case clientv3.EventTypeDelete:
		if prev == nil {
			return store.Event{}, fmt.Errorf("etcd: deletion of %q at revision %d arrived without its previous version", ev.Kv.Key, ev.Kv.ModRevision)
		}
		kv := store.KV{Key: string(ev.Kv.Key), ModRevision: ev.Kv.ModRevision}
		return store.Event{Type: store.Delete, KV: kv, Prev: prev, Revision: kv.ModRevision}, nil
	}
	return store.Event{}, fmt.Errorf("etcd: event of unknown type %v for %q", ev.Type, ev.Kv.Key)
}
