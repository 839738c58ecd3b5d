package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/trellis-project/trellis/trellistest"
)

// The expected managedFields below are what kube-apiserver v1.37 records
// for the same requests: entries are compared without their time (only
// its presence), in a stable order.

// mf is a managedFields entry as a test expects it.
type mf struct {
	manager, apiVersion, subresource string
	fields                           string // fieldsV1 as JSON
	// untimed marks entries a client wrote without a time.
	untimed bool
}

func (e mf) String() string {
	s := fmt.Sprintf("{%s Update %s", e.manager, e.apiVersion)
	if e.subresource != "" {
		s += " subresource=" + e.subresource
	}
	if e.untimed {
		s += " untimed"
	}
	return s + " " + e.fields + "}"
}

// checkManagedFields compares got with want, ignoring order.
func checkManagedFields(t *testing.T, got []metav1.ManagedFieldsEntry, want ...mf) {
	t.Helper()
	var gotMF []mf
	for _, e := range got {
		if e.Operation != metav1.ManagedFieldsOperationUpdate || e.FieldsType != "FieldsV1" || e.FieldsV1 == nil {
			t.Errorf("entry %s: operation %q, fieldsType %q, fieldsV1 %v", e.Manager, e.Operation, e.FieldsType, e.FieldsV1)
			continue
		}
		gotMF = append(gotMF, mf{manager: e.Manager, apiVersion: e.APIVersion, subresource: e.Subresource,
			fields: string(e.FieldsV1.Raw), untimed: e.Time == nil})
	}
	order := func(l []mf) {
		sort.Slice(l, func(i, j int) bool { return l[i].String() < l[j].String() })
	}
	order(gotMF)
	want = append([]mf(nil), want...)
	order(want)
	ok := len(gotMF) == len(want)
	for i := 0; ok && i < len(want); i++ {
		g, w := gotMF[i], want[i]
		ok = g.manager == w.manager && g.apiVersion == w.apiVersion && g.subresource == w.subresource &&
			g.untimed == w.untimed && sameJSON(t, g.fields, w.fields)
	}
	if !ok {
		t.Errorf("managedFields:\n got %v\nwant %v", gotMF, want)
	}
}

func sameJSON(t *testing.T, a, b string) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal([]byte(a), &x); err != nil {
		t.Fatalf("%s: %v", a, err)
	}
	if err := json.Unmarshal([]byte(b), &y); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return reflect.DeepEqual(x, y)
}

func withUserAgent(cfg *rest.Config, ua string) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.UserAgent = ua
	return c
}

func TestManagedFieldsCreateAndUpdate(t *testing.T) {
	cfg := trellistest.Start(t)
	cms := kubernetes.NewForConfigOrDie(cfg).CoreV1().ConfigMaps("default")
	ctx := context.Background()

	cm, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings"}, Data: map[string]string{"a": "1"}},
		metav1.CreateOptions{FieldManager: "test-manager"})
	if err != nil {
		t.Fatal(err)
	}
	checkManagedFields(t, cm.ManagedFields,
		mf{manager: "test-manager", apiVersion: "v1", fields: `{"f:data":{".":{},"f:a":{}}}`})

	// A second manager takes over the field it changed and owns the one it
	// added; the first keeps the map itself.
	cm.Data["a"], cm.Data["b"] = "2", "3"
	cm, err = cms.Update(ctx, cm, metav1.UpdateOptions{FieldManager: "second"})
	if err != nil {
		t.Fatal(err)
	}
	want := []mf{
		{manager: "test-manager", apiVersion: "v1", fields: `{"f:data":{}}`},
		{manager: "second", apiVersion: "v1", fields: `{"f:data":{"f:a":{},"f:b":{}}}`},
	}
	checkManagedFields(t, cm.ManagedFields, want...)

	// The same manager again: its entry grows, no new entry appears.
	cm.Labels = map[string]string{"tier": "web"}
	cm, err = cms.Update(ctx, cm, metav1.UpdateOptions{FieldManager: "second"})
	if err != nil {
		t.Fatal(err)
	}
	want[1].fields = `{"f:data":{"f:a":{},"f:b":{}},"f:metadata":{"f:labels":{".":{},"f:tier":{}}}}`
	checkManagedFields(t, cm.ManagedFields, want...)

	// Removing a field takes it from its owner.
	delete(cm.Data, "b")
	cm, err = cms.Update(ctx, cm, metav1.UpdateOptions{FieldManager: "third"})
	if err != nil {
		t.Fatal(err)
	}
	want[1].fields = `{"f:data":{"f:a":{}},"f:metadata":{"f:labels":{".":{},"f:tier":{}}}}`
	checkManagedFields(t, cm.ManagedFields, want...)

	// An update that changes nothing records nothing and writes nothing.
	same, err := cms.Update(ctx, cm.DeepCopy(), metav1.UpdateOptions{FieldManager: "fourth"})
	if err != nil {
		t.Fatal(err)
	}
	if same.ResourceVersion != cm.ResourceVersion || !reflect.DeepEqual(same.ManagedFields, cm.ManagedFields) {
		t.Errorf("no-op update: resourceVersion %s → %s, managedFields %v → %v", cm.ResourceVersion, same.ResourceVersion, cm.ManagedFields, same.ManagedFields)
	}

	// What was stored is what the writes answered.
	got, err := cms.Get(ctx, "settings", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkManagedFields(t, got.ManagedFields, want...)
}

