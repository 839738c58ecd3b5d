package apiextensions

import (
	"reflect"
	"slices"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// speculation is the compilation of a CRD's schemas started while the
// API validated the CRD.
type speculation struct {
	name string
	// versions are the CRD's version schemas, in order.
	versions []*apiextensionsv1.CustomResourceValidation
	done     chan struct{}
	schemas  crdSchemas // set, compiled, when done closes; nil on failure
}

// speculationLifetime is how long compiled schemas wait for the
// registration of their CRD (which fails validation, or is not stored,
// or is registered from another copy) before they are released.
var speculationLifetime = 10 * time.Second

// Validating is handed each CRD the API is about to validate for a create
// or an update (see resource.Descriptor.Validating). A new or changed CRD
// has its schemas compiled beside its validation and storage, which take
// as long: the CRD is then served as soon as it is stored. The
// registration takes the result if it registers this object (or an
// equal copy).
func (c *Controller) Validating(obj runtime.Object) {
	crd, ok := obj.(*apiextensionsv1.CustomResourceDefinition)
	if !ok || !hasSchemas(crd) {
		return
	}
	c.mu.Lock()
	_, registered := c.registrations[crd.Name]
	unchanged := registered && c.registeredGen[crd.Name] == crd.Generation
	c.mu.Unlock()
	if unchanged {
		return
	}
	sp := &speculation{done: make(chan struct{})}
	for _, v := range crd.Spec.Versions {
		sp.versions = append(sp.versions, v.Schema)
	}
	sp.name = crd.Name
	c.specMu.Lock()
	c.speculative[crd.Name] = append(c.speculative[crd.Name], sp)
	c.specMu.Unlock()
	// Only the spec is read, which neither the API nor a sync modifies.
	go func() {
		defer close(sp.done)
		schemas, err := newCRDSchemas(c.pool, crd)
		if err == nil {
			err = schemas.compile()
		}
		if err == nil {
			sp.schemas = schemas
		}
	}()
	time.AfterFunc(speculationLifetime, func() {
		if c.dropSpeculation(sp) {
			<-sp.done
			sp.schemas.release()
		}
	})
}

// takeSpeculation returns the schemas compiled for crd's version schemas
// while it was validated, waiting for them if need be; nil if there are
// none (or they failed: registration then reports why). The registration
// usually has the validated object itself; when the informer delivered
// the CRD first, its schemas are equal copies.
func (c *Controller) takeSpeculation(crd *apiextensionsv1.CustomResourceDefinition) crdSchemas {
	c.specMu.Lock()
	candidates := slices.Clone(c.speculative[crd.Name])
	c.specMu.Unlock()
	for i := len(candidates) - 1; i >= 0; i-- { // newest first
		sp := candidates[i]
		if !sameSchemas(sp.versions, crd.Spec.Versions) || !c.dropSpeculation(sp) {
			continue
		}
		<-sp.done
		return sp.schemas
	}
	return nil
}

// sameSchemas reports whether versions have the schemas compiled.
func sameSchemas(compiled []*apiextensionsv1.CustomResourceValidation, versions []apiextensionsv1.CustomResourceDefinitionVersion) bool {
	if len(compiled) != len(versions) {
		return false
	}
	for i, v := range versions {
		if compiled[i] != v.Schema && !reflect.DeepEqual(compiled[i], v.Schema) {
			return false
		}
	}
	return true
}

// dropSpeculation forgets sp; false if it was forgotten already.
func (c *Controller) dropSpeculation(sp *speculation) bool {
	c.specMu.Lock()
	defer c.specMu.Unlock()
	list := c.speculative[sp.name]
	i := slices.Index(list, sp)
	if i < 0 {
		return false
	}
	if list = slices.Delete(list, i, i+1); len(list) == 0 {
		delete(c.speculative, sp.name)
	} else {
		c.speculative[sp.name] = list
	}
	return true
}
