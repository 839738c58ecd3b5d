package server_test

import (
	"context"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/trellis-project/trellis/trellistest"
)

const fleetGroup = "ships.example.com"

// fleetSpec returns the spec map of obj, which must have one.
func fleetSpec(obj *unstructured.Unstructured) map[string]any {
	return obj.Object["spec"].(map[string]any)
}

func fleetContainers(obj *unstructured.Unstructured) []any {
	c, _, _ := unstructured.NestedFieldNoCopy(obj.Object, "spec", "template", "spec", "containers")
	return c.([]any)
}

// requireCauses checks that err is a 422 whose causes include every
// field → message fragment pair in want.
func requireCauses(t *testing.T, what string, err error, want map[string]string) {
	t.Helper()
	st, ok := err.(apierrors.APIStatus)
	if !ok || st.Status().Code != 422 {
		t.Errorf("%s: %v, want 422", what, err)
		return
	}
	for field, msg := range want {
		found := false
		for _, c := range st.Status().Details.Causes {
			if c.Field == field && strings.Contains(c.Message, msg) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: no cause %s %q in %+v", what, field, msg, st.Status().Details.Causes)
		}
	}
}

func TestRealWorldCRD(t *testing.T) {
	ctx := context.Background()
	srv := trellistest.StartServer(t)
	crd := fleetCRD(fleetGroup)
	if raw, err := yaml.Marshal(crd); err != nil {
		t.Fatal(err)
	} else if n := strings.Count(string(raw), "\n"); n < 2000 {
		t.Fatalf("the Fleet CRD is %d lines of YAML; it should be thousands", n)
	} else {
		t.Logf("the Fleet CRD is %d lines, %d bytes of YAML", n, len(raw))
	}
	installCRD(t, srv.Config, crd)
	dyn := dynamic.NewForConfigOrDie(srv.Config)
	fleets := dyn.Resource(fleetGVR(fleetGroup, "v1")).Namespace("default")

	t.Run("defaults and pruning", func(t *testing.T) {
		f := fleet(fleetGroup, "alpha")
		fleetSpec(f)["bogus"] = "pruned"
		web := fleetContainers(f)[0].(map[string]any)
		web["unknownField"] = true
		fleetSpec(f)["config"] = map[string]any{"anything": map[string]any{"goes": []any{int64(1), "two"}}}
		fleetSpec(f)["extraObjects"] = []any{map[string]any{
			"apiVersion": "v1", "kind": "ConfigMap",
			"metadata": map[string]any{"name": "alpha-extra", "notAMetadataField": "x"},
			"data":     map[string]any{"k": "v"},
		}}
		got, err := fleets.Create(ctx, f, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			path []string
			want any
		}{
			{[]string{"spec", "replicas"}, int64(1)},
			{[]string{"spec", "maxReplicas"}, int64(10)},
			{[]string{"spec", "template", "spec", "restartPolicy"}, "Always"},
			{[]string{"spec", "template", "spec", "terminationGracePeriodSeconds"}, int64(30)},
			{[]string{"spec", "config", "anything", "goes"}, []any{int64(1), "two"}},
			{[]string{"spec", "extraObjects"}, []any{map[string]any{
				"apiVersion": "v1", "kind": "ConfigMap",
				"metadata": map[string]any{"name": "alpha-extra"},
				"data":     map[string]any{"k": "v"},
			}}},
		} {
			v, _, _ := unstructured.NestedFieldNoCopy(got.Object, tc.path...)
			if !equalJSON(v, tc.want) {
				t.Errorf("%s = %#v, want %#v", strings.Join(tc.path, "."), v, tc.want)
			}
		}
		if _, has := fleetSpec(got)["bogus"]; has {
			t.Error("spec.bogus was not pruned")
		}
		web = fleetContainers(got)[0].(map[string]any)
		if _, has := web["unknownField"]; has {
			t.Error("containers[0].unknownField was not pruned")
		}
		for key, want := range map[string]any{"imagePullPolicy": "IfNotPresent", "terminationMessagePolicy": "File"} {
			if web[key] != want {
				t.Errorf("containers[0].%s = %v, want %v", key, web[key], want)
			}
		}
		ports := web["ports"].([]any)
		if p := ports[0].(map[string]any)["protocol"]; p != "TCP" {
			t.Errorf("list-map key protocol defaulted to %v, want TCP", p)
		}
		if s := web["readinessProbe"].(map[string]any)["httpGet"].(map[string]any)["scheme"]; s != "HTTP" {
			t.Errorf("readinessProbe.httpGet.scheme = %v, want HTTP", s)
		}
		if cpu := web["resources"].(map[string]any)["requests"].(map[string]any)["cpu"]; cpu != int64(1) {
			t.Errorf("int-or-string quantity requests.cpu = %#v, want integer 1", cpu)
		}
	})

	t.Run("invalid objects", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			mutate func(spec map[string]any, web map[string]any)
			causes map[string]string
		}{
			{"port out of range and bad protocol", func(_, web map[string]any) {
				web["ports"] = []any{map[string]any{"containerPort": int64(70000)}, map[string]any{"containerPort": int64(81), "protocol": "ICMP"}}
			}, map[string]string{
				"spec.template.spec.containers[0].ports[0].containerPort": "should be less than or equal to 65535",
				"spec.template.spec.containers[0].ports[1].protocol":      `supported values: "TCP", "UDP", "SCTP"`,
			}},
			{"duplicate list-map keys", func(spec, web map[string]any) {
				web["ports"] = []any{map[string]any{"containerPort": int64(80)}, map[string]any{"containerPort": int64(80), "protocol": "TCP"}}
				c := spec["template"].(map[string]any)["spec"].(map[string]any)
				c["containers"] = append(c["containers"].([]any), map[string]any{"name": "web"})
			}, map[string]string{
				"spec.template.spec.containers[0].ports[1]": "Duplicate value",
				"spec.template.spec.containers[2]":          "Duplicate value",
			}},
			{"bad quantity and missing required", func(_, web map[string]any) {
				web["resources"] = map[string]any{"limits": map[string]any{"cpu": "lots"}}
				web["env"] = []any{map[string]any{"value": "no name"}}
			}, map[string]string{
				"spec.template.spec.containers[0].resources.limits.cpu": "should match",
				"spec.template.spec.containers[0].env[0].name":          "Required value",
			}},
			{"CEL messageExpression, fieldPath and reason", func(spec, web map[string]any) {
				web["image"] = "registry.example/web:latest"
				spec["replicas"], spec["maxReplicas"] = int64(12), int64(5)
				spec["storageClass"] = "gold"
			}, map[string]string{
				"spec.template.spec.containers[0].image": "container web uses a :latest image",
				"spec.replicas":                          "replicas must not exceed maxReplicas",
				"spec.storageClass":                      "storageClass gold is not one of fast, slow, standard",
			}},
			{"embedded resources", func(spec, _ map[string]any) {
				spec["extraObjects"] = []any{
					map[string]any{"apiVersion": "v1", "metadata": map[string]any{"name": "no-kind"}},
					map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "a/b"}},
				}
			}, map[string]string{
				"spec.extraObjects[0].kind": "Required value",
				// Embedded names are checked as path segments, as upstream.
				"spec.extraObjects[1].metadata.name": "may not contain '/'",
			}},
		} {
			f := fleet(fleetGroup, "bad")
			tc.mutate(fleetSpec(f), fleetContainers(f)[0].(map[string]any))
			_, err := fleets.Create(ctx, f, metav1.CreateOptions{})
			requireCauses(t, tc.name, err, tc.causes)
		}
		// The CEL reason sets the cause type.
		f := fleet(fleetGroup, "bad")
		fleetContainers(f)[0].(map[string]any)["image"] = "x:latest"
		_, err := fleets.Create(ctx, f, metav1.CreateOptions{})
		if st, ok := err.(apierrors.APIStatus); ok && st.Status().Details != nil && len(st.Status().Details.Causes) == 1 {
			if c := st.Status().Details.Causes[0]; c.Type != metav1.CauseTypeForbidden {
				t.Errorf("CEL reason FieldValueForbidden gave cause type %q", c.Type)
			}
		} else {
			t.Errorf(":latest image: %v, want one cause", err)
		}
	})

	t.Run("transition rules", func(t *testing.T) {
		cur, err := fleets.Get(ctx, "alpha", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		fleetSpec(cur)["storageClass"] = "slow" // allowed on create, not on update
		fleetSpec(cur)["maxReplicas"] = int64(4)
		_, err = fleets.Update(ctx, cur, metav1.UpdateOptions{})
		requireCauses(t, "update", err, map[string]string{
			"spec.storageClass": "storageClass is immutable",
			"spec":              "maxReplicas may not decrease",
		})
		fleetSpec(cur)["storageClass"] = "fast"
		fleetSpec(cur)["maxReplicas"] = int64(20)
		if _, err := fleets.Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
			t.Errorf("update that keeps the transition rules: %v", err)
		}
	})

	t.Run("nested list-map merges", func(t *testing.T) {
		// A JSON merge patch replaces lists whole, list-maps included.
		patch := `{"spec":{"template":{"spec":{"containers":[{"name":"solo","image":"solo:1"}]}}}}`
		got, err := fleets.Patch(ctx, "alpha", types.MergePatchType, []byte(patch), metav1.PatchOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if c := fleetContainers(got); len(c) != 1 || c[0].(map[string]any)["name"] != "solo" {
			t.Errorf("merge patch containers = %v", c)
		}

		// Server-side apply merges list-maps by key, at every level.
		apply := func(manager, body string) *unstructured.Unstructured {
			t.Helper()
			got, err := fleets.Patch(ctx, "applied", types.ApplyPatchType, []byte(body), metav1.PatchOptions{FieldManager: manager, Force: ptr.To(true)})
			if err != nil {
				t.Fatalf("apply as %s: %v", manager, err)
			}
			return got
		}
		apply("base", `{"apiVersion":"ships.example.com/v1","kind":"Fleet","metadata":{"name":"applied"},
			"spec":{"template":{"spec":{"containers":[{"name":"web","image":"web:1","ports":[{"containerPort":80,"protocol":"TCP"}]}]}}}}`)
		got = apply("mesh", `{"apiVersion":"ships.example.com/v1","kind":"Fleet","metadata":{"name":"applied"},
			"spec":{"template":{"spec":{"containers":[
				{"name":"web","ports":[{"containerPort":80,"protocol":"UDP"},{"containerPort":15090,"protocol":"TCP","name":"metrics"}]},
				{"name":"proxy","image":"proxy:2"}]}}}}`)
		c := fleetContainers(got)
		if len(c) != 2 || c[0].(map[string]any)["name"] != "web" || c[1].(map[string]any)["name"] != "proxy" {
			t.Fatalf("applied containers = %v", c)
		}
		web := c[0].(map[string]any)
		if web["image"] != "web:1" {
			t.Errorf("web image = %v: the second apply dropped the first manager's field", web["image"])
		}
		var keys []string
		for _, p := range web["ports"].([]any) {
			p := p.(map[string]any)
			keys = append(keys, strings.Join([]string{toString(p["containerPort"]), p["protocol"].(string)}, "/"))
		}
		if strings.Join(keys, ",") != "80/TCP,80/UDP,15090/TCP" {
			t.Errorf("web ports = %v, want 80/TCP,80/UDP,15090/TCP (keyed by containerPort and protocol)", keys)
		}
		// The first manager gives up its port: only its entry goes.
		got = apply("base", `{"apiVersion":"ships.example.com/v1","kind":"Fleet","metadata":{"name":"applied"},
			"spec":{"template":{"spec":{"containers":[{"name":"web","image":"web:1"}]}}}}`)
		if n := len(fleetContainers(got)[0].(map[string]any)["ports"].([]any)); n != 2 {
			t.Errorf("after base released 80/TCP, web has %d ports, want 2", n)
		}
	})

	t.Run("versions with conversion None", func(t *testing.T) {
		for _, v := range []string{"v1alpha1", "v1beta1"} {
			got, err := dyn.Resource(fleetGVR(fleetGroup, v)).Namespace("default").Get(ctx, "alpha", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got.GetAPIVersion() != fleetGroup+"/"+v {
				t.Errorf("read as %s: apiVersion %s", v, got.GetAPIVersion())
			}
			if sc, _, _ := unstructured.NestedString(got.Object, "spec", "storageClass"); sc != "fast" {
				t.Errorf("read as %s: storageClass %q", v, sc)
			}
		}
		old := fleet(fleetGroup, "old")
		old.SetAPIVersion(fleetGroup + "/v1alpha1")
		fleetContainers(old)[0].(map[string]any)["image"] = "old:latest"
		_, err := dyn.Resource(fleetGVR(fleetGroup, "v1alpha1")).Namespace("default").Create(ctx, old, metav1.CreateOptions{})
		requireCauses(t, "create as v1alpha1", err, map[string]string{"spec.template.spec.containers[0].image": ":latest image"})
	})

	t.Run("kubectl", func(t *testing.T) {
		kc := srv.KubeconfigPath()
		out := mustKubectl(t, kc, "", "explain", "fleets.spec.template.spec.containers.ports")
		for _, want := range []string{"KIND:", "Fleet", "VERSION:", "v1", "List of ports to expose from the container.",
			"containerPort", "Number of port to expose on the pod's IP address.", "protocol", "-required-"} {
			if !strings.Contains(out, want) {
				t.Errorf("kubectl explain lacks %q:\n%s", want, out)
			}
		}
		out = mustKubectl(t, kc, "", "explain", "fleets.spec.template.spec.containers.resources.limits")
		if !strings.Contains(out, "Limits describes the maximum amount of compute resources allowed.") {
			t.Errorf("kubectl explain resources.limits:\n%s", out)
		}

		out = mustKubectl(t, kc, "", "get", "fleets")
		header := strings.Fields(strings.SplitN(out, "\n", 2)[0])
		if strings.Join(header, " ") != "NAME REPLICAS PHASE AGE" {
			t.Errorf("kubectl get fleets header = %v, want NAME REPLICAS PHASE AGE:\n%s", header, out)
		}
		out = mustKubectl(t, kc, "", "get", "fleets", "-o", "wide")
		header = strings.Fields(strings.SplitN(out, "\n", 2)[0])
		if strings.Join(header, " ") != "NAME REPLICAS PHASE IMAGE AGE" {
			t.Errorf("kubectl get fleets -o wide header = %v, want the priority-1 IMAGE column too:\n%s", header, out)
		}
		if !strings.Contains(out, "solo:1") || !strings.Contains(out, "web:1") {
			t.Errorf("-o wide lacks the images:\n%s", out)
		}

		out = mustKubectl(t, kc, "", "get", "fleetwide", "-o", "name")
		if got := strings.Fields(out); strings.Join(got, " ") != "fleet.ships.example.com/alpha fleet.ships.example.com/applied" {
			t.Errorf("kubectl get fleetwide = %v", got)
		}
		out = mustKubectl(t, kc, "", "get", "flt", "alpha", "-o", "jsonpath={.spec.template.spec.containers[0].name}")
		if out != "solo" {
			t.Errorf("short name flt: %q", out)
		}
	})
}

func toString(v any) string {
	raw, _ := yaml.Marshal(v)
	return strings.TrimSpace(string(raw))
}

func equalJSON(a, b any) bool {
	return toString(a) == toString(b)
}
