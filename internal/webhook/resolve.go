package webhook

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// EndpointsResolver resolves a Service to one of its ready endpoints, as
// kube-apiserver does with --enable-aggregator-routing. Trellis runs no
// proxy, so a cluster IP leads nowhere; the Endpoints object names the
// addresses that serve. An ExternalName Service resolves to its external
// name.
type EndpointsResolver struct {
	Client kubernetes.Interface
}

// ResolveService returns "host:port" for port of Service namespace/name.
func (r EndpointsResolver) ResolveService(ctx context.Context, namespace, name string, port int32) (string, error) {
	svc, err := r.Client.CoreV1().Services(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	switch svc.Spec.Type {
	case corev1.ServiceTypeExternalName:
		return net.JoinHostPort(svc.Spec.ExternalName, strconv.Itoa(int(port))), nil
	case corev1.ServiceTypeClusterIP, corev1.ServiceTypeNodePort, corev1.ServiceTypeLoadBalancer, "":
	default:
		return "", fmt.Errorf("unsupported service type %q", svc.Spec.Type)
	}
	var portName string
	found := false
	for _, p := range svc.Spec.Ports {
		if p.Port == port {
			portName, found = p.Name, true
			break
		}
	}
	if !found {
		return "", apierrors.NewServiceUnavailable(fmt.Sprintf("no service port %d found for service %q", port, name))
	}
	eps, err := r.Client.CoreV1().Endpoints(namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", apierrors.NewServiceUnavailable(fmt.Sprintf("no endpoints available for service %q", name))
	}
	if err != nil {
		return "", err
	}
	return pickEndpoint(eps, name, portName)
}

// pickEndpoint chooses a ready address, at random to spread connections,
// of the subset that serves the named port.
func pickEndpoint(eps *corev1.Endpoints, service, portName string) (string, error) {
	for _, ss := range eps.Subsets {
		for _, p := range ss.Ports {
			if p.Name != portName || len(ss.Addresses) == 0 {
				continue
			}
			a := ss.Addresses[rand.IntN(len(ss.Addresses))]
			return net.JoinHostPort(a.IP, strconv.Itoa(int(p.Port))), nil
		}
	}
	return "", apierrors.NewServiceUnavailable(fmt.Sprintf("no endpoints available for service %q", service))
}
