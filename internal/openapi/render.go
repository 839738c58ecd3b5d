package openapi

import (
	"sort"

	"k8s.io/kube-openapi/pkg/common"
	"k8s.io/kube-openapi/pkg/spec3"
	"k8s.io/kube-openapi/pkg/validation/spec"
)

// Paths group their operations; a parameter every operation of a path
// takes is stated once on the path, as kube-openapi's builders do. (A
// path with a single operation therefore carries all its parameters on
// the path.)

type pathRoutes struct {
	path   string
	routes []route
	common []param
}

func byPath(routes []route) []pathRoutes {
	index := map[string]int{}
	var out []pathRoutes
	for _, r := range routes {
		i, ok := index[r.path]
		if !ok {
			i = len(out)
			index[r.path] = i
			out = append(out, pathRoutes{path: r.path})
		}
		out[i].routes = append(out[i].routes, r)
	}
	for i := range out {
		out[i].common = commonParams(out[i].routes)
	}
	return out
}

type paramKey struct{ name, in string }

func commonParams(routes []route) []param {
	count := map[paramKey]int{}
	last := map[paramKey]param{}
	for _, r := range routes {
		for _, p := range r.params {
			k := paramKey{p.name, p.in}
			count[k]++
			last[k] = p
		}
	}
	var out []param
	for k, n := range count {
		if n == len(routes) {
			out = append(out, last[k])
		}
	}
	sortParams(out)
	return out
}

// own returns the parameters of an operation that are not stated on its
// path, sorted by name and location.
func own(params, common []param) []param {
	var out []param
outer:
	for _, p := range params {
		for _, c := range common {
			if c.name == p.name && c.in == p.in {
				continue outer
			}
		}
		out = append(out, p)
	}
	sortParams(out)
	return out
}

func refSchema(prefix, model string) *spec.Schema {
	return &spec.Schema{SchemaProps: spec.SchemaProps{Ref: spec.MustCreateRef(prefix + common.EscapeJsonPointer(model))}}
}

func (r *route) extensions() spec.Extensions {
	if r.action == "" {
		return nil
	}
	ext := spec.Extensions{extensionAction: r.action}
	if r.gvk != nil {
		ext[extensionGVK] = map[string]interface{}{"group": r.gvk.Group, "version": r.gvk.Version, "kind": r.gvk.Kind}
	}
	return ext
}

var unauthorized = "Unauthorized"

// renderV3 turns routes into OpenAPI v3 paths.
func renderV3(routes []route) *spec3.Paths {
	paths := &spec3.Paths{Paths: map[string]*spec3.Path{}}
	for _, pr := range byPath(routes) {
		item := &spec3.Path{}
		for _, p := range pr.common {
			item.Parameters = append(item.Parameters, v3Param(p))
		}
		for _, r := range pr.routes {
			op := &spec3.Operation{
				OperationProps: spec3.OperationProps{
					Description: r.description,
					OperationId: r.id,
					Tags:        r.tags,
					Responses:   &spec3.Responses{ResponsesProps: spec3.ResponsesProps{StatusCodeResponses: map[int]*spec3.Response{}}},
				},
				VendorExtensible: spec.VendorExtensible{Extensions: r.extensions()},
			}
			for _, p := range own(r.params, pr.common) {
				op.Parameters = append(op.Parameters, v3Param(p))
			}
			if r.body != nil {
				content := map[string]*spec3.MediaType{}
				for _, t := range r.consumes {
					content[t] = &spec3.MediaType{MediaTypeProps: spec3.MediaTypeProps{Schema: refSchema(v3RefPrefix, r.body.model)}}
				}
				op.RequestBody = &spec3.RequestBody{RequestBodyProps: spec3.RequestBodyProps{Content: content, Required: r.body.required}}
			}
			for _, resp := range r.responses {
				out := &spec3.Response{ResponseProps: spec3.ResponseProps{Description: resp.description}}
				if resp.model != "" {
					out.Content = map[string]*spec3.MediaType{}
					for _, t := range r.produces {
						out.Content[t] = &spec3.MediaType{MediaTypeProps: spec3.MediaTypeProps{Schema: refSchema(v3RefPrefix, resp.model)}}
					}
				}
				op.Responses.StatusCodeResponses[resp.code] = out
			}
			op.Responses.StatusCodeResponses[401] = &spec3.Response{ResponseProps: spec3.ResponseProps{Description: unauthorized}}
			switch r.method {
			case "get":
				item.Get = op
			case "put":
				item.Put = op
			case "post":
				item.Post = op
			case "patch":
				item.Patch = op
			case "delete":
				item.Delete = op
			}
		}
		paths.Paths[pr.path] = item
	}
	return paths
}

func v3Param(p param) *spec3.Parameter {
	return &spec3.Parameter{ParameterProps: spec3.ParameterProps{
		Name: p.name, In: p.in, Description: p.description, Required: p.required,
		Schema: &spec.Schema{SchemaProps: spec.SchemaProps{Type: []string{p.typ}, UniqueItems: true}},
	}}
}

// renderV2 turns routes into OpenAPI v2 paths.
func renderV2(routes []route) *spec.Paths {
	paths := &spec.Paths{Paths: map[string]spec.PathItem{}}
	for _, pr := range byPath(routes) {
		var item spec.PathItem
		for _, p := range pr.common {
			item.Parameters = append(item.Parameters, v2Param(p))
		}
		for _, r := range pr.routes {
			op := &spec.Operation{
				OperationProps: spec.OperationProps{
					Description: r.description,
					Consumes:    r.consumes,
					Produces:    r.produces,
					Schemes:     []string{"https"},
					Tags:        r.tags,
					ID:          r.id,
					Responses:   &spec.Responses{ResponsesProps: spec.ResponsesProps{StatusCodeResponses: map[int]spec.Response{}}},
				},
				VendorExtensible: spec.VendorExtensible{Extensions: r.extensions()},
			}
			for _, p := range own(r.params, pr.common) {
				op.Parameters = append(op.Parameters, v2Param(p))
			}
			if r.body != nil {
				op.Parameters = append(op.Parameters, spec.Parameter{ParamProps: spec.ParamProps{Name: "body", In: "body", Required: r.body.required, Schema: refSchema(v2RefPrefix, r.body.model)}})
				sort.SliceStable(op.Parameters, func(i, j int) bool {
					a, b := op.Parameters[i], op.Parameters[j]
					return a.Name < b.Name || (a.Name == b.Name && a.In < b.In)
				})
			}
			for _, resp := range r.responses {
				out := spec.Response{ResponseProps: spec.ResponseProps{Description: resp.description}}
				if resp.model != "" {
					out.Schema = refSchema(v2RefPrefix, resp.model)
				}
				op.Responses.StatusCodeResponses[resp.code] = out
			}
			op.Responses.StatusCodeResponses[401] = spec.Response{ResponseProps: spec.ResponseProps{Description: unauthorized}}
			switch r.method {
			case "get":
				item.Get = op
			case "put":
				item.Put = op
			case "post":
				item.Post = op
			case "patch":
				item.Patch = op
			case "delete":
				item.Delete = op
			}
		}
		paths.Paths[pr.path] = item
	}
	return paths
}

func v2Param(p param) spec.Parameter {
	return spec.Parameter{
		ParamProps:        spec.ParamProps{Name: p.name, In: p.in, Description: p.description, Required: p.required},
		SimpleSchema:      spec.SimpleSchema{Type: p.typ},
		CommonValidations: spec.CommonValidations{UniqueItems: true},
	}
}
