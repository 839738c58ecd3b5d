package fieldmanager

import (
	"fmt"
	"reflect"
	"strings"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/kube-openapi/pkg/common"
	"k8s.io/kube-openapi/pkg/validation/spec"

	"github.com/trellis-project/trellis/internal/openapi"
)

// refPrefix is how the models refer to each other (OpenAPI v3 form).
const refPrefix = "#/components/schemas/"

const extensionGVK = "x-kubernetes-group-version-kind"

// BuiltinTypes is the type information of the built-in kinds: upstream's
// generated OpenAPI definitions of the kinds' Go types, found through the
// scheme. It is built on first use (loading the generated definitions
// takes about 20 ms), is read-only afterwards, and may be shared by every
// server in a process.
type BuiltinTypes struct {
	definitions common.GetOpenAPIDefinitions
	scheme      *runtime.Scheme
	kinds       []schema.GroupVersionKind

	once      sync.Once
	converter managedfields.TypeConverter
	known     map[schema.GroupVersionKind]bool
	// objectMeta is ObjectMeta's model and the models it refers to: the
	// metadata of custom resources.
	objectMeta map[string]*spec.Schema
	err        error
}

// NewBuiltinTypes describes kinds (every version a client may write, so
// that managed fields recorded through one version convert to the others)
// with definitions, the generated definitions of the Go types scheme
// creates for them. scheme also converts, defaults and creates the kinds'
// objects. Nothing is loaded until a Manager needs it.
func NewBuiltinTypes(definitions common.GetOpenAPIDefinitions, scheme *runtime.Scheme, kinds []schema.GroupVersionKind) *BuiltinTypes {
	return &BuiltinTypes{definitions: definitions, scheme: scheme, kinds: kinds}
}

// Load builds the type information now rather than on the first write;
// the server calls it in the background once it is ready.
func (b *BuiltinTypes) Load() { b.once.Do(b.load) }

// typeConverter returns the converter of every built-in kind, after
// checking it describes gvk.
func (b *BuiltinTypes) typeConverter(gvk schema.GroupVersionKind) (managedfields.TypeConverter, error) {
	b.once.Do(b.load)
	if b.err != nil {
		return nil, b.err
	}
	if !b.known[gvk] {
		return nil, fmt.Errorf("no generated OpenAPI definition for built-in kind %v", gvk)
	}
	return b.converter, nil
}

// metadataModels returns ObjectMeta's model and those it refers to. The
// result is shared: callers must not modify it.
func (b *BuiltinTypes) metadataModels() (map[string]*spec.Schema, error) {
	b.once.Do(b.load)
	return b.objectMeta, b.err
}

// load builds the models of the kinds, and of ObjectMeta, with what they
// refer to; the other definitions are dropped. Each kind's model carries
// x-kubernetes-group-version-kind, which is how the type converter finds
// an object's type.
func (b *BuiltinTypes) load() {
	if b.definitions == nil || b.scheme == nil {
		b.err = fmt.Errorf("no OpenAPI definitions for built-in kinds")
		return
	}
	defs := b.definitions(func(name string) spec.Ref {
		return spec.MustCreateRef(refPrefix + common.EscapeJsonPointer(name))
	})
	gvks := map[string][]any{}
	var roots []string
	b.known = map[schema.GroupVersionKind]bool{}
	// Scale is no stored kind, but every /scale subresource writes it.
	for _, gvk := range append(b.kinds[:len(b.kinds):len(b.kinds)], ScaleGVK) {
		if b.known[gvk] {
			continue
		}
		// A kind without a type or a definition is left out: it gets no
		// manager (typeConverter says why), the others are unaffected.
		obj, err := b.scheme.New(gvk)
		if err != nil {
			continue
		}
		name := openapi.ModelName(reflect.TypeOf(obj))
		if _, ok := defs[name]; !ok {
			continue
		}
		if len(gvks[name]) == 0 {
			roots = append(roots, name)
		}
		gvks[name] = append(gvks[name], map[string]any{"group": gvk.Group, "version": gvk.Version, "kind": gvk.Kind})
		b.known[gvk] = true
	}
	models, err := closure(defs, roots)
	if err != nil {
		b.err = err
		return
	}
	for name, list := range gvks {
		models[name] = withExtension(models[name], extensionGVK, list)
	}
	tc, err := managedfields.NewTypeConverter(models, false)
	if err != nil {
		b.err = fmt.Errorf("type converter of built-in kinds: %w", err)
		return
	}
	b.converter = crdFastPath{tc}
	b.objectMeta, b.err = closure(defs, []string{openapi.ModelName(reflect.TypeOf(metav1.ObjectMeta{}))})
}

// closure returns the named definitions' schemas and those of every
// definition they refer to.
func closure(defs map[string]common.OpenAPIDefinition, roots []string) (map[string]*spec.Schema, error) {
	out := map[string]*spec.Schema{}
	queue := append([]string(nil), roots...)
	for len(queue) > 0 {
		name := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		if _, done := out[name]; done {
			continue
		}
		def, ok := defs[name]
		if !ok {
			return nil, fmt.Errorf("no OpenAPI definition %q", name)
		}
		s := def.Schema
		out[name] = &s
		walkRefs(&s, func(ref string) { queue = append(queue, ref) })
	}
	return out, nil
}

// walkRefs calls f with the name of every model s refers to.
func walkRefs(s *spec.Schema, f func(name string)) {
	if s == nil {
		return
	}
	if ref := s.Ref.String(); ref != "" {
		name := strings.TrimPrefix(ref, refPrefix)
		f(strings.ReplaceAll(strings.ReplaceAll(name, "~1", "/"), "~0", "~"))
	}
	for _, p := range s.Properties {
		walkRefs(&p, f)
	}
	if s.Items != nil {
		walkRefs(s.Items.Schema, f)
		for i := range s.Items.Schemas {
			walkRefs(&s.Items.Schemas[i], f)
		}
	}
	if s.AdditionalProperties != nil {
		walkRefs(s.AdditionalProperties.Schema, f)
	}
	for _, group := range [][]spec.Schema{s.AllOf, s.AnyOf, s.OneOf} {
		for i := range group {
			walkRefs(&group[i], f)
		}
	}
}

// withExtension returns a copy of s with one more vendor extension.
func withExtension(s *spec.Schema, key string, value any) *spec.Schema {
	c := *s
	c.Extensions = spec.Extensions{}
	for k, v := range s.Extensions {
		c.Extensions[k] = v
	}
	c.Extensions[key] = value
	return &c
}
