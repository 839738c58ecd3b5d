package builtin

import (
	"context"
	"encoding/binary"
	"hash/fnv"
	"net"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/kubernetes/pkg/apis/coordination"
	_ "k8s.io/kubernetes/pkg/apis/coordination/install"
	coordinationvalidation "k8s.io/kubernetes/pkg/apis/coordination/validation"
	"k8s.io/kubernetes/pkg/apis/core"
	_ "k8s.io/kubernetes/pkg/apis/core/install"
	corevalidation "k8s.io/kubernetes/pkg/apis/core/validation"
	_ "k8s.io/kubernetes/pkg/apis/events/install"

	"github.com/trellis-project/trellis/internal/resource"
)

var (
	coreV1     = schema.GroupVersion{Version: "v1"}
	coreIntern = schema.GroupVersion{Version: runtime.APIVersionInternal}
)

// Register adds the built-in kinds to reg.
func Register(reg *resource.Registry) {
	for _, d := range Descriptors() {
		reg.Add(d)
	}
}

// Descriptors returns a fresh descriptor for every built-in resource.
func Descriptors() []*resource.Descriptor {
	return []*resource.Descriptor{
		namespaces(), configMaps(), secrets(), serviceAccounts(), services(),
		endpoints(), coreEvents(), eventsV1Events(), leases(),
		customResourceDefinitions(),
	}
}

func core1(kind, res, singular string, namespaced bool, short []string, t *typed) *resource.Descriptor {
	t.served = coreV1.WithKind(kind)
	t.storage = coreV1
	t.internal = coreIntern
	return &resource.Descriptor{
		Version: "v1", Kind: kind, ListKind: kind + "List",
		Resource: res, Singular: singular, ShortNames: short,
		Namespaced: namespaced, Verbs: resource.StandardVerbs,
		StoragePrefix: "/registry/" + res + "/", StorageVersion: coreV1,
		Strategy: t,
	}
}

func namespaces() *resource.Descriptor {
	d := core1("Namespace", "namespaces", "namespace", false, []string{"ns"}, &typed{
		prepareCreate: func(ctx context.Context, obj runtime.Object) {
			ns := obj.(*core.Namespace)
			ns.Status = core.NamespaceStatus{Phase: core.NamespaceActive}
			for _, f := range ns.Spec.Finalizers {
				if f == core.FinalizerKubernetes {
					return
				}
			}
			ns.Spec.Finalizers = append(ns.Spec.Finalizers, core.FinalizerKubernetes)
		},
		prepareUpdate: func(ctx context.Context, obj, old runtime.Object, sub string) {
			ns, oldNS := obj.(*core.Namespace), old.(*core.Namespace)
			switch sub {
			case "status":
				ns.Spec = oldNS.Spec
			case "finalize":
				ns.Status = oldNS.Status
			default:
				ns.Spec.Finalizers = oldNS.Spec.Finalizers
				ns.Status = oldNS.Status
			}
		},
		validate: func(ctx context.Context, obj runtime.Object) field.ErrorList {
			return corevalidation.ValidateNamespace(obj.(*core.Namespace))
		},
		validateUpdate: func(ctx context.Context, obj, old runtime.Object) field.ErrorList {
			ns, oldNS := obj.(*core.Namespace), old.(*core.Namespace)
			errs := corevalidation.ValidateNamespaceUpdate(ns, oldNS)
			errs = append(errs, corevalidation.ValidateNamespaceFinalizeUpdate(ns, oldNS)...)
			return append(errs, corevalidation.ValidateNamespaceStatusUpdate(ns, oldNS)...)
		},
		beginDelete: func(obj runtime.Object) bool {
			ns := obj.(*corev1.Namespace)
			if len(ns.Spec.Finalizers) == 0 {
				return false
			}
			ns.Status.Phase = corev1.NamespaceTerminating
			return true
		},
		pendingFinalizers: func(obj runtime.Object) bool {
			return len(obj.(*corev1.Namespace).Spec.Finalizers) > 0
		},
		fields: func(obj runtime.Object) fields.Set {
			return fields.Set{"status.phase": string(obj.(*core.Namespace).Status.Phase)}
		},
	})
	d.Subresources = []string{"finalize", "status"}
	d.ReturnDeletedObject = true
	return d
}

