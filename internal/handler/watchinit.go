package handler

import "context"

type watchInitializedKey struct{}

// WithWatchInitialized returns ctx carrying done, which a watch calls
// once it has written its initial events and follows live ones. A filter
// that holds a seat for a watch only while it starts (API Priority and
// Fairness) frees it there; done may be called more than once.
func WithWatchInitialized(ctx context.Context, done func()) context.Context {
	return context.WithValue(ctx, watchInitializedKey{}, done)
}

// watchInitialized calls the function WithWatchInitialized stored, if any.
func watchInitialized(ctx context.Context) {
	if done, ok := ctx.Value(watchInitializedKey{}).(func()); ok {
		done()
	}
}
