package handler

import (
	"encoding/json"
	"fmt"
	"net/http"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/mergepatch"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/apimachinery/pkg/util/validation/field"
	sigsjson "sigs.k8s.io/json"
)

// maxJSONPatchOperations is kube-apiserver's cap on one JSON patch.
const maxJSONPatchOperations = 10000

func (rc *reqCtx) patch() {
	format, err := rc.patchFormat()
	if err != nil {
		rc.fail(err)
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
	if err := validPatchJSON(patchBytes); err != nil {
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
			// Errors are worded in strategicMerge.
			if patched, err = rc.strategicMerge(old, patchBytes); err != nil {
				return nil, err
			}
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

// validPatchJSON is kube-apiserver's first check of a JSON, merge or
// strategic merge patch, made once the options are valid.
func validPatchJSON(patch []byte) error {
	if !json.Valid(patch) {
		return apierrors.NewBadRequest("invalid JSON patch")
	}
	return nil
}

// patchFormat classifies a patch's Content-Type. Custom resources take no
// strategic merge patch, on the resource or a subresource, and their 415
// lists only the patch types they take, as kube-apiserver's CRD handler
// words it.
func (rc *reqCtx) patchFormat() (bodyFormat, error) {
	format, err := requestBodyFormat(rc.r, true)
	if rc.isUnstructured() && (err != nil || format == bodyStrategicMergePatch) {
		return 0, apierrors.NewGenericServerResponse(http.StatusUnsupportedMediaType, "", schemaGR(), "",
			"the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml", 0, false)
	}
	return format, err
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

// strategicMerge applies a strategic merge patch to old as kube-apiserver
// does: the patch must be a JSON object (else 400), its directives
// ($patch, $retainKeys, $setElementOrder/, $deleteFromPrimitiveList/)
// follow the patchStrategy and patchMergeKey tags of the kind's Go type,
// and the library's errors get upstream's codes: 400 for a malformed
// directive, 422 for a list of lists or keys $retainKeys does not list,
// and a bare 500 for the rest (an unknown $patch), which upstream never
// turned into a Status. Duplicate fields in the patch are reported per
// fieldValidation.
func (rc *reqCtx) strategicMerge(old runtime.Object, patchBytes []byte) ([]byte, error) {
	validation, err := rc.fieldValidation()
	if err != nil {
		return nil, err
	}
	original, err := runtime.DefaultUnstructuredConverter.ToUnstructured(old)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	patch := map[string]any{}
	var strictErrs []error
	if validation == "Ignore" {
		err = sigsjson.UnmarshalCaseSensitivePreserveInts(patchBytes, &patch)
	} else {
		strictErrs, err = sigsjson.UnmarshalStrict(patchBytes, &patch)
	}
	if err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	patched, err := strategicpatch.StrategicMergeMapPatch(original, patch, rc.d.Strategy.New())
	switch err {
	case nil:
	case mergepatch.ErrBadJSONDoc, mergepatch.ErrBadPatchFormatForPrimitiveList, mergepatch.ErrBadPatchFormatForRetainKeys,
		mergepatch.ErrBadPatchFormatForSetElementOrderList, mergepatch.ErrUnsupportedStrategicMergePatchFormat:
		return nil, apierrors.NewBadRequest(err.Error())
	case mergepatch.ErrNoListOfLists, mergepatch.ErrPatchContentNotMatchRetainKeys:
		return nil, apierrors.NewGenericServerResponse(http.StatusUnprocessableEntity, "", schema.GroupResource{}, "", err.Error(), 0, false)
	default:
		return nil, &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: http.StatusInternalServerError, Message: err.Error()}}
	}
	if len(strictErrs) > 0 {
		if validation == "Strict" {
			return nil, apierrors.NewInvalid(schema.GroupKind{}, "", field.ErrorList{
				field.Invalid(field.NewPath("patch"), fmt.Sprintf("%+v", patch), runtime.NewStrictDecodingError(strictErrs).Error()),
			})
		}
		for _, e := range strictErrs {
			addWarning(rc.w, e.Error())
		}
	}
	out, err := json.Marshal(patched)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	return out, nil
}