func TestManagedFieldsPatch(t *testing.T) {
	cfg := trellistest.Start(t)
	cms := kubernetes.NewForConfigOrDie(cfg).CoreV1().ConfigMaps("default")
	ctx := context.Background()
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Data: map[string]string{"a": "1"}},
		metav1.CreateOptions{FieldManager: "creator"}); err != nil {
		t.Fatal(err)
	}
	patches := []struct {
		manager string
		pt      types.PatchType
		patch   string
	}{
		{"merge-patcher", types.MergePatchType, `{"data":{"b":"2"}}`},
		{"json-patcher", types.JSONPatchType, `[{"op":"add","path":"/data/c","value":"3"}]`},
		{"smp-patcher", types.StrategicMergePatchType, `{"metadata":{"labels":{"x":"y"}}}`},
		// A patch that leaves the object as it is records nothing.
		{"idle-patcher", types.MergePatchType, `{"data":{"a":"1"}}`},
	}
	var cm *corev1.ConfigMap
	for _, p := range patches {
		var err error
		if cm, err = cms.Patch(ctx, "p", p.pt, []byte(p.patch), metav1.PatchOptions{FieldManager: p.manager}); err != nil {
			t.Fatalf("%s: %v", p.manager, err)
		}
	}
	checkManagedFields(t, cm.ManagedFields,
		mf{manager: "creator", apiVersion: "v1", fields: `{"f:data":{".":{},"f:a":{}}}`},
		mf{manager: "merge-patcher", apiVersion: "v1", fields: `{"f:data":{"f:b":{}}}`},
		mf{manager: "json-patcher", apiVersion: "v1", fields: `{"f:data":{"f:c":{}}}`},
		mf{manager: "smp-patcher", apiVersion: "v1", fields: `{"f:metadata":{"f:labels":{".":{},"f:x":{}}}}`},
	)
}

// Fields the server sets after defaulting (a namespace's finalizers and
// phase, a service's cluster IP) belong to nobody; defaulted fields belong
// to the client that created the object.
func TestManagedFieldsCreateDefaultedAndServerSetFields(t *testing.T) {
	cfg := trellistest.Start(t)
	client := kubernetes.NewForConfigOrDie(cfg)
	ctx := context.Background()

	// kube-apiserver creates the system namespaces itself.
	def, err := client.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nsFields := `{"f:metadata":{"f:labels":{".":{},"f:kubernetes.io/metadata.name":{}}}}`
	checkManagedFields(t, def.ManagedFields, mf{manager: "kube-apiserver", apiVersion: "v1", fields: nsFields})

	ns, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}},
		metav1.CreateOptions{FieldManager: "kubectl-create"})
	if err != nil {
		t.Fatal(err)
	}
	if len(ns.Spec.Finalizers) == 0 || ns.Status.Phase != corev1.NamespaceActive {
		t.Fatalf("namespace not prepared: %+v %+v", ns.Spec, ns.Status)
	}
	checkManagedFields(t, ns.ManagedFields, mf{manager: "kubectl-create", apiVersion: "v1", fields: nsFields})

	svc, err := client.CoreV1().Services("default").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "web"},
			Ports:    []corev1.ServicePort{{Port: 80}},
		},
	}, metav1.CreateOptions{FieldManager: "svc-creator"})
	if err != nil {
		t.Fatal(err)
	}
	if svc.Spec.ClusterIP == "" || svc.Spec.Ports[0].TargetPort != intstr.FromInt32(80) {
		t.Fatalf("service not defaulted and allocated: %+v", svc.Spec)
	}
	checkManagedFields(t, svc.ManagedFields, mf{manager: "svc-creator", apiVersion: "v1", fields: `{"f:spec":{
		"f:internalTrafficPolicy":{},
		"f:ports":{".":{},"k:{\"port\":80,\"protocol\":\"TCP\"}":{".":{},"f:port":{},"f:protocol":{},"f:targetPort":{}}},
		"f:selector":{},"f:sessionAffinity":{},"f:type":{}}}`})
}

