package apiextensions

import (
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// speculation is the compilation of a CRD's schemas started while the
// API validated the CRD.
type speculation struct {
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
// registration takes the result if it registers this very object.
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
	c.specMu.Lock()
	for _, v := range sp.versions {
		c.speculative[v] = sp
	}
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
// none (or they failed: registration then reports why).
func (c *Controller) takeSpeculation(crd *apiextensionsv1.CustomResourceDefinition) crdSchemas {
	if len(crd.Spec.Versions) == 0 {
		return nil
	}
	c.specMu.Lock()
	sp := c.speculative[crd.Spec.Versions[0].Schema]
	c.specMu.Unlock()
	if sp == nil || len(sp.versions) != len(crd.Spec.Versions) {
		return nil
	}
	for i, v := range crd.Spec.Versions {
		if sp.versions[i] != v.Schema {
			return nil
		}
	}
	if !c.dropSpeculation(sp) {
		return nil // taken by another registration, or expired
	}
	<-sp.done
	return sp.schemas
}

// dropSpeculation forgets sp; false if it was forgotten already.
func (c *Controller) dropSpeculation(sp *speculation) bool {
	c.specMu.Lock()
	defer c.specMu.Unlock()
	found := false
	for _, v := range sp.versions {
		if c.speculative[v] == sp {
			delete(c.speculative, v)
			found = true
		}
	}
	return found
}
