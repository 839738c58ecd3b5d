package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	eventsv1 "k8s.io/api/events/v1"
	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	networkingv1 "k8s.io/api/networking/v1"
	nodev1 "k8s.io/api/node/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	resourcev1 "k8s.io/api/resource/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	storagev1 "k8s.io/api/storage/v1"
	storagemigrationv1 "k8s.io/api/storagemigration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/trellis-project/trellis/server"
	"github.com/trellis-project/trellis/trellistest"
)

// typedClient is what every client-go typed client of a stored kind
// offers.
type typedClient[T, L runtime.Object] interface {
	Create(context.Context, T, metav1.CreateOptions) (T, error)
	Update(context.Context, T, metav1.UpdateOptions) (T, error)
	Delete(context.Context, string, metav1.DeleteOptions) error
	Get(context.Context, string, metav1.GetOptions) (T, error)
	List(context.Context, metav1.ListOptions) (L, error)
	Watch(context.Context, metav1.ListOptions) (watch.Interface, error)
	Patch(ctx context.Context, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions, subresources ...string) (T, error)
}

// object is a typed API object: the constraint of roundTrip's T.
type object interface {
	runtime.Object
	metav1.Object
}

// roundTrip drives obj through create, get, list, watch, update, merge
// and strategic merge patch, and delete with a typed client, checking
// each answer and the watch events the writes produce.
func roundTrip[T object, L runtime.Object](t *testing.T, c typedClient[T, L], obj T) {
	t.Helper()
	ctx := context.Background()
	name := obj.GetName()
	created, err := c.Create(ctx, obj, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if ts := created.GetCreationTimestamp(); created.GetUID() == "" || created.GetResourceVersion() == "" || ts.IsZero() {
		t.Fatalf("create: server-owned metadata missing: uid %q rv %q", created.GetUID(), created.GetResourceVersion())
	}
	w, err := c.Watch(ctx, metav1.ListOptions{ResourceVersion: created.GetResourceVersion(), FieldSelector: "metadata.name=" + name})
	if err != nil {
		t.Fatalf("watch: %v", err)
	}
	defer w.Stop()

	got, err := c.Get(ctx, name, metav1.GetOptions{})
	if err != nil || got.GetResourceVersion() != created.GetResourceVersion() {
		t.Fatalf("get: rv %q, %v; created rv %q", got.GetResourceVersion(), err, created.GetResourceVersion())
	}
	list, err := c.List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + name})
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if items, err := meta.ExtractList(list); err != nil || len(items) != 1 {
		t.Fatalf("list by name: %d items, %v", len(items), err)
	}

	labels := got.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	labels["roundtrip"] = "updated"
	got.SetLabels(labels)
	updated, err := c.Update(ctx, got, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	if updated.GetResourceVersion() == created.GetResourceVersion() || updated.GetLabels()["roundtrip"] != "updated" {
		t.Fatalf("update: rv %q, labels %v", updated.GetResourceVersion(), updated.GetLabels())
	}
	patched, err := c.Patch(ctx, name, types.MergePatchType, []byte(`{"metadata":{"annotations":{"trellis.dev/merge":"yes"}}}`), metav1.PatchOptions{})
	if err != nil || patched.GetAnnotations()["trellis.dev/merge"] != "yes" {
		t.Fatalf("merge patch: %v, annotations %v", err, patched.GetAnnotations())
	}
	patched, err = c.Patch(ctx, name, types.StrategicMergePatchType, []byte(`{"metadata":{"labels":{"smp":"yes"}}}`), metav1.PatchOptions{})
	if err != nil || patched.GetLabels()["smp"] != "yes" || patched.GetLabels()["roundtrip"] != "updated" {
		t.Fatalf("strategic merge patch: %v, labels %v", err, patched.GetLabels())
	}
	if err := c.Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := c.Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("get after delete: %v, want NotFound", err)
	}

	for _, want := range []watch.EventType{watch.Modified, watch.Modified, watch.Modified, watch.Deleted} {
		ev := nextEvent(t, w)
		m, err := meta.Accessor(ev.Object)
		if ev.Type != want || err != nil || m.GetName() != name {
			t.Fatalf("watch: %s %v, want %s of %s", ev.Type, ev.Object, want, name)
		}
	}
}

