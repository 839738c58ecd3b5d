package fieldmanager

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sync/atomic"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/kube-openapi/pkg/validation/spec"
	"sigs.k8s.io/structured-merge-diff/v6/typed"

	"github.com/trellis-project/trellis/internal/budget"
	"github.com/trellis-project/trellis/internal/openapi"
	"github.com/trellis-project/trellis/internal/resource"
)

// CustomKind is the type information of a custom resource kind: the
// structural schema of every version of one CustomResourceDefinition, not
// only the served ones, so managed fields recorded through any version
// convert to the others. The descriptors of a CRD's versions share one
// CustomKind. Its type converter is built on the first write and kept in
// the server's schema pool: an idle CRD's is evicted when the pool is full
// and rebuilt on the next write.
type CustomKind struct {
	group, kind           string
	preserveUnknownFields bool
	versions              map[string]bool
	schemas               func() map[string]*spec.Schema
	convert               ConvertFunc
	// builtin supplies ObjectMeta's model; set by the first user.
	builtin atomic.Pointer[BuiltinTypes]
	tc      *budget.Value[managedfields.TypeConverter]
}

// ConvertFunc converts a custom resource to another version of its CRD,
// as the CRD's conversion strategy does (None: only apiVersion changes;
// Webhook: a ConversionReview). It may modify obj.
type ConvertFunc func(obj *unstructured.Unstructured, to schema.GroupVersion) (*unstructured.Unstructured, error)

// NewCustomKind describes kind in group, whose CRD has versions. schemas
// returns, per version name, the version's structural schema in OpenAPI
// v3 form without references (nil for a version without one), the same
// *spec.Schema for versions with the same schema; it is called whenever
// the type converter is built, and the CustomKind owns what it returns. preserveUnknownFields is the CRD's
// spec.preserveUnknownFields. convert turns objects into other versions
// when entries of several versions must be compared; nil means the None
// strategy. pool bounds the memory of type converters (nil: no bound).
func NewCustomKind(group, kind string, preserveUnknownFields bool, versions []string, schemas func() map[string]*spec.Schema, convert ConvertFunc, pool *budget.Pool) *CustomKind {
	k := &CustomKind{group: group, kind: kind, preserveUnknownFields: preserveUnknownFields,
		versions: map[string]bool{}, schemas: schemas, convert: convert}
	for _, v := range versions {
		k.versions[v] = true
	}
	k.tc = budget.NewValue(pool, func() (managedfields.TypeConverter, int64, error) {
		return k.build(k.builtin.Load())
	}, nil)
	return k
}

// bytesPerModelNode estimates the memory of a type converter per schema
// node (property, items, additionalProperties) of the models it holds.
const bytesPerModelNode = 250

// typeConverter returns the converter of every version, with ObjectMeta
// from the built-in definitions. It is built on first use; what it
// returns fetches the current build on every call, so an evicted
// converter is rebuilt rather than kept alive by its users.
func (k *CustomKind) typeConverter(builtin *BuiltinTypes) (managedfields.TypeConverter, error) {
	k.builtin.CompareAndSwap(nil, builtin)
	if _, err := k.tc.Get(); err != nil {
		return nil, err
	}
	return evictableTypeConverter{k.tc}, nil
}

// Warm builds the type converter ahead of the first write, so that write
// does not wait for it.
func (k *CustomKind) Warm(builtin *BuiltinTypes) { _, _ = k.typeConverter(builtin) }

// Release lets the pool forget the kind's type converter, once its CRD
// changed or went away.
func (k *CustomKind) Release() { k.tc.Release() }

func (k *CustomKind) build(builtin *BuiltinTypes) (managedfields.TypeConverter, int64, error) {
	if builtin == nil {
		return nil, 0, fmt.Errorf("no ObjectMeta definition for custom resources")
	}
	meta, err := builtin.metadataModels()
	if err != nil {
		return nil, 0, err
	}
	models := make(map[string]*spec.Schema, len(meta)+4)
	for name, s := range meta {
		models[name] = s
	}
	metaRef := refPrefix + openapi.ModelName(reflect.TypeOf(metav1.ObjectMeta{}))
	nodes := 0
	// Versions with the same schema (the same *spec.Schema from
	// k.schemas) refer to one copy of its top-level properties, named
	// models, so the type converter is built from each distinct schema
	// once rather than once per version.
	shared := map[*spec.Schema]map[string]spec.Schema{}
	for version, s := range k.schemas() {
		gvk := schema.GroupVersionKind{Group: k.group, Version: version, Kind: k.kind}
		name := openapi.CustomModelName(gvk)
		if s == nil {
			models[name] = objectModel(nil, gvk, metaRef)
			continue
		}
		props, ok := shared[s]
		if !ok {
			addEmbeddedObjectFields(s, metaRef)
			props = make(map[string]spec.Schema, len(s.Properties))
			for i, p := range slices.Sorted(maps.Keys(s.Properties)) {
				ps := s.Properties[p]
				ref := fmt.Sprintf("%s.%s.schema%d.property%d", k.group, k.kind, len(shared), i)
				models[ref] = &ps
				props[p] = spec.Schema{SchemaProps: spec.SchemaProps{Ref: spec.MustCreateRef(refPrefix + ref)}}
			}
			shared[s] = props
			nodes += countModelNodes(s)
		}
		root := *s
		root.Properties = maps.Clone(props)
		addObjectFields(&root, metaRef)
		models[name] = withExtension(&root, extensionGVK, []any{map[string]any{"group": gvk.Group, "version": gvk.Version, "kind": gvk.Kind}})
	}
	tc, err := managedfields.NewTypeConverter(models, k.preserveUnknownFields)
	if err != nil {
		return nil, 0, fmt.Errorf("type converter of %s.%s: %w", k.kind, k.group, err)
	}
	return tc, int64(nodes) * bytesPerModelNode, nil
}

