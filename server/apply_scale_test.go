package server_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	autoscalingv1ac "k8s.io/client-go/applyconfigurations/autoscaling/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/trellis-project/trellis/trellistest"
)

// deploymentScaleScenario writes one Deployment in every way that
// records managed fields: apply creating it, an update, an apply to
// /status, applies to /scale that conflict and then force, an update and
// a merge patch of /scale, and an apply to the main resource that
// conflicts with the scalers and then forces. It returns what each write
// left. The same function ran against kube-apiserver v1.37.2 to get the
// expected values.
func deploymentScaleScenario(ctx context.Context, cfg *rest.Config, ns string) []refStep {
	deps := kubernetes.NewForConfigOrDie(cfg).AppsV1().Deployments(ns)
	var steps []refStep
	record := func(step string, mf []metav1.ManagedFieldsEntry, err error) {
		if err != nil {
			steps = append(steps, refStep{Step: step, Err: refError(err)})
			return
		}
		steps = append(steps, refStep{Step: step, Entries: refEntries(mf)})
	}
	current := func() []metav1.ManagedFieldsEntry {
		d, err := deps.Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return nil
		}
		return d.ManagedFields
	}
	web := func(replicas int32, image string) *appsv1ac.DeploymentApplyConfiguration {
		return appsv1ac.Deployment("web", ns).WithSpec(appsv1ac.DeploymentSpec().
			WithReplicas(replicas).
			WithSelector(metav1ac.LabelSelector().WithMatchLabels(map[string]string{"app": "web"})).
			WithTemplate(corev1ac.PodTemplateSpec().WithLabels(map[string]string{"app": "web"}).
				WithSpec(corev1ac.PodSpec().WithContainers(corev1ac.Container().WithName("app").WithImage(image)))))
	}
	scale := func(replicas int32) *autoscalingv1ac.ScaleApplyConfiguration {
		return autoscalingv1ac.Scale().WithSpec(autoscalingv1ac.ScaleSpec().WithReplicas(replicas))
	}

	d, err := deps.Apply(ctx, web(1, "nginx:1"), metav1.ApplyOptions{FieldManager: "creator"})
	record("apply creates", managed(d), err)

	if d, err = deps.Get(ctx, "web", metav1.GetOptions{}); err == nil {
		d.Labels = map[string]string{"tier": "web"}
		d, err = deps.Update(ctx, d, metav1.UpdateOptions{FieldManager: "editor"})
	}
	record("update", managed(d), err)

	d, err = deps.ApplyStatus(ctx, appsv1ac.Deployment("web", ns).WithStatus(appsv1ac.DeploymentStatus().WithReplicas(1)),
		metav1.ApplyOptions{FieldManager: "controller"})
	record("status apply", managed(d), err)

	_, err = deps.ApplyScale(ctx, "web", scale(3), metav1.ApplyOptions{FieldManager: "scaler"})
	record("scale apply conflicts", current(), err)

	_, err = deps.ApplyScale(ctx, "web", scale(3), metav1.ApplyOptions{FieldManager: "scaler", Force: true})
	record("scale apply forced", current(), err)

	_, err = deps.ApplyScale(ctx, "web", scale(3), metav1.ApplyOptions{FieldManager: "scaler"})
	record("scale apply again", current(), err)

	var sc *autoscalingv1.Scale
	if sc, err = deps.GetScale(ctx, "web", metav1.GetOptions{}); err == nil {
		sc.Spec.Replicas = 4
		_, err = deps.UpdateScale(ctx, "web", sc, metav1.UpdateOptions{FieldManager: "hpa"})
	}
	record("scale update", current(), err)

	_, err = deps.Patch(ctx, "web", types.MergePatchType, []byte(`{"spec":{"replicas":5}}`), metav1.PatchOptions{FieldManager: "patcher"}, "scale")
	record("scale merge patch", current(), err)

	_, err = deps.Apply(ctx, web(1, "nginx:1"), metav1.ApplyOptions{FieldManager: "creator"})
	record("apply of replicas conflicts", current(), err)

	d, err = deps.Apply(ctx, web(1, "nginx:1"), metav1.ApplyOptions{FieldManager: "creator", Force: true})
	record("apply of replicas forced", managed(d), err)

	d, err = deps.Apply(ctx, web(1, "nginx:2"), metav1.ApplyOptions{FieldManager: "other"})
	record("second applier conflicts", current(), err)

	d, err = deps.Apply(ctx, web(1, "nginx:2"), metav1.ApplyOptions{FieldManager: "other", Force: true})
	record("second applier forced", managed(d), err)

	_, err = deps.ApplyScale(ctx, "missing", scale(1), metav1.ApplyOptions{FieldManager: "scaler"})
	record("scale apply of a missing object", nil, err)
	return steps
}

