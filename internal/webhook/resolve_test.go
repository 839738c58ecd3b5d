package webhook

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func TestEndpointsResolver(t *testing.T) {
	svc := func(name string, typ corev1.ServiceType, ports ...corev1.ServicePort) *corev1.Service {
		return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"}, Spec: corev1.ServiceSpec{Type: typ, Ports: ports, ExternalName: "hooks.example.net"}}
	}
	eps := func(name string, subsets ...corev1.EndpointSubset) *corev1.Endpoints {
		return &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"}, Subsets: subsets}
	}
	client := fake.NewClientset(
		svc("hook", corev1.ServiceTypeClusterIP, corev1.ServicePort{Name: "metrics", Port: 8080}, corev1.ServicePort{Name: "https", Port: 443}),
		eps("hook",
			corev1.EndpointSubset{Addresses: []corev1.EndpointAddress{{IP: "10.0.0.9"}}, Ports: []corev1.EndpointPort{{Name: "metrics", Port: 9090}}},
			corev1.EndpointSubset{
				Addresses:         []corev1.EndpointAddress{{IP: "10.0.0.7"}},
				NotReadyAddresses: []corev1.EndpointAddress{{IP: "10.0.0.8"}},
				Ports:             []corev1.EndpointPort{{Name: "https", Port: 9443}},
			}),
		svc("lonely", corev1.ServiceTypeClusterIP, corev1.ServicePort{Port: 443}),
		svc("starting", corev1.ServiceTypeNodePort, corev1.ServicePort{Port: 443}),
		eps("starting", corev1.EndpointSubset{NotReadyAddresses: []corev1.EndpointAddress{{IP: "10.0.0.8"}}, Ports: []corev1.EndpointPort{{Port: 9443}}}),
		svc("outside", corev1.ServiceTypeExternalName),
	)
	r := EndpointsResolver{Client: client}
	for _, tc := range []struct {
		name    string
		port    int32
		want    string
		wantErr string
	}{
		{"hook", 443, "10.0.0.7:9443", ""}, // the ready address of the subset serving the port's name
		{"hook", 8080, "10.0.0.9:9090", ""},
		{"hook", 444, "", `no service port 444 found for service "hook"`},
		{"lonely", 443, "", `no endpoints available for service "lonely"`},
		{"starting", 443, "", `no endpoints available for service "starting"`},
		{"outside", 443, "hooks.example.net:443", ""},
		{"missing", 443, "", `services "missing" not found`},
	} {
		got, err := r.ResolveService(context.Background(), "ns", tc.name, tc.port)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s:%d: %q, %v; want error %q", tc.name, tc.port, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s:%d: %q, %v; want %q", tc.name, tc.port, got, err, tc.want)
		}
	}
}
