package fieldmanager_test

import (
	"encoding/json"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/kube-openapi/pkg/validation/spec"
	generatedopenapi "k8s.io/kubernetes/pkg/generated/openapi"

	"github.com/trellis-project/trellis/internal/fieldmanager"
	"github.com/trellis-project/trellis/internal/resource"
	"github.com/trellis-project/trellis/internal/resource/builtin"
)

func TestManagerName(t *testing.T) {
	for _, tc := range []struct{ param, userAgent, want string }{
		{"", "kubectl/v1.37.2 (linux/amd64) kubernetes/5ed2b79", "kubectl"},
		{"", "main/v0.0.0 (linux/amd64) kubernetes/$Format", "main"},
		{"", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36", "Mozilla"},
		{"", "no-slash", "no-slash"},
		{"", "", ""},
		{"", "tab\there/1", "tabhere"},
		{"", strings.Repeat("f", 129) + "/x", strings.Repeat("f", 128)},
		// A rune that would cross the limit is left out whole.
		{"", strings.Repeat("f", 127) + "é/x", strings.Repeat("f", 127)},
		{"kubectl-edit", "kubectl/v1.37.2", "kubectl-edit"},
	} {
		if got := fieldmanager.ManagerName(tc.param, tc.userAgent); got != tc.want {
			t.Errorf("ManagerName(%q, %q) = %q, want %q", tc.param, tc.userAgent, got, tc.want)
		}
	}
}

var builtinTypes = fieldmanager.NewBuiltinTypes(generatedopenapi.GetOpenAPIDefinitions, builtin.Scheme, builtinKinds())

func builtinKinds() []schema.GroupVersionKind {
	var kinds []schema.GroupVersionKind
	for _, d := range builtin.Descriptors() {
		kinds = append(kinds, d.GroupVersionKind())
	}
	return kinds
}

func descriptor(t testing.TB, reg *resource.Registry, gvr schema.GroupVersionResource) *resource.Descriptor {
	t.Helper()
	d, ok := reg.Lookup(gvr)
	if !ok {
		t.Fatalf("no descriptor for %v", gvr)
	}
	return d
}

var configMaps = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}

func TestCacheKeepsOneManagerPerDescriptor(t *testing.T) {
	reg := resource.NewRegistry()
	builtin.Register(reg)
	cache := fieldmanager.NewCache(builtinTypes, reg)
	d := descriptor(t, reg, configMaps)

	m1, err := cache.For(d, "")
	if err != nil {
		t.Fatal(err)
	}
	if m2, _ := cache.For(d, ""); m2 != m1 {
		t.Error("a second request built a second manager")
	}
	if s, _ := cache.For(d, "status"); s == m1 {
		t.Error("the main resource and a subresource share a manager")
	}

	// A replaced descriptor (a changed CRD) gets a new manager.
	replaced := *d
	reg.Add(&replaced)
	m3, err := cache.For(&replaced, "")
	if err != nil {
		t.Fatal(err)
	}
	if m3 == m1 {
		t.Error("a replaced descriptor kept its old manager")
	}
}

// Concurrent first writes share one manager (run with -race).
func TestCacheConcurrentFirstUse(t *testing.T) {
	reg := resource.NewRegistry()
	builtin.Register(reg)
	cache := fieldmanager.NewCache(fieldmanager.NewBuiltinTypes(generatedopenapi.GetOpenAPIDefinitions, builtin.Scheme, builtinKinds()), reg)
	d := descriptor(t, reg, configMaps)
	managers := make([]*fieldmanager.Manager, 8)
	var wg sync.WaitGroup
	for i := range managers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, err := cache.For(d, "")
			if err != nil {
				t.Error(err)
				return
			}
			cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c"}, Data: map[string]string{"k": "v"}}
			if err := m.Update(d.Strategy.New(), cm, "writer"); err != nil {
				t.Error(err)
			}
			managers[i] = m
		}()
	}
	wg.Wait()
	for _, m := range managers[1:] {
		if m != managers[0] {
			t.Fatal("concurrent first uses kept different managers")
		}
	}
}

func TestBuiltinKindWithoutDefinition(t *testing.T) {
	types := fieldmanager.NewBuiltinTypes(generatedopenapi.GetOpenAPIDefinitions, builtin.Scheme, nil)
	reg := resource.NewRegistry()
	builtin.Register(reg)
	if _, err := fieldmanager.NewCache(types, reg).For(descriptor(t, reg, configMaps), ""); err == nil {
		t.Error("a kind the type information lacks got a manager")
	}
}

