package handler

import (
	"fmt"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// maxJSONPatchOperations is kube-apiserver's cap on one JSON patch.
const maxJSONPatchOperations = 10000

func (rc *reqCtx) patch() {
	format, err := requestBodyFormat(rc.r, true)
	if err != nil {
		rc.fail(err)
		return
	}
	if format == bodyStrategicMergePatch && rc.isUnstructured() {
		rc.fail(unsupportedMediaType("application/strategic-merge-patch+json", true))
		return
	}
	if format == bodyApplyPatch {
		rc.apply()
		return
	}
	patchBytes, err := rc.readBody()
	if err != nil {
		rc.fail(err)
		return
	}
	if err := rc.writeOptions("PatchOptions"); err != nil {
		rc.fail(err)
		return
	}
	var jp jsonpatch.Patch
	if format == bodyJSONPatch {
		if jp, err = jsonpatch.DecodePatch(patchBytes); err != nil {
			rc.fail(apierrors.NewBadRequest(err.Error()))
			return
		}
		if len(jp) > maxJSONPatchOperations {
			rc.fail(apierrors.NewRequestEntityTooLargeError(fmt.Sprintf("The allowed maximum operations in a JSON patch is %d, got %d", maxJSONPatchOperations, len(jp))))
			return
		}
	}
	rc.applyUpdate(func(old runtime.Object) (runtime.Object, error) {
		original, err := encodeJSON(old)
		if err != nil {
			return nil, apierrors.NewInternalError(err)
		}
		var patched []byte
		switch format {
		case bodyJSONPatch:
			patched, err = jp.Apply(original)
		case bodyMergePatch:
			patched, err = jsonpatch.MergePatch(original, patchBytes)
		case bodyStrategicMergePatch:
			patched, err = strategicpatch.StrategicMergePatch(original, patchBytes, rc.d.Strategy.New())
		}
		if err != nil {
			return nil, rc.patchError(old, patchBytes, err)
		}
		obj, err := rc.decodeBody(patched, bodyJSON)
		if err != nil {
			return nil, err
		}
		// A resourceVersion the patch did not change is not a
		// precondition: the patch applies to whatever is current.
		m, _ := meta.Accessor(obj)
		oldMeta, _ := meta.Accessor(old)
		if m.GetResourceVersion() == oldMeta.GetResourceVersion() {
			m.SetResourceVersion("")
		}
		if m.GetName() != oldMeta.GetName() || m.GetNamespace() != oldMeta.GetNamespace() {
			return nil, rc.invalid(obj, field.ErrorList{field.Invalid(field.NewPath("metadata", "name"), m.GetName(), "field is immutable")})
		}
		return obj, nil
	}, "")
}

// patchError words a failed patch as kube-apiserver does: a JSON patch
// whose test or path fails is a 422, a malformed document a 400.
func (rc *reqCtx) patchError(old runtime.Object, patch []byte, err error) error {
	switch err.(type) {
	case *jsonpatch.AccumulatedCopySizeError, *jsonpatch.ArraySizeError:
		return apierrors.NewRequestEntityTooLargeError(err.Error())
	}
	name := ""
	if m, e := meta.Accessor(old); e == nil {
		name = m.GetName()
	}
	return apierrors.NewInvalid(rc.d.GroupVersionKind().GroupKind(), name, field.ErrorList{
		field.Invalid(field.NewPath("patch"), string(patch), err.Error()),
	})
}
