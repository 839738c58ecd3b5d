// Package policy is admission through CEL policies
// (admissionregistration.k8s.io/v1): ValidatingAdmissionPolicies and
// MutatingAdmissionPolicies with their bindings. Policies run in-process.
//
// Upstream's libraries compile and evaluate the expressions
// (k8s.io/apiserver/pkg/admission/plugin/cel, .../policy/validating,
// .../policy/mutating/patch); this package owns the rest of the dispatch:
// which policies and bindings match a request, which params a binding
// selects, and what a decision does to the request (deny, warn, audit,
// patch), worded as kube-apiserver words it.
package policy
