package server_test

import (
	"context"
	"encoding/json"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/trellis-project/trellis/trellistest"
)

// smpStep is what one strategic merge patch left: the patched fields of
// the object, or the error's code, reason and message.
type smpStep struct {
	Step, Result, Err string
}

// strategicPatchScenario sends strategic merge patches with each
// directive to a Deployment and a ConfigMap. It returns what each patch
// left; the same function ran against kube-apiserver v1.37.2 to get the
// expected values.
func strategicPatchScenario(ctx context.Context, cfg *rest.Config, ns string) []smpStep {
	c := kubernetes.NewForConfigOrDie(cfg)
	deps := c.AppsV1().Deployments(ns)
	cms := c.CoreV1().ConfigMaps(ns)
	var steps []smpStep
	fail := func(step string, err error) {
		steps = append(steps, smpStep{Step: step, Err: refError(err)})
	}

	one := int32(1)
	surge := intstr.FromInt32(1)
	_, err := deps.Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "smp", Labels: map[string]string{"app": "smp", "keep": "1"}, Annotations: map[string]string{"note": "1"}},
		Spec: appsv1.DeploymentSpec{
			Replicas: &one,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "smp"}},
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &surge}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "smp"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{
					{Name: "a", Image: "a:1", Env: []corev1.EnvVar{{Name: "X", Value: "1"}, {Name: "Y", Value: "2"}}},
					{Name: "b", Image: "b:1"},
				}},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		fail("create deployment", err)
		return steps
	}
	patchDeployment := func(step, patch string) {
		d, err := deps.Patch(ctx, "smp", types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{})
		if err != nil {
			fail(step, err)
			return
		}
		type container struct {
			Name, Image string
			Env         []string `json:",omitempty"`
		}
		var containers []container
		for _, ct := range d.Spec.Template.Spec.Containers {
			c := container{Name: ct.Name, Image: ct.Image}
			for _, e := range ct.Env {
				c.Env = append(c.Env, e.Name+"="+e.Value)
			}
			containers = append(containers, c)
		}
		out, _ := json.Marshal(map[string]any{
			"labels": d.Labels, "annotations": d.Annotations, "strategy": d.Spec.Strategy, "containers": containers,
		})
		steps = append(steps, smpStep{Step: step, Result: string(out)})
	}

	patchDeployment("list entries merge by name",
		`{"spec":{"template":{"spec":{"containers":[{"name":"b","image":"b:2"}]}}}}`)
	patchDeployment("$setElementOrder orders the merged list",
		`{"spec":{"template":{"spec":{"$setElementOrder/containers":[{"name":"b"},{"name":"a"}],"containers":[{"name":"a","image":"a:2"}]}}}}`)
	patchDeployment("$patch: delete removes a list entry",
		`{"spec":{"template":{"spec":{"containers":[{"name":"b","$patch":"delete"}]}}}}`)
	patchDeployment("$patch: delete in a nested list",
		`{"spec":{"template":{"spec":{"containers":[{"name":"a","env":[{"name":"X","$patch":"delete"}]}]}}}}`)
	patchDeployment("$patch: replace replaces a list",
		`{"spec":{"template":{"spec":{"containers":[{"name":"c","image":"c:1"},{"$patch":"replace"}]}}}}`)
	patchDeployment("$patch: replace replaces a map",
		`{"metadata":{"labels":{"$patch":"replace","app":"smp","fresh":"yes"}}}`)
	patchDeployment("$patch: merge merges a map",
		`{"metadata":{"labels":{"$patch":"merge","more":"1"}}}`)
	patchDeployment("$patch: delete removes a map",
		`{"metadata":{"annotations":{"$patch":"delete"}}}`)
	patchDeployment("without $retainKeys the old rollingUpdate stays",
		`{"spec":{"strategy":{"type":"Recreate"}}}`)
	patchDeployment("$retainKeys clears what it does not list",
		`{"spec":{"strategy":{"$retainKeys":["type"],"type":"Recreate"}}}`)
	patchDeployment("$retainKeys must list what the patch sets",
		`{"spec":{"strategy":{"$retainKeys":["type"],"type":"RollingUpdate","rollingUpdate":{"maxSurge":2}}}}`)
	patchDeployment("$retainKeys must be a list",
		`{"spec":{"strategy":{"$retainKeys":"type"}}}`)
	patchDeployment("unknown $patch",
		`{"metadata":{"labels":{"$patch":"frobnicate"}}}`)
	patchDeployment("$setElementOrder must be a list",
		`{"spec":{"template":{"spec":{"$setElementOrder/containers":{"name":"c"}}}}}`)
	patchDeployment("not JSON", `{"metadata":`)

	_, err = cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "smp", Finalizers: []string{"example.com/a", "example.com/b"}}}, metav1.CreateOptions{})
	if err != nil {
		fail("create configmap", err)
		return steps
	}
	patchConfigMap := func(step, patch string) {
		cm, err := cms.Patch(ctx, "smp", types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{})
		if err != nil {
			fail(step, err)
			return
		}
		out, _ := json.Marshal(cm.Finalizers)
		steps = append(steps, smpStep{Step: step, Result: string(out)})
	}
	patchConfigMap("a primitive list with patchStrategy merge merges",
		`{"metadata":{"finalizers":["example.com/c","example.com/a"]}}`)
	patchConfigMap("$deleteFromPrimitiveList removes values",
		`{"metadata":{"$deleteFromPrimitiveList/finalizers":["example.com/a","example.com/missing"]}}`)
	patchConfigMap("$setElementOrder orders a primitive list",
		`{"metadata":{"$setElementOrder/finalizers":["example.com/c","example.com/b"]}}`)
	patchConfigMap("$deleteFromPrimitiveList must be a list",
		`{"metadata":{"$deleteFromPrimitiveList/finalizers":"example.com/b"}}`)
	patchConfigMap("finalizers removed", `{"metadata":{"finalizers":null}}`)
	return steps
}

