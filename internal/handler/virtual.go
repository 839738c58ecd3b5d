package handler

import (
	"context"
	"net/http"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/trellis-project/trellis/internal/request"
	"github.com/trellis-project/trellis/internal/resource"
)

// VirtualCreator is implemented by the Strategy of a resource that is not
// stored: the review APIs (SubjectAccessReview, TokenReview, ...). Their
// only verb is create, which evaluates the posted object and answers 201
// with the result; nothing is written.
type VirtualCreator interface {
	// CreateVirtual evaluates obj, of the served version, decoded,
	// defaulted and with its namespace checked against the URL. It
	// returns the response object (of the served version) or an API
	// status error, such as a 422 for an invalid spec.
	CreateVirtual(ctx context.Context, obj runtime.Object) (runtime.Object, error)
}

// serveVirtual serves a request to a resource whose strategy is a
// VirtualCreator. kube-apiserver registers only POST on the collection of
// such a resource, so another method there is 405 and any deeper path 404.
func (h *Handler) serveVirtual(w http.ResponseWriter, r *http.Request, info *request.Info, d *resource.Descriptor, v VirtualCreator) {
	if info.Name != "" || info.Subresource != "" {
		writeError(w, r, notFoundPath())
		return
	}
	if info.Verb != "create" {
		writeError(w, r, apierrors.NewGenericServerResponse(http.StatusMethodNotAllowed, "", schema.GroupResource{}, "", "405: Method Not Allowed", 0, false))
		return
	}
	rc := &reqCtx{h: h, w: w, r: r, info: info, d: d}
	if d.Namespaced {
		rc.namespace = info.Namespace
	}
	obj, m, err := rc.readObject("CreateOptions")
	if err != nil {
		rc.fail(err)
		return
	}
	if _, err := rc.dryRun(); err != nil {
		rc.fail(err)
		return
	}
	// What kube-apiserver's create handler does before calling a storage:
	// wipe the system fields, check the namespace, record managed fields.
	m.SetCreationTimestamp(metav1.Time{})
	m.SetUID("")
	m.SetDeletionTimestamp(nil)
	m.SetDeletionGracePeriodSeconds(nil)
	m.SetSelfLink("")
	if err := rc.checkNamespace(m); err != nil {
		rc.fail(err)
		return
	}
	d.Strategy.Default(obj)
	rc.recordManagedFields(d.Strategy.New(), obj)
	out, err := v.CreateVirtual(rc.ctx(), obj)
	if err != nil {
		rc.fail(err)
		return
	}
	rc.respond(http.StatusCreated, out, 0)
}

// guardWrite runs the descriptor's WriteGuard, if any, on a create (old
// nil) or update.
func (rc *reqCtx) guardWrite(obj, old runtime.Object) error {
	if rc.d.WriteGuard == nil {
		return nil
	}
	return rc.d.WriteGuard.GuardWrite(rc.ctx(), obj, old)
}
