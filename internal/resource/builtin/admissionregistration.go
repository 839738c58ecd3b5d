package builtin

import (
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	_ "k8s.io/kubernetes/pkg/apis/admissionregistration/install"
	"k8s.io/kubernetes/pkg/registry/admissionregistration/mutatingadmissionpolicy"
	"k8s.io/kubernetes/pkg/registry/admissionregistration/mutatingadmissionpolicybinding"
	"k8s.io/kubernetes/pkg/registry/admissionregistration/mutatingwebhookconfiguration"
	"k8s.io/kubernetes/pkg/registry/admissionregistration/validatingadmissionpolicy"
	"k8s.io/kubernetes/pkg/registry/admissionregistration/validatingadmissionpolicybinding"
	"k8s.io/kubernetes/pkg/registry/admissionregistration/validatingwebhookconfiguration"
)

// admissionRegistrationKinds are stored and served; Trellis does not call
// webhooks or evaluate admission policies yet. The policy strategies get
// no authorizer, so the check that a policy's author may read its
// paramKind is skipped (as kube-apiserver does without one).
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
			rules: validatingadmissionpolicybinding.NewStrategy(nil, nil, nil)},
		kindDef{kind: "MutatingAdmissionPolicy", resource: "mutatingadmissionpolicies", categories: ext,
			rules: mutatingadmissionpolicy.NewStrategy(nil, nil)},
		kindDef{kind: "MutatingAdmissionPolicyBinding", resource: "mutatingadmissionpolicybindings", categories: ext,
			rules: mutatingadmissionpolicybinding.NewStrategy(nil, nil, nil)},
	)
}