func TestStrategicMergePatchDirectives(t *testing.T) {
	cfg := trellistest.Start(t)
	got := strategicPatchScenario(context.Background(), cfg, "default")
	for i := 0; i < max(len(got), len(referenceStrategicPatch)); i++ {
		var g, w smpStep
		if i < len(got) {
			g = got[i]
		}
		if i < len(referenceStrategicPatch) {
			w = referenceStrategicPatch[i]
		}
		if g.Step != w.Step || g.Err != w.Err || (g.Result != w.Result && !sameJSON(t, g.Result, w.Result)) {
			t.Errorf("step %d:\n got %+v\nwant %+v", i, g, w)
		}
	}
}

// What kube-apiserver v1.37.2 answered to strategicPatchScenario.
var referenceStrategicPatch = []smpStep{
	{Step: "list entries merge by name", Result: `{"annotations":{"note":"1"},"containers":[{"Name":"a","Image":"a:1","Env":["X=1","Y=2"]},{"Name":"b","Image":"b:2"}],"labels":{"app":"smp","keep":"1"},"strategy":{"type":"RollingUpdate","rollingUpdate":{"maxUnavailable":"25%","maxSurge":1}}}`, Err: ""},
	{Step: "$setElementOrder orders the merged list", Result: `{"annotations":{"note":"1"},"containers":[{"Name":"b","Image":"b:2"},{"Name":"a","Image":"a:2","Env":["X=1","Y=2"]}],"labels":{"app":"smp","keep":"1"},"strategy":{"type":"RollingUpdate","rollingUpdate":{"maxUnavailable":"25%","maxSurge":1}}}`, Err: ""},
	{Step: "$patch: delete removes a list entry", Result: `{"annotations":{"note":"1"},"containers":[{"Name":"a","Image":"a:2","Env":["X=1","Y=2"]}],"labels":{"app":"smp","keep":"1"},"strategy":{"type":"RollingUpdate","rollingUpdate":{"maxUnavailable":"25%","maxSurge":1}}}`, Err: ""},
	{Step: "$patch: delete in a nested list", Result: `{"annotations":{"note":"1"},"containers":[{"Name":"a","Image":"a:2","Env":["Y=2"]}],"labels":{"app":"smp","keep":"1"},"strategy":{"type":"RollingUpdate","rollingUpdate":{"maxUnavailable":"25%","maxSurge":1}}}`, Err: ""},
	{Step: "$patch: replace replaces a list", Result: `{"annotations":{"note":"1"},"containers":[{"Name":"c","Image":"c:1"}],"labels":{"app":"smp","keep":"1"},"strategy":{"type":"RollingUpdate","rollingUpdate":{"maxUnavailable":"25%","maxSurge":1}}}`, Err: ""},
	{Step: "$patch: replace replaces a map", Result: `{"annotations":{"note":"1"},"containers":[{"Name":"c","Image":"c:1"}],"labels":{"app":"smp","fresh":"yes"},"strategy":{"type":"RollingUpdate","rollingUpdate":{"maxUnavailable":"25%","maxSurge":1}}}`, Err: ""},
	{Step: "$patch: merge merges a map", Result: ``, Err: "500 : unknown patch type: merge in map: map[$patch:merge more:1]"},
	{Step: "$patch: delete removes a map", Result: `{"annotations":null,"containers":[{"Name":"c","Image":"c:1"}],"labels":{"app":"smp","fresh":"yes"},"strategy":{"type":"RollingUpdate","rollingUpdate":{"maxUnavailable":"25%","maxSurge":1}}}`, Err: ""},
	{Step: "without $retainKeys the old rollingUpdate stays", Result: ``, Err: "422 Invalid: Deployment.apps \"smp\" is invalid: spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'\n  cause FieldValueForbidden spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'"},
	{Step: "$retainKeys clears what it does not list", Result: `{"annotations":null,"containers":[{"Name":"c","Image":"c:1"}],"labels":{"app":"smp","fresh":"yes"},"strategy":{"type":"Recreate"}}`, Err: ""},
	{Step: "$retainKeys must list what the patch sets", Result: ``, Err: "400 BadRequest: invalid patch format of retainKeys"},
	{Step: "$retainKeys must be a list", Result: ``, Err: "400 BadRequest: invalid patch format of retainKeys"},
	{Step: "unknown $patch", Result: ``, Err: "500 : unknown patch type: frobnicate in map: map[$patch:frobnicate]"},
	{Step: "$setElementOrder must be a list", Result: ``, Err: "500 : expected a []interface {}, but received a map[string]interface {}"},
	{Step: "not JSON", Result: ``, Err: "400 BadRequest: invalid JSON patch"},
	{Step: "a primitive list with patchStrategy merge merges", Result: `["example.com/c","example.com/a","example.com/b"]`, Err: ""},
	{Step: "$deleteFromPrimitiveList removes values", Result: `["example.com/c","example.com/b"]`, Err: ""},
	{Step: "$setElementOrder orders a primitive list", Result: `["example.com/c","example.com/b"]`, Err: ""},
	{Step: "$deleteFromPrimitiveList must be a list", Result: `["example.com/c","example.com/b"]`, Err: ""},
	{Step: "finalizers removed", Result: `null`, Err: ""},
}
