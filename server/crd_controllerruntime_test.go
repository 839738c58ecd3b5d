package server_test

import (
	"context"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/trellis-project/trellis/trellistest"
)

// TestControllerRuntimeUnstructured drives a custom resource through
// controller-runtime's client the way operators built on it do: with
// unstructured objects, so the client learns the kind from discovery.
func TestControllerRuntimeUnstructured(t *testing.T) {
	ctx := context.Background()
	cfg := trellistest.Start(t)
	installCRD(t, cfg, fleetCRD(fleetGroup))
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	gvk := schema.GroupVersionKind{Group: fleetGroup, Version: "v1", Kind: "Fleet"}
	key := client.ObjectKey{Namespace: "default", Name: "cr"}

	obj := fleet(fleetGroup, "cr")
	obj.SetNamespace("default")
	if err := c.Create(ctx, obj); err != nil {
		t.Fatal(err)
	}
	if r, _, _ := unstructured.NestedInt64(obj.Object, "spec", "replicas"); r != 1 {
		t.Errorf("create did not return the defaulted object: replicas %d", r)
	}

	got := &unstructured.Unstructured{}
	got.SetGroupVersionKind(gvk)
	if err := c.Get(ctx, key, got); err != nil {
		t.Fatal(err)
	}
	if got.GetUID() != obj.GetUID() {
		t.Errorf("get returned uid %s, created %s", got.GetUID(), obj.GetUID())
	}

	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(gvk.GroupVersion().WithKind("FleetList"))
	if err := c.List(ctx, list, client.InNamespace("default"), client.MatchingLabels{}); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 || list.Items[0].GetName() != "cr" {
		t.Errorf("list = %d items", len(list.Items))
	}

	if err := unstructured.SetNestedField(got.Object, int64(3), "spec", "replicas"); err != nil {
		t.Fatal(err)
	}
	if err := c.Update(ctx, got); err != nil {
		t.Fatal(err)
	}
	if got.GetGeneration() != 2 {
		t.Errorf("generation after update = %d, want 2", got.GetGeneration())
	}

	// A merge patch computed from a copy, as controllers write them.
	before := got.DeepCopy()
	if err := unstructured.SetNestedField(got.Object, true, "spec", "paused"); err != nil {
		t.Fatal(err)
	}
	if err := c.Patch(ctx, got, client.MergeFrom(before)); err != nil {
		t.Fatal(err)
	}
	if p, _, _ := unstructured.NestedBool(got.Object, "spec", "paused"); !p {
		t.Error("merge patch did not set spec.paused")
	}

	// Status through the status client; an invalid update is a 422.
	if err := unstructured.SetNestedField(got.Object, "Running", "status", "phase"); err != nil {
		t.Fatal(err)
	}
	if err := c.Status().Update(ctx, got); err != nil {
		t.Fatal(err)
	}
	if err := unstructured.SetNestedField(got.Object, int64(99), "spec", "replicas"); err != nil {
		t.Fatal(err)
	}
	if err := c.Update(ctx, got); !apierrors.IsInvalid(err) {
		t.Errorf("replicas above maxReplicas: %v, want Invalid", err)
	}

	if err := c.Delete(ctx, got); err != nil {
		t.Fatal(err)
	}
	gone := &unstructured.Unstructured{}
	gone.SetGroupVersionKind(gvk)
	if err := c.Get(ctx, key, gone); !apierrors.IsNotFound(err) {
		t.Errorf("get after delete: %v, want NotFound", err)
	}
}
