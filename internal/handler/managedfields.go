package handler

import (
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/trellis-project/trellis/internal/fieldmanager"
)

// writeOptions validates the write options kube-apiserver validates with
// CreateOptions, UpdateOptions or PatchOptions (optionsKind) that concern
// field management, and sets rc.manager: the fieldManager parameter, or
// the name derived from the User-Agent.
func (rc *reqCtx) writeOptions(optionsKind string) error {
	q := rc.r.URL.Query()
	name := q.Get("fieldManager")
	var errs field.ErrorList
	switch {
	case optionsKind != "PatchOptions":
	case rc.applying && name == "":
		// kubectl defaults it; controllers must set it.
		errs = append(errs, field.Required(field.NewPath("fieldManager"), "is required for apply patch"))
	case !rc.applying && q.Has("force"):
		errs = append(errs, field.Forbidden(field.NewPath("force"), "may not be specified for non-apply patch"))
	}
	errs = append(errs, metav1validation.ValidateFieldManager(name, field.NewPath("fieldManager"))...)
	if len(errs) > 0 {
		return apierrors.NewInvalid(schema.GroupKind{Group: metav1.GroupName, Kind: optionsKind}, "", errs)
	}
	rc.manager = fieldmanager.ManagerName(name, rc.r.UserAgent())
	return nil
}

// recordManagedFields records this write in obj's metadata.managedFields:
// an Update operation by rc.manager over live (an empty object on
// create). It runs where kube-apiserver runs its field manager: after
// decoding and defaulting, before the strategy prepares the object, so
// what the strategy sets (a namespace's finalizers, a service's cluster
// IP) is not credited to the client. Without field managers obj keeps
// live's managed fields. An apply has recorded its own, and so has a
// write to /scale (updateScale).
func (rc *reqCtx) recordManagedFields(live, obj runtime.Object) {
	if rc.applying || rc.scaleFields != nil {
		return
	}
	if rc.h.FieldManagers != nil {
		rc.h.FieldManagers.Record(rc.d, rc.info.Subresource, live, obj, rc.manager)
		return
	}
	if lm, err := meta.Accessor(live); err == nil {
		if m, err := meta.Accessor(obj); err == nil {
			m.SetManagedFields(lm.GetManagedFields())
		}
	}
}

// encodeWritten encodes a created or updated object for storage. One too
// large to store is stored without its managed fields, which is how
// kube-apiserver retries such a write.
func (rc *reqCtx) encodeWritten(obj runtime.Object) ([]byte, error) {
	raw, err := rc.encodeForStorage(obj)
	if apierrors.IsRequestEntityTooLargeError(err) {
		if m, merr := meta.Accessor(obj); merr == nil && len(m.GetManagedFields()) > 0 {
			m.SetManagedFields(nil)
			return rc.encodeForStorage(obj)
		}
	}
	return raw, err
}
