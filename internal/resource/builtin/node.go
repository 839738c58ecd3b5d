package builtin

import (
	nodev1 "k8s.io/api/node/v1"
	_ "k8s.io/kubernetes/pkg/apis/node/install"
	"k8s.io/kubernetes/pkg/registry/node/runtimeclass"
)

func nodeKinds() []kindDef {
	return inGroup(nodev1.SchemeGroupVersion,
		kindDef{kind: "RuntimeClass", resource: "runtimeclasses", rules: runtimeclass.Strategy},
	)
}
