package admission

import (
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	apiadmission "k8s.io/apiserver/pkg/admission"
	"k8s.io/apiserver/pkg/authentication/user"

	"github.com/trellis-project/trellis/internal/resource"
)

// RuleMatches applies one admissionregistration rule to the request, as if
// the request were for gvr (another version of its resource, under
// matchPolicy Equivalent). Webhooks and policies share it.
func RuleMatches(r admissionregistrationv1.RuleWithOperations, a *Attributes, gvr schema.GroupVersionResource) bool {
	if !anyOf(operations(r.Operations), string(a.Operation)) ||
		!anyOf(r.APIGroups, gvr.Group) || !anyOf(r.APIVersions, gvr.Version) {
		return false
	}
	resourceMatch := false
	for _, res := range r.Resources {
		name, sub, _ := strings.Cut(res, "/")
		if (name == "*" || name == gvr.Resource) && (sub == "*" || sub == a.Subresource) {
			resourceMatch = true
			break
		}
	}
	if !resourceMatch {
		return false
	}
	isNamespace := gvr.Group == "" && gvr.Resource == "namespaces"
	switch scope := r.Scope; {
	case scope == nil || *scope == admissionregistrationv1.AllScopes:
		return true
	case *scope == admissionregistrationv1.NamespacedScope:
		return !isNamespace && a.Namespace != ""
	case *scope == admissionregistrationv1.ClusterScope:
		return isNamespace || a.Namespace == ""
	}
	return false
}

func operations(ops []admissionregistrationv1.OperationType) []string {
	out := make([]string, len(ops))
	for i, o := range ops {
		out[i] = string(o)
	}
	return out
}

func anyOf(values []string, v string) bool {
	for _, x := range values {
		if x == "*" || x == v {
			return true
		}
	}
	return false
}

// ObjectSelectorMatches applies an objectSelector to the new or the old
// object: either may match.
func ObjectSelectorMatches(sel labels.Selector, a *Attributes) bool {
	if sel.Empty() {
		return true
	}
	for _, o := range []runtime.Object{a.Object, a.OldObject} {
		if o == nil {
			continue
		}
		if m, err := meta.Accessor(o); err == nil && sel.Matches(labels.Set(m.GetLabels())) {
			return true
		}
	}
	return false
}

// IsNamespace reports whether the request is about a Namespace (whose
// namespaceSelector is matched against its own labels).
func (a *Attributes) IsNamespace() bool {
	return a.Resource.Group == "" && a.Resource.Resource == "namespaces"
}

// Convert moves obj between two versions of one resource through its
// storage version. A nil obj stays nil.
func Convert(obj runtime.Object, from, to *resource.Descriptor) (runtime.Object, error) {
	if obj == nil || from == to {
		return obj, nil
	}
	stored, err := from.Strategy.ToStorage(obj.DeepCopyObject())
	if err != nil {
		return nil, err
	}
	out, err := to.Strategy.FromStorage(stored)
	if err != nil {
		return nil, err
	}
	out.GetObjectKind().SetGroupVersionKind(to.GroupVersionKind())
	return out, nil
}

// Upstream presents a request to upstream's CEL libraries
// (k8s.io/apiserver/pkg/admission/plugin/...) with obj and old in the
// version kind names.
func Upstream(a *Attributes, kind schema.GroupVersionKind, obj, old runtime.Object) *apiadmission.VersionedAttributes {
	var info user.Info
	if u := a.User; u != nil {
		info = &user.DefaultInfo{Name: u.Name, UID: u.UID, Groups: u.Groups, Extra: u.Extra}
	}
	rec := apiadmission.NewAttributesRecord(obj, old, kind, a.Namespace, a.Name, a.Resource, a.Subresource,
		apiadmission.Operation(a.Operation), a.Options, a.DryRun, info)
	return &apiadmission.VersionedAttributes{Attributes: rec, VersionedKind: kind, VersionedObject: apiadmission.NewLazyObject(obj), VersionedOldObject: apiadmission.NewLazyObject(old)}
}
