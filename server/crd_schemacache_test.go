package server_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/trellis-project/trellis/server"
	"github.com/trellis-project/trellis/trellistest"
)

// wideWidgetCRD is the Widget CRD under group with 400 extra optional
// string fields in its spec: ~1 MB of compiled schema by the server's
// estimate, so a 1 MB schema cache holds one of them at a time.
func wideWidgetCRD(group string) *apiextensionsv1.CustomResourceDefinition {
	crd := widgetCRD()
	crd.Name, crd.Spec.Group, crd.Spec.Names.ShortNames = "widgets."+group, group, nil
	spec := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"]
	for i := range 400 {
		spec.Properties[fmt.Sprintf("extra%03d", i)] = apiextensionsv1.JSONSchemaProps{Type: "string", MaxLength: ptrTo(int64(64))}
	}
	crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"] = spec
	return crd
}

// With more CRDs than the schema cache holds, every CRD keeps its full
// behaviour — defaulting, pruning, OpenAPI and CEL validation, managed
// fields of server-side apply — while schemas are evicted and compiled
// again behind the scenes.
func TestCRDSchemaCacheEvictsAndRecompiles(t *testing.T) {
	cfg := trellistest.Start(t, trellistest.WithConfig(func(c *server.Config) { c.CRDSchemaCacheMB = 1 }))
	dyn := dynamic.NewForConfigOrDie(cfg)
	ctx := context.Background()
	groups := []string{"a.cache.example.com", "b.cache.example.com", "c.cache.example.com", "d.cache.example.com"}
	for _, g := range groups {
		installCRD(t, cfg, wideWidgetCRD(g))
	}
	for round := range 3 {
		for _, g := range groups {
			r := dyn.Resource(schema.GroupVersionResource{Group: g, Version: "v1", Resource: "widgets"}).Namespace("default")
			name := fmt.Sprintf("w%d", round)
			w := &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": g + "/v1", "kind": "Widget", "metadata": map[string]any{"name": name},
				"spec": map[string]any{"color": "red", "extra007": "x", "unknown": "dropped"},
			}}
			got, err := r.Create(ctx, w, metav1.CreateOptions{})
			if err != nil {
				t.Fatalf("round %d, %s: create: %v", round, g, err)
			}
			spec := got.Object["spec"].(map[string]any)
			if spec["size"] != int64(3) || spec["extra007"] != "x" || spec["unknown"] != nil {
				t.Errorf("round %d, %s: spec %v; want size defaulted to 3, extra007 kept, unknown pruned", round, g, spec)
			}
			bad := w.DeepCopy()
			bad.SetName(name + "-bad")
			bad.Object["spec"] = map[string]any{"color": "red", "size": int64(5), "max": int64(2), "extra001": strings.Repeat("y", 65)}
			_, err = r.Create(ctx, bad, metav1.CreateOptions{})
			if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.extra001: Too long") {
				t.Errorf("round %d, %s: invalid create answered %v; want 422 for spec.extra001's length", round, g, err)
			}
			// CEL runs only on objects valid by the OpenAPI schema.
			bad.Object["spec"] = map[string]any{"color": "red", "size": int64(5), "max": int64(2)}
			_, err = r.Create(ctx, bad, metav1.CreateOptions{})
			if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "size must not exceed max") {
				t.Errorf("round %d, %s: create breaking the CEL rule answered %v", round, g, err)
			}
			patch := fmt.Sprintf(`{"apiVersion":%q,"kind":"Widget","metadata":{"name":%q},"spec":{"color":"blue"}}`, g+"/v1", name)
			applied, err := r.Patch(ctx, name, types.ApplyPatchType, []byte(patch), metav1.PatchOptions{FieldManager: "tester", Force: ptrTo(true)})
			if err != nil {
				t.Fatalf("round %d, %s: apply: %v", round, g, err)
			}
			managers := map[string]bool{}
			for _, e := range applied.GetManagedFields() {
				managers[e.Manager] = true
			}
			if !managers["tester"] || applied.Object["spec"].(map[string]any)["color"] != "blue" {
				t.Errorf("round %d, %s: apply gave managers %v and spec %v", round, g, managers, applied.Object["spec"])
			}
		}
	}
	cs := kubernetes.NewForConfigOrDie(cfg)
	evictions := metricValue(t, cs, "trellis_crd_schema_evictions_total")
	compilations := metricValue(t, cs, "trellis_crd_schema_compilations_total")
	if evictions == 0 || compilations <= float64(2*len(groups)) {
		t.Errorf("%v evictions and %v compilations; want schemas evicted and compiled again", evictions, compilations)
	}
	if used := metricValue(t, cs, "trellis_crd_schema_cache_bytes"); used > 2*(1<<20) {
		t.Errorf("schema cache holds %v bytes, bound 1 MiB (plus the value being added)", used)
	}
}

// A new CRD's schemas are compiled while the API validates and stores it,
// and the registration takes what was compiled: one compilation of the
// schema its three versions share, and one of its type information. A
// dry run compiles nothing, nor does an update that leaves the spec
// alone.
func TestCRDSchemasCompiledOnceDuringCreate(t *testing.T) {
	cfg := trellistest.Start(t)
	cs := kubernetes.NewForConfigOrDie(cfg)
	ext := apiextensionsclient.NewForConfigOrDie(cfg)
	ctx := context.Background()
	compilations := func() float64 { return metricValue(t, cs, "trellis_crd_schema_compilations_total") }
	before := compilations()
	crd := fleetCRD("once.example.com")
	if _, err := ext.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, crd, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
		t.Fatal(err)
	}
	if got := compilations(); got != before {
		t.Fatalf("a dry-run create compiled %v schemas", got-before)
	}
	installCRD(t, cfg, crd)
	dyn := dynamic.NewForConfigOrDie(cfg)
	if _, err := dyn.Resource(fleetGVR("once.example.com", "v1")).Namespace("default").Create(ctx, fleet("once.example.com", "first"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := compilations(); got != before+2 {
		t.Fatalf("installing a CRD and creating an object compiled %v times; want 2 (its schema and its type information)", got-before)
	}
	stored, err := ext.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, crd.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	stored.Labels = map[string]string{"touched": "yes"}
	if _, err := ext.ApiextensionsV1().CustomResourceDefinitions().Update(ctx, stored, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := compilations(); got != before+2 {
		t.Fatalf("a label change compiled %v more times", got-before-2)
	}
}

// Installing a CRD writes its status once: a sync after the controller's
// own status write (the informer's event for the create) finds the
// conditions already stored, in the copy the handler handed over.
func TestCRDStatusWrittenOnce(t *testing.T) {
	cfg := trellistest.Start(t)
	cs := kubernetes.NewForConfigOrDie(cfg)
	writes := func() float64 {
		return metricValue(t, cs, "apiserver_request_total", "verb=PUT", "group=apiextensions.k8s.io", "version=v1",
			"resource=customresourcedefinitions", "subresource=status", "code=200")
	}
	for i := range 5 {
		installCRD(t, cfg, fleetCRD(fmt.Sprintf("g%d.once.example.com", i)))
	}
	time.Sleep(300 * time.Millisecond) // the informer's events and their syncs
	if got := writes(); got != 5 {
		t.Fatalf("%v status writes for 5 CRDs; want 5", got)
	}
}