func managed[T interface {
	GetManagedFields() []metav1.ManagedFieldsEntry
}](o T) []metav1.ManagedFieldsEntry {
	var zero T
	if any(o) == any(zero) {
		return nil
	}
	return o.GetManagedFields()
}

var fleets = schema.GroupVersionResource{Group: "example.com", Version: "v1", Resource: "fleets"}

// fleetScaleScenario does the same to a custom resource with /scale.
func fleetScaleScenario(ctx context.Context, cfg *rest.Config, ns string) []refStep {
	res := dynamic.NewForConfigOrDie(cfg).Resource(fleets).Namespace(ns)
	var steps []refStep
	record := func(step string, err error) {
		if err != nil {
			steps = append(steps, refStep{Step: step, Err: refError(err)})
			return
		}
		f, err := res.Get(ctx, "f", metav1.GetOptions{})
		if err != nil {
			steps = append(steps, refStep{Step: step, Err: refError(err)})
			return
		}
		steps = append(steps, refStep{Step: step, Entries: refEntries(f.GetManagedFields())})
	}
	apply := func(manager string, body string, force bool, sub ...string) error {
		_, err := res.Patch(ctx, "f", types.ApplyPatchType, []byte(body), metav1.PatchOptions{FieldManager: manager, Force: &force}, sub...)
		return err
	}
	fleet := `{"apiVersion":"example.com/v1","kind":"Fleet","metadata":{"name":"f"},"spec":{"replicas":2}}`
	scale := `{"apiVersion":"autoscaling/v1","kind":"Scale","metadata":{"name":"f"},"spec":{"replicas":%d}}`

	record("apply creates", apply("creator", fleet, false))
	record("scale apply conflicts", apply("scaler", fmt.Sprintf(scale, 3), false, "scale"))
	record("scale apply forced", apply("scaler", fmt.Sprintf(scale, 3), true, "scale"))
	_, err := res.Patch(ctx, "f", types.MergePatchType, []byte(`{"spec":{"replicas":4}}`), metav1.PatchOptions{FieldManager: "hpa"}, "scale")
	record("scale merge patch", err)
	record("scale apply of the wrong kind", apply("scaler", fleet, false, "scale"))
	_, err = res.Patch(ctx, "f", types.StrategicMergePatchType, []byte(`{"spec":{"replicas":4}}`), metav1.PatchOptions{}, "scale")
	record("scale strategic merge patch", err)
	return steps
}

// scalableFleetCRD is a namespaced Fleet with /status and /scale.
func scalableFleetCRD() *apiextensionsv1.CustomResourceDefinition {
	integer := apiextensionsv1.JSONSchemaProps{Type: "integer"}
	return &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "fleets.example.com"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: "example.com",
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "fleets", Singular: "fleet", Kind: "Fleet", ListKind: "FleetList"},
			Scope: apiextensionsv1.NamespaceScoped,
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name: "v1", Served: true, Storage: true,
				Subresources: &apiextensionsv1.CustomResourceSubresources{
					Status: &apiextensionsv1.CustomResourceSubresourceStatus{},
					Scale:  &apiextensionsv1.CustomResourceSubresourceScale{SpecReplicasPath: ".spec.replicas", StatusReplicasPath: ".status.replicas"},
				},
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object",
					Properties: map[string]apiextensionsv1.JSONSchemaProps{
						"spec":   {Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{"replicas": integer}},
						"status": {Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{"replicas": integer}},
					},
				}},
			}},
		},
	}
}

func TestApplyScaleDeploymentManagedFields(t *testing.T) {
	cfg := trellistest.Start(t)
	checkRefSteps(t, deploymentScaleScenario(context.Background(), cfg, "default"), referenceDeploymentScale)
}

func TestApplyScaleCustomResourceManagedFields(t *testing.T) {
	cfg := trellistest.Start(t)
	installCRD(t, cfg, scalableFleetCRD())
	checkRefSteps(t, fleetScaleScenario(context.Background(), cfg, "default"), referenceFleetScale)
}

