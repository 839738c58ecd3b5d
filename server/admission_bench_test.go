package server_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/trellis-project/trellis/trellistest"
)

// BenchmarkAdmissionWebhooks measures the latency one ConfigMap create
// pays for admission webhooks (one at a time, so p50/p99 are per
// request): none; one mutating webhook; one validating webhook; and one
// dead webhook with failurePolicy Ignore (an address nothing listens on),
// whose calls stop after the first failures while it is backed off. The
// creates are dry runs, so the disk's fsync (milliseconds) does not drown
// the webhooks' cost; webhooks with sideEffects None are still called.
func BenchmarkAdmissionWebhooks(b *testing.B) {
	for _, mode := range []string{"none", "mutating", "validating", "dead-ignore"} {
		b.Run("webhook="+mode, func(b *testing.B) {
			cfg := trellistest.Start(b)
			cs := kubernetes.NewForConfigOrDie(cfg)
			ctx := context.Background()
			hook := startAdmissionHook(b, func(_ *http.Request, req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
				if req.Operation == admissionv1.Create && mode == "mutating" {
					return &admissionv1.AdmissionResponse{Allowed: true, Patch: []byte(`[{"op":"add","path":"/metadata/labels","value":{"admitted":"yes"}}]`), PatchType: ptr.To(admissionv1.PatchTypeJSONPatch)}
				}
				return &admissionv1.AdmissionResponse{Allowed: true}
			})
			cc := hook.clientConfig()
			if mode == "dead-ignore" {
				cc.URL = ptr.To("https://127.0.0.1:1/admit")
			}
			rules := configMapRule(admissionregistrationv1.Create)
			var err error
			switch mode {
			case "mutating":
				_, err = cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, &admissionregistrationv1.MutatingWebhookConfiguration{
					ObjectMeta: metav1.ObjectMeta{Name: "bench"},
					Webhooks: []admissionregistrationv1.MutatingWebhook{{Name: "bench.example.com", ClientConfig: cc, Rules: rules,
						SideEffects: sideEffectsNone, AdmissionReviewVersions: []string{"v1"}}},
				}, metav1.CreateOptions{})
			case "validating", "dead-ignore":
				_, err = cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, &admissionregistrationv1.ValidatingWebhookConfiguration{
					ObjectMeta: metav1.ObjectMeta{Name: "bench"},
					Webhooks: []admissionregistrationv1.ValidatingWebhook{{Name: "bench.example.com", ClientConfig: cc, Rules: rules,
						FailurePolicy: ptr.To(admissionregistrationv1.Ignore), SideEffects: sideEffectsNone, AdmissionReviewVersions: []string{"v1"}}},
				}, metav1.CreateOptions{})
			}
			if err != nil {
				b.Fatal(err)
			}
			// Let the configuration reach the informer before timing.
			time.Sleep(200 * time.Millisecond)
			var lat []time.Duration // one writer: benchCreates with c = 1
			benchCreates(b, 1, func(i int) error {
				start := time.Now()
				_, err := cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%07d", i)}}, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
				lat = append(lat, time.Since(start))
				return err
			})
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
			if mode != "dead-ignore" && mode != "none" && len(hook.requests()) < b.N {
				b.Fatalf("webhook called %d times for %d creates", len(hook.requests()), b.N)
			}
		})
	}
}