// An update through one version takes fields from an entry recorded in
// another: the conversion goes through the internal version (core/v1 and
// events.k8s.io/v1 Events are one stored kind).
func TestUpdateAcrossBuiltinVersions(t *testing.T) {
	reg := resource.NewRegistry()
	builtin.Register(reg)
	cache := fieldmanager.NewCache(builtinTypes, reg)
	coreEvents := descriptor(t, reg, schema.GroupVersionResource{Version: "v1", Resource: "events"})
	eventsV1 := descriptor(t, reg, schema.GroupVersionResource{Group: "events.k8s.io", Version: "v1", Resource: "events"})

	// Created through core/v1 with a message and a reason.
	ev := &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "e", Namespace: "default", UID: "u1"}, Message: "hello", Reason: "Greeting"}
	ev.SetGroupVersionKind(coreEvents.GroupVersionKind())
	m, err := cache.For(coreEvents, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Update(coreEvents.Strategy.New(), ev, "core-writer"); err != nil {
		t.Fatal(err)
	}
	if n := len(ev.ManagedFields); n != 1 {
		t.Fatalf("%d entries after create", n)
	}

	// Changed through events.k8s.io/v1: note is core/v1's message.
	internal, err := builtin.Scheme.ConvertToVersion(ev, schema.GroupVersion{Version: runtime.APIVersionInternal})
	if err != nil {
		t.Fatal(err)
	}
	served, err := builtin.Scheme.ConvertToVersion(internal, eventsV1.GroupVersion())
	if err != nil {
		t.Fatal(err)
	}
	changed := served.DeepCopyObject()
	unstructuredSet(t, changed, "hi", "note")
	m, err = cache.For(eventsV1, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Update(served, changed, "events-writer"); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, e := range changed.(metav1.Object).GetManagedFields() {
		got[e.Manager+" "+e.APIVersion] = string(e.FieldsV1.Raw)
	}
	want := map[string]string{
		// core-writer lost message to events-writer's note.
		"core-writer v1":                 `{"f:reason":{}}`,
		"events-writer events.k8s.io/v1": `{"f:note":{}}`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("managedFields %v, want %v", got, want)
	}
}

// unstructuredSet sets a top-level string field of a typed object through
// its JSON form.
func unstructuredSet(t *testing.T, obj runtime.Object, value string, field string) {
	t.Helper()
	content, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		t.Fatal(err)
	}
	content[field] = value
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(content, obj); err != nil {
		t.Fatal(err)
	}
}

// fakeCustom is the part of a custom resource strategy the field manager
// uses.
type fakeCustom struct {
	resource.Strategy
	kind *fieldmanager.CustomKind
}

func (f fakeCustom) CustomKind() *fieldmanager.CustomKind { return f.kind }
func (f fakeCustom) Default(runtime.Object)               {}

// gadgetSchema has a list map (x-kubernetes-list-type: map) and an atomic
// list, whose ownership differs.
const gadgetSchema = `{"type":"object","properties":{
  "spec":{"type":"object","properties":{
    "ports":{"type":"array","x-kubernetes-list-type":"map","x-kubernetes-list-map-keys":["name"],
      "items":{"type":"object","required":["name"],"properties":{"name":{"type":"string"},"port":{"type":"integer"}}}},
    "tags":{"type":"array","x-kubernetes-list-type":"atomic","items":{"type":"string"}}}}}}`

func gadgetDescriptor(t testing.TB) *resource.Descriptor {
	kind := fieldmanager.NewCustomKind("example.com", "Gadget", false, []string{"v1"}, func() map[string]*spec.Schema {
		var s spec.Schema
		if err := json.Unmarshal([]byte(gadgetSchema), &s); err != nil {
			t.Fatal(err)
		}
		return map[string]*spec.Schema{"v1": &s}
	}, nil, nil)
	return &resource.Descriptor{Group: "example.com", Version: "v1", Kind: "Gadget", Resource: "gadgets",
		Strategy: fakeCustom{kind: kind}}
}

func gadget(spec string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON([]byte(`{"apiVersion":"example.com/v1","kind":"Gadget","metadata":{"name":"g","uid":"u1"},"spec":` + spec + `}`)); err != nil {
		panic(err)
	}
	return u
}

func TestCustomResourceListTypes(t *testing.T) {
	m, err := fieldmanager.NewCache(builtinTypes, nil).For(gadgetDescriptor(t), "")
	if err != nil {
		t.Fatal(err)
	}
	empty := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "example.com/v1", "kind": "Gadget"}}
	created := gadget(`{"ports":[{"name":"http","port":80}],"tags":["a"]}`)
	if err := m.Update(empty, created, "creator"); err != nil {
		t.Fatal(err)
	}
	want := `{"f:spec":{".":{},"f:ports":{".":{},"k:{\"name\":\"http\"}":{".":{},"f:name":{},"f:port":{}}},"f:tags":{}}}`
	if got := string(created.GetManagedFields()[0].FieldsV1.Raw); got != want {
		t.Errorf("fieldsV1 %s, want %s", got, want)
	}
}

