package server_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/trellis-project/trellis/trellistest"
)

// applyEntry is a managedFields entry as these tests expect it.
type applyEntry struct {
	manager, operation, apiVersion, subresource, fields string
}

func applyEntries(mf []metav1.ManagedFieldsEntry) []applyEntry {
	var out []applyEntry
	for _, e := range mf {
		fields := ""
		if e.FieldsV1 != nil {
			fields = string(e.FieldsV1.Raw)
		}
		out = append(out, applyEntry{e.Manager, string(e.Operation), e.APIVersion, e.Subresource, fields})
	}
	return out
}

// checkEntries compares got with want in any order: entries are sorted
// by time, which has a resolution of one second.
func checkEntries(t *testing.T, what string, got []metav1.ManagedFieldsEntry, want ...applyEntry) {
	t.Helper()
	g := applyEntries(got)
	if len(g) != len(want) {
		t.Fatalf("%s: managedFields\n got %v\nwant %v", what, g, want)
	}
	for _, w := range want {
		i := slices.Index(g, w)
		if i < 0 {
			t.Errorf("%s: managedFields lack %v; got %v", what, w, g)
			continue
		}
		if got[i].Time == nil {
			t.Errorf("%s: managedFields entry %v has no time", what, w)
		}
	}
}

// The fieldsV1 below are what kube-apiserver v1.37 records for the same
// requests.
func TestApplyConfigMapWithTypedClient(t *testing.T) {
	ctx := context.Background()
	cms := newClient(t).CoreV1().ConfigMaps("default")
	alice := metav1.ApplyOptions{FieldManager: "alice"}

	created, err := cms.Apply(ctx, corev1ac.ConfigMap("cfg", "default").WithData(map[string]string{"a": "1", "b": "2"}), alice)
	if err != nil {
		t.Fatal(err)
	}
	if created.UID == "" || created.Data["a"] != "1" || created.Data["b"] != "2" {
		t.Fatalf("apply did not create: %+v", created)
	}
	checkEntries(t, "create", created.ManagedFields,
		applyEntry{"alice", "Apply", "v1", "", `{"f:data":{"f:a":{},"f:b":{}}}`})

	// Applying again without b removes it: alice alone owned it.
	updated, err := cms.Apply(ctx, corev1ac.ConfigMap("cfg", "default").WithData(map[string]string{"a": "3"}), alice)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := updated.Data["b"]; ok || updated.Data["a"] != "3" || updated.UID != created.UID {
		t.Fatalf("apply did not update: %+v", updated)
	}
	if updated.ResourceVersion == created.ResourceVersion {
		t.Error("resourceVersion unchanged by an update")
	}
	checkEntries(t, "update", updated.ManagedFields,
		applyEntry{"alice", "Apply", "v1", "", `{"f:data":{"f:a":{}}}`})

	// An identical apply writes nothing.
	same, err := cms.Apply(ctx, corev1ac.ConfigMap("cfg", "default").WithData(map[string]string{"a": "3"}), alice)
	if err != nil {
		t.Fatal(err)
	}
	if same.ResourceVersion != updated.ResourceVersion {
		t.Errorf("no-op apply changed resourceVersion %s → %s", updated.ResourceVersion, same.ResourceVersion)
	}

	// An update by another manager shares ownership with the applier.
	cm, _ := cms.Get(ctx, "cfg", metav1.GetOptions{})
	cm.Data["c"] = "4"
	if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{FieldManager: "carol"}); err != nil {
		t.Fatal(err)
	}

	// Bob sets a field alice owns to another value: one conflict.
	bob := metav1.ApplyOptions{FieldManager: "bob"}
	_, err = cms.Apply(ctx, corev1ac.ConfigMap("cfg", "default").WithData(map[string]string{"a": "9", "c": "9"}), bob)
	if !apierrors.IsConflict(err) {
		t.Fatalf("conflicting apply: %v", err)
	}
	st := err.(apierrors.APIStatus).Status()
	if st.Code != http.StatusConflict || st.Reason != metav1.StatusReasonConflict || st.Details == nil {
		t.Fatalf("conflict status: %+v", st)
	}
	causes := st.Details.Causes
	if len(causes) != 2 {
		t.Fatalf("causes: %+v", causes)
	}
	byField := map[string]metav1.StatusCause{}
	for _, c := range causes {
		byField[c.Field] = c
	}
	if c := byField[".data.a"]; c.Type != metav1.CauseTypeFieldManagerConflict || c.Message != `conflict with "alice"` {
		t.Errorf("cause for .data.a: %+v", c)
	}
	if c := byField[".data.c"]; c.Type != metav1.CauseTypeFieldManagerConflict || c.Message != `conflict with "carol" using v1` {
		t.Errorf("cause for .data.c: %+v", c)
	}
	if st.Message != "Apply failed with 2 conflicts: conflicts with \"alice\":\n- .data.a\nconflicts with \"carol\" using v1:\n- .data.c" {
		t.Errorf("conflict message: %q", st.Message)
	}

	// Applying the same value is no conflict: the field is shared.
	if _, err := cms.Apply(ctx, corev1ac.ConfigMap("cfg", "default").WithData(map[string]string{"a": "3"}), bob); err != nil {
		t.Fatalf("apply of an equal value: %v", err)
	}

	// Force takes a and c over; alice, left with nothing, loses her entry.
	bob.Force = true
	forced, err := cms.Apply(ctx, corev1ac.ConfigMap("cfg", "default").WithData(map[string]string{"a": "9", "c": "9"}), bob)
	if err != nil {
		t.Fatal(err)
	}
	if forced.Data["a"] != "9" || forced.Data["c"] != "9" {
		t.Fatalf("forced apply: %v", forced.Data)
	}
	checkEntries(t, "forced", forced.ManagedFields,
		applyEntry{"bob", "Apply", "v1", "", `{"f:data":{"f:a":{},"f:c":{}}}`})
}

