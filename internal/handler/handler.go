// Package handler is the generic resource handler: one code path serves
// every verb of every resource, driven by the resource's Descriptor.
//
// Objects are stored as JSON of the descriptor's storage version, without
// metadata.resourceVersion: the store's modification revision is the
// resourceVersion, stamped in on the way out.
package handler

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/trellis-project/trellis/internal/admission"
	"github.com/trellis-project/trellis/internal/fieldmanager"
	"github.com/trellis-project/trellis/internal/request"
	"github.com/trellis-project/trellis/internal/resource"
	"github.com/trellis-project/trellis/internal/store"
)

// MaxRequestBodyBytes is kube-apiserver's limit on a request body.
const MaxRequestBodyBytes = 3 * 1024 * 1024

// Storage hands out the store behind a descriptor's StoragePrefix.
type Storage interface {
	For(ctx context.Context, d *resource.Descriptor) (store.Store, error)
}

// Handler serves resource requests. It expects request.Info in the
// request context.
type Handler struct {
	Registry *resource.Registry
	Storage  Storage
	Scheme   *runtime.Scheme
	// Namespaces reads namespace objects for the lifecycle checks
	// (creating in a missing or terminating namespace).
	Namespaces NamespaceGetter
	// Now is the clock (tests replace it).
	Now func() time.Time
	// MinWatchTimeout is the shortest server-chosen watch duration; each
	// watch without timeoutSeconds lasts between it and twice it.
	MinWatchTimeout time.Duration
	// FieldManagers record metadata.managedFields on writes; nil keeps
	// whatever is stored.
	FieldManagers *fieldmanager.Cache
	// Admission runs mutating and validating admission on writes; nil
	// admits everything.
	Admission admission.Interface

	written writtenCache
}

// NamespaceGetter reports a namespace's phase; found=false if absent.
type NamespaceGetter interface {
	NamespacePhase(ctx context.Context, name string) (phase string, terminating bool, found bool, err error)
}

func (h *Handler) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	info := request.InfoFrom(r.Context())
	if info == nil || !info.IsResourceRequest {
		writeError(w, r, apierrors.NewNotFound(schema.GroupResource{}, ""))
		return
	}
	gvr := schema.GroupVersionResource{Group: info.APIGroup, Version: info.APIVersion, Resource: info.Resource}
	d, ok := h.Registry.Lookup(gvr)
	if !ok || info.IsTooDeep() {
		writeError(w, r, notFoundPath())
		return
	}
	if info.Subresource != "" && !d.HasSubresource(info.Subresource) {
		writeError(w, r, notFoundPath())
		return
	}
	if !d.Namespaced && info.Namespace != "" && info.Resource != "namespaces" {
		writeError(w, r, notFoundPath())
		return
	}
	if d.Namespaced && info.Name != "" && info.Namespace == "" {
		writeError(w, r, notFoundPath())
		return
	}
	if d.DeprecationWarning != "" {
		addWarning(w, d.DeprecationWarning)
	}
	if v, ok := d.Strategy.(VirtualCreator); ok {
		h.serveVirtual(w, r, info, d, v)
		return
	}
	st, err := h.Storage.For(r.Context(), d)
	if err != nil {
		writeError(w, r, apierrors.NewInternalError(err))
		return
	}
	rc := &reqCtx{h: h, w: w, r: r, info: info, d: d, store: st}
	if d.Namespaced {
		rc.namespace = info.Namespace
	}
	if info.Subresource == "scale" {
		rc.scale()
		return
	}
	if c := d.Creaters[info.Subresource]; c != nil {
		rc.createSubresource(c)
		return
	}
	if info.Subresource != "" {
		switch info.Verb {
		case "get", "update", "patch":
		default:
			writeError(w, r, methodNotSupported(d, info))
			return
		}
	}
	switch info.Verb {
	case "get":
		rc.get()
	case "list":
		rc.list()
	case "watch":
		rc.watch()
	case "create":
		if info.Name != "" {
			writeError(w, r, methodNotSupported(d, info))
			return
		}
		rc.create()
	case "update":
		rc.update()
	case "patch":
		rc.patch()
	case "delete":
		rc.delete()
	case "deletecollection":
		rc.deleteCollection()
	default:
		writeError(w, r, methodNotSupported(d, info))
	}
}

// reqCtx carries one request through the verb implementations.
type reqCtx struct {
	h         *Handler
	w         http.ResponseWriter
	r         *http.Request
	info      *request.Info
	d         *resource.Descriptor
	store     store.Store
	namespace string
	// manager is the field manager a write is recorded under.
	manager string
	// respondAs, if set, turns the written object into the response
	// (a /scale write answers with the Scale).
	respondAs func(runtime.Object) (runtime.Object, error)
	// deleteOpts are a delete's options, for admission.
	deleteOpts *metav1.DeleteOptions
	// applying marks a server-side apply: the apply records the managed
	// fields (not an Update), and a missing object is created.
	applying bool
	// scaleFields, on a /scale write, records its managed fields (see
	// updateScale); the write path's own recording is then skipped.
	scaleFields *fieldmanager.ScaleManager
}

func (rc *reqCtx) ctx() context.Context { return rc.r.Context() }

func (rc *reqCtx) fail(err error) { writeError(rc.w, rc.r, err) }

// storeError maps a store error to the Status kube-apiserver returns.
func (rc *reqCtx) storeError(err error, name string) error {
	gr := rc.d.GroupResource()
	switch {
	case errors.Is(err, store.ErrNotFound):
		return apierrors.NewNotFound(gr, name)
	case errors.Is(err, store.ErrExists):
		return apierrors.NewAlreadyExists(gr, name)
	case errors.Is(err, store.ErrConflict):
		return apierrors.NewConflict(gr, name, errors.New(optimisticLockMsg))
	case errors.Is(err, store.ErrCompacted):
		return apierrors.NewResourceExpired(fmt.Sprintf("too old resource version: %v", err))
	case errors.Is(err, store.ErrFutureRevision):
		return tooLargeResourceVersion(err)
	case errors.Is(err, store.ErrTooLarge):
		return apierrors.NewRequestEntityTooLargeError(err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return apierrors.NewTimeoutError(err.Error(), 1)
	}
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		return err
	}
	return apierrors.NewInternalError(err)
}

const optimisticLockMsg = "the object has been modified; please apply your changes to the latest version and try again"