// BenchmarkUpdate measures what the field manager adds to one write: a
// ConfigMap with a few keys and a small custom resource, each updated by
// a second manager.
func BenchmarkUpdate(b *testing.B) {
	reg := resource.NewRegistry()
	builtin.Register(reg)
	cache := fieldmanager.NewCache(builtinTypes, reg)

	b.Run("ConfigMap", func(b *testing.B) {
		d := descriptor(b, reg, configMaps)
		live := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "default", UID: "u1",
			Labels: map[string]string{"app": "web"}}, Data: map[string]string{"a": "1", "b": "2", "c": "3"}}
		live.SetGroupVersionKind(d.GroupVersionKind())
		m, err := cache.For(d, "")
		if err != nil {
			b.Fatal(err)
		}
		empty := d.Strategy.New()
		if err := m.Update(empty, live, "creator"); err != nil {
			b.Fatal(err)
		}
		changed := live.DeepCopy()
		changed.Data["a"] = "changed"
		benchUpdate(b, cache, d, live, changed)
	})
	b.Run("CustomResource", func(b *testing.B) {
		d := gadgetDescriptor(b)
		live := gadget(`{"ports":[{"name":"http","port":80},{"name":"https","port":443}],"tags":["a","b"]}`)
		m, err := cache.For(d, "")
		if err != nil {
			b.Fatal(err)
		}
		if err := m.Update(d.Strategy.(fakeCustom).newEmpty(), live, "creator"); err != nil {
			b.Fatal(err)
		}
		changed := live.DeepCopy()
		unstructured.SetNestedSlice(changed.Object, []any{"c"}, "spec", "tags")
		benchUpdate(b, cache, d, live, changed)
	})
}

func (fakeCustom) newEmpty() runtime.Object {
	return &unstructured.Unstructured{Object: map[string]any{"apiVersion": "example.com/v1", "kind": "Gadget"}}
}

func benchUpdate(b *testing.B, cache *fieldmanager.Cache, d *resource.Descriptor, live, changed runtime.Object) {
	b.ReportAllocs()
	for b.Loop() {
		obj := changed.DeepCopyObject()
		m, err := cache.For(d, "")
		if err != nil {
			b.Fatal(err)
		}
		if err := m.Update(live, obj, "writer"); err != nil {
			b.Fatal(err)
		}
	}
}

// Versions that share one schema share one copy of it in the type
// converter; managed fields, merges and conflicts are what they are with
// a copy per version.
func TestCustomKindSharedSchema(t *testing.T) {
	run := func(shared bool) (string, string, error) {
		kind := fieldmanager.NewCustomKind("example.com", "Gadget", false, []string{"v1", "v2"}, func() map[string]*spec.Schema {
			parse := func() *spec.Schema {
				var s spec.Schema
				if err := json.Unmarshal([]byte(gadgetSchema), &s); err != nil {
					t.Fatal(err)
				}
				return &s
			}
			s := parse()
			if shared {
				return map[string]*spec.Schema{"v1": s, "v2": s}
			}
			return map[string]*spec.Schema{"v1": s, "v2": parse()}
		}, nil, nil)
		d := &resource.Descriptor{Group: "example.com", Version: "v1", Kind: "Gadget", Resource: "gadgets", Strategy: fakeCustom{kind: kind}}
		m, err := fieldmanager.NewCache(builtinTypes, nil).For(d, "")
		if err != nil {
			t.Fatal(err)
		}
		created := gadget(`{"ports":[{"name":"http","port":80}],"tags":["a"]}`)
		if err := m.Update(fakeCustom{}.newEmpty(), created, "creator"); err != nil {
			t.Fatal(err)
		}
		patch := gadget(`{"ports":[{"name":"http","port":8080},{"name":"https","port":443}]}`)
		_, conflict := m.Apply(created, patch.DeepCopy(), "applier", false)
		applied, err := m.Apply(created, patch, "applier", true)
		if err != nil {
			t.Fatal(err)
		}
		out, err := json.Marshal(applied)
		if err != nil {
			t.Fatal(err)
		}
		fields, err := json.Marshal(created.GetManagedFields())
		if err != nil {
			t.Fatal(err)
		}
		return string(fields), string(out), conflict
	}
	sharedFields, sharedOut, sharedConflict := run(true)
	copiedFields, copiedOut, copiedConflict := run(false)
	if sharedConflict == nil || copiedConflict == nil || sharedConflict.Error() != copiedConflict.Error() {
		t.Fatalf("conflicts differ or are missing:\n%v\n%v", sharedConflict, copiedConflict)
	}
	// Timestamps aside (both within the same second, or not).
	strip := func(s string) string { return regexp.MustCompile(`"time":"[^"]*"`).ReplaceAllString(s, "") }
	if strip(sharedFields) != strip(copiedFields) || strip(sharedOut) != strip(copiedOut) {
		t.Fatalf("shared schema gives\n%s\n%s\na copy per version gives\n%s\n%s", sharedFields, sharedOut, copiedFields, copiedOut)
	}
	if !strings.Contains(sharedOut, `"port":8080`) || !strings.Contains(sharedOut, `"https"`) {
		t.Fatalf("apply result %s", sharedOut)
	}
}