// What kube-apiserver v1.37.2 answered to deploymentScaleScenario
// (timestamps left out; entries written by a /scale write have none).
var referenceDeploymentScale = []refStep{
	{Step: "apply creates", Entries: []refEntry{
		{"creator", "Apply", "apps/v1", "", `{"f:spec":{"f:replicas":{},"f:selector":{},"f:template":{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"app\"}":{".":{},"f:image":{},"f:name":{}}}}}}}`, true},
	}},
	{Step: "update", Entries: []refEntry{
		{"creator", "Apply", "apps/v1", "", `{"f:spec":{"f:replicas":{},"f:selector":{},"f:template":{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"app\"}":{".":{},"f:image":{},"f:name":{}}}}}}}`, true},
		{"editor", "Update", "apps/v1", "", `{"f:metadata":{"f:labels":{".":{},"f:tier":{}}}}`, true},
	}},
	{Step: "status apply", Entries: []refEntry{
		{"controller", "Apply", "apps/v1", "status", `{"f:status":{"f:replicas":{}}}`, true},
		{"creator", "Apply", "apps/v1", "", `{"f:spec":{"f:replicas":{},"f:selector":{},"f:template":{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"app\"}":{".":{},"f:image":{},"f:name":{}}}}}}}`, true},
		{"editor", "Update", "apps/v1", "", `{"f:metadata":{"f:labels":{".":{},"f:tier":{}}}}`, true},
	}},
	{Step: "scale apply conflicts", Err: "409 Conflict: Apply failed with 1 conflict: conflict with \"creator\": .spec.replicas\n  cause FieldManagerConflict .spec.replicas: conflict with \"creator\""},
	{Step: "scale apply forced", Entries: []refEntry{
		{"controller", "Apply", "apps/v1", "status", `{"f:status":{"f:replicas":{}}}`, true},
		{"creator", "Apply", "apps/v1", "", `{"f:spec":{"f:selector":{},"f:template":{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"app\"}":{".":{},"f:image":{},"f:name":{}}}}}}}`, true},
		{"editor", "Update", "apps/v1", "", `{"f:metadata":{"f:labels":{".":{},"f:tier":{}}}}`, true},
		{"scaler", "Apply", "apps/v1", "scale", `{"f:spec":{"f:replicas":{}}}`, false},
	}},
	{Step: "scale apply again", Entries: []refEntry{
		{"controller", "Apply", "apps/v1", "status", `{"f:status":{"f:replicas":{}}}`, true},
		{"creator", "Apply", "apps/v1", "", `{"f:spec":{"f:selector":{},"f:template":{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"app\"}":{".":{},"f:image":{},"f:name":{}}}}}}}`, true},
		{"editor", "Update", "apps/v1", "", `{"f:metadata":{"f:labels":{".":{},"f:tier":{}}}}`, true},
		{"scaler", "Apply", "apps/v1", "scale", `{"f:spec":{"f:replicas":{}}}`, false},
	}},
	{Step: "scale update", Entries: []refEntry{
		{"controller", "Apply", "apps/v1", "status", `{"f:status":{"f:replicas":{}}}`, true},
		{"creator", "Apply", "apps/v1", "", `{"f:spec":{"f:selector":{},"f:template":{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"app\"}":{".":{},"f:image":{},"f:name":{}}}}}}}`, true},
		{"editor", "Update", "apps/v1", "", `{"f:metadata":{"f:labels":{".":{},"f:tier":{}}}}`, true},
		{"hpa", "Update", "apps/v1", "scale", `{"f:spec":{"f:replicas":{}}}`, false},
	}},
	{Step: "scale merge patch", Entries: []refEntry{
		{"controller", "Apply", "apps/v1", "status", `{"f:status":{"f:replicas":{}}}`, true},
		{"creator", "Apply", "apps/v1", "", `{"f:spec":{"f:selector":{},"f:template":{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"app\"}":{".":{},"f:image":{},"f:name":{}}}}}}}`, true},
		{"editor", "Update", "apps/v1", "", `{"f:metadata":{"f:labels":{".":{},"f:tier":{}}}}`, true},
		{"patcher", "Update", "apps/v1", "scale", `{"f:spec":{"f:replicas":{}}}`, false},
	}},
	{Step: "apply of replicas conflicts", Err: "409 Conflict: Apply failed with 1 conflict: conflict with \"patcher\" with subresource \"scale\" using apps/v1: .spec.replicas\n  cause FieldManagerConflict .spec.replicas: conflict with \"patcher\" with subresource \"scale\" using apps/v1"},
	{Step: "apply of replicas forced", Entries: []refEntry{
		{"controller", "Apply", "apps/v1", "status", `{"f:status":{"f:replicas":{}}}`, true},
		{"creator", "Apply", "apps/v1", "", `{"f:spec":{"f:replicas":{},"f:selector":{},"f:template":{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"app\"}":{".":{},"f:image":{},"f:name":{}}}}}}}`, true},
		{"editor", "Update", "apps/v1", "", `{"f:metadata":{"f:labels":{".":{},"f:tier":{}}}}`, true},
	}},
	{Step: "second applier conflicts", Err: "409 Conflict: Apply failed with 1 conflict: conflict with \"creator\": .spec.template.spec.containers[name=\"app\"].image\n  cause FieldManagerConflict .spec.template.spec.containers[name=\"app\"].image: conflict with \"creator\""},
	{Step: "second applier forced", Entries: []refEntry{
		{"controller", "Apply", "apps/v1", "status", `{"f:status":{"f:replicas":{}}}`, true},
		{"creator", "Apply", "apps/v1", "", `{"f:spec":{"f:replicas":{},"f:selector":{},"f:template":{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"app\"}":{".":{},"f:name":{}}}}}}}`, true},
		{"editor", "Update", "apps/v1", "", `{"f:metadata":{"f:labels":{".":{},"f:tier":{}}}}`, true},
		{"other", "Apply", "apps/v1", "", `{"f:spec":{"f:replicas":{},"f:selector":{},"f:template":{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"app\"}":{".":{},"f:image":{},"f:name":{}}}}}}}`, true},
	}},
	{Step: "scale apply of a missing object", Err: "404 NotFound: deployments.apps \"missing\" not found"},
}

