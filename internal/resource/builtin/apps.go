package builtin

import (
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/kubernetes/pkg/apis/apps"
	_ "k8s.io/kubernetes/pkg/apis/apps/install"
	"k8s.io/kubernetes/pkg/registry/apps/controllerrevision"
	"k8s.io/kubernetes/pkg/registry/apps/daemonset"
	"k8s.io/kubernetes/pkg/registry/apps/deployment"
	"k8s.io/kubernetes/pkg/registry/apps/replicaset"
	"k8s.io/kubernetes/pkg/registry/apps/statefulset"
)

// appsKinds are stored and served; no controller rolls out deployments or
// creates pods for them yet.
func appsKinds() []kindDef {
	return inGroup(appsv1.SchemeGroupVersion,
		kindDef{kind: "Deployment", resource: "deployments", short: []string{"deploy"}, categories: all, namespaced: true,
			rules: deployment.Strategy, subs: status(deployment.StatusStrategy), scale: deploymentScale,
			replicasPaths: specReplicasIn("apps/v1beta1", "apps/v1beta2", "apps/v1")},
		kindDef{kind: "ReplicaSet", resource: "replicasets", short: []string{"rs"}, categories: all, namespaced: true,
			rules: replicaset.Strategy, subs: status(replicaset.StatusStrategy), scale: replicaSetScale,
			replicasPaths: specReplicasIn("apps/v1beta2", "apps/v1"),
			fields:        attrs(replicaset.GetAttrs)},
		kindDef{kind: "StatefulSet", resource: "statefulsets", short: []string{"sts"}, categories: all, namespaced: true,
			rules: statefulset.Strategy, subs: status(statefulset.StatusStrategy), scale: statefulSetScale,
			replicasPaths: specReplicasIn("apps/v1beta1", "apps/v1beta2", "apps/v1")},
		kindDef{kind: "DaemonSet", resource: "daemonsets", short: []string{"ds"}, categories: all, namespaced: true,
			rules: daemonset.Strategy, subs: status(daemonset.StatusStrategy)},
		kindDef{kind: "ControllerRevision", resource: "controllerrevisions", namespaced: true, rules: controllerrevision.Strategy},
	)
}

func deploymentScale(obj runtime.Object) scaleFields {
	d := obj.(*apps.Deployment)
	return selectorScale(&d.Spec.Replicas, d.Status.Replicas, d.Spec.Selector)
}

func replicaSetScale(obj runtime.Object) scaleFields {
	rs := obj.(*apps.ReplicaSet)
	return selectorScale(&rs.Spec.Replicas, rs.Status.Replicas, rs.Spec.Selector)
}

func statefulSetScale(obj runtime.Object) scaleFields {
	s := obj.(*apps.StatefulSet)
	return selectorScale(&s.Spec.Replicas, s.Status.Replicas, s.Spec.Selector)
}
