// Package controller holds what the in-process controllers share.
package controller

import (
	"context"
	"time"
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
