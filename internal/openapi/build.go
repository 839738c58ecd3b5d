package openapi

import (
	"encoding/json"
	"reflect"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/kube-openapi/pkg/spec3"
	"k8s.io/kube-openapi/pkg/validation/spec"

	"github.com/trellis-project/trellis/internal/resource"
)

// SchemaProvider is implemented by the Strategy of a resource whose
// objects have no Go type with a generated definition: custom resources.
//
// OpenAPISchema returns the schema of one object of the served version, in
// OpenAPI v3 form, self-contained (no $ref). The documents add apiVersion,
// kind and metadata (a reference to ObjectMeta) when the schema lacks
// them, name it like kube-apiserver names a custom resource
// (CustomModelName) and derive the list schema. Documents are cached per
// descriptor: a changed schema must come with a new Descriptor passed to
// Registry.Add.
type SchemaProvider interface {
	OpenAPISchema() *spec.Schema
}

// V2SchemaProvider may be implemented besides SchemaProvider when the v2
// form of the schema needs more care than dropping nullable, oneOf, anyOf
// and not, which is what /openapi/v2 does otherwise.
type V2SchemaProvider interface {
	OpenAPIV2Schema() *spec.Schema
}

// kindModelsFor finds the definitions of d's objects and lists: the
// strategy's own schema, else the generated definitions of the Go types
// the scheme (or the strategy) makes for the kind, else a schema that
// accepts any object.
func (s *Service) kindModelsFor(d *resource.Descriptor) kindModels {
	if sp, ok := d.Strategy.(SchemaProvider); ok {
		var v2 *spec.Schema
		if p, ok := d.Strategy.(V2SchemaProvider); ok {
			v2 = p.OpenAPIV2Schema()
		}
		return s.customModels(d, sp.OpenAPISchema(), v2)
	}
	object, list := s.goTypes(d)
	if object != nil && list != nil {
		km := kindModels{object: ModelName(object), list: ModelName(list), patchTypes: builtinPatchTypes}
		if s.cat.has(km.object) && s.cat.has(km.list) {
			return km
		}
	}
	preserve := &spec.Schema{
		SchemaProps:      spec.SchemaProps{Type: []string{"object"}},
		VendorExtensible: spec.VendorExtensible{Extensions: spec.Extensions{extensionPreserve: true}},
	}
	return s.customModels(d, preserve, nil)
}

// goTypes returns the Go types of d's object and list.
func (s *Service) goTypes(d *resource.Descriptor) (object, list reflect.Type) {
	gv := d.GroupVersion()
	if s.cfg.Scheme != nil {
		o, err1 := s.cfg.Scheme.New(gv.WithKind(d.Kind))
		l, err2 := s.cfg.Scheme.New(gv.WithKind(listKind(d)))
		if err1 == nil && err2 == nil {
			return reflect.TypeOf(o), reflect.TypeOf(l)
		}
	}
	if d.Strategy != nil {
		return reflect.TypeOf(d.Strategy.New()), reflect.TypeOf(d.Strategy.NewList())
	}
	return nil, nil
}

func listKind(d *resource.Descriptor) string {
	if d.ListKind != "" {
		return d.ListKind
	}
	return d.Kind + "List"
}

// customModels wraps a kind's own schema into object and list
// definitions, taking the standard apiVersion, kind and metadata
// properties from the generated PartialObjectMetadata definitions.
func (s *Service) customModels(d *resource.Descriptor, object, objectV2 *spec.Schema) kindModels {
	gvk := d.GroupVersionKind()
	listGVK := gvk.GroupVersion().WithKind(listKind(d))
	km := kindModels{
		object:     CustomModelName(gvk),
		list:       CustomModelName(listGVK),
		patchTypes: customPatchTypes,
	}
	if object == nil {
		object = &spec.Schema{SchemaProps: spec.SchemaProps{Type: []string{"object"}}}
	}
	object = s.withStandardFields(object, modelPartialObject, "apiVersion", "kind", "metadata")
	if objectV2 != nil {
		objectV2 = s.withStandardFields(objectV2, modelPartialObject, "apiVersion", "kind", "metadata")
	}
	list := &spec.Schema{SchemaProps: spec.SchemaProps{
		Description: listKind(d) + " is a list of " + d.Kind,
		Type:        []string{"object"},
		Required:    []string{"items"},
		Properties: map[string]spec.Schema{
			"items": {SchemaProps: spec.SchemaProps{
				Description: "List of " + d.Resource + ".",
				Type:        []string{"array"},
				Items:       &spec.SchemaOrArray{Schema: refSchema(v3RefPrefix, km.object)},
			}},
		},
	}}
	list = s.withStandardFields(list, modelPartialList, "apiVersion", "kind", "metadata")
	km.custom = map[string]*customModel{
		km.object: {schema: object, schemaV2: objectV2, gvks: []schema.GroupVersionKind{gvk}},
		km.list:   {schema: list, gvks: []schema.GroupVersionKind{listGVK}},
	}
	return km
}

