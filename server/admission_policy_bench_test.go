package server_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/trellis-project/trellis/trellistest"
)

// BenchmarkAdmissionPolicyCreate measures ConfigMap creates through the
// whole request path with no admission configuration (policy=none) and
// with one ValidatingAdmissionPolicy of one CEL validation bound to every
// ConfigMap create (policy=vap); the difference is the added latency of
// one in-process policy.
func BenchmarkAdmissionPolicyCreate(b *testing.B) {
	for _, withPolicy := range []bool{false, true} {
		name := "policy=none"
		if withPolicy {
			name = "policy=vap"
		}
		b.Run(name, func(b *testing.B) {
			cs := kubernetes.NewForConfigOrDie(trellistest.Start(b))
			ctx := context.Background()
			if withPolicy {
				installBenchPolicy(b, cs)
			}
			benchCreates(b, 1, func(i int) error {
				_, err := cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{
					ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%d", i)},
					Data:       map[string]string{"k": "v"},
				}, metav1.CreateOptions{})
				return err
			})
		})
	}
}

func installBenchPolicy(b *testing.B, cs kubernetes.Interface) {
	b.Helper()
	ctx := context.Background()
	if _, err := cs.AdmissionregistrationV1().ValidatingAdmissionPolicies().Create(ctx, &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "bench"},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: configMapRules(admissionregistrationv1.Create)},
			Validations: []admissionregistrationv1.Validation{{
				Expression: "!has(object.data) || !('forbidden' in object.data)", Message: "forbidden key"}},
		},
	}, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	if _, err := cs.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Create(ctx, &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "bench"},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{PolicyName: "bench",
			ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny}},
	}, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	for i := 0; ; i++ {
		_, err := cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("probe-%d", i)}, Data: map[string]string{"forbidden": "x"},
		}, metav1.CreateOptions{})
		if err != nil {
			return // the policy is in effect
		}
		if i > 1000 {
			b.Fatal("policy never took effect")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
