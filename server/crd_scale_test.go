package server_test

import (
	"context"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/utils/ptr"

	"github.com/trellis-project/trellis/trellistest"
)

func scalableCRD() *apiextensionsv1.CustomResourceDefinition {
	crd := widgetCRD()
	crd.Name = "fleets.example.com"
	crd.Spec.Names = apiextensionsv1.CustomResourceDefinitionNames{Plural: "fleets", Singular: "fleet", Kind: "Fleet", ListKind: "FleetList"}
	v := &crd.Spec.Versions[0]
	v.AdditionalPrinterColumns = nil
	v.Subresources.Scale = &apiextensionsv1.CustomResourceSubresourceScale{
		SpecReplicasPath: ".spec.replicas", StatusReplicasPath: ".status.replicas", LabelSelectorPath: ptr.To(".status.selector"),
	}
	v.Schema.OpenAPIV3Schema.Properties["spec"] = apiextensionsv1.JSONSchemaProps{Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{
		"replicas": {Type: "integer"},
	}}
	v.Schema.OpenAPIV3Schema.Properties["status"] = apiextensionsv1.JSONSchemaProps{Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{
		"replicas": {Type: "integer"}, "selector": {Type: "string"},
	}}
	return crd
}

func TestCustomResourceScale(t *testing.T) {
	ctx := context.Background()
	srv := trellistest.StartServer(t)
	installCRD(t, srv.Config, scalableCRD())
	fleets := dynamic.NewForConfigOrDie(srv.Config).Resource(schema.GroupVersionResource{Group: "example.com", Version: "v1", Resource: "fleets"}).Namespace("default")
	f := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "example.com/v1", "kind": "Fleet",
		"metadata": map[string]any{"name": "f"},
		"spec":     map[string]any{"replicas": int64(2)},
	}}
	created, err := fleets.Create(ctx, f, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	created.Object["status"] = map[string]any{"replicas": int64(2), "selector": "app=f"}
	if _, err := fleets.UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	got, err := fleets.Get(ctx, "f", metav1.GetOptions{}, "scale")
	if err != nil {
		t.Fatal(err)
	}
	if got.GetKind() != "Scale" || got.GetAPIVersion() != "autoscaling/v1" {
		t.Fatalf("scale kind = %s %s", got.GetAPIVersion(), got.GetKind())
	}
	if r, _, _ := unstructured.NestedInt64(got.Object, "spec", "replicas"); r != 2 {
		t.Errorf("scale spec.replicas = %d", r)
	}
	if sel, _, _ := unstructured.NestedString(got.Object, "status", "selector"); sel != "app=f" {
		t.Errorf("scale status.selector = %q", sel)
	}

	out := mustKubectl(t, srv.KubeconfigPath(), "", "scale", "fleet/f", "--replicas=5")
	if !strings.Contains(out, "scaled") {
		t.Errorf("kubectl scale: %s", out)
	}
	obj, _ := fleets.Get(ctx, "f", metav1.GetOptions{})
	if r, _, _ := unstructured.NestedInt64(obj.Object, "spec", "replicas"); r != 5 {
		t.Errorf("after kubectl scale spec.replicas = %d", r)
	}
	if r, _, _ := unstructured.NestedInt64(obj.Object, "status", "replicas"); r != 2 {
		t.Errorf("scale changed status.replicas to %d", r)
	}

	if _, err := fleets.Patch(ctx, "f", types.MergePatchType, []byte(`{"spec":{"replicas":7}}`), metav1.PatchOptions{}, "scale"); err != nil {
		t.Fatal(err)
	}
	obj, _ = fleets.Get(ctx, "f", metav1.GetOptions{})
	if r, _, _ := unstructured.NestedInt64(obj.Object, "spec", "replicas"); r != 7 {
		t.Errorf("after scale patch spec.replicas = %d", r)
	}

	bad := &unstructured.Unstructured{}
	bad.SetUnstructuredContent(map[string]any{
		"apiVersion": "autoscaling/v1", "kind": "Scale",
		"metadata": map[string]any{"name": "f"},
		"spec":     map[string]any{"replicas": int64(-1)},
	})
	_, err = fleets.Update(ctx, bad, metav1.UpdateOptions{}, "scale")
	if !apierrors.IsInvalid(err) {
		t.Errorf("negative replicas: %v, want 422", err)
	}
}

// A custom resource without replicas has no Scale to read, and a /scale
// write must set them; the messages are kube-apiserver v1.37.2's.
func TestCustomResourceScaleWithoutReplicas(t *testing.T) {
	ctx := context.Background()
	cfg := trellistest.Start(t)
	installCRD(t, cfg, scalableFleetCRD())
	res := dynamic.NewForConfigOrDie(cfg).Resource(fleets).Namespace("default")
	if _, err := res.Create(ctx, &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "example.com/v1", "kind": "Fleet", "metadata": map[string]any{"name": "h"}, "spec": map[string]any{},
	}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err := res.Get(ctx, "h", metav1.GetOptions{}, "scale")
	if st, ok := err.(apierrors.APIStatus); !ok || st.Status().Code != 500 ||
		st.Status().Message != `Internal error occurred: the spec replicas field ".spec.replicas" does not exist` {
		t.Errorf("get scale: %v", err)
	}
	_, err = res.Patch(ctx, "h", types.MergePatchType, []byte(`{"metadata":{"labels":{"a":"b"}}}`), metav1.PatchOptions{}, "scale")
	if !apierrors.IsBadRequest(err) || err.Error() != `the spec replicas field ".spec.replicas" cannot be empty` {
		t.Errorf("scale patch leaving replicas unset: %v", err)
	}
	sc, err := res.Patch(ctx, "h", types.JSONPatchType, []byte(`[{"op":"replace","path":"/spec/replicas","value":3}]`), metav1.PatchOptions{}, "scale")
	if err != nil {
		t.Fatal(err)
	}
	if n, _, _ := unstructured.NestedInt64(sc.Object, "spec", "replicas"); n != 3 {
		t.Errorf("scale after setting replicas: %v", sc.Object)
	}
}
