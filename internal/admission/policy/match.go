package policy

import (
	"context"
	"errors"
	"fmt"
	"sync"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/trellis-project/trellis/internal/admission"
	"github.com/trellis-project/trellis/internal/resource"
)

// Namespaces finds a namespace for namespaceSelectors and for the
// namespaceObject variable; NotFound when it does not exist.
type Namespaces interface {
	Namespace(ctx context.Context, name string) (*corev1.Namespace, error)
}

var errNoNamespaces = errors.New("no namespace lookup configured")

// target is the version of the request's resource a policy matched, and
// so the version its expressions see the object in.
type target struct {
	resource schema.GroupVersionResource
	kind     schema.GroupVersionKind
	// descriptor serves resource; nil when the request's own does.
	descriptor *resource.Descriptor
}

// request is one admission request as the matching of many policies sees
// it: the lookups it needs are made at most once.
type request struct {
	a          *admission.Attributes
	namespaces Namespaces

	eqOnce      sync.Once
	equivalents []*resource.Descriptor

	nsOnce sync.Once
	ns     *corev1.Namespace
	nsErr  error
}

func (r *request) versions() []*resource.Descriptor {
	r.eqOnce.Do(func() {
		if r.a.Versions != nil && r.a.Descriptor != nil {
			r.equivalents = r.a.Versions.Equivalents(r.a.Descriptor)
		}
	})
	return r.equivalents
}

// namespace returns the request's namespace object; nil for cluster-scoped
// requests.
func (r *request) namespace(ctx context.Context) (*corev1.Namespace, error) {
	if r.a.Namespace == "" {
		return nil, nil
	}
	r.nsOnce.Do(func() {
		if r.namespaces == nil {
			r.nsErr = apierrors.NewInternalError(errNoNamespaces)
			return
		}
		r.ns, r.nsErr = r.namespaces.Namespace(ctx, r.a.Namespace)
	})
	return r.ns, r.nsErr
}

// matches applies matchConstraints or a binding's matchResources to the
// request, in kube-apiserver's order: namespace selector, object selector,
// excluded rules, rules (with matchPolicy Equivalent, also against the
// resource's other versions). A selector error is reported only if the
// rules match.
func (r *request) matches(ctx context.Context, mr *admissionregistrationv1.MatchResources) (bool, target, error) {
	if mr.NamespaceSelector == nil {
		return false, target{}, errors.New("a nil namespace selector was passed, please ensure selectors are initialized properly")
	}
	if mr.ObjectSelector == nil {
		return false, target{}, errors.New("a nil object selector was passed, please ensure selectors are initialized properly")
	}
	nsMatches, nsErr := r.matchNamespace(ctx, mr.NamespaceSelector)
	if !nsMatches && nsErr == nil {
		return false, target{}, nil
	}
	objSel, objErr := metav1.LabelSelectorAsSelector(mr.ObjectSelector)
	if objErr == nil && !admission.ObjectSelectorMatches(objSel, r.a) {
		return false, target{}, nil
	}
	equivalent := mr.MatchPolicy == nil || *mr.MatchPolicy == admissionregistrationv1.Equivalent
	if excluded, _, err := r.matchRules(mr.ExcludeResourceRules, equivalent); excluded || err != nil {
		return false, target{}, err
	}
	t := target{resource: r.a.Resource, kind: r.a.Kind}
	if len(mr.ResourceRules) > 0 {
		ok, matched, err := r.matchRules(mr.ResourceRules, equivalent)
		if err != nil || !ok {
			return false, target{}, err
		}
		t = matched
	}
	if nsErr != nil {
		return false, target{}, nsErr
	}
	if objErr != nil {
		return false, target{}, objErr
	}
	return true, t, nil
}

func (r *request) matchRules(rules []admissionregistrationv1.NamedRuleWithOperations, equivalent bool) (bool, target, error) {
	a := r.a
	for _, rule := range rules {
		if admission.RuleMatches(rule.RuleWithOperations, a, a.Resource) && nameMatches(rule.ResourceNames, a.Name) {
			return true, target{resource: a.Resource, kind: a.Kind}, nil
		}
	}
	if !equivalent || a.Descriptor == nil {
		return false, target{}, nil
	}
	for _, rule := range rules {
		for _, e := range r.versions() {
			gvr := schema.GroupVersionResource{Group: e.Group, Version: e.Version, Resource: e.Resource}
			if gvr == a.Resource || !admission.RuleMatches(rule.RuleWithOperations, a, gvr) {
				continue
			}
			kind := e.GroupVersionKind()
			if a.Subresource == "scale" {
				kind = a.Kind // a Scale is a Scale in every version
			}
			if kind.Empty() {
				return false, target{}, fmt.Errorf("unable to convert to %v: unknown kind", gvr)
			}
			if nameMatches(rule.ResourceNames, a.Name) {
				return true, target{resource: gvr, kind: kind, descriptor: e}, nil
			}
		}
	}
	return false, target{}, nil
}

// nameMatches: an empty list matches every name.
func nameMatches(names []string, name string) bool {
	if len(names) == 0 {
		return true
	}
	for _, n := range names {
		if n == name {
			return true
		}
	}
	return false
}

// matchNamespace applies a namespaceSelector: cluster-scoped objects
// always match, a Namespace is matched by its own labels.
func (r *request) matchNamespace(ctx context.Context, ls *metav1.LabelSelector) (bool, error) {
	a := r.a
	if a.Namespace == "" && !a.IsNamespace() {
		return true, nil
	}
	sel, err := metav1.LabelSelectorAsSelector(ls)
	if err != nil {
		return false, err
	}
	if sel.Empty() {
		return true, nil
	}
	if a.IsNamespace() {
		m := a.ObjectMeta()
		if m == nil {
			return false, nil
		}
		return sel.Matches(labels.Set(m.GetLabels())), nil
	}
	ns, err := r.namespace(ctx)
	if err != nil {
		return false, err
	}
	return sel.Matches(labels.Set(ns.Labels)), nil
}

// bindingParams reports whether binding b applies to the request (its
// matchResources) and, if it does, the params its paramRef selects.
func (r *request) bindingParams(ctx context.Context, p *Params, kind *admissionregistrationv1.ParamKind, b *binding, namespace string) ([]runtime.Object, bool, error) {
	if b.matchResources != nil {
		ok, _, err := r.matches(ctx, b.matchResources)
		if err != nil || !ok {
			return nil, false, err
		}
	}
	params, err := p.collect(ctx, kind, b.paramRef, namespace)
	if err != nil {
		return nil, false, err
	}
	return params, true, nil
}
