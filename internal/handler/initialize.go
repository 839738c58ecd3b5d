package handler

import (
	"errors"
	"net/http"
	"strconv"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/trellis-project/trellis/internal/admission/initializer"
	"github.com/trellis-project/trellis/internal/store"
)

// includeUninitialized reports whether the request asks to see objects
// whose initializers are still pending.
func (rc *reqCtx) includeUninitialized() bool {
	v := rc.r.URL.Query().Get(initializer.IncludeUninitializedParam)
	b, _ := strconv.ParseBool(v)
	return b
}

// awaitInitialization holds a create until the object's initializers are
// done (answering 201 with the initialized object), one of them failed
// it (answering with the initializer's Status), or the request's deadline
// passes (504; the object stays, still initializing).
func (rc *reqCtx) awaitInitialization(key string, rev int64, uid types.UID) {
	w, err := rc.store.Watch(rc.ctx(), key, store.WatchOptions{AfterRevision: rev})
	if err != nil {
		rc.fail(rc.storeError(err, rc.info.Name))
		return
	}
	defer w.Stop()
	var failure error
	for {
		select {
		case <-rc.ctx().Done():
			rc.fail(apierrors.NewTimeoutError("initialization of the object did not complete within the request's deadline", 0))
			return
		case ev, ok := <-w.Events():
			if !ok {
				err := w.Err()
				if err == nil {
					err = errors.New("watch ended")
				}
				rc.fail(rc.storeError(err, rc.info.Name))
				return
			}
			if ev.KV.Key != key {
				continue
			}
			switch ev.Type {
			case store.Delete:
				if failure == nil {
					failure = apierrors.NewNotFound(rc.d.GroupResource(), rc.info.Name)
				}
				rc.fail(failure)
				return
			case store.Put:
				obj, err := rc.decodeStored(ev.KV.Value, ev.KV.ModRevision)
				if err != nil {
					rc.fail(apierrors.NewInternalError(err))
					return
				}
				if m, ok := obj.(interface{ GetUID() types.UID }); ok && m.GetUID() != uid {
					// Deleted and created again by someone else.
					rc.fail(apierrors.NewNotFound(rc.d.GroupResource(), rc.info.Name))
					return
				}
				if st, failed := initializer.FailureOf(obj); failed {
					failure = st
					continue
				}
				if len(initializer.PendingOf(obj)) == 0 {
					rc.respond(http.StatusCreated, obj, ev.KV.ModRevision)
					return
				}
			}
		}
	}
}

// deleteFailedInitialization deletes an object an initializer failed,
// after the failure was stored (so the waiting creator reads its Status),
// and answers the initializer's update with the object as stored.
func (rc *reqCtx) deleteFailedInitialization(key string, kv store.KV, obj runtime.Object) {
	if _, err := rc.store.Delete(rc.ctx(), key, store.Precondition{ModRevision: kv.ModRevision}); err != nil && !errors.Is(err, store.ErrNotFound) {
		rc.fail(rc.storeError(err, rc.info.Name))
		return
	}
	rc.respond(http.StatusOK, obj, kv.ModRevision)
}
