package openapi

import (
	"sort"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/kube-openapi/pkg/validation/spec"

	"github.com/trellis-project/trellis/internal/resource"
)

// route is one operation on one path, independent of the OpenAPI version
// it is rendered in.
type route struct {
	path   string
	method string // "get", "put", "post", "patch", "delete"

	id          string
	description string
	tags        []string
	action      string // x-kubernetes-action; empty outside resources
	gvk         *schema.GroupVersionKind

	params    []param
	body      *body
	consumes  []string // v2 only; the v3 request body lists them as content
	produces  []string
	responses []response
}

type param struct {
	name, in, description, typ string
	required                   bool
}

type body struct {
	model    string
	required bool
}

type response struct {
	code        int
	description string
	model       string
}

const prettyDoc = "If 'true', then the output is pretty printed. Defaults to 'false' unless the user-agent indicates a browser or command-line HTTP tool (curl and wget)."

var (
	pretty         = param{name: "pretty", in: "query", description: prettyDoc, typ: "string"}
	namespaceParam = param{name: "namespace", in: "path", description: "object name and auth scope, such as for teams and projects", typ: "string", required: true}

	// Patch types kube-apiserver accepts; custom kinds have no strategic
	// merge patch.
	builtinPatchTypes = []string{"application/json-patch+json", "application/merge-patch+json", "application/strategic-merge-patch+json", "application/apply-patch+yaml", "application/apply-patch+cbor"}
	customPatchTypes  = []string{"application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml", "application/apply-patch+cbor"}
)

// optionParams are the query parameters of the option kinds, read from
// their generated definitions the way kube-apiserver reads them from the
// option structs: every scalar (or list of scalars) field but kind and
// apiVersion.
type optionParams struct {
	list, create, update, patch, del []param
	// deleteCollection is del plus list without the watch parameters.
	deleteCollection []param
}

func newOptionParams(c *catalog) *optionParams {
	read := func(model string, exclude ...string) []param {
		c.init()
		def := c.defs[model]
		var out []param
		for name, prop := range def.Schema.Properties {
			if name == "kind" || name == "apiVersion" || contains(exclude, name) {
				continue
			}
			typ := scalarType(prop)
			if typ == "" {
				continue
			}
			out = append(out, param{name: name, in: "query", description: prop.Description, typ: typ})
		}
		sortParams(out)
		return out
	}
	p := &optionParams{
		list:   read(modelListOptions),
		create: read(modelCreateOptions),
		update: read(modelUpdateOptions),
		patch:  read(modelPatchOptions),
		del:    read(modelDeleteOptions),
	}
	p.deleteCollection = append(append([]param(nil), p.del...), read(modelListOptions, "watch", "allowWatchBookmarks")...)
	return p
}