// Request shapes checked before or around the merge, answered as
// kube-apiserver answers them.
func TestApplyRequestErrors(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	if _, err := c.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "live"}, Data: map[string]string{"a": "1"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name        string
		target      string
		params      map[string]string
		contentType string
		body        string
		code        int
		message     string
	}{
		{name: "no fieldManager", target: "live", body: `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"live"}}`,
			code: 422, message: `PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch`},
		{name: "wrong apiVersion", target: "live", params: map[string]string{"fieldManager": "m"},
			body: "apiVersion: v2\nkind: ConfigMap\nmetadata:\n  name: live\n",
			code: 400, message: "invalid object type: /v2, Kind=ConfigMap"},
		{name: "name differs from the URL", target: "other", params: map[string]string{"fieldManager": "m"},
			body: "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: live\n",
			code: 400, message: "the name of the object (live) does not match the name on the URL (other)"},
		{name: "managedFields in the patch", target: "live", params: map[string]string{"fieldManager": "m"},
			body: `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"live","managedFields":[{"manager":"x"}]}}`,
			code: 400, message: "metadata.managedFields must be nil"},
		{name: "duplicate field, Strict", target: "live", params: map[string]string{"fieldManager": "m", "fieldValidation": "Strict"},
			body: "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: live\ndata:\n  z: x1\n  z: x2\n",
			code: 400, message: "error strict decoding patch: "},
		{name: "not YAML", target: "live", params: map[string]string{"fieldManager": "m"}, body: "{",
			code: 400, message: "error decoding patch: "},
		{name: "CBOR", target: "live", params: map[string]string{"fieldManager": "m"}, contentType: "application/apply-patch+cbor",
			body: "\xa0", code: 415},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ct := tc.contentType
			if ct == "" {
				ct = string(types.ApplyYAMLPatchType)
			}
			req := c.CoreV1().RESTClient().Patch(types.PatchType(ct)).Namespace("default").Resource("configmaps").Name(tc.target).Body([]byte(tc.body))
			for k, v := range tc.params {
				req.Param(k, v)
			}
			var code int
			err := req.Do(ctx).StatusCode(&code).Error()
			if code != tc.code || err == nil {
				t.Fatalf("code %d, err %v; want %d", code, err, tc.code)
			}
			if !strings.HasPrefix(err.Error(), tc.message) {
				t.Errorf("message %q, want prefix %q", err.Error(), tc.message)
			}
		})
	}
	got, err := c.CoreV1().ConfigMaps("default").Get(ctx, "live", metav1.GetOptions{})
	if err != nil || got.Data["a"] != "1" || len(got.ManagedFields) != 1 {
		t.Errorf("failed applies changed the object: %+v, %v", got, err)
	}
}

// Apply creates (201) or changes (200) the object; with dryRun it stores
// nothing either way.
func TestApplyStatusCodesAndDryRun(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	apply := func(body string, dryRun bool) (int, error) {
		req := c.CoreV1().RESTClient().Patch(types.ApplyPatchType).Namespace("default").Resource("configmaps").
			Name("dry").Param("fieldManager", "m").Body([]byte(body))
		if dryRun {
			req.Param("dryRun", "All")
		}
		var code int
		err := req.Do(ctx).StatusCode(&code).Error()
		return code, err
	}
	v1 := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dry\ndata:\n  a: \"1\"\n"
	v2 := strings.Replace(v1, `"1"`, `"2"`, 1)

	if code, err := apply(v1, true); err != nil || code != http.StatusCreated {
		t.Fatalf("dry-run create: %d %v", code, err)
	}
	if _, err := c.CoreV1().ConfigMaps("default").Get(ctx, "dry", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("dry-run create stored the object: %v", err)
	}
	if code, err := apply(v1, false); err != nil || code != http.StatusCreated {
		t.Fatalf("create: %d %v", code, err)
	}
	before, _ := c.CoreV1().ConfigMaps("default").Get(ctx, "dry", metav1.GetOptions{})
	if code, err := apply(v2, true); err != nil || code != http.StatusOK {
		t.Fatalf("dry-run update: %d %v", code, err)
	}
	after, _ := c.CoreV1().ConfigMaps("default").Get(ctx, "dry", metav1.GetOptions{})
	if after.ResourceVersion != before.ResourceVersion || after.Data["a"] != "1" {
		t.Fatalf("dry-run update stored: %v → %v", before.Data, after.Data)
	}
	if code, err := apply(v2, false); err != nil || code != http.StatusOK {
		t.Fatalf("update: %d %v", code, err)
	}
}