// Without a fieldManager parameter the manager is the User-Agent's first
// segment, without unprintable characters, at most 128 bytes.
func TestManagedFieldsManagerFromUserAgent(t *testing.T) {
	cfg := trellistest.Start(t)
	ctx := context.Background()
	long := strings.Repeat("f", 200)
	for i, tc := range []struct {
		userAgent, fieldManager, want string
	}{
		{"kubectl/v1.37.2 (linux/amd64) kubernetes/5ed2b79", "", "kubectl"},
		{"main/v0.0.0 (linux/amd64) kubernetes/$Format", "", "main"},
		{"my-controller", "", "my-controller"},
		{"my\u200bagent/1.0", "", "myagent"},
		{long + "/1.0", "", long[:128]},
		// kubectl names its commands' writes itself.
		{"kubectl/v1.37.2 (linux/amd64) kubernetes/5ed2b79", "kubectl-client-side-apply", "kubectl-client-side-apply"},
		{"kubectl/v1.37.2 (linux/amd64) kubernetes/5ed2b79", "kubectl-edit", "kubectl-edit"},
	} {
		cms := kubernetes.NewForConfigOrDie(withUserAgent(cfg, tc.userAgent)).CoreV1().ConfigMaps("default")
		cm, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("ua-%d", i)}, Data: map[string]string{"k": "v"}},
			metav1.CreateOptions{FieldManager: tc.fieldManager})
		if err != nil {
			t.Fatalf("%q: %v", tc.userAgent, err)
		}
		checkManagedFields(t, cm.ManagedFields, mf{manager: tc.want, apiVersion: "v1", fields: `{"f:data":{".":{},"f:k":{}}}`})
	}
}

