package builtin

import (
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"k8s.io/apimachinery/pkg/runtime/schema"
	_ "k8s.io/kubernetes/pkg/apis/autoscaling/install"
	"k8s.io/kubernetes/pkg/registry/autoscaling/horizontalpodautoscaler"
)

// autoscalingKinds serve HorizontalPodAutoscalers in v2 and v1 over the
// same objects, stored as v2 as kube-apiserver stores them; v1 keeps the
// v2-only fields in annotations through upstream's conversion. No
// controller scales anything yet.
func autoscalingKinds() []kindDef {
	var out []kindDef
	for _, gv := range []schema.GroupVersion{autoscalingv2.SchemeGroupVersion, autoscalingv1.SchemeGroupVersion} {
		out = append(out, kindDef{gv: gv, kind: "HorizontalPodAutoscaler", resource: "horizontalpodautoscalers",
			short: []string{"hpa"}, categories: all, namespaced: true, storage: autoscalingv2.SchemeGroupVersion,
			rules: horizontalpodautoscaler.Strategy, subs: status(horizontalpodautoscaler.StatusStrategy)})
	}
	return out
}
