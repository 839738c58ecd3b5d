package server_test

import (
	"context"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/trellis-project/trellis/trellistest"
)

var widgetGVR = schema.GroupVersionResource{Group: "example.com", Version: "v1", Resource: "widgets"}

func widgetCRD() *apiextensionsv1.CustomResourceDefinition {
	return &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "widgets.example.com"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: "example.com",
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "widgets", Singular: "widget", Kind: "Widget", ListKind: "WidgetList", ShortNames: []string{"wd"}},
			Scope: apiextensionsv1.NamespaceScoped,
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name: "v1", Served: true, Storage: true,
				Subresources: &apiextensionsv1.CustomResourceSubresources{Status: &apiextensionsv1.CustomResourceSubresourceStatus{}},
				AdditionalPrinterColumns: []apiextensionsv1.CustomResourceColumnDefinition{
					{Name: "Color", Type: "string", JSONPath: ".spec.color"},
					{Name: "Size", Type: "integer", JSONPath: ".spec.size"},
					{Name: "Phase", Type: "string", JSONPath: ".status.phase"},
				},
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object",
					Properties: map[string]apiextensionsv1.JSONSchemaProps{
						"spec": {
							Type:     "object",
							Required: []string{"color"},
							Properties: map[string]apiextensionsv1.JSONSchemaProps{
								"color": {Type: "string", Enum: []apiextensionsv1.JSON{{Raw: []byte(`"red"`)}, {Raw: []byte(`"blue"`)}}},
								"size":  {Type: "integer", Minimum: ptr.To(1.0), Default: &apiextensionsv1.JSON{Raw: []byte(`3`)}},
								"max":   {Type: "integer"},
							},
							XValidations: apiextensionsv1.ValidationRules{{Rule: "!has(self.max) || self.size <= self.max", Message: "size must not exceed max"}},
						},
						"status": {Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{"phase": {Type: "string"}}},
					},
				}},
			}},
		},
	}
}

// installCRD creates crd and waits until it is Established.
func installCRD(t *testing.T, cfg *rest.Config, crd *apiextensionsv1.CustomResourceDefinition) {
	t.Helper()
	ctx := context.Background()
	ext := apiextensionsclient.NewForConfigOrDie(cfg)
	if _, err := ext.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, crd, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	err := wait.PollUntilContextTimeout(ctx, 5*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		got, err := ext.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, crd.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, c := range got.Status.Conditions {
			if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("CRD %s never Established: %v", crd.Name, err)
	}
}

func widget(name string, spec map[string]any) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "example.com/v1", "kind": "Widget",
		"metadata": map[string]any{"name": name},
		"spec":     spec,
	}}
}