// withStandardFields copies the named properties of a generated model
// into s where s lacks them.
func (s *Service) withStandardFields(in *spec.Schema, from string, props ...string) *spec.Schema {
	out := *in
	out.Properties = map[string]spec.Schema{}
	for k, v := range in.Properties {
		out.Properties[k] = v
	}
	for _, p := range props {
		if _, ok := out.Properties[p]; ok {
			continue
		}
		if std := s.cat.property(from, p); std != nil {
			out.Properties[p] = *std
		}
	}
	if len(out.Type) == 0 {
		out.Type = []string{"object"}
	}
	return &out
}

// gvInput is what one group-version document is built from.
type gvInput struct {
	gv    schema.GroupVersion
	descs []*resource.Descriptor
}

func (s *Service) gvRoutes(in gvInput) ([]route, map[string]*customModel) {
	m := s.routeMaker()
	routes := []route{m.discoveryRoute(rootPath(in.gv)+"/", "APIResources", "get available resources", modelResourceList)}
	custom := map[string]*customModel{}
	for _, d := range in.descs {
		km := s.kindModelsFor(d)
		for k, v := range km.custom {
			custom[k] = v
		}
		routes = append(routes, m.resourceRoutes(d, km)...)
	}
	return routes, custom
}

// Routes of the documents without resources.
func (s *Service) apiRoutes() []route {
	return []route{s.routeMaker().discoveryRoute("/api/", "APIVersions", "get available API versions", modelAPIVersions)}
}

func (s *Service) apisRoutes() []route {
	return []route{s.routeMaker().discoveryRoute("/apis/", "APIVersions", "get available API versions", modelAPIGroupList)}
}

func (s *Service) groupRoutes(group string) []route {
	return []route{s.routeMaker().discoveryRoute("/apis/"+group+"/", "APIGroup", "get information of a group", modelAPIGroup)}
}

func (s *Service) versionRoutes() []route {
	return []route{s.routeMaker().versionRoute()}
}

func (s *Service) routeMaker() *routeMaker {
	s.paramsOnce.Do(func() { s.params = newOptionParams(s.cat) })
	return &routeMaker{opts: s.params, mediaTypes: s.cfg.MediaTypes, streamTypes: s.cfg.StreamMediaTypes}
}

func (s *Service) info() *spec.Info {
	return &spec.Info{InfoProps: spec.InfoProps{Title: s.cfg.Title, Version: s.cfg.Version}}
}

const bearerDoc = "Bearer Token authentication"

// buildV3 renders one v3 document. scope narrows shared meta kinds for
// group-version documents.
func (s *Service) buildV3(routes []route, custom map[string]*customModel, scope *schema.GroupVersion) ([]byte, error) {
	defs, err := s.cat.definitions(models(routes), custom, v3, scope)
	if err != nil {
		return nil, err
	}
	doc := &spec3.OpenAPI{
		Version: "3.0.0",
		Info:    s.info(),
		Paths:   renderV3(routes),
		Components: &spec3.Components{
			Schemas: defs,
			SecuritySchemes: spec3.SecuritySchemes{"BearerToken": &spec3.SecurityScheme{SecuritySchemeProps: spec3.SecuritySchemeProps{
				Type: "apiKey", Name: "authorization", In: "header", Description: bearerDoc,
			}}},
		},
	}
	return json.Marshal(doc)
}

// buildV2 renders the v2 document of every served resource.
func (s *Service) buildV2(groups []string, gvs []gvInput) ([]byte, error) {
	routes := append(s.apiRoutes(), s.apisRoutes()...)
	routes = append(routes, s.versionRoutes()...)
	for _, g := range groups {
		routes = append(routes, s.groupRoutes(g)...)
	}
	custom := map[string]*customModel{}
	for _, in := range gvs {
		r, c := s.gvRoutes(in)
		routes = append(routes, r...)
		for k, v := range c {
			custom[k] = v
		}
	}
	defs, err := s.cat.definitions(models(routes), custom, v2, nil)
	if err != nil {
		return nil, err
	}
	definitions := spec.Definitions{}
	for k, v := range defs {
		definitions[k] = *v
	}
	doc := &spec.Swagger{SwaggerProps: spec.SwaggerProps{
		Swagger:     "2.0",
		Info:        s.info(),
		Paths:       renderV2(routes),
		Definitions: definitions,
		SecurityDefinitions: spec.SecurityDefinitions{"BearerToken": &spec.SecurityScheme{SecuritySchemeProps: spec.SecuritySchemeProps{
			Type: "apiKey", Name: "authorization", In: "header", Description: bearerDoc,
		}}},
		Security: []map[string][]string{{"BearerToken": {}}},
	}}
	return json.Marshal(doc)
}
