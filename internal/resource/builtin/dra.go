package builtin

import (
	"context"

	resourcev1 "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/kubernetes/pkg/api/resourceclaimspec"
	"k8s.io/kubernetes/pkg/apis/resource"
	_ "k8s.io/kubernetes/pkg/apis/resource/install"
	resourcevalidation "k8s.io/kubernetes/pkg/apis/resource/validation"
	"k8s.io/kubernetes/pkg/registry/resource/deviceclass"
	"k8s.io/kubernetes/pkg/registry/resource/devicetaintrule"
	"k8s.io/kubernetes/pkg/registry/resource/resourceslice"
)

// draKinds are resource.k8s.io, dynamic resource allocation. They are
// stored and served; no scheduler allocates claims and no driver
// publishes slices yet.
func draKinds() []kindDef {
	return inGroup(resourcev1.SchemeGroupVersion,
		kindDef{kind: "DeviceClass", resource: "deviceclasses", returnDeleted: true, rules: deviceclass.Strategy},
		kindDef{kind: "DeviceTaintRule", resource: "devicetaintrules",
			rules: devicetaintrule.Strategy, subs: status(devicetaintrule.StatusStrategy)},
		kindDef{kind: "ResourceSlice", resource: "resourceslices", returnDeleted: true,
			rules: resourceslice.Strategy, fields: attrs(resourceslice.GetAttrs)},
		kindDef{kind: "ResourceClaim", resource: "resourceclaims", namespaced: true, returnDeleted: true,
			rules: resourceClaimRules(), subs: status(resourceClaimStatusRules()),
			reset: map[string][]string{"": {"status"}, "status": {"metadata", "spec"}}},
		kindDef{kind: "ResourceClaimTemplate", resource: "resourceclaimtemplates", namespaced: true, returnDeleted: true,
			rules: resourceClaimTemplateRules()},
	)
}

// The rules of claims and claim templates mirror
// pkg/registry/resource/resourceclaim and resourceclaimtemplate, whose
// packages pull in the apiserver's HTTP filters. Unlike upstream they do
// not check that a namespace allowing admin access (the
// resource.kubernetes.io/admin-access label) holds a claim asking for it.

func resourceClaimRules() *declarativeHooks {
	h := newHooks()
	h.prepareCreate = func(_ context.Context, obj runtime.Object) {
		claim := obj.(*resource.ResourceClaim)
		claim.Status = resource.ResourceClaimStatus{}
		resourceclaimspec.DropDisabledFields(&claim.Spec, nil)
	}
	h.prepareUpdate = func(_ context.Context, obj, old runtime.Object) {
		claim, oldClaim := obj.(*resource.ResourceClaim), old.(*resource.ResourceClaim)
		claim.Status = oldClaim.Status
		resourceclaimspec.DropDisabledFields(&claim.Spec, &oldClaim.Spec)
	}
	h.validate, h.validateUpdate = validators(resourcevalidation.ValidateResourceClaim, resourcevalidation.ValidateResourceClaimUpdate)
	return withDeclarativeValidation(h)
}

func resourceClaimStatusRules() *declarativeHooks {
	h := newHooks()
	h.prepareUpdate = func(_ context.Context, obj, old runtime.Object) {
		claim, oldClaim := obj.(*resource.ResourceClaim), old.(*resource.ResourceClaim)
		claim.Spec = oldClaim.Spec
		metav1.ResetObjectMetaForStatus(&claim.ObjectMeta, &oldClaim.ObjectMeta)
	}
	_, h.validateUpdate = validators(nil, resourcevalidation.ValidateResourceClaimStatusUpdate)
	return withDeclarativeValidation(h)
}

func resourceClaimTemplateRules() *declarativeHooks {
	h := newHooks()
	h.prepareCreate = func(_ context.Context, obj runtime.Object) {
		resourceclaimspec.DropDisabledFields(&obj.(*resource.ResourceClaimTemplate).Spec.Spec, nil)
	}
	h.prepareUpdate = func(_ context.Context, obj, old runtime.Object) {
		resourceclaimspec.DropDisabledFields(&obj.(*resource.ResourceClaimTemplate).Spec.Spec, &old.(*resource.ResourceClaimTemplate).Spec.Spec)
	}
	h.validate, h.validateUpdate = validators(resourcevalidation.ValidateResourceClaimTemplate,
		func(tmpl, old *resource.ResourceClaimTemplate) field.ErrorList {
			return append(resourcevalidation.ValidateResourceClaimTemplate(tmpl), resourcevalidation.ValidateResourceClaimTemplateUpdate(tmpl, old)...)
		})
	return withDeclarativeValidation(h)
}
