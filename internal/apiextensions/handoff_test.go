package apiextensions_test

import (
	"context"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"

	"github.com/trellis-project/trellis/internal/apiextensions"
	"github.com/trellis-project/trellis/internal/resource"
	"github.com/trellis-project/trellis/trellistest"
)

func gizmoCRD(group string) *apiextensionsv1.CustomResourceDefinition {
	return &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "gizmos." + group},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: group, Scope: apiextensionsv1.NamespaceScoped,
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "gizmos", Singular: "gizmo", Kind: "Gizmo", ListKind: "GizmoList"},
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{Name: "v1", Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{Type: "object"}}}},
		},
	}
}

// A CRD handed over by the API handler is served, but one handed over
// that the store does not hold (deleted before the controller looked) is
// not: the controller checks with the server before serving it.
func TestObserveServesOnlyStoredCRDs(t *testing.T) {
	cfg := trellistest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ext := apiextensionsclient.NewForConfigOrDie(cfg)
	reg := resource.NewRegistry()
	c := apiextensions.NewController(ext, dynamic.NewForConfigOrDie(cfg), reg)
	go c.Run(ctx)
	<-c.Initialized()

	ghost := gizmoCRD("ghost.example.com")
	ghost.ResourceVersion = "999999"
	c.Observe(ghost)
	stored, err := ext.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, gizmoCRD("real.example.com"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c.Observe(stored)
	real := schema.GroupVersionResource{Group: "real.example.com", Version: "v1", Resource: "gizmos"}
	if err := wait.PollUntilContextTimeout(ctx, time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		_, ok := reg.Lookup(real)
		return ok, nil
	}); err != nil {
		t.Fatalf("the stored CRD handed over is not served: %v", err)
	}
	// The ghost was queued before the real CRD, so its sync is done.
	if _, ok := reg.Lookup(schema.GroupVersionResource{Group: "ghost.example.com", Version: "v1", Resource: "gizmos"}); ok {
		t.Fatal("a CRD the store does not hold is served")
	}
}