// rackCRD has a list-type=map list keyed by name and a status.
func rackCRD() *apiextensionsv1.CustomResourceDefinition {
	str := apiextensionsv1.JSONSchemaProps{Type: "string"}
	return &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "racks.example.com"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: "example.com",
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "racks", Singular: "rack", Kind: "Rack", ListKind: "RackList"},
			Scope: apiextensionsv1.NamespaceScoped,
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name: "v1", Served: true, Storage: true,
				Subresources: &apiextensionsv1.CustomResourceSubresources{Status: &apiextensionsv1.CustomResourceSubresourceStatus{}},
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object",
					Properties: map[string]apiextensionsv1.JSONSchemaProps{
						"spec": {Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{
							"color": str,
							"ports": {
								Type:         "array",
								XListType:    ptrTo("map"),
								XListMapKeys: []string{"name"},
								Items: &apiextensionsv1.JSONSchemaPropsOrArray{Schema: &apiextensionsv1.JSONSchemaProps{
									Type:       "object",
									Required:   []string{"name"},
									Properties: map[string]apiextensionsv1.JSONSchemaProps{"name": str, "port": {Type: "integer"}},
								}},
							},
						}},
						"status": {Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{"phase": str}},
					},
				}},
			}},
		},
	}
}

func ptrTo[T any](v T) *T { return &v }

var racks = schema.GroupVersionResource{Group: "example.com", Version: "v1", Resource: "racks"}

func rack(spec map[string]any) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "example.com/v1", "kind": "Rack",
		"metadata": map[string]any{"name": "g", "namespace": "default"},
		"spec":     spec,
	}}
}

// Two managers apply different entries of a list-type=map list: the
// entries merge by key, each owned by the manager that applied it.
func TestApplyCustomResourceMergesListMapByKey(t *testing.T) {
	ctx := context.Background()
	cfg := trellistest.Start(t)
	installCRD(t, cfg, rackCRD())
	res := dynamic.NewForConfigOrDie(cfg).Resource(racks).Namespace("default")

	_, err := res.Apply(ctx, "g", rack(map[string]any{
		"color": "red", "ports": []any{map[string]any{"name": "http", "port": int64(80)}},
	}), metav1.ApplyOptions{FieldManager: "web"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := res.Apply(ctx, "g", rack(map[string]any{
		"ports": []any{map[string]any{"name": "metrics", "port": int64(9090)}},
	}), metav1.ApplyOptions{FieldManager: "monitoring"})
	if err != nil {
		t.Fatal(err)
	}
	ports, _, _ := unstructured.NestedSlice(got.Object, "spec", "ports")
	if len(ports) != 2 || ports[0].(map[string]any)["name"] != "http" || ports[1].(map[string]any)["name"] != "metrics" {
		t.Fatalf("ports: %v", ports)
	}
	if color, _, _ := unstructured.NestedString(got.Object, "spec", "color"); color != "red" {
		t.Errorf("color: %q", color)
	}
	checkEntries(t, "list-map merge", got.GetManagedFields(),
		applyEntry{"web", "Apply", "example.com/v1", "", `{"f:spec":{"f:color":{},"f:ports":{"k:{\"name\":\"http\"}":{".":{},"f:name":{},"f:port":{}}}}}`},
		applyEntry{"monitoring", "Apply", "example.com/v1", "", `{"f:spec":{"f:ports":{"k:{\"name\":\"metrics\"}":{".":{},"f:name":{},"f:port":{}}}}}`})

	// A conflicting port of another manager's entry is named by key.
	_, err = res.Apply(ctx, "g", rack(map[string]any{
		"ports": []any{map[string]any{"name": "http", "port": int64(8080)}},
	}), metav1.ApplyOptions{FieldManager: "monitoring"})
	if !apierrors.IsConflict(err) {
		t.Fatalf("conflicting apply: %v", err)
	}
	causes := err.(apierrors.APIStatus).Status().Details.Causes
	if len(causes) != 1 || causes[0].Field != `.spec.ports[name="http"].port` || causes[0].Message != `conflict with "web"` {
		t.Errorf("causes: %+v", causes)
	}

	// Apply to /status owns status only, recorded with the subresource.
	st := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "example.com/v1", "kind": "Rack",
		"metadata": map[string]any{"name": "g", "namespace": "default"},
		"status":   map[string]any{"phase": "Ready"},
	}}
	got, err = res.ApplyStatus(ctx, "g", st, metav1.ApplyOptions{FieldManager: "controller"})
	if err != nil {
		t.Fatal(err)
	}
	if phase, _, _ := unstructured.NestedString(got.Object, "status", "phase"); phase != "Ready" {
		t.Fatalf("status: %v", got.Object["status"])
	}
	checkEntries(t, "status apply", got.GetManagedFields(),
		applyEntry{"controller", "Apply", "example.com/v1", "status", `{"f:status":{"f:phase":{}}}`},
		applyEntry{"monitoring", "Apply", "example.com/v1", "", `{"f:spec":{"f:ports":{"k:{\"name\":\"metrics\"}":{".":{},"f:name":{},"f:port":{}}}}}`},
		applyEntry{"web", "Apply", "example.com/v1", "", `{"f:spec":{"f:color":{},"f:ports":{"k:{\"name\":\"http\"}":{".":{},"f:name":{},"f:port":{}}}}}`})
	// Apply to /status of a missing object does not create it.
	st.SetName("missing")
	if _, err := res.ApplyStatus(ctx, "missing", st, metav1.ApplyOptions{FieldManager: "controller"}); !apierrors.IsNotFound(err) {
		t.Errorf("status apply of a missing object: %v", err)
	}
}

