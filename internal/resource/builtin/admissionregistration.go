package builtin

import (
	"fmt"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	_ "k8s.io/kubernetes/pkg/apis/admissionregistration/install"
	"k8s.io/kubernetes/pkg/registry/admissionregistration/mutatingadmissionpolicy"
	"k8s.io/kubernetes/pkg/registry/admissionregistration/mutatingadmissionpolicybinding"
	"k8s.io/kubernetes/pkg/registry/admissionregistration/mutatingwebhookconfiguration"
	"k8s.io/kubernetes/pkg/registry/admissionregistration/validatingadmissionpolicy"
	"k8s.io/kubernetes/pkg/registry/admissionregistration/validatingadmissionpolicybinding"
	"k8s.io/kubernetes/pkg/registry/admissionregistration/validatingwebhookconfiguration"
)

// admissionRegistrationKinds are stored and served (internal/admission
// acts on them). The policy strategies get no authorizer, so the check
// that a binding's author may read its params is skipped (as
// kube-apiserver does without one); the binding strategies insist on a
// resolver all the same, which is then never asked.
func admissionRegistrationKinds() []kindDef {
	vap := validatingadmissionpolicy.NewStrategy(nil, nil)
	ext := []string{"api-extensions"}
	return inGroup(admissionregistrationv1.SchemeGroupVersion,
		kindDef{kind: "ValidatingWebhookConfiguration", resource: "validatingwebhookconfigurations", categories: ext,
			rules: validatingwebhookconfiguration.Strategy},
		kindDef{kind: "MutatingWebhookConfiguration", resource: "mutatingwebhookconfigurations", categories: ext,
			rules: mutatingwebhookconfiguration.Strategy},
		kindDef{kind: "ValidatingAdmissionPolicy", resource: "validatingadmissionpolicies", categories: ext,
			rules: vap, subs: status(validatingadmissionpolicy.NewStatusStrategy(vap))},
		kindDef{kind: "ValidatingAdmissionPolicyBinding", resource: "validatingadmissionpolicybindings", categories: ext,
			rules: validatingadmissionpolicybinding.NewStrategy(nil, nil, noResolver{})},
		kindDef{kind: "MutatingAdmissionPolicy", resource: "mutatingadmissionpolicies", categories: ext,
			rules: mutatingadmissionpolicy.NewStrategy(nil, nil)},
		kindDef{kind: "MutatingAdmissionPolicyBinding", resource: "mutatingadmissionpolicybindings", categories: ext,
			rules: mutatingadmissionpolicybinding.NewStrategy(nil, nil, noResolver{})},
	)
}

// noResolver stands in for the binding strategies' resource resolver.
type noResolver struct{}

func (noResolver) Resolve(gvk schema.GroupVersionKind) (schema.GroupVersionResource, error) {
	return schema.GroupVersionResource{}, fmt.Errorf("no resource resolver for %v", gvk)
}
