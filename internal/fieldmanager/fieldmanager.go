// Package fieldmanager records who changed which fields of an object in
// metadata.managedFields, as kube-apiserver does. The merge and ownership
// rules are upstream's libraries (k8s.io/apimachinery's managedfields over
// sigs.k8s.io/structured-merge-diff); this package supplies what they need
// for each resource: type information (upstream's generated OpenAPI
// definitions for built-in kinds, the structural schema for custom
// resources), an object converter, defaulter and creater, and the fields a
// write discards.
//
// One Manager serves one descriptor and subresource. Managers are built on
// first use and cached; a descriptor the registry has replaced (a changed
// CRD) gets a new one, and the old one is dropped.
//
// Writes are Update operations (Manager.Update), server-side apply patches
// Apply operations (Manager.Apply); both run upstream's FieldManager.
package fieldmanager

import (
	"fmt"
	"log"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"

	"github.com/trellis-project/trellis/internal/resource"
)

// ResetFieldsStrategy is implemented by strategies whose writes discard
// some of what a client sends (a write to the main resource keeps the old
// status, a write to /status keeps the old spec). The field manager must
// not credit the writer with those fields. It is upstream's
// rest.ResetFieldsStrategy, per subresource.
type ResetFieldsStrategy interface {
	// ResetFields returns, per API version, the fields a write to
	// subresource ("" for the main resource) resets; nil if none.
	ResetFields(subresource string) map[fieldpath.APIVersion]*fieldpath.Set
}

// CustomStrategy is implemented by the Strategy of custom resources, whose
// objects are unstructured and described by their CRD's schemas.
type CustomStrategy interface {
	// CustomKind returns the type information of every version of the
	// CRD. The descriptors of one CRD return the same *CustomKind.
	CustomKind() *CustomKind
}

// Manager records the managed fields of writes to one resource.
type Manager struct {
	fm *managedfields.FieldManager
	// served converts what fm.Apply returns to the served version (for
	// built-in kinds it returns the internal version, fm's hub).
	served func(runtime.Object) (runtime.Object, error)
}

// Apply applies patch, an apply configuration sent by manager, to live:
// an Apply operation. It returns the merged object, of the served
// version, with its new metadata.managedFields; live is only read (an
// empty object when the apply creates). Fields owned by other managers
// that patch sets to other values are conflicts, a 409 StatusError with
// one cause per field, unless force takes them over. A patch of the wrong
// apiVersion or with managedFields is a 400; other failures are upstream's
// plain errors (kube-apiserver answers them with 500).
func (m *Manager) Apply(live, patch runtime.Object, manager string, force bool) (runtime.Object, error) {
	out, err := m.fm.Apply(live, patch, manager, force)
	if err != nil {
		return nil, err
	}
	if m.served == nil {
		return out, nil
	}
	return m.served(out)
}

// Update records an Update operation by manager: obj, about to be written
// over live (an empty object on create), gets the new
// metadata.managedFields in place. Both objects are of the descriptor's
// served version, and live is only read.
//
// As in kube-apiserver: managed fields the client put in obj replace
// live's, except on a subresource, and an empty list (or one empty entry)
// strips them, after which updates do not track the object again (only
// server-side apply would). The manager's entry (one per manager,
// operation, apiVersion and subresource) gains the fields this write set
// or changed, other entries lose them, and its time changes only when it
// gains something.
//
// On error obj keeps live's managed fields, which is what kube-apiserver
// stores when the update of managed fields fails.
func (m *Manager) Update(live, obj runtime.Object, manager string) error {
	out, err := m.fm.Update(live, obj, manager)
	if err == nil && out != obj {
		err = copyManagedFields(out, obj)
	}
	if err != nil {
		if cerr := copyManagedFields(live, obj); cerr != nil {
			return cerr
		}
		return fmt.Errorf("update managed fields of %v: %w", obj.GetObjectKind().GroupVersionKind(), err)
	}
	return nil
}

func copyManagedFields(from, to runtime.Object) error {
	f, err := meta.Accessor(from)
	if err != nil {
		return err
	}
	t, err := meta.Accessor(to)
	if err != nil {
		return err
	}
	t.SetManagedFields(f.GetManagedFields())
	return nil
}

// Record is Update for the request path, where a failure must not fail
// the write: obj then keeps live's managed fields, as in kube-apiserver,
// and the error is logged (at most once a second).
func (m *Manager) Record(live, obj runtime.Object, manager string) {
	if err := m.Update(live, obj, manager); err != nil {
		logRateLimited(err)
	}
}

var lastLog atomic.Int64 // unix nanoseconds of the last logged failure

func logRateLimited(err error) {
	now := time.Now().UnixNano()
	last := lastLog.Load()
	if now-last < int64(time.Second) || !lastLog.CompareAndSwap(last, now) {
		return
	}
	log.Printf("fieldmanager: %v", err)
}

// Cache hands out the Manager of each descriptor and subresource, building
// it on first use.
type Cache struct {
	builtin *BuiltinTypes
	reg     *resource.Registry

	mu       sync.RWMutex
	managers map[managerKey]*cached
	// swept is the registry generation the cache last dropped replaced
	// descriptors at.
	swept atomic.Int64
}

type managerKey struct {
	d   *resource.Descriptor
	sub string
}

// cached is a built manager, or why there is none.
type cached struct {
	m   *Manager
	err error
}

// NewCache returns a cache that describes built-in kinds with builtin.
// Managers of descriptors no longer in reg are dropped when reg changes;
// reg may be nil when descriptors never change.
func NewCache(builtin *BuiltinTypes, reg *resource.Registry) *Cache {
	c := &Cache{builtin: builtin, reg: reg, managers: map[managerKey]*cached{}}
	c.swept.Store(-1)
	return c
}