func TestCustomResourceLifecycle(t *testing.T) {
	ctx := context.Background()
	cfg := trellistest.Start(t)
	installCRD(t, cfg, widgetCRD())
	dyn := dynamic.NewForConfigOrDie(cfg)
	widgets := dyn.Resource(widgetGVR).Namespace("default")

	// Defaulting, and status dropped on create (status subresource).
	w := widget("w1", map[string]any{"color": "red"})
	w.Object["status"] = map[string]any{"phase": "Sneaky"}
	created, err := widgets.Create(ctx, w, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if size, _, _ := unstructured.NestedInt64(created.Object, "spec", "size"); size != 3 {
		t.Errorf("defaulted size = %d, want 3", size)
	}
	if _, has := created.Object["status"]; has {
		t.Errorf("create kept status: %v", created.Object["status"])
	}
	if created.GetGeneration() != 1 {
		t.Errorf("generation = %d, want 1", created.GetGeneration())
	}

	// Schema validation: enum, minimum, required, CEL — 422 with causes.
	for _, tc := range []struct {
		spec  map[string]any
		field string
	}{
		{map[string]any{"color": "green"}, "spec.color"},
		{map[string]any{"color": "red", "size": int64(0)}, "spec.size"},
		{map[string]any{}, "spec.color"},
		{map[string]any{"color": "red", "size": int64(5), "max": int64(4)}, "spec"},
	} {
		_, err := widgets.Create(ctx, widget("bad", tc.spec), metav1.CreateOptions{})
		st, ok := err.(apierrors.APIStatus)
		if !ok || st.Status().Code != 422 {
			t.Errorf("spec %v: %v, want 422", tc.spec, err)
			continue
		}
		found := false
		for _, c := range st.Status().Details.Causes {
			if c.Field == tc.field {
				found = true
			}
		}
		if !found {
			t.Errorf("spec %v: causes %+v lack field %s", tc.spec, st.Status().Details.Causes, tc.field)
		}
	}

	// Unknown fields are pruned; Strict refuses them.
	u := widget("w2", map[string]any{"color": "blue", "extra": "x"})
	_, err = widgets.Create(ctx, u, metav1.CreateOptions{FieldValidation: "Strict"})
	if !apierrors.IsBadRequest(err) || !strings.Contains(err.Error(), `unknown field "spec.extra"`) {
		t.Errorf("strict unknown field: %v", err)
	}
	pruned, err := widgets.Create(ctx, u, metav1.CreateOptions{FieldValidation: "Ignore"})
	if err != nil {
		t.Fatal(err)
	}
	if _, has, _ := unstructured.NestedFieldNoCopy(pruned.Object, "spec", "extra"); has {
		t.Error("unknown field was stored")
	}

	// /status changes status only; the main resource ignores status.
	created.Object["status"] = map[string]any{"phase": "Ready"}
	created.Object["spec"].(map[string]any)["color"] = "blue"
	st, err := widgets.UpdateStatus(ctx, created, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if c, _, _ := unstructured.NestedString(st.Object, "spec", "color"); c != "red" {
		t.Errorf("status update changed spec.color to %s", c)
	}
	if p, _, _ := unstructured.NestedString(st.Object, "status", "phase"); p != "Ready" {
		t.Errorf("status.phase = %q", p)
	}
	st.Object["spec"].(map[string]any)["color"] = "blue"
	st.Object["status"] = map[string]any{"phase": "Ignored"}
	up, err := widgets.Update(ctx, st, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p, _, _ := unstructured.NestedString(up.Object, "status", "phase"); p != "Ready" {
		t.Errorf("main update changed status to %q", p)
	}
	if up.GetGeneration() != 2 {
		t.Errorf("generation after spec change = %d, want 2", up.GetGeneration())
	}

	// Strategic merge patches are not for custom resources.
	_, err = widgets.Patch(ctx, "w1", "application/strategic-merge-patch+json", []byte(`{"spec":{"color":"red"}}`), metav1.PatchOptions{})
	if !apierrors.IsUnsupportedMediaType(err) {
		t.Errorf("strategic merge patch on a custom resource: %v, want 415", err)
	}

	// Deleting the CRD deletes its objects and stops serving it.
	ext := apiextensionsclient.NewForConfigOrDie(cfg)
	if err := ext.ApiextensionsV1().CustomResourceDefinitions().Delete(ctx, "widgets.example.com", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := ext.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, "widgets.example.com", metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		t.Fatal("CRD not removed")
	}
	if _, err := widgets.List(ctx, metav1.ListOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("list after CRD deletion: %v, want 404", err)
	}
	// Re-creating it finds no leftovers.
	installCRD(t, cfg, widgetCRD())
	list, err := widgets.List(ctx, metav1.ListOptions{})
	if err != nil || len(list.Items) != 0 {
		t.Errorf("objects survived their CRD: %v %v", list, err)
	}
}

func TestCRDNameConflictReportedOnLoser(t *testing.T) {
	ctx := context.Background()
	cfg := trellistest.Start(t)
	installCRD(t, cfg, widgetCRD())
	loser := widgetCRD()
	loser.Name = "gadgets.example.com"
	loser.Spec.Names.Plural, loser.Spec.Names.Singular = "gadgets", "gadget"
	loser.Spec.Names.ShortNames = nil
	ext := apiextensionsclient.NewForConfigOrDie(cfg)
	if _, err := ext.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, loser, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		got, err := ext.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, loser.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, c := range got.Status.Conditions {
			if c.Type == apiextensionsv1.NamesAccepted && c.Status == apiextensionsv1.ConditionFalse {
				return c.Reason == "NameConflict" && strings.Contains(c.Message, `"Widget" is already in use`), nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatal("name conflict not reported on the second CRD")
	}
}

func TestCustomResourcesInKubectlAndNamespaceDeletion(t *testing.T) {
	srv := trellistest.StartServer(t)
	installCRD(t, srv.Config, widgetCRD())
	kc := srv.KubeconfigPath()
	mustKubectl(t, kc, "", "create", "namespace", "shop")
	dyn := dynamic.NewForConfigOrDie(srv.Config)
	w := widget("blue-one", map[string]any{"color": "blue", "size": int64(7)})
	if _, err := dyn.Resource(widgetGVR).Namespace("shop").Create(context.Background(), w, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	out := mustKubectl(t, kc, "", "get", "widgets", "-n", "shop")
	for _, want := range []string{"NAME", "COLOR", "SIZE", "PHASE", "blue-one", "blue", "7"} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl get widgets lacks %q:\n%s", want, out)
		}
	}
	if out := mustKubectl(t, kc, "", "get", "wd", "-n", "shop", "-o", "name"); strings.TrimSpace(out) != "widget.example.com/blue-one" {
		t.Errorf("short name: %q", out)
	}
	mustKubectl(t, kc, "", "delete", "namespace", "shop", "--wait=true", "--timeout=20s")
	if _, err := dyn.Resource(widgetGVR).Namespace("shop").Get(context.Background(), "blue-one", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("custom resource survived its namespace: %v", err)
	}
}