// What kube-apiserver v1.37.2 answered to fleetScaleScenario, but for
// one step.
var referenceFleetScale = []refStep{
	{Step: "apply creates", Entries: []refEntry{
		{"creator", "Apply", "example.com/v1", "", `{"f:spec":{"f:replicas":{}}}`, true},
	}},
	{Step: "scale apply conflicts", Err: "409 Conflict: Apply failed with 1 conflict: conflict with \"creator\": .spec.replicas\n  cause FieldManagerConflict .spec.replicas: conflict with \"creator\""},
	// kube-apiserver v1.37.2 answers this step with a 500: "failed to
	// convert new object (/f; autoscaling/v1, Kind=Scale) to proper
	// version: request to convert CR to an invalid group/version:
	// autoscaling/v1" (its CRD handler gives the Scale's field manager the
	// custom resource's converter). Trellis applies, as it does for
	// built-in kinds; the entry is the one kube-apiserver records for a
	// Deployment's Scale, under the custom resource's apiVersion.
	{Step: "scale apply forced", Entries: []refEntry{
		{"scaler", "Apply", "example.com/v1", "scale", `{"f:spec":{"f:replicas":{}}}`, false},
	}},
	{Step: "scale merge patch", Entries: []refEntry{
		{"hpa", "Update", "example.com/v1", "scale", `{"f:spec":{"f:replicas":{}}}`, false},
	}},
	{Step: "scale apply of the wrong kind", Err: "400 BadRequest: invalid object type: example.com/v1, Kind=Fleet"},
	{Step: "scale strategic merge patch", Err: "415 UnsupportedMediaType: the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"},
}

