package server_test

import (
	"context"
	"net"
	"strconv"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/trellis-project/trellis/trellistest"
)

// default/kubernetes, its Endpoints and its EndpointSlice point at the
// server, as kube-apiserver keeps them.
func TestKubernetesService(t *testing.T) {
	srv := trellistest.StartServer(t)
	cs := kubernetes.NewForConfigOrDie(srv.Config)
	ctx := context.Background()
	_, portText, _ := net.SplitHostPort(srv.Addr())
	port, _ := strconv.Atoi(portText)
	svc, err := cs.CoreV1().Services("default").Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if svc.Spec.ClusterIP != "10.96.0.1" || len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 443 ||
		svc.Spec.Ports[0].TargetPort.IntValue() != port || svc.Labels["component"] != "apiserver" || svc.Spec.Selector != nil {
		t.Errorf("service: %+v", svc.Spec)
	}
	eps, err := cs.CoreV1().Endpoints("default").Get(ctx, "kubernetes", metav1.GetOptions{})
	if !hasGlobalIPv4() {
		// Endpoints may not name loopback: none are published.
		if !apierrors.IsNotFound(err) {
			t.Errorf("endpoints on a machine with only loopback addresses: %v, want 404", err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(eps.Subsets) != 1 || len(eps.Subsets[0].Addresses) != 1 || eps.Subsets[0].Ports[0].Port != int32(port) ||
		net.ParseIP(eps.Subsets[0].Addresses[0].IP).IsLoopback() {
		t.Errorf("endpoints: %+v", eps.Subsets)
	}
	slice, err := cs.DiscoveryV1().EndpointSlices("default").Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if slice.Labels["kubernetes.io/service-name"] != "kubernetes" || len(slice.Endpoints) != 1 ||
		slice.Endpoints[0].Addresses[0] != eps.Subsets[0].Addresses[0].IP || *slice.Ports[0].Port != int32(port) {
		t.Errorf("endpointslice: %+v", slice)
	}
}

func hasGlobalIPv4() bool {
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if ipnet, ok := a.(*net.IPNet); ok && ipnet.IP.To4() != nil && ipnet.IP.IsGlobalUnicast() {
			return true
		}
	}
	return false
}