func configMaps() *resource.Descriptor {
	return core1("ConfigMap", "configmaps", "configmap", true, []string{"cm"}, &typed{
		validate: func(ctx context.Context, obj runtime.Object) field.ErrorList {
			return corevalidation.ValidateConfigMap(obj.(*core.ConfigMap))
		},
		validateUpdate: func(ctx context.Context, obj, old runtime.Object) field.ErrorList {
			return corevalidation.ValidateConfigMapUpdate(obj.(*core.ConfigMap), old.(*core.ConfigMap))
		},
	})
}

func secrets() *resource.Descriptor {
	return core1("Secret", "secrets", "secret", true, nil, &typed{
		validate: func(ctx context.Context, obj runtime.Object) field.ErrorList {
			return corevalidation.ValidateSecret(obj.(*core.Secret))
		},
		validateUpdate: func(ctx context.Context, obj, old runtime.Object) field.ErrorList {
			return corevalidation.ValidateSecretUpdate(obj.(*core.Secret), old.(*core.Secret))
		},
		fields: func(obj runtime.Object) fields.Set {
			return fields.Set{"type": string(obj.(*core.Secret).Type)}
		},
	})
}

func serviceAccounts() *resource.Descriptor {
	d := core1("ServiceAccount", "serviceaccounts", "serviceaccount", true, []string{"sa"}, &typed{
		validate: func(ctx context.Context, obj runtime.Object) field.ErrorList {
			return corevalidation.ValidateServiceAccount(obj.(*core.ServiceAccount))
		},
		validateUpdate: func(ctx context.Context, obj, old runtime.Object) field.ErrorList {
			return corevalidation.ValidateServiceAccountUpdate(obj.(*core.ServiceAccount), old.(*core.ServiceAccount))
		},
	})
	d.ReturnDeletedObject = true
	return d
}

