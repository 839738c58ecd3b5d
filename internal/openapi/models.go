package openapi

import (
	"fmt"
	"sort"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	builderutil "k8s.io/kube-openapi/pkg/builder3/util"
	"k8s.io/kube-openapi/pkg/common"
	"k8s.io/kube-openapi/pkg/schemamutation"
	"k8s.io/kube-openapi/pkg/validation/spec"
)

// Names of the models operations refer to.
const (
	modelStatus        = "io.k8s.apimachinery.pkg.apis.meta.v1.Status"
	modelDeleteOptions = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions"
	modelListOptions   = "io.k8s.apimachinery.pkg.apis.meta.v1.ListOptions"
	modelCreateOptions = "io.k8s.apimachinery.pkg.apis.meta.v1.CreateOptions"
	modelUpdateOptions = "io.k8s.apimachinery.pkg.apis.meta.v1.UpdateOptions"
	modelPatchOptions  = "io.k8s.apimachinery.pkg.apis.meta.v1.PatchOptions"
	modelPatch         = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch"
	modelResourceList  = "io.k8s.apimachinery.pkg.apis.meta.v1.APIResourceList"
	modelAPIGroup      = "io.k8s.apimachinery.pkg.apis.meta.v1.APIGroup"
	modelAPIGroupList  = "io.k8s.apimachinery.pkg.apis.meta.v1.APIGroupList"
	modelAPIVersions   = "io.k8s.apimachinery.pkg.apis.meta.v1.APIVersions"
	modelPartialObject = "io.k8s.apimachinery.pkg.apis.meta.v1.PartialObjectMetadata"
	modelPartialList   = "io.k8s.apimachinery.pkg.apis.meta.v1.PartialObjectMetadataList"
	modelVersionInfo   = "io.k8s.apimachinery.pkg.version.Info"
	modelScale         = "io.k8s.api.autoscaling.v1.Scale"
)

const (
	extensionGVK      = "x-kubernetes-group-version-kind"
	extensionAction   = "x-kubernetes-action"
	extensionPreserve = "x-kubernetes-preserve-unknown-fields"

	v3RefPrefix = "#/components/schemas/"
	v2RefPrefix = "#/definitions/"
)

// flavor is the OpenAPI version a document is built for.
type flavor int

const (
	v2 flavor = iota
	v3
)

// catalog holds the generated definitions, loaded once on first use, and
// the kinds the scheme registers for each of them.
type catalog struct {
	load   common.GetOpenAPIDefinitions
	scheme *runtime.Scheme

	once  sync.Once
	defs  map[string]common.OpenAPIDefinition // refs in v3 form
	kinds map[string][]schema.GroupVersionKind
}

func (c *catalog) init() {
	c.once.Do(func() {
		c.defs = map[string]common.OpenAPIDefinition{}
		if c.load != nil {
			c.defs = c.load(func(name string) spec.Ref {
				return spec.MustCreateRef(v3RefPrefix + common.EscapeJsonPointer(name))
			})
		}
		c.kinds = map[string][]schema.GroupVersionKind{}
		if c.scheme == nil {
			return
		}
		for gvk, t := range c.scheme.AllKnownTypes() {
			if gvk.Version == runtime.APIVersionInternal {
				continue
			}
			name := ModelName(t)
			if _, ok := c.defs[name]; ok {
				c.kinds[name] = append(c.kinds[name], gvk)
			}
		}
		for _, gvks := range c.kinds {
			sortGVKs(gvks)
		}
	})
}

// has reports whether a generated definition named name exists.
func (c *catalog) has(name string) bool {
	c.init()
	_, ok := c.defs[name]
	return ok
}

// property returns a property of a generated definition, or nil.
func (c *catalog) property(model, prop string) *spec.Schema {
	c.init()
	def, ok := c.defs[model]
	if !ok {
		return nil
	}
	p, ok := def.Schema.Properties[prop]
	if !ok {
		return nil
	}
	return &p
}

func sortGVKs(gvks []schema.GroupVersionKind) {
	sort.Slice(gvks, func(i, j int) bool {
		a, b := gvks[i], gvks[j]
		if a.Group != b.Group {
			return a.Group < b.Group
		}
		if a.Version != b.Version {
			return a.Version < b.Version
		}
		return a.Kind < b.Kind
	})
}

// customModel is a definition that does not come from the catalog: the
// schema of a kind without a Go type, or the list around it.
type customModel struct {
	schema   *spec.Schema // v3 form; refs to catalog models in v3 form
	schemaV2 *spec.Schema // optional v2 form; nil derives it from schema
	gvks     []schema.GroupVersionKind
}

