package builtin

import (
	networkingv1 "k8s.io/api/networking/v1"
	_ "k8s.io/kubernetes/pkg/apis/networking/install"
	"k8s.io/kubernetes/pkg/registry/networking/ingress"
	"k8s.io/kubernetes/pkg/registry/networking/ingressclass"
	"k8s.io/kubernetes/pkg/registry/networking/ipaddress"
	"k8s.io/kubernetes/pkg/registry/networking/networkpolicy"
	"k8s.io/kubernetes/pkg/registry/networking/servicecidr"
)

// networkingKinds are stored and served; no ingress controller or network
// plugin acts on them, and service addresses are not recorded as
// IPAddress objects.
func networkingKinds() []kindDef {
	return inGroup(networkingv1.SchemeGroupVersion,
		kindDef{kind: "Ingress", resource: "ingresses", short: []string{"ing"}, namespaced: true,
			prefix: "/registry/ingress/", rules: ingress.Strategy, subs: status(ingress.StatusStrategy)},
		kindDef{kind: "IngressClass", resource: "ingressclasses", rules: ingressclass.Strategy},
		kindDef{kind: "NetworkPolicy", resource: "networkpolicies", short: []string{"netpol"}, namespaced: true,
			rules: networkpolicy.Strategy},
		kindDef{kind: "IPAddress", resource: "ipaddresses", short: []string{"ip"}, rules: ipaddress.Strategy},
		kindDef{kind: "ServiceCIDR", resource: "servicecidrs",
			rules: servicecidr.Strategy, subs: status(servicecidr.StatusStrategy)},
	)
}
