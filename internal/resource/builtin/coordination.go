package builtin

import (
	coordinationv1 "k8s.io/api/coordination/v1"
	_ "k8s.io/kubernetes/pkg/apis/coordination/install"
	"k8s.io/kubernetes/pkg/registry/coordination/lease"
)

func coordinationKinds() []kindDef {
	return inGroup(coordinationv1.SchemeGroupVersion,
		kindDef{kind: "Lease", resource: "leases", namespaced: true, rules: lease.Strategy},
	)
}
