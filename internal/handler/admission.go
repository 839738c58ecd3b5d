package handler

import (
	"fmt"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	sigsjson "sigs.k8s.io/json"

	"github.com/trellis-project/trellis/internal/admission"
	"github.com/trellis-project/trellis/internal/audit"
	"github.com/trellis-project/trellis/internal/auth"
	"github.com/trellis-project/trellis/internal/resource"
)

// admissionAttrs describes the write in progress. obj and old are of the
// request's version; for /scale they are the parent objects, and admission
// sees them as autoscaling/v1 Scale, as upstream.
func (rc *reqCtx) admissionAttrs(op admission.Operation, obj, old runtime.Object) (*admission.Attributes, error) {
	a := &admission.Attributes{
		Operation:   op,
		Kind:        rc.d.GroupVersionKind(),
		Resource:    schema.GroupVersionResource{Group: rc.d.Group, Version: rc.d.Version, Resource: rc.d.Resource},
		Subresource: rc.info.Subresource,
		Namespace:   rc.namespace,
		Name:        rc.info.Name,
		Object:      obj,
		OldObject:   old,
		Options:     rc.admissionOptions(op),
		DryRun:      rc.r.URL.Query().Has("dryRun"),
		User:        auth.UserFrom(rc.ctx()),
		Descriptor:  rc.d,
		Versions:    rc.h.Registry,
		Decode:      rc.decodeAdmitted,
	}
	if m, err := meta.Accessor(obj); err == nil && op == admission.Create {
		a.Name = m.GetName() // "" when generateName will pick it
	}
	if rc.respondAs != nil {
		// A /scale write: admission sees Scales, and what mutating
		// admission changes is mapped back by the caller.
		a.Kind = scaleGVK
		a.Decode = func(_ *resource.Descriptor, raw []byte) (runtime.Object, error) {
			return decodeScale(raw, bodyJSON, nil)
		}
		var err error
		if obj != nil {
			if a.Object, err = rc.respondAs(obj); err != nil {
				return nil, apierrors.NewInternalError(err)
			}
		}
		if old != nil {
			if a.OldObject, err = rc.respondAs(old); err != nil {
				return nil, apierrors.NewInternalError(err)
			}
		}
	}
	return a, nil
}

// admissionOptions are the request's options as an AdmissionReview
// carries them: a patch is an update (or a create) to admission.
func (rc *reqCtx) admissionOptions(op admission.Operation) runtime.Object {
	q := rc.r.URL.Query()
	dryRun := q["dryRun"]
	manager := q.Get("fieldManager")
	validation := q.Get("fieldValidation")
	switch op {
	case admission.Create:
		return &metav1.CreateOptions{TypeMeta: metav1.TypeMeta{APIVersion: "meta.k8s.io/v1", Kind: "CreateOptions"},
			DryRun: dryRun, FieldManager: manager, FieldValidation: validation}
	case admission.Update:
		return &metav1.UpdateOptions{TypeMeta: metav1.TypeMeta{APIVersion: "meta.k8s.io/v1", Kind: "UpdateOptions"},
			DryRun: dryRun, FieldManager: manager, FieldValidation: validation}
	case admission.Delete:
		if rc.deleteOpts != nil {
			o := rc.deleteOpts.DeepCopy()
			o.TypeMeta = metav1.TypeMeta{APIVersion: "meta.k8s.io/v1", Kind: "DeleteOptions"}
			return o
		}
		return &metav1.DeleteOptions{TypeMeta: metav1.TypeMeta{APIVersion: "meta.k8s.io/v1", Kind: "DeleteOptions"}, DryRun: dryRun}
	}
	return nil
}

// admit runs mutating admission and returns the object to continue with.
func (rc *reqCtx) admit(op admission.Operation, obj, old runtime.Object) (runtime.Object, error) {
	if rc.h.Admission == nil {
		return obj, nil
	}
	a, err := rc.admissionAttrs(op, obj, old)
	if err != nil {
		return nil, err
	}
	before := a.Object
	err = rc.h.Admission.Admit(rc.ctx(), a)
	rc.addAdmissionWarnings(a)
	audit.AddAnnotations(rc.ctx(), a.AuditAnnotations())
	if err != nil {
		return nil, err
	}
	if a.Object == before || obj == nil {
		return obj, nil
	}
	if rc.respondAs != nil {
		return rc.scaleAdmitted(obj, a.Object)
	}
	return a.Object, nil
}

// validateAdmission runs validating admission.
func (rc *reqCtx) validateAdmission(op admission.Operation, obj, old runtime.Object) error {
	if rc.h.Admission == nil {
		return nil
	}
	a, err := rc.admissionAttrs(op, obj, old)
	if err != nil {
		return err
	}
	err = rc.h.Admission.Validate(rc.ctx(), a)
	rc.addAdmissionWarnings(a)
	audit.AddAnnotations(rc.ctx(), a.AuditAnnotations())
	return err
}

func (rc *reqCtx) addAdmissionWarnings(a *admission.Attributes) {
	for _, w := range a.Warnings() {
		addWarning(rc.w, w)
	}
}

// decodeAdmitted decodes an object a mutating webhook patched, as
// kube-apiserver does: unknown fields dropped (custom resources pruned),
// then defaulted again.
func (rc *reqCtx) decodeAdmitted(d *resource.Descriptor, raw []byte) (runtime.Object, error) {
	obj := d.Strategy.New()
	if u, ok := obj.(*unstructured.Unstructured); ok {
		content := map[string]any{}
		if err := sigsjson.UnmarshalCaseSensitivePreserveInts(raw, &content); err != nil {
			return nil, err
		}
		u.Object = content
	} else if err := sigsjson.UnmarshalCaseSensitivePreserveInts(raw, obj); err != nil {
		return nil, err
	}
	want := d.GroupVersionKind()
	if got := obj.GetObjectKind().GroupVersionKind(); !got.Empty() && got != want {
		return nil, fmt.Errorf("the patched object is a %s, not a %s", got, want)
	}
	if hook, ok := d.Strategy.(decodedHook); ok {
		if _, err := hook.Decoded(obj); err != nil {
			return nil, err
		}
	}
	obj.GetObjectKind().SetGroupVersionKind(want)
	d.Strategy.Default(obj)
	return obj, nil
}

// scaleAdmitted writes the replicas of a Scale that mutating admission
// changed back into the parent object.
func (rc *reqCtx) scaleAdmitted(obj, admitted runtime.Object) (runtime.Object, error) {
	sc, ok := admitted.(*autoscalingv1.Scale)
	scaler, isScaler := rc.d.Strategy.(Scaler)
	if !ok || !isScaler {
		return nil, apierrors.NewInternalError(fmt.Errorf("mutating admission returned a %T for a /scale write", admitted))
	}
	if err := scaler.SetReplicas(obj, sc.Spec.Replicas); err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	return obj, nil
}

// admitDelete runs both admission phases for the deletion of old, as
// kube-apiserver does once the object to delete has been read.
func (rc *reqCtx) admitDelete(old runtime.Object) error {
	if rc.h.Admission == nil {
		return nil
	}
	if _, err := rc.admit(admission.Delete, nil, old); err != nil {
		return err
	}
	return rc.validateAdmission(admission.Delete, nil, old)
}
