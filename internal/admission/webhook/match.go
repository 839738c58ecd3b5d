package webhook

import (
	"context"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/trellis-project/trellis/internal/admission"
	"github.com/trellis-project/trellis/internal/resource"
)

// invocation is a webhook that matched, and the version of the resource
// it is to be called with.
type invocation struct {
	hook     *hook
	resource schema.GroupVersionResource
	kind     schema.GroupVersionKind
	// target serves resource; nil when the request's own descriptor does.
	target *resource.Descriptor
}

// NamespaceLabels finds a namespace's labels for namespaceSelectors.
type NamespaceLabels interface {
	Labels(ctx context.Context, namespace string) (labels.Set, error)
}

// exemptFromAPIHooks: admission configuration objects are never sent to
// webhooks configured through the API, so that a broken webhook cannot
// lock itself in.
func exemptFromAPIHooks(a *admission.Attributes) bool {
	if a.Kind.Group != "admissionregistration.k8s.io" {
		return false
	}
	switch a.Kind.Kind {
	case "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration",
		"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding",
		"MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding":
		return true
	}
	return false
}

// exemptFromAllHooks: the review APIs of the authentication path.
func exemptFromAllHooks(gr schema.GroupResource) bool {
	switch gr {
	case schema.GroupResource{Group: "authentication.k8s.io", Resource: "tokenreviews"},
		schema.GroupResource{Group: "authentication.k8s.io", Resource: "selfsubjectreviews"},
		schema.GroupResource{Group: "authorization.k8s.io", Resource: "subjectaccessreviews"},
		schema.GroupResource{Group: "authorization.k8s.io", Resource: "localsubjectaccessreviews"},
		schema.GroupResource{Group: "authorization.k8s.io", Resource: "selfsubjectaccessreviews"},
		schema.GroupResource{Group: "authorization.k8s.io", Resource: "selfsubjectrulesreviews"}:
		return true
	}
	return false
}

// match decides whether h applies to the request, in kube-apiserver's
// order: namespace selector, object selector, rules (then, with
// matchPolicy Equivalent, the rules against the resource's other
// versions). Match conditions are evaluated by the caller, which has the
// object in the invocation's version.
func (d *Dispatcher) match(ctx context.Context, h *hook, a *admission.Attributes, equivalents func() []*resource.Descriptor) (*invocation, error) {
	nsMatches, nsErr := d.matchNamespace(ctx, h, a)
	if !nsMatches && nsErr == nil {
		return nil, nil
	}
	objMatches := h.selectorErr != nil || admission.ObjectSelectorMatches(h.objectSelector, a)
	if !objMatches {
		return nil, nil
	}
	var inv *invocation
	for _, r := range h.rules {
		if admission.RuleMatches(r, a, a.Resource) {
			inv = &invocation{hook: h, resource: a.Resource, kind: a.Kind}
			break
		}
	}
	if inv == nil && h.equivalent && a.Descriptor != nil {
	rules:
		for _, r := range h.rules {
			for _, e := range equivalents() {
				gvr := schema.GroupVersionResource{Group: e.Group, Version: e.Version, Resource: e.Resource}
				if gvr == a.Resource || !admission.RuleMatches(r, a, gvr) {
					continue
				}
				kind := e.GroupVersionKind()
				if a.Subresource == "scale" {
					kind = a.Kind // a Scale is a Scale in every version
				}
				inv = &invocation{hook: h, resource: gvr, kind: kind, target: e}
				break rules
			}
		}
	}
	if inv == nil {
		return nil, nil
	}
	if nsErr != nil {
		return nil, nsErr
	}
	if h.selectorErr != nil {
		return nil, apierrors.NewInternalError(h.selectorErr)
	}
	return inv, nil
}

// matchNamespace applies the namespaceSelector: cluster-scoped objects
// always match; a Namespace is matched by its own labels.
func (d *Dispatcher) matchNamespace(ctx context.Context, h *hook, a *admission.Attributes) (bool, error) {
	isNamespace := a.IsNamespace()
	if a.Namespace == "" && !isNamespace {
		return true, nil
	}
	if h.selectorErr != nil {
		return false, apierrors.NewInternalError(h.selectorErr)
	}
	if h.namespaceSelector.Empty() {
		return true, nil
	}
	if isNamespace {
		m := a.ObjectMeta()
		if m == nil {
			return false, nil
		}
		return h.namespaceSelector.Matches(labels.Set(m.GetLabels())), nil
	}
	if d.namespaces == nil {
		return false, apierrors.NewInternalError(errNoNamespaceLookup)
	}
	set, err := d.namespaces.Labels(ctx, a.Namespace)
	if apierrors.IsNotFound(err) {
		return false, err
	}
	if err != nil {
		return false, apierrors.NewInternalError(err)
	}
	return h.namespaceSelector.Matches(set), nil
}
