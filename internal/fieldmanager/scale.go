package fieldmanager

import (
	"fmt"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"

	"github.com/trellis-project/trellis/internal/resource"
)

// ScaleGVK is the kind of every /scale subresource.
var ScaleGVK = autoscalingv1.SchemeGroupVersion.WithKind("Scale")

// ScaleStrategy is implemented by the strategies of kinds that serve a
// /scale subresource.
type ScaleStrategy interface {
	// ReplicasPaths returns, per group/version of the kind, the field a
	// Scale's spec.replicas is written to: upstream's
	// managedfields.ResourcePathMappings. A version without /scale maps
	// to nil; a version missing from the map is unknown, and managed
	// fields entries of it are dropped by a write to /scale, as upstream
	// drops them.
	ReplicasPaths() managedfields.ResourcePathMappings
}

// ScaleManager records writes to the /scale subresource of one
// descriptor as kube-apiserver does. Its field manager runs on the
// autoscaling/v1 Scale, never on the parent object: before the write the
// parent's entries that own the replicas field become Scale entries
// (ScaleEntries), and afterwards the Scale's entries go back onto the
// parent's replicas field (ParentEntries), with managedfields.ScaleHandler
// doing both mappings. Entries of a /scale write carry subresource
// "scale" and the parent's apiVersion.
type ScaleManager struct {
	m        *Manager
	parentGV schema.GroupVersion
	paths    managedfields.ResourcePathMappings
}

// Scale returns the manager of writes to d's /scale subresource. It fails
// if d's strategy does not say where its replicas are.
func (c *Cache) Scale(d *resource.Descriptor) (*ScaleManager, error) {
	s, ok := d.Strategy.(ScaleStrategy)
	if !ok {
		return nil, fmt.Errorf("%v has no replicas paths for /scale", d.GroupVersionKind())
	}
	m, err := c.For(d, "scale")
	if err != nil {
		return nil, err
	}
	return &ScaleManager{m: m, parentGV: schema.GroupVersion{Group: d.Group, Version: d.Version}, paths: s.ReplicasPaths()}, nil
}

// ScaleEntries returns the managed fields of the Scale of an object whose
// managed fields are parent: the entries that own the replicas field, as
// owners of spec.replicas.
func (s *ScaleManager) ScaleEntries(parent []metav1.ManagedFieldsEntry) ([]metav1.ManagedFieldsEntry, error) {
	return managedfields.NewScaleHandler(parent, s.parentGV, s.paths).ToSubresource()
}

// ParentEntries returns the managed fields of the parent object after a
// write to its Scale: parent are its entries before the write, scale the
// written Scale's. Managers that no longer own spec.replicas lose the
// replicas field, a manager that gained it gets an entry for it.
func (s *ScaleManager) ParentEntries(parent, scale []metav1.ManagedFieldsEntry) ([]metav1.ManagedFieldsEntry, error) {
	return managedfields.NewScaleHandler(parent, s.parentGV, s.paths).ToParent(scale)
}

// Update records an Update operation by manager on the Scale: obj, about
// to be written over live, gets its new managed fields in place. As
// Manager.Record, a failure leaves obj with live's entries and is logged.
func (s *ScaleManager) Update(live, obj *autoscalingv1.Scale, manager string) {
	s.m.Record(live, obj, manager)
}

// Apply applies patch, an apply configuration of a Scale sent by manager,
// to live (a Scale with ScaleEntries): an Apply operation, with
// Manager.Apply's conflicts and errors. It returns the merged Scale with
// its new managed fields.
func (s *ScaleManager) Apply(live *autoscalingv1.Scale, patch runtime.Object, manager string, force bool) (*autoscalingv1.Scale, error) {
	out, err := s.m.Apply(live, patch, manager, force)
	if err != nil {
		return nil, err
	}
	sc, ok := out.(*autoscalingv1.Scale)
	if !ok {
		return nil, fmt.Errorf("apply to a Scale returned %T", out)
	}
	return sc, nil
}
