package builtin

import (
	schedulingv1 "k8s.io/api/scheduling/v1"
	_ "k8s.io/kubernetes/pkg/apis/scheduling/install"
	"k8s.io/kubernetes/pkg/registry/scheduling/priorityclass"
)

func schedulingKinds() []kindDef {
	return inGroup(schedulingv1.SchemeGroupVersion,
		kindDef{kind: "PriorityClass", resource: "priorityclasses", short: []string{"pc"}, rules: priorityclass.Strategy},
	)
}