func TestManagedFieldsKubectl(t *testing.T) {
	srv := trellistest.StartServer(t)
	kc := srv.KubeconfigPath()
	cms := kubernetes.NewForConfigOrDie(srv.Config).CoreV1().ConfigMaps("default")
	ctx := context.Background()

	mustKubectl(t, kc, "", "create", "configmap", "created", "--from-literal=a=1")
	mustKubectl(t, kc, "", "label", "configmap", "created", "tier=web")
	cm, err := cms.Get(ctx, "created", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkManagedFields(t, cm.ManagedFields,
		mf{manager: "kubectl-create", apiVersion: "v1", fields: `{"f:data":{".":{},"f:a":{}}}`},
		mf{manager: "kubectl-label", apiVersion: "v1", fields: `{"f:metadata":{"f:labels":{".":{},"f:tier":{}}}}`})

	manifest := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\n  namespace: default\ndata:\n  a: \"1\"\n"
	path := filepath.Join(t.TempDir(), "cm.yaml")
	apply := func(manifest string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(manifest), 0o600); err != nil {
			t.Fatal(err)
		}
		mustKubectl(t, kc, "", "apply", "-f", path)
	}
	apply(manifest)
	cm, err = cms.Get(ctx, "applied", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	applied := mf{manager: "kubectl-client-side-apply", apiVersion: "v1", fields: `{"f:data":{".":{},"f:a":{}},
		"f:metadata":{"f:annotations":{".":{},"f:kubectl.kubernetes.io/last-applied-configuration":{}}}}`}
	checkManagedFields(t, cm.ManagedFields, applied)
	// A second apply with a change patches under the same manager.
	apply(strings.Replace(manifest, `a: "1"`, `a: "2"`, 1))
	cm, err = cms.Get(ctx, "applied", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkManagedFields(t, cm.ManagedFields, applied)
}

// A client may rewrite managedFields. An empty list (or one empty entry)
// strips them, and, as in kube-apiserver, updates do not track an object
// without managed fields again (only server-side apply would).
func TestManagedFieldsWrittenByClient(t *testing.T) {
	cfg := trellistest.Start(t)
	client := kubernetes.NewForConfigOrDie(cfg)
	cms := client.CoreV1().ConfigMaps("default")
	ctx := context.Background()
	create := func(name string) *corev1.ConfigMap {
		cm, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string]string{"a": "1", "b": "1"}},
			metav1.CreateOptions{FieldManager: "test-manager"})
		if err != nil {
			t.Fatal(err)
		}
		return cm
	}

	t.Run("empty list in JSON", func(t *testing.T) {
		cm := create("reset-json")
		var body map[string]any
		raw, _ := json.Marshal(cm)
		json.Unmarshal(raw, &body)
		body["metadata"].(map[string]any)["managedFields"] = []any{}
		body["data"].(map[string]any)["a"] = "2"
		raw, _ = json.Marshal(body)
		var got corev1.ConfigMap
		err := client.CoreV1().RESTClient().Put().Namespace("default").Resource("configmaps").Name(cm.Name).
			Param("fieldManager", "resetter").SetHeader("Content-Type", "application/json").Body(raw).Do(ctx).Into(&got)
		if err != nil {
			t.Fatal(err)
		}
		if got.ManagedFields != nil || got.Data["a"] != "2" {
			t.Fatalf("after reset: data %v, managedFields %v", got.Data, got.ManagedFields)
		}
		got.Data["b"] = "2"
		later, err := cms.Update(ctx, &got, metav1.UpdateOptions{FieldManager: "later"})
		if err != nil {
			t.Fatal(err)
		}
		if later.ManagedFields != nil {
			t.Errorf("an object without managed fields is tracked again: %v", later.ManagedFields)
		}
	})

	t.Run("one empty entry, nothing else changed", func(t *testing.T) {
		cm := create("reset-entry")
		cm.ManagedFields = []metav1.ManagedFieldsEntry{{}}
		got, err := cms.Update(ctx, cm, metav1.UpdateOptions{FieldManager: "resetter"})
		if err != nil {
			t.Fatal(err)
		}
		if got.ManagedFields != nil {
			t.Errorf("managedFields after reset: %v", got.ManagedFields)
		}
		if got.ResourceVersion == cm.ResourceVersion {
			t.Error("resetting managedFields was not written")
		}
	})

	t.Run("by merge patch", func(t *testing.T) {
		create("reset-patch")
		got, err := cms.Patch(ctx, "reset-patch", types.MergePatchType, []byte(`{"metadata":{"managedFields":[{}]}}`), metav1.PatchOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.ManagedFields != nil {
			t.Errorf("managedFields after reset: %v", got.ManagedFields)
		}
	})

	t.Run("replaced", func(t *testing.T) {
		cm := create("replaced")
		cm.ManagedFields = []metav1.ManagedFieldsEntry{{
			Manager: "imported", Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "v1",
			FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:data":{"f:a":{},"f:b":{}}}`)},
		}}
		cm.Data["b"] = "2"
		got, err := cms.Update(ctx, cm, metav1.UpdateOptions{FieldManager: "writer"})
		if err != nil {
			t.Fatal(err)
		}
		checkManagedFields(t, got.ManagedFields,
			mf{manager: "imported", apiVersion: "v1", fields: `{"f:data":{"f:a":{}}}`, untimed: true},
			mf{manager: "writer", apiVersion: "v1", fields: `{"f:data":{"f:b":{}}}`})
	})

	t.Run("omitted", func(t *testing.T) {
		// Clients that do not know managedFields keep the stored ones.
		cm := create("omitted")
		cm.ManagedFields = nil
		cm.Data["b"] = "2"
		got, err := cms.Update(ctx, cm, metav1.UpdateOptions{FieldManager: "writer"})
		if err != nil {
			t.Fatal(err)
		}
		checkManagedFields(t, got.ManagedFields,
			mf{manager: "test-manager", apiVersion: "v1", fields: `{"f:data":{".":{},"f:a":{}}}`},
			mf{manager: "writer", apiVersion: "v1", fields: `{"f:data":{"f:b":{}}}`})
	})
}