// TestBuiltinRoundTrips round-trips most stored kinds, at least one of
// every served group-version, with client-go's typed clients, in protobuf
// (client-go's default for built-in kinds) and in JSON. The kinds the
// older tests cover (configmaps, secrets, services, namespaces, CRDs, …)
// are left out.
func TestBuiltinRoundTrips(t *testing.T) {
	// Without controllers: the policy status controller would write the
	// ValidatingAdmissionPolicy's status in the middle of its round trip;
	// without API Priority and Fairness, whose config controller would
	// write the FlowSchema's Dangling condition (as kube-apiserver's does).
	cfg := trellistest.Start(t, trellistest.WithConfig(func(c *server.Config) {
		c.DisableControllers = true
		c.DisablePriorityAndFairness = true
	}))
	clients := map[string]kubernetes.Interface{
		"protobuf": kubernetes.NewForConfigOrDie(cfg),
		"json":     kubernetes.NewForConfigOrDie(restConfigJSON(cfg)),
	}
	const ns = "default"
	caPEM, csrPEM := testCertificates(t)
	podSpec := corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "registry.k8s.io/pause:3.10"}}}
	template := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "rt"}}, Spec: podSpec}
	selector := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "rt"}}
	jobTemplate := template
	jobTemplate.Spec.RestartPolicy = corev1.RestartPolicyNever
	om := func(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: name} }
	roleRef := func(kind string) rbacv1.RoleRef {
		return rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: kind, Name: "reader"}
	}
	subjects := []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: "alice"}}
	rules := []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get"}}}
	hpaTarget := autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"}
	none := admissionregistrationv1.SideEffectClassNone
	webhook := admissionregistrationv1.ValidatingWebhook{
		Name: "hook.example.com", ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: ptr.To("https://example.com/hook")},
		SideEffects: &none, AdmissionReviewVersions: []string{"v1"},
	}
	matchCreates := &admissionregistrationv1.MatchResources{ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
		RuleWithOperations: admissionregistrationv1.RuleWithOperations{
			Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
			Rule:       admissionregistrationv1.Rule{APIGroups: []string{"apps"}, APIVersions: []string{"v1"}, Resources: []string{"deployments"}},
		},
	}}}

	cases := []struct {
		name string
		run  func(t *testing.T, c kubernetes.Interface, name string)
	}{
		{"v1 pods", func(t *testing.T, c kubernetes.Interface, n string) {
			roundTrip[*corev1.Pod, *corev1.PodList](t, c.CoreV1().Pods(ns), &corev1.Pod{ObjectMeta: om(n), Spec: podSpec})
		}},
		{"v1 podtemplates", func(t *testing.T, c kubernetes.Interface, n string) {
			roundTrip[*corev1.PodTemplate, *corev1.PodTemplateList](t, c.CoreV1().PodTemplates(ns), &corev1.PodTemplate{ObjectMeta: om(n), Template: template})
		}},
		{"v1 replicationcontrollers", func(t *testing.T, c kubernetes.Interface, n string) {
			roundTrip[*corev1.ReplicationController, *corev1.ReplicationControllerList](t, c.CoreV1().ReplicationControllers(ns),
				&corev1.ReplicationController{ObjectMeta: om(n), Spec: corev1.ReplicationControllerSpec{Selector: map[string]string{"app": "rt"}, Template: &template}})
		}},
		{"v1 nodes", func(t *testing.T, c kubernetes.Interface, n string) {
			roundTrip[*corev1.Node, *corev1.NodeList](t, c.CoreV1().Nodes(), &corev1.Node{ObjectMeta: om(n)})
		}},
		{"v1 persistentvolumes", func(t *testing.T, c kubernetes.Interface, n string) {
			roundTrip[*corev1.PersistentVolume, *corev1.PersistentVolumeList](t, c.CoreV1().PersistentVolumes(), &corev1.PersistentVolume{ObjectMeta: om(n),
				Spec: corev1.PersistentVolumeSpec{
					Capacity:               corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
					AccessModes:            []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/tmp/pv"}},
				}})
		}},
		{"v1 persistentvolumeclaims", func(t *testing.T, c kubernetes.Interface, n string) {
			roundTrip[*corev1.PersistentVolumeClaim, *corev1.PersistentVolumeClaimList](t, c.CoreV1().PersistentVolumeClaims(ns), &corev1.PersistentVolumeClaim{ObjectMeta: om(n),
				Spec: corev1.PersistentVolumeClaimSpec{
					AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
				}})
		}},
		{"v1 limitranges", func(t *testing.T, c kubernetes.Interface, n string) {
			roundTrip[*corev1.LimitRange, *corev1.LimitRangeList](t, c.CoreV1().LimitRanges(ns), &corev1.LimitRange{ObjectMeta: om(n),
				Spec: corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{{Type: corev1.LimitTypeContainer, Default: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}}}}})
		}},
		{"v1 resourcequotas", func(t *testing.T, c kubernetes.Interface, n string) {
			roundTrip[*corev1.ResourceQuota, *corev1.ResourceQuotaList](t, c.CoreV1().ResourceQuotas(ns), &corev1.ResourceQuota{ObjectMeta: om(n),
				Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("10")}}})
		}},
		{"admissionregistration.k8s.io/v1 validatingwebhookconfigurations", func(t *testing.T, c kubernetes.Interface, n string) {
			roundTrip[*admissionregistrationv1.ValidatingWebhookConfiguration, *admissionregistrationv1.ValidatingWebhookConfigurationList](t,
				c.AdmissionregistrationV1().ValidatingWebhookConfigurations(), &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: om(n),
					Webhooks: []admissionregistrationv1.ValidatingWebhook{webhook}})
		}},
		{"admissionregistration.k8s.io/v1 validatingadmissionpolicies", func(t *testing.T, c kubernetes.Interface, n string) {
			roundTrip[*admissionregistrationv1.ValidatingAdmissionPolicy, *admissionregistrationv1.ValidatingAdmissionPolicyList](t,
				c.AdmissionregistrationV1().ValidatingAdmissionPolicies(), &admissionregistrationv1.ValidatingAdmissionPolicy{ObjectMeta: om(n),
					Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
						MatchConstraints: matchCreates,
						Validations:      []admissionregistrationv1.Validation{{Expression: "object.spec.replicas <= 5"}},
					}})
		}},
		{"apps/v1 deployments", func(t *testing.T, c kubernetes.Interface, n string) {
			roundTrip[*appsv1.Deployment, *appsv1.DeploymentList](t, c.AppsV1().Deployments(ns), &appsv1.Deployment{ObjectMeta: om(n),
				Spec: appsv1.DeploymentSpec{Selector: selector, Template: template}})
		}},
		{"apps/v1 statefulsets", func(t *testing.T, c kubernetes.Interface, n string) {
			roundTrip[*appsv1.StatefulSet, *appsv1.StatefulSetList](t, c.AppsV1().StatefulSets(ns), &appsv1.StatefulSet{ObjectMeta: om(n),
				Spec: appsv1.StatefulSetSpec{Selector: selector, Template: template}})
		}},
		{"apps/v1 daemonsets", func(t *testing.T, c kubernetes.Interface, n string) {
			roundTrip[*appsv1.DaemonSet, *appsv1.DaemonSetList](t, c.AppsV1().DaemonSets(ns), &appsv1.DaemonSet{ObjectMeta: om(n),
				Spec: appsv1.DaemonSetSpec{Selector: selector, Template: template}})
		}},
		{"apps/v1 replicasets", func(t *testing.T, c kubernetes.Interface, n string) {
			roundTrip[*appsv1.ReplicaSet, *appsv1.ReplicaSetList](t, c.AppsV1().ReplicaSets(ns), &appsv1.ReplicaSet{ObjectMeta: om(n),
				Spec: appsv1.ReplicaSetSpec{Selector: selector, Template: template}})
		}},
		{"apps/v1 controllerrevisions", func(t *testing.T, c kubernetes.Interface, n string) {
			roundTrip[*appsv1.ControllerRevision, *appsv1.ControllerRevisionList](t, c.AppsV1().ControllerRevisions(ns), &appsv1.ControllerRevision{ObjectMeta: om(n),
				Revision: 1, Data: runtime.RawExtension{Raw: []byte(`{"spec":{}}`)}})
		}},
		{"autoscaling/v1 horizontalpodautoscalers", func(t *testing.T, c kubernetes.Interface, n string) {
			roundTrip[*autoscalingv1.HorizontalPodAutoscaler, *autoscalingv1.HorizontalPodAutoscalerList](t, c.AutoscalingV1().HorizontalPodAutoscalers(ns),
				&autoscalingv1.HorizontalPodAutoscaler{ObjectMeta: om(n), Spec: autoscalingv1.HorizontalPodAutoscalerSpec{
					ScaleTargetRef: autoscalingv1.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"}, MaxReplicas: 3,
				}})
		}},
		{"autoscaling/v2 horizontalpodautoscalers", func(t *testing.T, c kubernetes.Interface, n string) {
			roundTrip[*autoscalingv2.HorizontalPodAutoscaler, *autoscalingv2.HorizontalPodAutoscalerList](t, c.AutoscalingV2().HorizontalPodAutoscalers(ns),
				&autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: om(n), Spec: autoscalingv2.HorizontalPodAutoscalerSpec{ScaleTargetRef: hpaTarget, MaxReplicas: 3}})
		}},
		{"batch/v1 jobs", func(t *testing.T, c kubernetes.Interface, n string) {
			roundTrip[*batchv1.Job, *batchv1.JobList](t, c.BatchV1().Jobs(ns), &batchv1.Job{ObjectMeta: om(n), Spec: batchv1.JobSpec{Template: jobTemplate}})
		}},
		{"batch/v1 cronjobs", func(t *testing.T, c kubernetes.Interface, n string) {
			roundTrip[*batchv1.CronJob, *batchv1.CronJobList](t, c.BatchV1().CronJobs(ns), &batchv1.CronJob{ObjectMeta: om(n), Spec: batchv1.CronJobSpec{
				Schedule: "*/5 * * * *", JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: jobTemplate}},
			}})
		}},
		{"certificates.k8s.io/v1 certificatesigningrequests", func(t *testing.T, c kubernetes.Interface, n string) {
			roundTrip[*certificatesv1.CertificateSigningRequest, *certificatesv1.CertificateSigningRequestList](t, c.CertificatesV1().CertificateSigningRequests(),
				&certificatesv1.CertificateSigningRequest{ObjectMeta: om(n), Spec: certificatesv1.CertificateSigningRequestSpec{
					Request: csrPEM, SignerName: "example.com/signer", Usages: []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature},
				}})
		}},
		{"certificates.k8s.io/v1 clustertrustbundles", func(t *testing.T, c kubernetes.Interface, n string) {
			roundTrip[*certificatesv1.ClusterTrustBundle, *certificatesv1.ClusterTrustBundleList](t, c.CertificatesV1().ClusterTrustBundles(),
				&certificatesv1.ClusterTrustBundle{ObjectMeta: om(n), Spec: certificatesv1.ClusterTrustBundleSpec{TrustBundle: string(caPEM)}})
		}},
		{"coordination.k8s.io/v1 leases", func(t *testing.T, c kubernetes.Interface, n string) {
			roundTrip[*coordinationv1.Lease, *coordinationv1.LeaseList](t, c.CoordinationV1().Leases(ns),
				&coordinationv1.Lease{ObjectMeta: om(n), Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("me")}})
		}},
		{"discovery.k8s.io/v1 endpointslices", func(t *testing.T, c kubernetes.Interface, n string) {
			roundTrip[*discoveryv1.EndpointSlice, *discoveryv1.EndpointSliceList](t, c.DiscoveryV1().EndpointSlices(ns), &discoveryv1.EndpointSlice{ObjectMeta: om(n),
				AddressType: discoveryv1.AddressTypeIPv4, Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"10.0.0.1"}}}})
		}},
		{"events.k8s.io/v1 events", func(t *testing.T, c kubernetes.Interface, n string) {
			roundTrip[*eventsv1.Event, *eventsv1.EventList](t, c.EventsV1().Events(ns), &eventsv1.Event{ObjectMeta: om(n),
				EventTime: metav1.NowMicro(), ReportingController: "trellis.dev/test", ReportingInstance: "test-1",
				Action: "Test", Reason: "Tested", Type: corev1.EventTypeNormal,
				Regarding: corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: "p"}})
		}},
		{"flowcontrol.apiserver.k8s.io/v1 flowschemas", func(t *testing.T, c kubernetes.Interface, n string) {
			roundTrip[*flowcontrolv1.FlowSchema, *flowcontrolv1.FlowSchemaList](t, c.FlowcontrolV1().FlowSchemas(), &flowcontrolv1.FlowSchema{ObjectMeta: om(n),
				Spec: flowcontrolv1.FlowSchemaSpec{PriorityLevelConfiguration: flowcontrolv1.PriorityLevelConfigurationReference{Name: "workload-low"}, MatchingPrecedence: 1000}})
		}},
		{"flowcontrol.apiserver.k8s.io/v1 prioritylevelconfigurations", func(t *testing.T, c kubernetes.Interface, n string) {
			roundTrip[*flowcontrolv1.PriorityLevelConfiguration, *flowcontrolv1.PriorityLevelConfigurationList](t, c.FlowcontrolV1().PriorityLevelConfigurations(),
				&flowcontrolv1.PriorityLevelConfiguration{ObjectMeta: om(n), Spec: flowcontrolv1.PriorityLevelConfigurationSpec{
					Type: flowcontrolv1.PriorityLevelEnablementLimited,
					Limited: &flowcontrolv1.LimitedPriorityLevelConfiguration{
						NominalConcurrencyShares: ptr.To[int32](10),
						LimitResponse:            flowcontrolv1.LimitResponse{Type: flowcontrolv1.LimitResponseTypeReject},
					},
				}})
		}},
		{"networking.k8s.io/v1 ingresses", func(t *testing.T, c kubernetes.Interface, n string) {
			roundTrip[*networkingv1.Ingress, *networkingv1.IngressList](t, c.NetworkingV1().Ingresses(ns), testIngress(n, "/"))
		}},
		{"networking.k8s.io/v1 networkpolicies", func(t *testing.T, c kubernetes.Interface, n string) {
			roundTrip[*networkingv1.NetworkPolicy, *networkingv1.NetworkPolicyList](t, c.NetworkingV1().NetworkPolicies(ns), &networkingv1.NetworkPolicy{ObjectMeta: om(n)})
		}},
		{"networking.k8s.io/v1 ingressclasses", func(t *testing.T, c kubernetes.Interface, n string) {
			roundTrip[*networkingv1.IngressClass, *networkingv1.IngressClassList](t, c.NetworkingV1().IngressClasses(),
				&networkingv1.IngressClass{ObjectMeta: om(n), Spec: networkingv1.IngressClassSpec{Controller: "example.com/ingress"}})
		}},
		{"node.k8s.io/v1 runtimeclasses", func(t *testing.T, c kubernetes.Interface, n string) {
			roundTrip[*nodev1.RuntimeClass, *nodev1.RuntimeClassList](t, c.NodeV1().RuntimeClasses(), &nodev1.RuntimeClass{ObjectMeta: om(n), Handler: "runc"})
		}},
		{"policy/v1 poddisruptionbudgets", func(t *testing.T, c kubernetes.Interface, n string) {
			roundTrip[*policyv1.PodDisruptionBudget, *policyv1.PodDisruptionBudgetList](t, c.PolicyV1().PodDisruptionBudgets(ns), &policyv1.PodDisruptionBudget{ObjectMeta: om(n),
				Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: ptr.To(intstr.FromInt32(1)), Selector: selector}})
		}},
		{"rbac.authorization.k8s.io/v1 roles", func(t *testing.T, c kubernetes.Interface, n string) {
			roundTrip[*rbacv1.Role, *rbacv1.RoleList](t, c.RbacV1().Roles(ns), &rbacv1.Role{ObjectMeta: om(n), Rules: rules})
		}},
		{"rbac.authorization.k8s.io/v1 rolebindings", func(t *testing.T, c kubernetes.Interface, n string) {
			roundTrip[*rbacv1.RoleBinding, *rbacv1.RoleBindingList](t, c.RbacV1().RoleBindings(ns), &rbacv1.RoleBinding{ObjectMeta: om(n), RoleRef: roleRef("Role"), Subjects: subjects})
		}},
		{"rbac.authorization.k8s.io/v1 clusterroles", func(t *testing.T, c kubernetes.Interface, n string) {
			roundTrip[*rbacv1.ClusterRole, *rbacv1.ClusterRoleList](t, c.RbacV1().ClusterRoles(), &rbacv1.ClusterRole{ObjectMeta: om(n), Rules: rules})
		}},
		{"rbac.authorization.k8s.io/v1 clusterrolebindings", func(t *testing.T, c kubernetes.Interface, n string) {
			roundTrip[*rbacv1.ClusterRoleBinding, *rbacv1.ClusterRoleBindingList](t, c.RbacV1().ClusterRoleBindings(),
				&rbacv1.ClusterRoleBinding{ObjectMeta: om(n), RoleRef: roleRef("ClusterRole"), Subjects: subjects})
		}},
		{"resource.k8s.io/v1 deviceclasses", func(t *testing.T, c kubernetes.Interface, n string) {
			roundTrip[*resourcev1.DeviceClass, *resourcev1.DeviceClassList](t, c.ResourceV1().DeviceClasses(), &resourcev1.DeviceClass{ObjectMeta: om(n)})
		}},
		{"resource.k8s.io/v1 resourceclaims", func(t *testing.T, c kubernetes.Interface, n string) {
			roundTrip[*resourcev1.ResourceClaim, *resourcev1.ResourceClaimList](t, c.ResourceV1().ResourceClaims(ns), &resourcev1.ResourceClaim{ObjectMeta: om(n),
				Spec: resourcev1.ResourceClaimSpec{Devices: resourcev1.DeviceClaim{Requests: []resourcev1.DeviceRequest{{
					Name: "gpu", Exactly: &resourcev1.ExactDeviceRequest{DeviceClassName: "gpu.example.com"},
				}}}}})
		}},
		{"resource.k8s.io/v1 resourceclaimtemplates", func(t *testing.T, c kubernetes.Interface, n string) {
			roundTrip[*resourcev1.ResourceClaimTemplate, *resourcev1.ResourceClaimTemplateList](t, c.ResourceV1().ResourceClaimTemplates(ns), &resourcev1.ResourceClaimTemplate{ObjectMeta: om(n),
				Spec: resourcev1.ResourceClaimTemplateSpec{Spec: resourcev1.ResourceClaimSpec{Devices: resourcev1.DeviceClaim{Requests: []resourcev1.DeviceRequest{{
					Name: "gpu", Exactly: &resourcev1.ExactDeviceRequest{DeviceClassName: "gpu.example.com"},
				}}}}}})
		}},
		{"resource.k8s.io/v1 resourceslices", func(t *testing.T, c kubernetes.Interface, n string) {
			roundTrip[*resourcev1.ResourceSlice, *resourcev1.ResourceSliceList](t, c.ResourceV1().ResourceSlices(), &resourcev1.ResourceSlice{ObjectMeta: om(n),
				Spec: resourcev1.ResourceSliceSpec{Driver: "gpu.example.com", NodeName: ptr.To("node-1"),
					Pool: resourcev1.ResourcePool{Name: "pool", ResourceSliceCount: 1}, Devices: []resourcev1.Device{{Name: "gpu-0"}}}})
		}},
		{"resource.k8s.io/v1 devicetaintrules", func(t *testing.T, c kubernetes.Interface, n string) {
			roundTrip[*resourcev1.DeviceTaintRule, *resourcev1.DeviceTaintRuleList](t, c.ResourceV1().DeviceTaintRules(), &resourcev1.DeviceTaintRule{ObjectMeta: om(n),
				Spec: resourcev1.DeviceTaintRuleSpec{DeviceSelector: &resourcev1.DeviceTaintSelector{Driver: ptr.To("gpu.example.com")},
					Taint: resourcev1.DeviceTaint{Key: "example.com/broken", Effect: resourcev1.DeviceTaintEffectNoSchedule}}})
		}},
		{"networking.k8s.io/v1 servicecidrs", func(t *testing.T, c kubernetes.Interface, n string) {
			roundTrip[*networkingv1.ServiceCIDR, *networkingv1.ServiceCIDRList](t, c.NetworkingV1().ServiceCIDRs(),
				&networkingv1.ServiceCIDR{ObjectMeta: om(n), Spec: networkingv1.ServiceCIDRSpec{CIDRs: []string{"10.100.0.0/16"}}})
		}},
		{"networking.k8s.io/v1 ipaddresses", func(t *testing.T, c kubernetes.Interface, n string) {
			ip := map[string]string{"protobuf": "10.100.0.10", "json": "10.100.0.11"}[strings.TrimPrefix(n, "rt-")]
			roundTrip[*networkingv1.IPAddress, *networkingv1.IPAddressList](t, c.NetworkingV1().IPAddresses(), &networkingv1.IPAddress{ObjectMeta: om(ip),
				Spec: networkingv1.IPAddressSpec{ParentRef: &networkingv1.ParentReference{Resource: "services", Namespace: ns, Name: "web"}}})
		}},
		{"storage.k8s.io/v1 csinodes", func(t *testing.T, c kubernetes.Interface, n string) {
			roundTrip[*storagev1.CSINode, *storagev1.CSINodeList](t, c.StorageV1().CSINodes(), &storagev1.CSINode{ObjectMeta: om(n),
				Spec: storagev1.CSINodeSpec{Drivers: []storagev1.CSINodeDriver{{Name: "disk.example.com", NodeID: "node-1"}}}})
		}},
		{"storage.k8s.io/v1 csistoragecapacities", func(t *testing.T, c kubernetes.Interface, n string) {
			roundTrip[*storagev1.CSIStorageCapacity, *storagev1.CSIStorageCapacityList](t, c.StorageV1().CSIStorageCapacities(ns),
				&storagev1.CSIStorageCapacity{ObjectMeta: om(n), StorageClassName: "fast", Capacity: ptr.To(resource.MustParse("10Gi"))})
		}},
		{"storage.k8s.io/v1 volumeattributesclasses", func(t *testing.T, c kubernetes.Interface, n string) {
			roundTrip[*storagev1.VolumeAttributesClass, *storagev1.VolumeAttributesClassList](t, c.StorageV1().VolumeAttributesClasses(),
				&storagev1.VolumeAttributesClass{ObjectMeta: om(n), DriverName: "disk.example.com", Parameters: map[string]string{"iops": "3000"}})
		}},
		{"admissionregistration.k8s.io/v1 validatingadmissionpolicybindings", func(t *testing.T, c kubernetes.Interface, n string) {
			roundTrip[*admissionregistrationv1.ValidatingAdmissionPolicyBinding, *admissionregistrationv1.ValidatingAdmissionPolicyBindingList](t,
				c.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings(), &admissionregistrationv1.ValidatingAdmissionPolicyBinding{ObjectMeta: om(n),
					Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{PolicyName: "policy",
						ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny}}})
		}},
		{"admissionregistration.k8s.io/v1 mutatingadmissionpolicies", func(t *testing.T, c kubernetes.Interface, n string) {
			roundTrip[*admissionregistrationv1.MutatingAdmissionPolicy, *admissionregistrationv1.MutatingAdmissionPolicyList](t,
				c.AdmissionregistrationV1().MutatingAdmissionPolicies(), &admissionregistrationv1.MutatingAdmissionPolicy{ObjectMeta: om(n),
					Spec: admissionregistrationv1.MutatingAdmissionPolicySpec{
						MatchConstraints: matchCreates,
						Mutations: []admissionregistrationv1.Mutation{{PatchType: admissionregistrationv1.PatchTypeApplyConfiguration,
							ApplyConfiguration: &admissionregistrationv1.ApplyConfiguration{Expression: `Object{metadata: Object.metadata{labels: {"mutated": "yes"}}}`}}},
						ReinvocationPolicy: admissionregistrationv1.NeverReinvocationPolicy,
					}})
		}},
		{"admissionregistration.k8s.io/v1 mutatingadmissionpolicybindings", func(t *testing.T, c kubernetes.Interface, n string) {
			roundTrip[*admissionregistrationv1.MutatingAdmissionPolicyBinding, *admissionregistrationv1.MutatingAdmissionPolicyBindingList](t,
				c.AdmissionregistrationV1().MutatingAdmissionPolicyBindings(), &admissionregistrationv1.MutatingAdmissionPolicyBinding{ObjectMeta: om(n),
					Spec: admissionregistrationv1.MutatingAdmissionPolicyBindingSpec{PolicyName: "policy"}})
		}},
		{"admissionregistration.k8s.io/v1 mutatingwebhookconfigurations", func(t *testing.T, c kubernetes.Interface, n string) {
			roundTrip[*admissionregistrationv1.MutatingWebhookConfiguration, *admissionregistrationv1.MutatingWebhookConfigurationList](t,
				c.AdmissionregistrationV1().MutatingWebhookConfigurations(), &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: om(n),
					Webhooks: []admissionregistrationv1.MutatingWebhook{{
						Name: webhook.Name, ClientConfig: webhook.ClientConfig, SideEffects: webhook.SideEffects, AdmissionReviewVersions: webhook.AdmissionReviewVersions,
					}}})
		}},
		{"scheduling.k8s.io/v1 priorityclasses", func(t *testing.T, c kubernetes.Interface, n string) {
			roundTrip[*schedulingv1.PriorityClass, *schedulingv1.PriorityClassList](t, c.SchedulingV1().PriorityClasses(), &schedulingv1.PriorityClass{ObjectMeta: om(n), Value: 1000})
		}},
		{"storage.k8s.io/v1 storageclasses", func(t *testing.T, c kubernetes.Interface, n string) {
			roundTrip[*storagev1.StorageClass, *storagev1.StorageClassList](t, c.StorageV1().StorageClasses(), &storagev1.StorageClass{ObjectMeta: om(n), Provisioner: "example.com/disk"})
		}},
		{"storage.k8s.io/v1 csidrivers", func(t *testing.T, c kubernetes.Interface, n string) {
			roundTrip[*storagev1.CSIDriver, *storagev1.CSIDriverList](t, c.StorageV1().CSIDrivers(), &storagev1.CSIDriver{ObjectMeta: om(n + ".example.com")})
		}},
		{"storage.k8s.io/v1 volumeattachments", func(t *testing.T, c kubernetes.Interface, n string) {
			roundTrip[*storagev1.VolumeAttachment, *storagev1.VolumeAttachmentList](t, c.StorageV1().VolumeAttachments(), &storagev1.VolumeAttachment{ObjectMeta: om(n),
				Spec: storagev1.VolumeAttachmentSpec{Attacher: "disk.example.com", NodeName: "node-1", Source: storagev1.VolumeAttachmentSource{PersistentVolumeName: ptr.To("pv-1")}}})
		}},
		{"storagemigration.k8s.io/v1 storageversionmigrations", func(t *testing.T, c kubernetes.Interface, n string) {
			roundTrip[*storagemigrationv1.StorageVersionMigration, *storagemigrationv1.StorageVersionMigrationList](t, c.StoragemigrationV1().StorageVersionMigrations(),
				&storagemigrationv1.StorageVersionMigration{ObjectMeta: om(n), Spec: storagemigrationv1.StorageVersionMigrationSpec{Resource: metav1.GroupResource{Resource: "configmaps"}}})
		}},
	}
	for _, tc := range cases {
		for encoding, c := range clients {
			t.Run(tc.name+" "+encoding, func(t *testing.T) { tc.run(t, c, "rt-"+encoding) })
		}
	}
}

func testIngress(name, path string) *networkingv1.Ingress {
	prefix := networkingv1.PathTypePrefix
	return &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{{
			Host: "web.example.com",
			IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{
				Path: path, PathType: &prefix,
				Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "web", Port: networkingv1.ServiceBackendPort{Number: 80}}},
			}}}},
		}}},
	}
}

// testCertificates returns a self-signed CA certificate and a
// certificate signing request, PEM-encoded.
func testCertificates(t *testing.T) (caPEM, csrPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "trellis test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, ca, ca, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	req, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "alice"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: req})
}
