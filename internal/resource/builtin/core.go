package builtin

import (
	"context"
	"encoding/binary"
	"hash/fnv"
	"net"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/registry/rest"
	"k8s.io/kubernetes/pkg/apis/core"
	_ "k8s.io/kubernetes/pkg/apis/core/install"
	corevalidation "k8s.io/kubernetes/pkg/apis/core/validation"
	"k8s.io/kubernetes/pkg/registry/core/configmap"
	"k8s.io/kubernetes/pkg/registry/core/event"
	"k8s.io/kubernetes/pkg/registry/core/limitrange"
	"k8s.io/kubernetes/pkg/registry/core/namespace"
	"k8s.io/kubernetes/pkg/registry/core/node"
	"k8s.io/kubernetes/pkg/registry/core/persistentvolume"
	"k8s.io/kubernetes/pkg/registry/core/persistentvolumeclaim"
	"k8s.io/kubernetes/pkg/registry/core/pod"
	"k8s.io/kubernetes/pkg/registry/core/podtemplate"
	"k8s.io/kubernetes/pkg/registry/core/replicationcontroller"
	"k8s.io/kubernetes/pkg/registry/core/resourcequota"
	"k8s.io/kubernetes/pkg/registry/core/secret"
	"k8s.io/kubernetes/pkg/registry/core/service"
)

var coreV1 = schema.GroupVersion{Version: "v1"}

// inGroup sets the group-version of defs.
func inGroup(gv schema.GroupVersion, defs ...kindDef) []kindDef {
	for i := range defs {
		defs[i].gv = gv
	}
	return defs
}

// coreKinds are the stored resources of the core group. Nothing runs
// pods, and no controller acts on replication controllers, nodes,
// volumes or quotas yet: they are stored and served.
func coreKinds() []kindDef {
	return inGroup(coreV1,
		kindDef{kind: "Namespace", resource: "namespaces", short: []string{"ns"},
			verbs: []string{"create", "delete", "get", "list", "patch", "update", "watch"}, returnDeleted: true,
			rules: namespace.Strategy, fields: attrs(namespace.GetAttrs),
			subs:        map[string]rest.RESTUpdateStrategy{"status": namespace.StatusStrategy, "finalize": namespace.FinalizeStrategy},
			beginDelete: beginNamespaceDelete, pendingFinalizers: namespaceFinalizers},
		kindDef{kind: "ConfigMap", resource: "configmaps", short: []string{"cm"}, namespaced: true,
			rules: configmap.Strategy, fields: attrs(configmap.GetAttrs)},
		kindDef{kind: "Secret", resource: "secrets", namespaced: true,
			rules: secret.Strategy, fields: attrs(secret.GetAttrs)},
		kindDef{kind: "ServiceAccount", resource: "serviceaccounts", short: []string{"sa"}, namespaced: true,
			returnDeleted: true, rules: serviceAccountRules()},
		kindDef{kind: "Service", resource: "services", short: []string{"svc"}, categories: all, namespaced: true,
			returnDeleted: true, rules: service.Strategy, subs: status(service.StatusStrategy),
			before: serviceAddresses, fields: attrs(service.GetAttrs)},
		kindDef{kind: "Endpoints", resource: "endpoints", short: []string{"ep"}, namespaced: true, rules: endpointsRules()},
		kindDef{kind: "Event", resource: "events", short: []string{"ev"}, namespaced: true,
			rules: event.Strategy, fields: attrs(event.GetAttrs)},
		kindDef{kind: "Pod", resource: "pods", short: []string{"po"}, categories: all, namespaced: true,
			returnDeleted: true, rules: pod.Strategy, fields: attrs(pod.GetAttrs),
			subs: map[string]rest.RESTUpdateStrategy{
				"status": pod.StatusStrategy, "ephemeralcontainers": pod.EphemeralContainersStrategy, "resize": pod.ResizeStrategy,
			}},
		kindDef{kind: "PodTemplate", resource: "podtemplates", namespaced: true, returnDeleted: true, rules: podtemplate.Strategy},
		kindDef{kind: "ReplicationController", resource: "replicationcontrollers", short: []string{"rc"}, categories: all,
			namespaced: true, prefix: "/registry/controllers/",
			rules: replicationcontroller.Strategy, subs: status(replicationcontroller.StatusStrategy),
			fields: attrs(replicationcontroller.GetAttrs), scale: replicationControllerScale,
			replicasPaths: specReplicasIn("v1")},
		kindDef{kind: "Node", resource: "nodes", short: []string{"no"}, prefix: "/registry/minions/",
			rules: node.Strategy, subs: status(node.StatusStrategy), fields: attrs(node.GetAttrs)},
		kindDef{kind: "PersistentVolume", resource: "persistentvolumes", short: []string{"pv"}, returnDeleted: true,
			rules: persistentvolume.Strategy, subs: status(persistentvolume.StatusStrategy), fields: attrs(persistentvolume.GetAttrs)},
		kindDef{kind: "PersistentVolumeClaim", resource: "persistentvolumeclaims", short: []string{"pvc"}, namespaced: true,
			returnDeleted: true, rules: persistentvolumeclaim.Strategy, subs: status(persistentvolumeclaim.StatusStrategy),
			fields: attrs(persistentvolumeclaim.GetAttrs)},
		kindDef{kind: "LimitRange", resource: "limitranges", short: []string{"limits"}, namespaced: true,
			rules: limitrange.Strategy, table: rest.NewDefaultTableConvertor(core.Resource("limitranges"))},
		kindDef{kind: "ResourceQuota", resource: "resourcequotas", short: []string{"quota"}, namespaced: true,
			returnDeleted: true, rules: resourcequota.Strategy, subs: status(resourcequota.StatusStrategy)},
	)
}

