// Package resource describes the resources the API server serves. A
// resource is data: the generic handler reads a Descriptor and never
// switches on kind. Built-in kinds register descriptors at start-up; the
// CRD controller will register and remove them at run time.
package resource

import (
	"context"
	"sort"
	"sync"
	"sync/atomic"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Descriptor is everything the generic handler needs to serve one
// resource in one group-version.
type Descriptor struct {
	Group, Version     string
	Kind, ListKind     string
	Resource, Singular string
	ShortNames         []string
	Categories         []string
	Namespaced         bool
	// Verbs served on the main resource, in discovery order.
	Verbs []string

	// StoragePrefix is the store key prefix ("/registry/configmaps/");
	// objects live at prefix + [namespace + "/"] + name. Two descriptors
	// may share a prefix when they are versions of one resource (core/v1
	// and events.k8s.io/v1 Events).
	StoragePrefix string
	// StorageVersion is the group-version objects are encoded in at rest.
	StorageVersion schema.GroupVersion

	// Subresources lists the served subresources ("status", "finalize").
	Subresources []string
	// Creaters are subresources that take and answer a kind of their own
	// on create (serviceaccounts/token); see SubresourceCreater.
	Creaters map[string]*SubresourceCreater

	// ReturnDeletedObject makes DELETE answer with the deleted object
	// instead of a success Status, as kube-apiserver does for some kinds.
	ReturnDeletedObject bool
	// AllowCreateOnUpdate lets PUT create a missing object.
	AllowCreateOnUpdate bool

	// DeprecationWarning, if set, is sent as a Warning header with every
	// request to this version (deprecated CRD versions).
	DeprecationWarning string

	// Strategy holds the kind-specific rules.
	Strategy Strategy

	// WriteGuard, if set, may refuse a create or update that passed
	// authorization for what the object itself grants (RBAC escalation
	// prevention). Nil for most resources.
	WriteGuard WriteGuard

	// Written, if set, is handed each object a create or update has just
	// stored and answered (not dry runs, nor creates left waiting for
	// initializers), with its resourceVersion: an in-process controller
	// learns of it before its watch delivers it. The callee must not
	// modify the object (see KeepWritten).
	Written func(obj runtime.Object)

	// KeepWritten has the handler keep the objects it last wrote, decoded,
	// for an update that follows (the CRD controller's status write after
	// each change of a CRD): decoding a large object costs milliseconds.
	// Kept objects are shared and read-only.
	KeepWritten bool

	// Validating, if set, is handed each object a create or an update of
	// the main resource is about to validate (after mutating admission;
	// not dry runs), so that an in-process controller can start work the
	// write will need while it is validated and stored. The object may
	// still be refused; the callee must only read it.
	Validating func(obj runtime.Object)
}

// WriteGuard checks a create or update after decoding and defaulting,
// before validation and storage. obj and old are of the served version;
// old is nil on create. A non-nil error is the API status to answer with.
type WriteGuard interface {
	GuardWrite(ctx context.Context, obj, old runtime.Object) error
}

// Stored reports whether objects of d are kept in the store. Review
// resources (SubjectAccessReview, TokenReview, ...) are not: a create
// evaluates the object and answers.
func (d *Descriptor) Stored() bool { return d.StoragePrefix != "" }

// GroupVersion of the descriptor.
func (d *Descriptor) GroupVersion() schema.GroupVersion {
	return schema.GroupVersion{Group: d.Group, Version: d.Version}
}

// GroupVersionKind of the served objects.
func (d *Descriptor) GroupVersionKind() schema.GroupVersionKind {
	return d.GroupVersion().WithKind(d.Kind)
}

// GroupResource names the resource in error messages ("configmaps",
// "leases.coordination.k8s.io").
func (d *Descriptor) GroupResource() schema.GroupResource {
	return schema.GroupResource{Group: d.Group, Resource: d.Resource}
}

// HasSubresource reports whether sub is served.
func (d *Descriptor) HasSubresource(sub string) bool {
	for _, s := range d.Subresources {
		if s == sub {
			return true
		}
	}
	return d.Creaters[sub] != nil
}

// Key is the store key of an object.
func (d *Descriptor) Key(namespace, name string) string {
	if d.Namespaced {
		return d.StoragePrefix + namespace + "/" + name
	}
	return d.StoragePrefix + name
}

// ListPrefix is the store prefix of every object in namespace ("" for all).
func (d *Descriptor) ListPrefix(namespace string) string {
	if d.Namespaced && namespace != "" {
		return d.StoragePrefix + namespace + "/"
	}
	return d.StoragePrefix
}

// Strategy holds what differs between kinds. Objects passed in are of the
// descriptor's served version; implementations convert as they need.
type Strategy interface {
	// New returns an empty object of the served version.
	New() runtime.Object
	// NewList returns an empty list of the served version.
	NewList() runtime.Object

	// Default applies the kind's defaulting.
	Default(obj runtime.Object)
	// PrepareForCreate resets what a client may not set on create (status
	// of kinds with a status subresource, server-assigned fields).
	PrepareForCreate(ctx context.Context, obj runtime.Object)
	// PrepareForUpdate does the same on update, copying from old what a
	// write to the main resource (or to sub) must not change.
	PrepareForUpdate(ctx context.Context, obj, old runtime.Object, sub string)
	// Validate and ValidateUpdate return the kind's validation errors,
	// including object metadata rules.
	Validate(ctx context.Context, obj runtime.Object) field.ErrorList
	ValidateUpdate(ctx context.Context, obj, old runtime.Object, sub string) field.ErrorList
	// SpecChanged reports whether generation must be bumped.
	SpecChanged(obj, old runtime.Object) bool

	// ToStorage converts obj to the storage version; FromStorage converts a
	// decoded stored object to the served version.
	ToStorage(obj runtime.Object) (runtime.Object, error)
	FromStorage(obj runtime.Object) (runtime.Object, error)

	// Fields returns the values field selectors may match on.
	Fields(obj runtime.Object) fields.Set
	// Table renders objects for `kubectl get`.
	Table(ctx context.Context, obj runtime.Object, opts *metav1.TableOptions) (*metav1.Table, error)
}

// Registry holds the served descriptors. Readers get consistent snapshots;
// every change bumps Generation so discovery documents can be cached.
type Registry struct {
	mu         sync.RWMutex
	byGVR      map[schema.GroupVersionResource]*Descriptor
	generation atomic.Int64
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{byGVR: map[schema.GroupVersionResource]*Descriptor{}}
}

// Add registers (or replaces) a descriptor.
func (r *Registry) Add(d *Descriptor) {
	r.mu.Lock()
	r.byGVR[schema.GroupVersionResource{Group: d.Group, Version: d.Version, Resource: d.Resource}] = d
	r.mu.Unlock()
	r.generation.Add(1)
}

// Remove unregisters a resource version.
func (r *Registry) Remove(gvr schema.GroupVersionResource) {
	r.mu.Lock()
	delete(r.byGVR, gvr)
	r.mu.Unlock()
	r.generation.Add(1)
}

// Lookup finds the descriptor serving gvr.
func (r *Registry) Lookup(gvr schema.GroupVersionResource) (*Descriptor, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	d, ok := r.byGVR[gvr]
	return d, ok
}

// Generation changes whenever the set of descriptors changes.
func (r *Registry) Generation() int64 { return r.generation.Load() }

// All returns every descriptor sorted by group, version and resource.
func (r *Registry) All() []*Descriptor {
	r.mu.RLock()
	out := make([]*Descriptor, 0, len(r.byGVR))
	for _, d := range r.byGVR {
		out = append(out, d)
	}
	r.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Group != b.Group {
			return a.Group < b.Group
		}
		if a.Version != b.Version {
			return a.Version < b.Version
		}
		return a.Resource < b.Resource
	})
	return out
}

// GroupVersionServed reports whether any resource is served in gv.
func (r *Registry) GroupVersionServed(gv schema.GroupVersion) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for gvr := range r.byGVR {
		if gvr.Group == gv.Group && gvr.Version == gv.Version {
			return true
		}
	}
	return false
}

// StandardVerbs are served by every storage-backed resource.
var StandardVerbs = []string{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}

// Equivalents returns the descriptors that store the same objects as d
// (every served version of its resource, d included), in group, version
// order.
func (r *Registry) Equivalents(d *Descriptor) []*Descriptor {
	r.mu.RLock()
	var out []*Descriptor
	for _, o := range r.byGVR {
		if o.StoragePrefix == d.StoragePrefix {
			out = append(out, o)
		}
	}
	r.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Group != out[j].Group {
			return out[i].Group < out[j].Group
		}
		return out[i].Version < out[j].Version
	})
	return out
}