func TestKubectlApplyServerSide(t *testing.T) {
	srv := trellistest.StartServer(t)
	kc := srv.KubeconfigPath()
	installCRD(t, srv.Config, rackCRD())
	manifest := `apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: default
data:
  mode: fast
---
apiVersion: example.com/v1
kind: Rack
metadata:
  name: probe
  namespace: default
spec:
  color: blue
  ports:
  - name: http
    port: 80
`
	path := filepath.Join(t.TempDir(), "m.yaml")
	if err := os.WriteFile(path, []byte(manifest), 0o600); err != nil {
		t.Fatal(err)
	}
	out := mustKubectl(t, kc, "", "apply", "--server-side", "-f", path)
	for _, want := range []string{"configmap/settings serverside-applied", "rack.example.com/probe serverside-applied"} {
		if !strings.Contains(out, want) {
			t.Errorf("apply output lacks %q:\n%s", want, out)
		}
	}
	os.WriteFile(path, []byte(strings.NewReplacer("mode: fast", "mode: slow", "port: 80", "port: 81").Replace(manifest)), 0o600)
	mustKubectl(t, kc, "", "apply", "--server-side", "-f", path)

	ctx := context.Background()
	cm, err := kubernetes.NewForConfigOrDie(srv.Config).CoreV1().ConfigMaps("default").Get(ctx, "settings", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cm.Data["mode"] != "slow" {
		t.Errorf("configmap data: %v", cm.Data)
	}
	checkEntries(t, "kubectl configmap", cm.ManagedFields,
		applyEntry{"kubectl", "Apply", "v1", "", `{"f:data":{"f:mode":{}}}`})
	g, err := dynamic.NewForConfigOrDie(srv.Config).Resource(racks).Namespace("default").Get(ctx, "probe", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ports, _, _ := unstructured.NestedSlice(g.Object, "spec", "ports")
	if len(ports) != 1 || ports[0].(map[string]any)["port"] != int64(81) {
		t.Errorf("rack ports: %v", ports)
	}
	checkEntries(t, "kubectl rack", g.GetManagedFields(),
		applyEntry{"kubectl", "Apply", "example.com/v1", "", `{"f:spec":{"f:color":{},"f:ports":{"k:{\"name\":\"http\"}":{".":{},"f:name":{},"f:port":{}}}}}`})

	// Another manager's change conflicts; kubectl reports it and
	// --force-conflicts takes the field over.
	if _, err := kubernetes.NewForConfigOrDie(srv.Config).CoreV1().ConfigMaps("default").Patch(ctx, "settings", types.MergePatchType,
		[]byte(`{"data":{"mode":"other"}}`), metav1.PatchOptions{FieldManager: "editor"}); err != nil {
		t.Fatal(err)
	}
	r := kubectl(t, kc, "", "apply", "--server-side", "-f", path)
	if r.code == 0 || !strings.Contains(r.stderr+r.fatal, `conflict with "editor" using v1`) {
		t.Errorf("conflicting kubectl apply: exit %d, %s %s", r.code, r.fatal, r.stderr)
	}
	mustKubectl(t, kc, "", "apply", "--server-side", "--force-conflicts", "-f", path)
}