// beginNamespaceDelete starts the two-phase deletion of a namespace that
// still has spec.finalizers: it becomes Terminating.
func beginNamespaceDelete(obj runtime.Object) bool {
	ns := obj.(*corev1.Namespace)
	if len(ns.Spec.Finalizers) == 0 {
		return false
	}
	ns.Status.Phase = corev1.NamespaceTerminating
	return true
}

func namespaceFinalizers(obj runtime.Object) bool {
	return len(obj.(*corev1.Namespace).Spec.Finalizers) > 0
}

// serviceAccountRules mirror pkg/registry/core/serviceaccount, whose
// package pulls in the service account token machinery.
func serviceAccountRules() *declarativeHooks {
	h := newHooks()
	clean := func(obj runtime.Object) {
		sa := obj.(*core.ServiceAccount)
		for i, s := range sa.Secrets {
			sa.Secrets[i] = core.ObjectReference{Name: s.Name}
		}
	}
	h.prepareCreate = func(_ context.Context, obj runtime.Object) { clean(obj) }
	h.prepareUpdate = func(_ context.Context, obj, _ runtime.Object) { clean(obj) }
	h.validate, h.validateUpdate = validators(corevalidation.ValidateServiceAccount, corevalidation.ValidateServiceAccountUpdate)
	return withDeclarativeValidation(h)
}

// endpointsRules mirror pkg/registry/core/endpoint, whose package pulls in
// the endpoints controller.
func endpointsRules() *declarativeHooks {
	h := newHooks()
	h.createOnUpdate = true
	h.validate, h.validateUpdate = validators(corevalidation.ValidateEndpointsCreate, corevalidation.ValidateEndpointsUpdate)
	return withDeclarativeValidation(h)
}

// serviceAddresses runs where upstream's service storage allocates
// addresses, before the strategy: clients that omit the allocated
// address on update keep it, and new services get one.
func serviceAddresses(_ context.Context, obj, old runtime.Object, sub string) {
	if sub != "" {
		return
	}
	svc := obj.(*core.Service)
	if old, ok := old.(*core.Service); ok && svc.Spec.ClusterIP == "" && old.Spec.ClusterIP != "" && svc.Spec.Type == old.Spec.Type {
		svc.Spec.ClusterIP, svc.Spec.ClusterIPs = old.Spec.ClusterIP, old.Spec.ClusterIPs
		svc.Spec.IPFamilies, svc.Spec.IPFamilyPolicy = old.Spec.IPFamilies, old.Spec.IPFamilyPolicy
	}
	allocateServiceAddresses(svc)
}

// allocateServiceAddresses gives a service a stable virtual IP (and node
// ports) derived from its name. Nothing routes to these addresses until
// the infrastructure half exists; they make stored services look as
// kube-apiserver would return them.
func allocateServiceAddresses(svc *core.Service) {
	h := fnv.New32a()
	h.Write([]byte(svc.Namespace + "/" + svc.Name))
	sum := h.Sum32()
	if svc.Spec.Type != core.ServiceTypeExternalName && svc.Spec.ClusterIP == "" {
		ip := make(net.IP, 4)
		binary.BigEndian.PutUint32(ip, 0x0a600000|(sum&0xffff)|1) // 10.96.0.0/16
		svc.Spec.ClusterIP = ip.String()
		svc.Spec.ClusterIPs = []string{svc.Spec.ClusterIP}
	}
	if svc.Spec.ClusterIP != "" && len(svc.Spec.ClusterIPs) == 0 {
		// As upstream's storage normalises a service that sets only
		// clusterIP (default/kubernetes does).
		svc.Spec.ClusterIPs = []string{svc.Spec.ClusterIP}
	}
	if svc.Spec.ClusterIP != "" && svc.Spec.ClusterIP != core.ClusterIPNone && len(svc.Spec.IPFamilies) == 0 {
		svc.Spec.IPFamilies = []core.IPFamily{core.IPv4Protocol}
	}
	if svc.Spec.ClusterIP != "" && svc.Spec.IPFamilyPolicy == nil {
		single := core.IPFamilyPolicySingleStack
		svc.Spec.IPFamilyPolicy = &single
	}
	if svc.Spec.Type == core.ServiceTypeNodePort || svc.Spec.Type == core.ServiceTypeLoadBalancer {
		for i := range svc.Spec.Ports {
			if svc.Spec.Ports[i].NodePort == 0 {
				svc.Spec.Ports[i].NodePort = int32(30000 + (sum+uint32(i)*7919)%2768)
			}
		}
	}
}

// replicationControllerScale is upstream's scale of a replication
// controller: its selector is a plain label map.
func replicationControllerScale(obj runtime.Object) scaleFields {
	rc := obj.(*core.ReplicationController)
	return scaleFields{replicas: rc.Spec.Replicas, status: rc.Status.Replicas, selector: labels.SelectorFromSet(rc.Spec.Selector).String()}
}
