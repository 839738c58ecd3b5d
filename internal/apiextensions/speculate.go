package apiextensions

import (
	"fmt"
	"reflect"
	"slices"
	"sync/atomic"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/trellis-project/trellis/internal/fieldmanager"
)

// speculation is the compilation of a CRD's schemas started while the
// API validated the CRD.
type speculation struct {
	name string
	// versions are the CRD's version schemas, in order.
	versions []*apiextensionsv1.CustomResourceValidation
	done     chan struct{}
	schemas  crdSchemas // set, compiled, when done closes; nil on failure
	// kind is the type information built from schemas (it may still be
	// building when done closes), for a registration with the same
	// kindKey; conv is bound to that registration's converter.
	kind    *fieldmanager.CustomKind
	kindKey string
	conv    *boundConverter
	// expiry releases the speculation if nobody takes it in time.
	expiry *time.Timer
}

// kindKey is what a CRD's type information depends on besides its
// schemas.
func kindKey(crd *apiextensionsv1.CustomResourceDefinition) string {
	var versions []string
	for _, v := range crd.Spec.Versions {
		versions = append(versions, v.Name)
	}
	return fmt.Sprint(crd.Spec.Group, "/", crd.Spec.Names.Kind, "/", crd.Spec.PreserveUnknownFields, "/", versions)
}

// boundConverter is the converter of type information built before its
// CRD's registration: the registration binds its own.
type boundConverter struct{ conv atomic.Pointer[converter] }

func (b *boundConverter) bind(c converter) { b.conv.Store(&c) }

func (b *boundConverter) convert(objs []*unstructured.Unstructured, to schema.GroupVersion, batch bool) ([]*unstructured.Unstructured, error) {
	c := b.conv.Load()
	if c == nil {
		return nil, fmt.Errorf("no conversion to %s before the CRD is registered", to)
	}
	return (*c).convert(objs, to, batch)
}

// speculated is what a registration takes from a speculation.
type speculated struct {
	schemas crdSchemas
	kind    *fieldmanager.CustomKind
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
	sp.expiry = time.AfterFunc(speculationLifetime, func() {
		if c.dropSpeculation(sp) {
			<-sp.done
			sp.release()
		}
	})
	c.specMu.Unlock()
	// Only the spec is read, which neither the API nor a sync modifies.
	go func() {
		schemas, err := newCRDSchemas(c.pool, crd)
		if err == nil {
			err = schemas.compile()
		}
		if err != nil {
			close(sp.done)
			return
		}
		sp.schemas = schemas
		// The type information (for managed fields) is built next, on
		// this core, while the API still validates and stores the CRD;
		// otherwise it is built as the CRD is registered, competing with
		// the client reading the answer.
		sp.conv = &boundConverter{}
		sp.kind, sp.kindKey = newCustomKind(crd, sp.conv, schemas, c.pool), kindKey(crd)
		close(sp.done)
		if c.fieldTypes != nil {
			sp.kind.Warm(c.fieldTypes)
		}
	}()
}

func (sp *speculation) release() {
	sp.schemas.release()
	if sp.kind != nil {
		sp.kind.Release()
	}
}

// takeSpeculation returns the schemas compiled for crd's version schemas
// while it was validated, waiting for them if need be, and the type
// information built from them if crd's kindKey is the same (its
// conversions then go through conv); nothing if there are none (or they
// failed: registration then reports why). The registration usually has
// the validated object itself; when the informer delivered the CRD first,
// its schemas are equal copies.
func (c *Controller) takeSpeculation(crd *apiextensionsv1.CustomResourceDefinition, conv converter) speculated {
	c.specMu.Lock()
	candidates := slices.Clone(c.speculative[crd.Name])
	c.specMu.Unlock()
	for i := len(candidates) - 1; i >= 0; i-- { // newest first
		sp := candidates[i]
		if !sameSchemas(sp.versions, crd.Spec.Versions) || !c.dropSpeculation(sp) {
			continue
		}
		// The expiry timer would keep the validated CRD's schemas alive
		// for its whole lifetime.
		sp.expiry.Stop()
		<-sp.done
		if sp.kind != nil && sp.kindKey != kindKey(crd) {
			sp.kind.Release()
			sp.kind = nil
		}
		if sp.kind != nil {
			sp.conv.bind(conv)
		}
		return speculated{schemas: sp.schemas, kind: sp.kind}
	}
	return speculated{}
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
