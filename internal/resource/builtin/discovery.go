package builtin

import (
	"context"

	discoveryv1 "k8s.io/api/discovery/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/kubernetes/pkg/apis/discovery"
	_ "k8s.io/kubernetes/pkg/apis/discovery/install"
	discoveryvalidation "k8s.io/kubernetes/pkg/apis/discovery/validation"
)

// discoveryKinds are stored and served; no controller mirrors services
// into EndpointSlices yet.
func discoveryKinds() []kindDef {
	return inGroup(discoveryv1.SchemeGroupVersion,
		kindDef{kind: "EndpointSlice", resource: "endpointslices", namespaced: true, rules: endpointSliceRules()},
	)
}

// endpointSliceRules mirror pkg/registry/discovery/endpointslice, whose
// package pulls in the EndpointSlice controllers: generation starts at 1
// and counts changes to anything but metadata, or to labels.
func endpointSliceRules() *declarativeHooks {
	h := newHooks()
	h.prepareCreate = func(_ context.Context, obj runtime.Object) {
		obj.(*discovery.EndpointSlice).Generation = 1
	}
	h.prepareUpdate = func(_ context.Context, obj, old runtime.Object) {
		eps, oldEPS := obj.(*discovery.EndpointSlice), old.(*discovery.EndpointSlice)
		a, b := *eps, *oldEPS
		a.ObjectMeta, b.ObjectMeta = metav1.ObjectMeta{}, metav1.ObjectMeta{}
		if !apiequality.Semantic.DeepEqual(a, b) || !apiequality.Semantic.DeepEqual(eps.Labels, oldEPS.Labels) {
			eps.Generation = oldEPS.Generation + 1
		}
	}
	h.validate, h.validateUpdate = validators(discoveryvalidation.ValidateEndpointSliceCreate, discoveryvalidation.ValidateEndpointSliceUpdate)
	return withDeclarativeValidation(h)
}
