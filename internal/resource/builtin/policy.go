package builtin

import (
	policyv1 "k8s.io/api/policy/v1"
	_ "k8s.io/kubernetes/pkg/apis/policy/install"
	"k8s.io/kubernetes/pkg/registry/policy/poddisruptionbudget"
)

// policyKinds are stored and served; no controller computes a
// PodDisruptionBudget's status and nothing evicts pods yet.
func policyKinds() []kindDef {
	return inGroup(policyv1.SchemeGroupVersion,
		kindDef{kind: "PodDisruptionBudget", resource: "poddisruptionbudgets", short: []string{"pdb"}, namespaced: true,
			rules: poddisruptionbudget.Strategy, subs: status(poddisruptionbudget.StatusStrategy)},
	)
}
