package handler

import (
	"fmt"
	"net/url"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// apply answers a server-side apply patch (application/apply-patch+yaml)
// as kube-apiserver does. The body, YAML or JSON, is an apply
// configuration; upstream's field manager merges it into the current
// object as an Apply operation by the fieldManager parameter (required),
// or into an empty one: apply creates a missing object. Fields another
// manager owns with other values are conflicts (409, one cause per field)
// unless force is set. The merged object then takes the path of every
// update: defaulting, the strategy, validation, the store.
func (rc *reqCtx) apply() {
	ap, err := rc.readApplyPatch()
	if err != nil {
		rc.fail(err)
		return
	}
	rc.applyUpdate(func(old runtime.Object) (runtime.Object, error) {
		obj, err := rc.h.FieldManagers.Apply(rc.d, rc.info.Subresource, old, ap.patch.DeepCopy(), rc.manager, ap.force)
		if err != nil {
			return nil, err
		}
		if err := ap.checkStrict(rc); err != nil {
			return nil, err
		}
		m, err := meta.Accessor(obj)
		if err != nil {
			return nil, apierrors.NewInternalError(err)
		}
		oldMeta, _ := meta.Accessor(old)
		if oldMeta.GetUID() == "" && m.GetUID() != "" {
			return nil, apierrors.NewConflict(rc.d.GroupResource(), rc.info.Name,
				fmt.Errorf("uid mismatch: the provided object specified uid %s, and no existing object was found", m.GetUID()))
		}
		// The live resourceVersion the merge carried over is no
		// precondition; one the patch set is.
		if m.GetResourceVersion() == oldMeta.GetResourceVersion() {
			m.SetResourceVersion("")
		}
		if err := rc.checkNamespace(m); err != nil {
			return nil, err
		}
		if m.GetName() != rc.info.Name {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("the name of the object (%s) does not match the name on the URL (%s)", m.GetName(), rc.info.Name))
		}
		return obj, nil
	}, "")
}

// applyPatch is a server-side apply request's body and parameters.
type applyPatch struct {
	patch *unstructured.Unstructured
	force bool
	// strictErr is a duplicate field in the body, and validation the
	// fieldValidation parameter that says what it costs.
	strictErr  error
	validation string
	warned     bool
}

// readApplyPatch reads and checks an apply request (body, PatchOptions
// with the required fieldManager, fieldValidation) and marks rc as an
// apply. A server without field managers answers 415.
func (rc *reqCtx) readApplyPatch() (*applyPatch, error) {
	if rc.h.FieldManagers == nil {
		return nil, unsupportedMediaType("application/apply-patch+yaml", true)
	}
	body, err := rc.readBody()
	if err != nil {
		return nil, err
	}
	rc.applying = true
	if err := rc.writeOptions("PatchOptions"); err != nil {
		return nil, err
	}
	ap := &applyPatch{patch: &unstructured.Unstructured{Object: map[string]any{}}, force: forceParam(rc.r.URL.Query())}
	if ap.validation, err = rc.fieldValidation(); err != nil {
		return nil, err
	}
	// Numbers decode as int64 or float64, as in kube-apiserver (a
	// custom resource's replicas must be an int64).
	if err := utilyaml.Unmarshal(body, &ap.patch.Object); err != nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("error decoding patch: %v", err))
	}
	// Strict decoding only finds duplicate fields here (unknown ones fail
	// the apply itself). Upstream reports them after applying, so an
	// apply error wins.
	ap.strictErr = utilyaml.UnmarshalStrict(body, &map[string]any{})
	return ap, nil
}

// checkStrict reports a duplicate field after a successful merge: a 400
// with fieldValidation=Strict, one warning with Warn.
func (ap *applyPatch) checkStrict(rc *reqCtx) error {
	if ap.strictErr == nil {
		return nil
	}
	switch {
	case ap.validation == "Strict":
		return apierrors.NewBadRequest(fmt.Sprintf("error strict decoding patch: %v", ap.strictErr))
	case ap.validation == "Warn" && !ap.warned:
		addWarning(rc.w, ap.strictErr.Error())
		ap.warned = true
	}
	return nil
}

// forceParam reads the force parameter as kube-apiserver decodes a
// boolean parameter: present and neither "0" nor "false" is true.
func forceParam(q url.Values) bool {
	v, ok := q["force"]
	return ok && len(v) > 0 && v[0] != "0" && !strings.EqualFold(v[0], "false")
}