// Every built-in kind with /scale takes an apply of its Scale, recorded
// on the object's replicas field under the object's apiVersion; with
// dryRun nothing is stored.
func TestApplyScaleBuiltinKinds(t *testing.T) {
	ctx := context.Background()
	c := kubernetes.NewForConfigOrDie(trellistest.Start(t))
	labels := map[string]string{"app": "s"}
	template := corev1ac.PodTemplateSpec().WithLabels(labels).
		WithSpec(corev1ac.PodSpec().WithContainers(corev1ac.Container().WithName("app").WithImage("nginx")))
	selector := metav1ac.LabelSelector().WithMatchLabels(labels)
	scale := func(n int32) *autoscalingv1ac.ScaleApplyConfiguration {
		return autoscalingv1ac.Scale().WithSpec(autoscalingv1ac.ScaleSpec().WithReplicas(n))
	}
	scaler := metav1.ApplyOptions{FieldManager: "scaler"}
	forced := metav1.ApplyOptions{FieldManager: "scaler", Force: true}
	dryRun := metav1.ApplyOptions{FieldManager: "scaler", Force: true, DryRun: []string{metav1.DryRunAll}}
	for _, tc := range []struct {
		kind, apiVersion string
		create           func() error
		applyScale       func(metav1.ApplyOptions) (*autoscalingv1.Scale, error)
		get              func() (int32, []metav1.ManagedFieldsEntry, error)
	}{
		{"ReplicaSet", "apps/v1",
			func() error {
				_, err := c.AppsV1().ReplicaSets("default").Apply(ctx, appsv1ac.ReplicaSet("s", "default").
					WithSpec(appsv1ac.ReplicaSetSpec().WithReplicas(1).WithSelector(selector).WithTemplate(template)), metav1.ApplyOptions{FieldManager: "creator"})
				return err
			},
			func(o metav1.ApplyOptions) (*autoscalingv1.Scale, error) {
				return c.AppsV1().ReplicaSets("default").ApplyScale(ctx, "s", scale(2), o)
			},
			func() (int32, []metav1.ManagedFieldsEntry, error) {
				o, err := c.AppsV1().ReplicaSets("default").Get(ctx, "s", metav1.GetOptions{})
				if err != nil {
					return 0, nil, err
				}
				return *o.Spec.Replicas, o.ManagedFields, nil
			}},
		{"StatefulSet", "apps/v1",
			func() error {
				_, err := c.AppsV1().StatefulSets("default").Apply(ctx, appsv1ac.StatefulSet("s", "default").
					WithSpec(appsv1ac.StatefulSetSpec().WithReplicas(1).WithSelector(selector).WithTemplate(template)), metav1.ApplyOptions{FieldManager: "creator"})
				return err
			},
			func(o metav1.ApplyOptions) (*autoscalingv1.Scale, error) {
				return c.AppsV1().StatefulSets("default").ApplyScale(ctx, "s", scale(2), o)
			},
			func() (int32, []metav1.ManagedFieldsEntry, error) {
				o, err := c.AppsV1().StatefulSets("default").Get(ctx, "s", metav1.GetOptions{})
				if err != nil {
					return 0, nil, err
				}
				return *o.Spec.Replicas, o.ManagedFields, nil
			}},
		{"ReplicationController", "v1",
			func() error {
				_, err := c.CoreV1().ReplicationControllers("default").Apply(ctx, corev1ac.ReplicationController("s", "default").
					WithSpec(corev1ac.ReplicationControllerSpec().WithReplicas(1).WithSelector(labels).WithTemplate(template)), metav1.ApplyOptions{FieldManager: "creator"})
				return err
			},
			func(o metav1.ApplyOptions) (*autoscalingv1.Scale, error) {
				// client-go has no typed ApplyScale for replication
				// controllers: send the Scale as kubectl would.
				body := `{"apiVersion":"autoscaling/v1","kind":"Scale","metadata":{"name":"s"},"spec":{"replicas":2}}`
				req := c.CoreV1().RESTClient().Patch(types.ApplyPatchType).Namespace("default").Resource("replicationcontrollers").
					Name("s").SubResource("scale").Param("fieldManager", o.FieldManager).Body([]byte(body))
				if len(o.DryRun) > 0 {
					req.Param("dryRun", "All")
				}
				if o.Force {
					req.Param("force", "true")
				}
				out := &autoscalingv1.Scale{}
				return out, req.Do(ctx).Into(out)
			},
			func() (int32, []metav1.ManagedFieldsEntry, error) {
				o, err := c.CoreV1().ReplicationControllers("default").Get(ctx, "s", metav1.GetOptions{})
				if err != nil {
					return 0, nil, err
				}
				return *o.Spec.Replicas, o.ManagedFields, nil
			}},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			if err := tc.create(); err != nil {
				t.Fatal(err)
			}
			if _, err := tc.applyScale(scaler); !apierrors.IsConflict(err) {
				t.Fatalf("scale apply over the creator's replicas: %v", err)
			}
			sc, err := tc.applyScale(dryRun)
			if err != nil || sc.Spec.Replicas != 2 {
				t.Fatalf("dry-run scale apply: %v, %+v", err, sc)
			}
			if n, _, err := tc.get(); err != nil || n != 1 {
				t.Fatalf("dry-run scale apply stored: replicas %d, %v", n, err)
			}
			sc, err = tc.applyScale(forced)
			if err != nil {
				t.Fatal(err)
			}
			if sc.Name != "s" || sc.Spec.Replicas != 2 || len(sc.ManagedFields) != 0 {
				t.Errorf("answer: %+v", sc)
			}
			n, mf, err := tc.get()
			if err != nil || n != 2 {
				t.Fatalf("replicas %d, %v", n, err)
			}
			got := refEntries(mf)
			want := refEntry{"scaler", "Apply", tc.apiVersion, "scale", `{"f:spec":{"f:replicas":{}}}`, false}
			if !slices.Contains(got, want) {
				t.Errorf("managedFields %v lack %v", got, want)
			}
		})
	}
}