func countModelNodes(s *spec.Schema) int {
	if s == nil {
		return 0
	}
	n := 1
	for _, p := range s.Properties {
		n += countModelNodes(&p)
	}
	return n + countModelNodes(itemsOf(s)) + countModelNodes(additionalOf(s))
}

// evictableTypeConverter is a type converter that may be rebuilt between
// calls.
type evictableTypeConverter struct {
	v *budget.Value[managedfields.TypeConverter]
}

func (e evictableTypeConverter) ObjectToTyped(obj runtime.Object, opts ...typed.ValidationOptions) (*typed.TypedValue, error) {
	tc, err := e.v.Get()
	if err != nil {
		return nil, err
	}
	return tc.ObjectToTyped(obj, opts...)
}

func (e evictableTypeConverter) TypedToObject(v *typed.TypedValue) (runtime.Object, error) {
	tc, err := e.v.Get()
	if err != nil {
		return nil, err
	}
	return tc.TypedToObject(v)
}

// objectModel makes a version's schema the model of its objects, as
// kube-apiserver publishes it: apiVersion and kind are strings, metadata
// is ObjectMeta (at the root and in embedded resources), and the model
// names its kind. A version without a schema accepts any object.
func objectModel(s *spec.Schema, gvk schema.GroupVersionKind, metaRef string) *spec.Schema {
	if s == nil {
		s = &spec.Schema{SchemaProps: spec.SchemaProps{Type: []string{"object"}}}
	} else {
		addObjectFields(s, metaRef)
		addEmbeddedObjectFields(s, metaRef)
	}
	return withExtension(s, extensionGVK, []any{map[string]any{"group": gvk.Group, "version": gvk.Version, "kind": gvk.Kind}})
}

func addObjectFields(s *spec.Schema, metaRef string) {
	if s.Properties == nil {
		s.Properties = map[string]spec.Schema{}
	}
	str := spec.Schema{SchemaProps: spec.SchemaProps{Type: []string{"string"}}}
	s.Properties["apiVersion"] = str
	s.Properties["kind"] = str
	s.Properties["metadata"] = spec.Schema{SchemaProps: spec.SchemaProps{Ref: spec.MustCreateRef(metaRef)}}
}

// addEmbeddedObjectFields gives every x-kubernetes-embedded-resource
// below s the object fields.
func addEmbeddedObjectFields(s *spec.Schema, metaRef string) {
	for k, p := range s.Properties {
		addEmbeddedObjectFields(&p, metaRef)
		if embedded, _ := p.Extensions.GetBool("x-kubernetes-embedded-resource"); embedded {
			addObjectFields(&p, metaRef)
		}
		s.Properties[k] = p
	}
	for _, sub := range []*spec.Schema{itemsOf(s), additionalOf(s)} {
		if sub == nil {
			continue
		}
		addEmbeddedObjectFields(sub, metaRef)
		if embedded, _ := sub.Extensions.GetBool("x-kubernetes-embedded-resource"); embedded {
			addObjectFields(sub, metaRef)
		}
	}
}

func itemsOf(s *spec.Schema) *spec.Schema {
	if s.Items == nil {
		return nil
	}
	return s.Items.Schema
}

func additionalOf(s *spec.Schema) *spec.Schema {
	if s.AdditionalProperties == nil {
		return nil
	}
	return s.AdditionalProperties.Schema
}

// converter converts between the kind's versions with the CRD's
// conversion.
func (k *CustomKind) converter() runtime.ObjectConvertor {
	return customConverter{kind: k}
}

type customConverter struct{ kind *CustomKind }

var _ runtime.ObjectConvertor = customConverter{}

// ConvertToVersion leaves in as it is: the field manager converts live
// and written objects, which must not change.
func (c customConverter) ConvertToVersion(in runtime.Object, target runtime.GroupVersioner) (runtime.Object, error) {
	u, ok := in.(*unstructured.Unstructured)
	if !ok {
		return nil, fmt.Errorf("custom resource of type %T", in)
	}
	from := u.GroupVersionKind()
	to, ok := target.KindForGroupVersionKinds([]schema.GroupVersionKind{from})
	if !ok {
		return nil, fmt.Errorf("%v cannot be converted to %v", from, target)
	}
	for _, gvk := range []schema.GroupVersionKind{from, to} {
		if gvk.Group != c.kind.group || !c.kind.versions[gvk.Version] {
			return nil, fmt.Errorf("%v is not a version of %s.%s", gvk.GroupVersion(), c.kind.kind, c.kind.group)
		}
	}
	if from == to {
		return u, nil
	}
	out := u.DeepCopy()
	if c.kind.convert == nil {
		out.SetGroupVersionKind(to)
		return out, nil
	}
	return c.kind.convert(out, to.GroupVersion())
}

func (c customConverter) Convert(in, out, context any) error {
	return fmt.Errorf("custom resources convert with ConvertToVersion only")
}

func (c customConverter) ConvertFieldLabel(gvk schema.GroupVersionKind, label, value string) (string, string, error) {
	return label, value, nil
}

// strategyDefaulter defaults with the descriptor's strategy: the field
// manager defaults only objects of the served version.
type strategyDefaulter struct{ s resource.Strategy }

func (d strategyDefaulter) Default(obj runtime.Object) { d.s.Default(obj) }

type unstructuredCreater struct{}

func (unstructuredCreater) New(gvk schema.GroupVersionKind) (runtime.Object, error) {
	u := &unstructured.Unstructured{Object: map[string]any{}}
	u.SetGroupVersionKind(gvk)
	return u, nil
}