func services() *resource.Descriptor {
	d := core1("Service", "services", "service", true, []string{"svc"}, &typed{
		prepareCreate: func(ctx context.Context, obj runtime.Object) {
			svc := obj.(*core.Service)
			svc.Status = core.ServiceStatus{}
			allocateServiceAddresses(svc)
		},
		prepareUpdate: func(ctx context.Context, obj, old runtime.Object, sub string) {
			svc, oldSvc := obj.(*core.Service), old.(*core.Service)
			statusOnly(svc, oldSvc, sub)
			if sub == "" && svc.Spec.ClusterIP == "" && oldSvc.Spec.ClusterIP != "" && svc.Spec.Type == oldSvc.Spec.Type {
				// Clients that omit the allocated address keep it.
				svc.Spec.ClusterIP, svc.Spec.ClusterIPs = oldSvc.Spec.ClusterIP, oldSvc.Spec.ClusterIPs
				svc.Spec.IPFamilies, svc.Spec.IPFamilyPolicy = oldSvc.Spec.IPFamilies, oldSvc.Spec.IPFamilyPolicy
			}
			allocateServiceAddresses(svc)
		},
		validate: func(ctx context.Context, obj runtime.Object) field.ErrorList {
			return corevalidation.ValidateServiceCreate(obj.(*core.Service))
		},
		validateUpdate: func(ctx context.Context, obj, old runtime.Object) field.ErrorList {
			return corevalidation.ValidateServiceUpdate(obj.(*core.Service), old.(*core.Service))
		},
		fields: func(obj runtime.Object) fields.Set {
			svc := obj.(*core.Service)
			return fields.Set{"spec.clusterIP": svc.Spec.ClusterIP, "spec.type": string(svc.Spec.Type)}
		},
	})
	d.Subresources = []string{"status"}
	d.Categories = []string{"all"}
	d.ReturnDeletedObject = true
	return d
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

func endpoints() *resource.Descriptor {
	return core1("Endpoints", "endpoints", "endpoints", true, []string{"ep"}, &typed{
		validate: func(ctx context.Context, obj runtime.Object) field.ErrorList {
			return corevalidation.ValidateEndpointsCreate(obj.(*core.Endpoints))
		},
		validateUpdate: func(ctx context.Context, obj, old runtime.Object) field.ErrorList {
			return corevalidation.ValidateEndpointsUpdate(obj.(*core.Endpoints), old.(*core.Endpoints))
		},
	})
}

func eventFields(obj runtime.Object) fields.Set {
	e := obj.(*core.Event)
	return fields.Set{
		"involvedObject.kind":            e.InvolvedObject.Kind,
		"involvedObject.namespace":       e.InvolvedObject.Namespace,
		"involvedObject.name":            e.InvolvedObject.Name,
		"involvedObject.uid":             string(e.InvolvedObject.UID),
		"involvedObject.apiVersion":      e.InvolvedObject.APIVersion,
		"involvedObject.resourceVersion": e.InvolvedObject.ResourceVersion,
		"involvedObject.fieldPath":       e.InvolvedObject.FieldPath,
		"reason":                         e.Reason,
		"reportingComponent":             e.ReportingController,
		"source":                         e.Source.Component,
		"type":                           e.Type,
	}
}

func eventStrategy(requestVersion schema.GroupVersion) *typed {
	return &typed{
		validate: func(ctx context.Context, obj runtime.Object) field.ErrorList {
			return corevalidation.ValidateEventCreate(obj.(*core.Event), requestVersion)
		},
		validateUpdate: func(ctx context.Context, obj, old runtime.Object) field.ErrorList {
			return corevalidation.ValidateEventUpdate(obj.(*core.Event), old.(*core.Event), requestVersion)
		},
		fields: eventFields,
	}
}

func coreEvents() *resource.Descriptor {
	d := core1("Event", "events", "event", true, []string{"ev"}, eventStrategy(coreV1))
	d.AllowCreateOnUpdate = true
	return d
}

// eventsV1Events serves events.k8s.io/v1 over the same stored objects as
// core/v1 Events, converting through the internal type.
func eventsV1Events() *resource.Descriptor {
	gv := eventsv1.SchemeGroupVersion
	t := eventStrategy(gv)
	t.served = gv.WithKind("Event")
	t.storage = coreV1
	t.internal = coreIntern
	return &resource.Descriptor{
		Group: gv.Group, Version: gv.Version, Kind: "Event", ListKind: "EventList",
		Resource: "events", Singular: "event", ShortNames: []string{"ev"},
		Namespaced: true, Verbs: resource.StandardVerbs,
		StoragePrefix: "/registry/events/", StorageVersion: coreV1,
		AllowCreateOnUpdate: true,
		Strategy:            t,
	}
}

func leases() *resource.Descriptor {
	gv := schema.GroupVersion{Group: coordination.GroupName, Version: "v1"}
	return &resource.Descriptor{
		Group: gv.Group, Version: gv.Version, Kind: "Lease", ListKind: "LeaseList",
		Resource: "leases", Singular: "lease",
		Namespaced: true, Verbs: resource.StandardVerbs,
		StoragePrefix: "/registry/leases/", StorageVersion: gv,
		Strategy: &typed{
			served:   gv.WithKind("Lease"),
			storage:  gv,
			internal: schema.GroupVersion{Group: gv.Group, Version: runtime.APIVersionInternal},
			validate: func(ctx context.Context, obj runtime.Object) field.ErrorList {
				return coordinationvalidation.ValidateLease(obj.(*coordination.Lease))
			},
			validateUpdate: func(ctx context.Context, obj, old runtime.Object) field.ErrorList {
				return coordinationvalidation.ValidateLeaseUpdate(obj.(*coordination.Lease), old.(*coordination.Lease))
			},
		},
	}
}
