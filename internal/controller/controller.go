// Package controller holds what the in-process controllers share.
package controller

import (
	"context"
	"time"

	"k8s.io/client-go/util/workqueue"
)

// WaitForSync polls synced until it reports true or ctx ends. It polls
// much faster than client-go's cache.WaitForCacheSync (100 ms), because the
// server reports ready only after its controllers have synced.
func WaitForSync(ctx context.Context, synced func() bool) bool {
	for !synced() {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(time.Millisecond):
		}
	}
	return true
}

// ProcessQueue takes keys from queue and syncs them until the queue shuts
// down: a failed sync is retried with the queue's back-off (unless ctx has
// ended, when the error is only the shutdown), a successful one resets it.
func ProcessQueue(ctx context.Context, queue workqueue.TypedRateLimitingInterface[string], sync func(ctx context.Context, key string) error) {
	for {
		key, quit := queue.Get()
		if quit {
			return
		}
		if err := sync(ctx, key); err != nil && ctx.Err() == nil {
			queue.AddRateLimited(key)
		} else {
			queue.Forget(key)
		}
		queue.Done(key)
	}
}