// definitions returns the named models and every model they refer to,
// shaped for f: v2 definitions have defaults pruned and the embedded v2
// variants substituted, as kube-apiserver's /openapi/v2 does; v3 schemas
// wrap references that have siblings in allOf. scope, for a v3
// group-version document, narrows the kinds listed on the meta types that
// every group registers (WatchEvent, DeleteOptions) to that group-version
// and core/v1.
func (c *catalog) definitions(roots []string, custom map[string]*customModel, f flavor, scope *schema.GroupVersion) (map[string]*spec.Schema, error) {
	c.init()
	out := map[string]*spec.Schema{}
	queue := append([]string(nil), roots...)
	for len(queue) > 0 {
		name := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		if _, done := out[name]; done {
			continue
		}
		var s *spec.Schema
		var gvks []schema.GroupVersionKind
		if m, ok := custom[name]; ok {
			s, gvks = m.schema, m.gvks
			if f == v2 {
				if m.schemaV2 != nil {
					s = m.schemaV2
				} else {
					s = downgradeToV2(s)
				}
			}
		} else if def, ok := c.defs[name]; ok {
			s = &spec.Schema{VendorExtensible: def.Schema.VendorExtensible, SchemaProps: def.Schema.SchemaProps, SwaggerSchemaProps: def.Schema.SwaggerSchemaProps}
			gvks = c.kinds[name]
		} else {
			return nil, fmt.Errorf("no OpenAPI definition for %q", name)
		}
		s, refs := shape(s, f)
		if scope != nil && len(gvks) > 1 && (gvks[0].Kind == "WatchEvent" || gvks[0].Kind == "DeleteOptions") {
			gvks = scopeGVKs(gvks, *scope)
		}
		out[name] = withGVKs(s, gvks)
		queue = append(queue, refs...)
	}
	return out, nil
}

// shape adapts a schema to f and returns the models it refers to. The
// input is shared with the catalog and never modified.
func shape(s *spec.Schema, f flavor) (*spec.Schema, []string) {
	var refs []string
	noteRef := func(ref string, prefix string) {
		if name, ok := strings.CutPrefix(ref, prefix); ok {
			refs = append(refs, unescapePointer(name))
		}
	}
	switch f {
	case v3:
		if _, ok := s.Extensions[common.ExtensionV2Schema]; ok {
			s = withoutExtension(s, common.ExtensionV2Schema)
		}
		s = builderutil.WrapRefs(s)
		walk := schemamutation.Walker{
			SchemaCallback: schemamutation.SchemaCallBackNoop,
			RefCallback: func(ref *spec.Ref) *spec.Ref {
				noteRef(ref.String(), v3RefPrefix)
				return ref
			},
		}
		walk.WalkSchema(s)
	case v2:
		if embedded, ok := s.Extensions[common.ExtensionV2Schema].(spec.Schema); ok {
			s = &embedded
		}
		walk := schemamutation.Walker{
			SchemaCallback: pruneDefault,
			RefCallback: func(ref *spec.Ref) *spec.Ref {
				name, ok := strings.CutPrefix(ref.String(), v3RefPrefix)
				if !ok {
					return ref
				}
				refs = append(refs, unescapePointer(name))
				r := spec.MustCreateRef(v2RefPrefix + name)
				return &r
			},
		}
		s = walk.WalkSchema(s)
	}
	return s, refs
}

// pruneDefault drops "default", which kube-apiserver leaves out of v2
// definitions (clients of v2 predate defaults in published schemas).
func pruneDefault(s *spec.Schema) *spec.Schema {
	if s.Default == nil {
		return s
	}
	c := *s
	c.Default = nil
	return &c
}

// downgradeToV2 removes what OpenAPI v2 cannot say (nullable, oneOf,
// anyOf, not) from a custom v3 schema, so v2 clients and the protobuf
// encoding of /openapi/v2 accept it.
func downgradeToV2(s *spec.Schema) *spec.Schema {
	walk := schemamutation.Walker{
		SchemaCallback: func(s *spec.Schema) *spec.Schema {
			if !s.Nullable && s.OneOf == nil && s.AnyOf == nil && s.Not == nil {
				return s
			}
			c := *s
			c.Nullable, c.OneOf, c.AnyOf, c.Not = false, nil, nil, nil
			return &c
		},
		RefCallback: schemamutation.RefCallbackNoop,
	}
	return walk.WalkSchema(s)
}

func withoutExtension(s *spec.Schema, key string) *spec.Schema {
	c := *s
	c.Extensions = spec.Extensions{}
	for k, v := range s.Extensions {
		if k != key {
			c.Extensions[k] = v
		}
	}
	if len(c.Extensions) == 0 {
		c.Extensions = nil
	}
	return &c
}

// withGVKs sets x-kubernetes-group-version-kind, the list of kinds a
// definition is served as, which clients use to find a kind's schema.
func withGVKs(s *spec.Schema, gvks []schema.GroupVersionKind) *spec.Schema {
	if len(gvks) == 0 {
		return s
	}
	list := make([]interface{}, 0, len(gvks))
	for _, gvk := range gvks {
		list = append(list, map[string]interface{}{"group": gvk.Group, "version": gvk.Version, "kind": gvk.Kind})
	}
	c := *s
	c.Extensions = spec.Extensions{}
	for k, v := range s.Extensions {
		c.Extensions[k] = v
	}
	c.Extensions[extensionGVK] = list
	return &c
}

// scopeGVKs keeps the entries of gv and of core/v1, as kube-apiserver does
// in its per-group-version documents.
func scopeGVKs(gvks []schema.GroupVersionKind, gv schema.GroupVersion) []schema.GroupVersionKind {
	var out []schema.GroupVersionKind
	for _, gvk := range gvks {
		if gvk.GroupVersion() == gv || (gvk.Group == "" && gvk.Version == "v1") {
			out = append(out, gvk)
		}
	}
	return out
}

func unescapePointer(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~1", "/"), "~0", "~")
}