func TestManagedFieldsCustomResourceStatus(t *testing.T) {
	cfg := trellistest.Start(t)
	installCRD(t, cfg, widgetCRD())
	widgets := dynamic.NewForConfigOrDie(cfg).Resource(widgetGVR).Namespace("default")
	ctx := context.Background()

	w := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "example.com/v1", "kind": "Widget",
		"metadata": map[string]any{"name": "w1"},
		"spec":     map[string]any{"color": "red"},
		// Status is reset on create: nobody owns it.
		"status": map[string]any{"phase": "Sneaky"},
	}}
	w, err := widgets.Create(ctx, w, metav1.CreateOptions{FieldManager: "creator"})
	if err != nil {
		t.Fatal(err)
	}
	// spec.size is defaulted by the schema: the creator owns it too.
	creator := mf{manager: "creator", apiVersion: "example.com/v1", fields: `{"f:spec":{".":{},"f:color":{},"f:size":{}}}`}
	checkManagedFields(t, w.GetManagedFields(), creator)

	// A /status write is recorded with its subresource. What /status does
	// not change (spec, metadata) is not credited to it, and the managed
	// fields it sends are ignored.
	unstructured.SetNestedField(w.Object, "Ready", "status", "phase")
	unstructured.SetNestedField(w.Object, "blue", "spec", "color")
	w.SetLabels(map[string]string{"sneaky": "true"})
	unstructured.SetNestedSlice(w.Object, []any{}, "metadata", "managedFields")
	w, err = widgets.UpdateStatus(ctx, w, metav1.UpdateOptions{FieldManager: "status-writer"})
	if err != nil {
		t.Fatal(err)
	}
	if color, _, _ := unstructured.NestedString(w.Object, "spec", "color"); color != "red" || w.GetLabels() != nil {
		t.Fatalf("status write changed spec or metadata: %v", w.Object)
	}
	statusWriter := mf{manager: "status-writer", apiVersion: "example.com/v1", subresource: "status", fields: `{"f:status":{".":{},"f:phase":{}}}`}
	checkManagedFields(t, w.GetManagedFields(), creator, statusWriter)

	// A write to the main resource is not credited with status either.
	unstructured.SetNestedField(w.Object, "blue", "spec", "color")
	unstructured.SetNestedField(w.Object, "Sneaky", "status", "phase")
	w, err = widgets.Update(ctx, w, metav1.UpdateOptions{FieldManager: "spec-writer"})
	if err != nil {
		t.Fatal(err)
	}
	creator.fields = `{"f:spec":{".":{},"f:size":{}}}`
	checkManagedFields(t, w.GetManagedFields(), creator, statusWriter,
		mf{manager: "spec-writer", apiVersion: "example.com/v1", fields: `{"f:spec":{"f:color":{}}}`})

	// A merge patch of /status by a known manager extends its entry.
	w, err = widgets.Patch(ctx, "w1", types.MergePatchType, []byte(`{"status":{"phase":"Done"}}`),
		metav1.PatchOptions{FieldManager: "status-writer"}, "status")
	if err != nil {
		t.Fatal(err)
	}
	checkManagedFields(t, w.GetManagedFields(), creator, statusWriter,
		mf{manager: "spec-writer", apiVersion: "example.com/v1", fields: `{"f:spec":{"f:color":{}}}`})

	// The CRD's own status is written by kube-apiserver's controllers.
	crd, err := dynamic.NewForConfigOrDie(cfg).Resource(schema.GroupVersionResource{
		Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}).Get(ctx, "widgets.example.com", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range crd.GetManagedFields() {
		if e.Manager == "kube-apiserver" && e.Subresource == "status" && e.APIVersion == "apiextensions.k8s.io/v1" &&
			strings.Contains(string(e.FieldsV1.Raw), `"k:{\"type\":\"Established\"}"`) {
			found = true
		}
	}
	if !found {
		t.Errorf("CRD managedFields lack kube-apiserver's status entry: %v", crd.GetManagedFields())
	}
}