// scalarType is the query parameter type of a property: its own type when
// scalar, its items' type for a list (query lists repeat the parameter),
// and "" for objects and references.
func scalarType(s spec.Schema) string {
	if s.Ref.String() != "" || len(s.Type) != 1 {
		return ""
	}
	switch t := s.Type[0]; t {
	case "string", "integer", "boolean", "number":
		return t
	case "array":
		if s.Items != nil && s.Items.Schema != nil && len(s.Items.Schema.Type) == 1 && s.Items.Schema.Type[0] != "object" && s.Items.Schema.Type[0] != "array" {
			return s.Items.Schema.Type[0]
		}
	}
	return ""
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

func sortParams(ps []param) {
	sort.SliceStable(ps, func(i, j int) bool {
		if ps[i].name != ps[j].name {
			return ps[i].name < ps[j].name
		}
		return ps[i].in < ps[j].in
	})
}

func join(lists ...[]param) []param {
	var out []param
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

// kindModels are the definitions a resource's operations refer to.
type kindModels struct {
	object, list string
	custom       map[string]*customModel
	patchTypes   []string
}

// subresourceShape says what kube-apiserver serves on a subresource path:
// finalize only takes PUT; scale speaks autoscaling/v1 Scale; the rest
// (status) are the parent's kind with get, put and patch.
func subresourceShape(sub string) (methods []string, model string, gvk *schema.GroupVersionKind) {
	switch sub {
	case "finalize":
		return []string{"put"}, "", nil
	case "scale":
		scale := schema.GroupVersionKind{Group: "autoscaling", Version: "v1", Kind: "Scale"}
		return []string{"get", "put", "patch"}, modelScale, &scale
	}
	return []string{"get", "put", "patch"}, "", nil
}

// rootPath is "/api/v1" or "/apis/{group}/{version}".
func rootPath(gv schema.GroupVersion) string {
	if gv.Group == "" {
		return "/api/" + gv.Version
	}
	return "/apis/" + gv.Group + "/" + gv.Version
}

// routeMaker builds routes with the server's media types.
type routeMaker struct {
	opts                    *optionParams
	mediaTypes, streamTypes []string
}

func (m *routeMaker) route(method, path, verb, rest string) route {
	id, tags := operationID(verb, rest, path)
	return route{method: method, path: path, id: id, tags: tags, produces: m.mediaTypes, consumes: []string{"*/*"}}
}

func ok(model string, codes ...int) []response {
	text := map[int]string{200: "OK", 201: "Created", 202: "Accepted"}
	var out []response
	for _, c := range codes {
		out = append(out, response{code: c, description: text[c], model: model})
	}
	return out
}

// resourceRoutes are the operations kube-apiserver documents for d: the
// collection (list, create, deletecollection), the item (get, update,
// patch, delete), the all-namespaces list of a namespaced resource, and
// the subresources. The deprecated /watch/ paths are left out because the
// server does not serve them.
func (m *routeMaker) resourceRoutes(d *resource.Descriptor, km kindModels) []route {
	verbs := map[string]bool{}
	for _, v := range d.Verbs {
		verbs[v] = true
	}
	gvk := d.GroupVersionKind()
	kind := d.Kind
	root := rootPath(d.GroupVersion())

	collection := root + "/" + d.Resource
	var scope []param
	ns := ""
	if d.Namespaced {
		collection = root + "/namespaces/{namespace}/" + d.Resource
		scope = []param{namespaceParam}
		ns = "Namespaced"
	}
	item := collection + "/{name}"
	name := param{name: "name", in: "path", description: "name of the " + kind, typ: "string", required: true}
	itemScope := join(scope, []param{name})

	var out []route
	add := func(r route, action string, g schema.GroupVersionKind) {
		r.action = action
		r.gvk = &g
		out = append(out, r)
	}
	listDoc := "list objects of kind " + kind
	if verbs["watch"] {
		listDoc = "list or watch objects of kind " + kind
	}
	allTypes := append(append([]string(nil), m.mediaTypes...), m.streamTypes...)

	if verbs["list"] {
		r := m.route("get", collection, "list", ns+kind)
		r.description = listDoc
		r.params = join([]param{pretty}, m.opts.list, scope)
		r.produces = allTypes
		r.responses = ok(km.list, 200)
		add(r, "list", gvk)
	}
	if verbs["create"] {
		r := m.route("post", collection, "create", ns+kind)
		r.description = "create" + article(kind) + kind
		r.params = join([]param{pretty}, m.opts.create, scope)
		r.body = &body{model: km.object, required: true}
		r.responses = ok(km.object, 200, 201, 202)
		add(r, "post", gvk)
	}
	if verbs["deletecollection"] {
		r := m.route("delete", collection, "delete", "collection"+ns+kind)
		r.description = "delete collection of " + kind
		r.params = join([]param{pretty}, m.opts.deleteCollection, scope)
		r.body = &body{model: modelDeleteOptions}
		r.responses = ok(modelStatus, 200)
		add(r, "deletecollection", gvk)
	}
	if verbs["get"] {
		r := m.route("get", item, "read", ns+kind)
		r.description = "read the specified " + kind
		r.params = join([]param{pretty}, itemScope)
		r.responses = ok(km.object, 200)
		add(r, "get", gvk)
	}
	if verbs["update"] {
		r := m.route("put", item, "replace", ns+kind)
		r.description = "replace the specified " + kind
		r.params = join([]param{pretty}, m.opts.update, itemScope)
		r.body = &body{model: km.object, required: true}
		r.responses = ok(km.object, 200, 201)
		add(r, "put", gvk)
	}
	if verbs["patch"] {
		r := m.route("patch", item, "patch", ns+kind)
		r.description = "partially update the specified " + kind
		r.params = join([]param{pretty}, m.opts.patch, itemScope)
		r.body = &body{model: modelPatch, required: true}
		r.consumes = km.patchTypes
		r.responses = ok(km.object, 200, 201)
		add(r, "patch", gvk)
	}
	if verbs["delete"] {
		r := m.route("delete", item, "delete", ns+kind)
		r.description = "delete" + article(kind) + kind
		r.params = join([]param{pretty}, m.opts.del, itemScope)
		r.body = &body{model: modelDeleteOptions}
		deleted := modelStatus
		if d.ReturnDeletedObject {
			deleted = km.object
		}
		r.responses = ok(deleted, 200, 202)
		add(r, "delete", gvk)
	}
	if d.Namespaced && verbs["list"] {
		r := m.route("get", root+"/"+d.Resource, "list", kind+"ForAllNamespaces")
		r.description = listDoc
		r.params = join([]param{pretty}, m.opts.list)
		r.produces = allTypes
		r.responses = ok(km.list, 200)
		add(r, "list", gvk)
	}

	for _, sub := range d.Subresources {
		methods, model, subGVK := subresourceShape(sub)
		subName := name
		if model == "" {
			model, subGVK = km.object, &gvk
		} else {
			subName.description = "name of the " + subGVK.Kind
		}
		path := item + "/" + sub
		params := join(scope, []param{subName})
		rest := ns + kind + title(sub)
		for _, method := range methods {
			switch method {
			case "get":
				r := m.route("get", path, "read", rest)
				r.description = "read " + sub + " of the specified " + kind
				r.params = join([]param{pretty}, params)
				r.responses = ok(model, 200)
				add(r, "get", *subGVK)
			case "put":
				r := m.route("put", path, "replace", rest)
				r.description = "replace " + sub + " of the specified " + kind
				r.params = join([]param{pretty}, m.opts.update, params)
				r.body = &body{model: model, required: true}
				r.responses = ok(model, 200, 201)
				add(r, "put", *subGVK)
			case "patch":
				r := m.route("patch", path, "patch", rest)
				r.description = "partially update " + sub + " of the specified " + kind
				r.params = join([]param{pretty}, m.opts.patch, params)
				r.body = &body{model: modelPatch, required: true}
				r.consumes = km.patchTypes
				r.responses = ok(model, 200, 201)
				add(r, "patch", *subGVK)
			}
		}
	}
	return out
}

// discoveryRoute documents GET on a discovery path: "/api/", "/apis/",
// "/apis/{group}/" or "/api/v1/" and "/apis/{group}/{version}/".
func (m *routeMaker) discoveryRoute(path, rest, description, model string) route {
	r := m.route("get", path, "get", rest)
	r.description = description
	r.consumes = m.mediaTypes
	r.responses = ok(model, 200)
	return r
}

// versionRoute documents GET /version/.
func (m *routeMaker) versionRoute() route {
	r := m.route("get", "/version/", "get", "CodeVersion")
	r.description = "get the version information for this server"
	r.consumes = []string{"application/json"}
	r.produces = []string{"application/json"}
	r.responses = ok(modelVersionInfo, 200)
	return r
}

// models lists the definitions routes refer to.
func models(routes []route) []string {
	var out []string
	for _, r := range routes {
		if r.body != nil {
			out = append(out, r.body.model)
		}
		for _, resp := range r.responses {
			if resp.model != "" {
				out = append(out, resp.model)
			}
		}
	}
	return out
}
