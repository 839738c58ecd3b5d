package builtin

import (
	eventsv1 "k8s.io/api/events/v1"
	_ "k8s.io/kubernetes/pkg/apis/events/install"
	"k8s.io/kubernetes/pkg/registry/core/event"
)

// eventsKinds serves events.k8s.io/v1 over the same stored objects as
// core/v1 Events, converting through the internal type. Upstream's event
// strategy validates by the request's version.
func eventsKinds() []kindDef {
	return inGroup(eventsv1.SchemeGroupVersion,
		kindDef{kind: "Event", resource: "events", short: []string{"ev"}, namespaced: true,
			storage: coreV1, rules: event.Strategy, fields: attrs(event.GetAttrs),
			// events.k8s.io names the involved object "regarding".
			fieldLabels: []string{
				"regarding.kind", "regarding.namespace", "regarding.name", "regarding.uid",
				"regarding.apiVersion", "regarding.resourceVersion", "regarding.fieldPath", "reportingController",
			}},
	)
}