// Entries keep the apiVersion they were written in, and a write through
// one version takes fields from entries of another.
func TestManagedFieldsAcrossVersions(t *testing.T) {
	cfg := trellistest.Start(t)
	crd := widgetCRD()
	v2 := *crd.Spec.Versions[0].DeepCopy()
	v2.Name, v2.Storage = "v2", false
	crd.Spec.Versions = append(crd.Spec.Versions, v2)
	installCRD(t, cfg, crd)
	dyn := dynamic.NewForConfigOrDie(cfg)
	ctx := context.Background()
	v2GVR := widgetGVR
	v2GVR.Version = "v2"

	w := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "example.com/v1", "kind": "Widget",
		"metadata": map[string]any{"name": "w1"},
		"spec":     map[string]any{"color": "red", "max": int64(5)},
	}}
	if _, err := dyn.Resource(widgetGVR).Namespace("default").Create(ctx, w, metav1.CreateOptions{FieldManager: "v1-writer"}); err != nil {
		t.Fatal(err)
	}
	w, err := dyn.Resource(v2GVR).Namespace("default").Get(ctx, "w1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	unstructured.SetNestedField(w.Object, "blue", "spec", "color")
	unstructured.SetNestedField(w.Object, int64(4), "spec", "size")
	w, err = dyn.Resource(v2GVR).Namespace("default").Update(ctx, w, metav1.UpdateOptions{FieldManager: "v2-writer"})
	if err != nil {
		t.Fatal(err)
	}
	want := []mf{
		{manager: "v1-writer", apiVersion: "example.com/v1", fields: `{"f:spec":{".":{},"f:max":{}}}`},
		{manager: "v2-writer", apiVersion: "example.com/v2", fields: `{"f:spec":{"f:color":{},"f:size":{}}}`},
	}
	checkManagedFields(t, w.GetManagedFields(), want...)
	// The same manager through another version gets a second entry.
	w, err = dyn.Resource(widgetGVR).Namespace("default").Patch(ctx, "w1", types.MergePatchType, []byte(`{"spec":{"max":6}}`),
		metav1.PatchOptions{FieldManager: "v2-writer"})
	if err != nil {
		t.Fatal(err)
	}
	want[0].fields = `{"f:spec":{}}`
	want = append(want, mf{manager: "v2-writer", apiVersion: "example.com/v1", fields: `{"f:spec":{"f:max":{}}}`})
	checkManagedFields(t, w.GetManagedFields(), want...)
}

// The fieldManager parameter is validated as kube-apiserver validates
// CreateOptions, UpdateOptions and PatchOptions.
func TestFieldManagerParameterValidation(t *testing.T) {
	cfg := trellistest.Start(t)
	cms := kubernetes.NewForConfigOrDie(cfg).CoreV1().ConfigMaps("default")
	ctx := context.Background()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "v"}}
	long := strings.Repeat("m", 129)

	_, err := cms.Create(ctx, cm, metav1.CreateOptions{FieldManager: long})
	checkStatus(t, err, `CreateOptions.meta.k8s.io "" is invalid: fieldManager: Too long: may not be more than 128 bytes`)
	_, err = cms.Create(ctx, cm, metav1.CreateOptions{FieldManager: "a\u200bb"})
	checkStatus(t, err, `CreateOptions.meta.k8s.io "" is invalid: fieldManager: Invalid value: "a\u200bb": invalid character U+200B (at position 1)`)

	if _, err := cms.Create(ctx, cm, metav1.CreateOptions{FieldManager: strings.Repeat("m", 128)}); err != nil {
		t.Fatalf("128 bytes: %v", err)
	}
	_, err = cms.Update(ctx, cm, metav1.UpdateOptions{FieldManager: long})
	checkStatus(t, err, `UpdateOptions.meta.k8s.io "" is invalid: fieldManager: Too long: may not be more than 128 bytes`)
	force := true
	_, err = cms.Patch(ctx, "v", types.MergePatchType, []byte(`{}`), metav1.PatchOptions{FieldManager: long, Force: &force})
	checkStatus(t, err, `PatchOptions.meta.k8s.io "" is invalid: [force: Forbidden: may not be specified for non-apply patch, fieldManager: Too long: may not be more than 128 bytes]`)
}

func checkStatus(t *testing.T, err error, msg string) {
	t.Helper()
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		t.Fatalf("want a Status error %q, got %v", msg, err)
	}
	s := status.Status()
	if s.Code != http.StatusUnprocessableEntity || s.Reason != metav1.StatusReasonInvalid || s.Message != msg {
		t.Errorf("got %d %s %q, want 422 Invalid %q", s.Code, s.Reason, s.Message, msg)
	}
}
