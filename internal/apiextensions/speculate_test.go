package apiextensions

import (
	"runtime"
	"testing"
	"time"
	"weak"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/trellis-project/trellis/internal/budget"
)

func speculationController(pool *budget.Pool) *Controller {
	return &Controller{pool: pool, registrations: map[string]*registration{}, registeredGen: map[string]int64{},
		speculative: map[string][]*speculation{}}
}

func schemaCRD() *apiextensionsv1.CustomResourceDefinition {
	s := &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{Type: "object",
		Properties: map[string]apiextensionsv1.JSONSchemaProps{"spec": {Type: "object", XValidations: apiextensionsv1.ValidationRules{{Rule: "has(self.a)"}},
			Properties: map[string]apiextensionsv1.JSONSchemaProps{"a": {Type: "string"}}}}}}
	crd := &apiextensionsv1.CustomResourceDefinition{Spec: apiextensionsv1.CustomResourceDefinitionSpec{Group: "example.com",
		Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "things", Kind: "Thing"}, Scope: apiextensionsv1.NamespaceScoped,
		Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{Name: "v1", Served: true, Storage: true, Schema: s},
			{Name: "v2", Served: true, Schema: s.DeepCopy()}}}}
	crd.Name = "things.example.com"
	return crd
}

// Schemas compiled for a CRD being validated go to its registration, once,
// and only for a CRD with those schemas.
func TestSpeculationTaken(t *testing.T) {
	pool := budget.NewPool(64 << 20)
	c := speculationController(pool)
	crd := schemaCRD()
	c.Validating(crd)
	other := schemaCRD()
	other.Spec.Versions[1].Schema.OpenAPIV3Schema.Description = "changed"
	if c.takeSpeculation(other, noneConverter{}).schemas != nil {
		t.Fatal("a CRD with other schemas took the compiled schemas")
	}
	// An equal copy (the informer's) takes them, with the type
	// information built from them.
	got := c.takeSpeculation(schemaCRD(), noneConverter{})
	if got.schemas == nil || got.schemas["v1"] != got.schemas["v2"] || !got.schemas["v1"].parts.Built() || got.kind == nil {
		t.Fatalf("took %+v; want one compiled schema for both versions, and the type information", got)
	}
	if c.takeSpeculation(crd, noneConverter{}).schemas != nil {
		t.Fatal("compiled schemas were taken twice")
	}
	if s := pool.Stats(); s.Builds != 1 || s.Used == 0 {
		t.Fatalf("pool %+v; want one build, held", s)
	}
}

// The type information built with the schemas is only taken by a CRD of
// the same group, kind and versions; another gets the schemas alone.
func TestSpeculatedKindNeedsTheSameNames(t *testing.T) {
	c := speculationController(budget.NewPool(64 << 20))
	c.Validating(schemaCRD())
	renamed := schemaCRD()
	renamed.Spec.Names.Kind = "Other"
	if got := c.takeSpeculation(renamed, noneConverter{}); got.schemas == nil || got.kind != nil {
		t.Fatalf("took %+v; want the schemas without the type information", got)
	}
}

// The speculated type information converts through the converter of the
// registration that took it.
func TestSpeculatedKindConvertsThroughTheRegistration(t *testing.T) {
	c := speculationController(budget.NewPool(64 << 20))
	c.Validating(schemaCRD())
	<-c.speculative["things.example.com"][0].done
	sp := c.speculative["things.example.com"][0]
	u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "example.com/v1", "kind": "Thing"}}
	if _, err := sp.conv.convert([]*unstructured.Unstructured{u}, schema.GroupVersion{Group: "example.com", Version: "v2"}, false); err == nil {
		t.Fatal("converted before a registration took it")
	}
	if got := c.takeSpeculation(schemaCRD(), noneConverter{}); got.kind == nil {
		t.Fatal("no type information taken")
	}
	out, err := sp.conv.convert([]*unstructured.Unstructured{u}, schema.GroupVersion{Group: "example.com", Version: "v2"}, false)
	if err != nil || out[0].GetAPIVersion() != "example.com/v2" {
		t.Fatalf("converted to %v, %v", out, err)
	}
}

// Compiled schemas nobody takes (the CRD was refused) leave the pool.
func TestSpeculationExpires(t *testing.T) {
	defer func(d time.Duration) { speculationLifetime = d }(speculationLifetime)
	speculationLifetime = 10 * time.Millisecond
	pool := budget.NewPool(64 << 20)
	c := speculationController(pool)
	c.Validating(schemaCRD())
	deadline := time.Now().Add(5 * time.Second)
	for {
		s := pool.Stats()
		c.specMu.Lock()
		left := len(c.speculative)
		c.specMu.Unlock()
		if s.Builds == 1 && s.Used == 0 && left == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pool %+v, %d speculations left; want them released", s, left)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A CRD already registered at its generation (a label change) is not
// compiled again.
func TestSpeculationSkipsUnchangedSpec(t *testing.T) {
	pool := budget.NewPool(64 << 20)
	c := speculationController(pool)
	crd := schemaCRD()
	crd.Generation = 3
	c.registrations[crd.Name] = &registration{}
	c.registeredGen[crd.Name] = 3
	c.Validating(crd)
	if len(c.speculative) != 0 {
		t.Fatal("an unchanged spec was compiled")
	}
}

// A taken speculation lets go of the validated CRD: its expiry timer,
// which holds it, stops. (Version v2's schema is an equal copy the
// compiled schemas do not keep.)
func TestTakenSpeculationReleasesTheValidatedCRD(t *testing.T) {
	c := speculationController(budget.NewPool(64 << 20))
	copyOfV2 := func() weak.Pointer[apiextensionsv1.CustomResourceValidation] {
		crd := schemaCRD()
		c.Validating(crd)
		return weak.Make(crd.Spec.Versions[1].Schema)
	}()
	if got := c.takeSpeculation(schemaCRD(), noneConverter{}); got.schemas == nil {
		t.Fatal("nothing taken")
	}
	deadline := time.Now().Add(5 * time.Second)
	for copyOfV2.Value() != nil {
		if time.Now().After(deadline) {
			t.Fatal("the validated CRD's schema is still reachable after its speculation was taken")
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
}
