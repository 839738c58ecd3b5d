package builtin

import (
	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	_ "k8s.io/kubernetes/pkg/apis/flowcontrol/install"
	"k8s.io/kubernetes/pkg/registry/flowcontrol/flowschema"
	"k8s.io/kubernetes/pkg/registry/flowcontrol/prioritylevelconfiguration"
)

// flowcontrolKinds are stored and served; requests are not classified by
// them yet.
func flowcontrolKinds() []kindDef {
	return inGroup(flowcontrolv1.SchemeGroupVersion,
		kindDef{kind: "FlowSchema", resource: "flowschemas",
			rules: flowschema.Strategy, subs: status(flowschema.StatusStrategy)},
		kindDef{kind: "PriorityLevelConfiguration", resource: "prioritylevelconfigurations",
			rules: prioritylevelconfiguration.Strategy, subs: status(prioritylevelconfiguration.StatusStrategy)},
	)
}
