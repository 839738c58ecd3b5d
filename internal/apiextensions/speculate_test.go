package apiextensions

import (
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"

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
	if c.takeSpeculation(other) != nil {
		t.Fatal("a CRD with other schemas took the compiled schemas")
	}
	// An equal copy (the informer's) takes them.
	got := c.takeSpeculation(schemaCRD())
	if got == nil || got["v1"] != got["v2"] || !got["v1"].parts.Built() {
		t.Fatalf("took %v; want one compiled schema for both versions", got)
	}
	if c.takeSpeculation(crd) != nil {
		t.Fatal("compiled schemas were taken twice")
	}
	if s := pool.Stats(); s.Builds != 1 || s.Used == 0 {
		t.Fatalf("pool %+v; want one build, held", s)
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