// For returns the Manager of writes to subresource ("" for the main
// resource) of d. It fails if there is no type information for d's kind;
// the failure is remembered like a manager.
func (c *Cache) For(d *resource.Descriptor, subresource string) (*Manager, error) {
	c.sweep()
	k := managerKey{d: d, sub: subresource}
	c.mu.RLock()
	e := c.managers[k]
	c.mu.RUnlock()
	if e != nil {
		return e.m, e.err
	}
	// Built outside the lock: the costly parts (type converters) are
	// built once behind their own sync.Once, the rest is cheap.
	m, err := c.build(d, subresource)
	e = &cached{m: m, err: err}
	if !c.current(d) {
		// A request that started before its CRD changed: serve it, but do
		// not keep a manager nobody will ask for again.
		return m, err
	}
	c.mu.Lock()
	if prev := c.managers[k]; prev != nil {
		e = prev
	} else {
		c.managers[k] = e
		if err != nil {
			log.Printf("fieldmanager: no managed fields for %s: %v", d.GroupVersionKind(), err)
		}
	}
	c.mu.Unlock()
	return e.m, e.err
}

// Record records an Update operation by manager on writes to subresource
// of d (see Manager.Update). Where there is no manager for d, obj keeps
// live's managed fields.
func (c *Cache) Record(d *resource.Descriptor, subresource string, live, obj runtime.Object, manager string) {
	m, err := c.For(d, subresource)
	if err != nil {
		if err := copyManagedFields(live, obj); err != nil {
			logRateLimited(err)
		}
		return
	}
	m.Record(live, obj, manager)
}

// Apply applies patch by manager to live on writes to subresource of d
// (see Manager.Apply). It fails where there is no manager for d.
func (c *Cache) Apply(d *resource.Descriptor, subresource string, live, patch runtime.Object, manager string, force bool) (runtime.Object, error) {
	m, err := c.For(d, subresource)
	if err != nil {
		return nil, err
	}
	return m.Apply(live, patch, manager, force)
}

// current reports whether d is the descriptor the registry serves.
func (c *Cache) current(d *resource.Descriptor) bool {
	if c.reg == nil {
		return true
	}
	cur, ok := c.reg.Lookup(schema.GroupVersionResource{Group: d.Group, Version: d.Version, Resource: d.Resource})
	return ok && cur == d
}

// sweep drops the managers of replaced or removed descriptors once per
// registry change.
func (c *Cache) sweep() {
	if c.reg == nil {
		return
	}
	gen := c.reg.Generation()
	if c.swept.Load() == gen {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.managers {
		if !c.current(k.d) {
			delete(c.managers, k)
		}
	}
	c.swept.Store(gen)
}

func (c *Cache) build(d *resource.Descriptor, sub string) (*Manager, error) {
	if sub == "scale" {
		// Every /scale writes an autoscaling/v1 Scale, whatever d's kind;
		// ScaleManager maps the entries to and from d's.
		return c.buildBuiltin(ScaleGVK, sub, nil)
	}
	var reset map[fieldpath.APIVersion]fieldpath.Filter
	if r, ok := d.Strategy.(ResetFieldsStrategy); ok {
		if sets := r.ResetFields(sub); len(sets) > 0 {
			reset = fieldpath.NewExcludeFilterSetMap(sets)
		}
	}
	gvk := d.GroupVersionKind()
	if cs, ok := d.Strategy.(CustomStrategy); ok {
		kind := cs.CustomKind()
		tc, err := kind.typeConverter(c.builtin)
		if err != nil {
			return nil, err
		}
		// The hub is the served version, as upstream's for custom resources.
		fm, err := managedfields.NewDefaultCRDFieldManager(tc, kind.converter(), strategyDefaulter{d.Strategy},
			unstructuredCreater{}, gvk, gvk.GroupVersion(), sub, reset)
		if err != nil {
			return nil, err
		}
		return &Manager{fm: fm}, nil
	}
	return c.buildBuiltin(gvk, sub, reset)
}

// buildBuiltin builds the manager of a built-in kind.
func (c *Cache) buildBuiltin(gvk schema.GroupVersionKind, sub string, reset map[fieldpath.APIVersion]fieldpath.Filter) (*Manager, error) {
	if c.builtin == nil {
		return nil, fmt.Errorf("no type information for %v", gvk)
	}
	tc, err := c.builtin.typeConverter(gvk)
	if err != nil {
		return nil, err
	}
	s := c.builtin.scheme
	// Built-in kinds convert between versions through the internal
	// version, as upstream's hub.
	hub := schema.GroupVersion{Group: gvk.Group, Version: runtime.APIVersionInternal}
	fm, err := managedfields.NewDefaultFieldManager(tc, runtime.UnsafeObjectConvertor(s), s, s, gvk, hub, sub, reset)
	if err != nil {
		return nil, err
	}
	served := func(obj runtime.Object) (runtime.Object, error) {
		return s.ConvertToVersion(obj, gvk.GroupVersion())
	}
	return &Manager{fm: fm, served: served}, nil
}

// TypeConverter returns the structured-merge-diff type information of d's
// kind (what a MutatingAdmissionPolicy's apply configurations are merged
// with).
func (c *Cache) TypeConverter(d *resource.Descriptor) (managedfields.TypeConverter, error) {
	if cs, ok := d.Strategy.(CustomStrategy); ok {
		return cs.CustomKind().typeConverter(c.builtin)
	}
	if c.builtin == nil {
		return nil, fmt.Errorf("no type information for %v", d.GroupVersionKind())
	}
	return c.builtin.typeConverter(d.GroupVersionKind())
}
