package handler

import (
	"fmt"
	"net/url"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"
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
	if rc.h.FieldManagers == nil {
		rc.fail(unsupportedMediaType("application/apply-patch+yaml", true))
		return
	}
	body, err := rc.readBody()
	if err != nil {
		rc.fail(err)
		return
	}
	rc.applying = true
	if err := rc.writeOptions("PatchOptions"); err != nil {
		rc.fail(err)
		return
	}
	validation, err := rc.fieldValidation()
	if err != nil {
		rc.fail(err)
		return
	}
	patch := &unstructured.Unstructured{Object: map[string]any{}}
	if err := yaml.Unmarshal(body, &patch.Object); err != nil {
		rc.fail(apierrors.NewBadRequest(fmt.Sprintf("error decoding patch: %v", err)))
		return
	}
	// Strict decoding only finds duplicate fields here (unknown ones fail
	// the apply itself). Upstream reports them after applying, so an
	// apply error wins.
	strictErr := yaml.UnmarshalStrict(body, &map[string]any{})
	warned := false
	force := forceParam(rc.r.URL.Query())
	rc.applyUpdate(func(old runtime.Object) (runtime.Object, error) {
		obj, err := rc.h.FieldManagers.Apply(rc.d, rc.info.Subresource, old, patch.DeepCopy(), rc.manager, force)
		if err != nil {
			return nil, err
		}
		if strictErr != nil {
			switch {
			case validation == "Strict":
				return nil, apierrors.NewBadRequest(fmt.Sprintf("error strict decoding patch: %v", strictErr))
			case validation == "Warn" && !warned:
				addWarning(rc.w, strictErr.Error())
				warned = true
			}
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

// forceParam reads the force parameter as kube-apiserver decodes a
// boolean parameter: present and neither "0" nor "false" is true.
func forceParam(q url.Values) bool {
	v, ok := q["force"]
	return ok && len(v) > 0 && v[0] != "0" && !strings.EqualFold(v[0], "false")
}
