package fieldmanager

import (
	"fmt"
	"slices"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/managedfields"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/structured-merge-diff/v6/typed"
)

// crdFastPath is the built-in kinds' type converter with a cheaper way in
// for CustomResourceDefinitions.
//
// structured-merge-diff reads a typed object by reflection, and reads a
// value whose type has its own MarshalJSON by marshaling it and decoding
// the JSON. A CRD's nested schemas are such values (items,
// additionalProperties, default, enum), each marshaling the schemas below
// it again: about 14 ms to read a 170 KB CRD, twice per status write. The
// CRD is converted to its unstructured form directly instead, which is
// the same value, read with no reflection.
type crdFastPath struct {
	managedfields.TypeConverter
}

func (c crdFastPath) ObjectToTyped(obj runtime.Object, opts ...typed.ValidationOptions) (*typed.TypedValue, error) {
	if crd, ok := obj.(*apiextensionsv1.CustomResourceDefinition); ok {
		if u, err := crdToUnstructured(crd); err == nil {
			return c.TypeConverter.ObjectToTyped(u, opts...)
		}
	}
	return c.TypeConverter.ObjectToTyped(obj, opts...)
}

// crdToUnstructured returns crd in unstructured form: what
// runtime.DefaultUnstructuredConverter gives, in a fraction of the time.
// Everything but the version schemas goes through the default converter.
func crdToUnstructured(crd *apiextensionsv1.CustomResourceDefinition) (*unstructured.Unstructured, error) {
	bare := *crd
	bare.Spec.Versions = slices.Clone(crd.Spec.Versions)
	for i := range bare.Spec.Versions {
		bare.Spec.Versions[i].Schema = nil
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&bare)
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{Object: m}
	if len(crd.Spec.Versions) == 0 {
		return u, nil
	}
	versions, ok, _ := unstructured.NestedSlice(m, "spec", "versions")
	if !ok || len(versions) != len(crd.Spec.Versions) {
		return nil, fmt.Errorf("unexpected spec.versions in a converted CRD")
	}
	for i, v := range crd.Spec.Versions {
		if v.Schema == nil {
			continue
		}
		// Versions that share a schema share its unstructured form
		// (structured-merge-diff only reads it).
		shared := false
		for j := range i {
			if crd.Spec.Versions[j].Schema == v.Schema {
				versions[i].(map[string]any)["schema"] = versions[j].(map[string]any)["schema"]
				shared = true
				break
			}
		}
		if shared {
			continue
		}
		s := map[string]any{}
		if v.Schema.OpenAPIV3Schema != nil {
			if s["openAPIV3Schema"], err = schemaValue(v.Schema.OpenAPIV3Schema); err != nil {
				return nil, err
			}
		}
		versions[i].(map[string]any)["schema"] = s
	}
	// NestedSlice returned a copy of the slice, not of its maps.
	m["spec"].(map[string]any)["versions"] = versions
	return u, nil
}

// schemaValue is a JSONSchemaProps as encoding/json writes it, in
// unstructured form: omitempty fields left out when empty, pointers
// dereferenced, and the types with their own MarshalJSON as it marshals
// them.
func schemaValue(p *apiextensionsv1.JSONSchemaProps) (map[string]any, error) {
	m := make(map[string]any, 4)
	str := func(k, v string) {
		if v != "" {
			m[k] = v
		}
	}
	flag := func(k string, v bool) {
		if v {
			m[k] = true
		}
	}
	count := func(k string, v *int64) {
		if v != nil {
			m[k] = *v
		}
	}
	number := func(k string, v *float64) {
		if v != nil {
			m[k] = *v
		}
	}
	var jsonErr error
	value := func(k string, j *apiextensionsv1.JSON) {
		if j == nil || jsonErr != nil {
			return
		}
		m[k], jsonErr = jsonValue(j)
	}
	str("id", p.ID)
	str("$schema", string(p.Schema))
	if p.Ref != nil {
		m["$ref"] = *p.Ref
	}
	str("description", p.Description)
	str("type", p.Type)
	str("format", p.Format)
	str("title", p.Title)
	value("default", p.Default)
	number("maximum", p.Maximum)
	flag("exclusiveMaximum", p.ExclusiveMaximum)
	number("minimum", p.Minimum)
	flag("exclusiveMinimum", p.ExclusiveMinimum)
	count("maxLength", p.MaxLength)
	count("minLength", p.MinLength)
	str("pattern", p.Pattern)
	count("maxItems", p.MaxItems)
	count("minItems", p.MinItems)
	flag("uniqueItems", p.UniqueItems)
	number("multipleOf", p.MultipleOf)
	if len(p.Enum) > 0 {
		enum := make([]any, len(p.Enum))
		for i := range p.Enum {
			v, err := jsonValue(&p.Enum[i])
			if err != nil {
				return nil, err
			}
			enum[i] = v
		}
		m["enum"] = enum
	}
	count("maxProperties", p.MaxProperties)
	count("minProperties", p.MinProperties)
	if len(p.Required) > 0 {
		m["required"] = stringList(p.Required)
	}
	if p.Items != nil {
		if len(p.Items.JSONSchemas) > 0 {
			l, err := schemaList(p.Items.JSONSchemas)
			if err != nil {
				return nil, err
			}
			m["items"] = l
		} else if err := optionalSchema(m, "items", p.Items.Schema); err != nil {
			return nil, err
		}
	}
	for _, l := range []struct {
		k string
		l []apiextensionsv1.JSONSchemaProps
	}{{"allOf", p.AllOf}, {"oneOf", p.OneOf}, {"anyOf", p.AnyOf}} {
		if len(l.l) > 0 {
			v, err := schemaList(l.l)
			if err != nil {
				return nil, err
			}
			m[l.k] = v
		}
	}
	if p.Not != nil {
		v, err := schemaValue(p.Not)
		if err != nil {
			return nil, err
		}
		m["not"] = v
	}
	for _, props := range []struct {
		k string
		m map[string]apiextensionsv1.JSONSchemaProps
	}{{"properties", p.Properties}, {"patternProperties", p.PatternProperties}, {"definitions", p.Definitions}} {
		if len(props.m) == 0 {
			continue
		}
		out := make(map[string]any, len(props.m))
		for name, s := range props.m {
			v, err := schemaValue(&s)
			if err != nil {
				return nil, err
			}
			out[name] = v
		}
		m[props.k] = out
	}
	for _, b := range []struct {
		k string
		b *apiextensionsv1.JSONSchemaPropsOrBool
	}{{"additionalProperties", p.AdditionalProperties}, {"additionalItems", p.AdditionalItems}} {
		if b.b == nil {
			continue
		}
		if b.b.Schema == nil {
			m[b.k] = b.b.Allows
			continue
		}
		v, err := schemaValue(b.b.Schema)
		if err != nil {
			return nil, err
		}
		m[b.k] = v
	}
	if len(p.Dependencies) > 0 {
		deps := make(map[string]any, len(p.Dependencies))
		for name, d := range p.Dependencies {
			switch {
			case len(d.Property) > 0:
				deps[name] = stringList(d.Property)
			case d.Schema != nil:
				v, err := schemaValue(d.Schema)
				if err != nil {
					return nil, err
				}
				deps[name] = v
			default:
				deps[name] = nil
			}
		}
		m["dependencies"] = deps
	}
	if p.ExternalDocs != nil {
		docs := map[string]any{}
		if p.ExternalDocs.Description != "" {
			docs["description"] = p.ExternalDocs.Description
		}
		if p.ExternalDocs.URL != "" {
			docs["url"] = p.ExternalDocs.URL
		}
		m["externalDocs"] = docs
	}
	value("example", p.Example)
	flag("nullable", p.Nullable)
	if p.XPreserveUnknownFields != nil {
		m["x-kubernetes-preserve-unknown-fields"] = *p.XPreserveUnknownFields
	}
	flag("x-kubernetes-embedded-resource", p.XEmbeddedResource)
	flag("x-kubernetes-int-or-string", p.XIntOrString)
	if len(p.XListMapKeys) > 0 {
		m["x-kubernetes-list-map-keys"] = stringList(p.XListMapKeys)
	}
	if p.XListType != nil {
		m["x-kubernetes-list-type"] = *p.XListType
	}
	if p.XMapType != nil {
		m["x-kubernetes-map-type"] = *p.XMapType
	}
	if len(p.XValidations) > 0 {
		rules := make([]any, len(p.XValidations))
		for i, r := range p.XValidations {
			rule := map[string]any{"rule": r.Rule}
			if r.Message != "" {
				rule["message"] = r.Message
			}
			if r.MessageExpression != "" {
				rule["messageExpression"] = r.MessageExpression
			}
			if r.Reason != nil {
				rule["reason"] = string(*r.Reason)
			}
			if r.FieldPath != "" {
				rule["fieldPath"] = r.FieldPath
			}
			if r.OptionalOldSelf != nil {
				rule["optionalOldSelf"] = *r.OptionalOldSelf
			}
			rules[i] = rule
		}
		m["x-kubernetes-validations"] = rules
	}
	if jsonErr != nil {
		return nil, jsonErr
	}
	return m, nil
}

// optionalSchema sets m[k] to s, or to null when s is nil (how a present
// JSONSchemaPropsOrArray without a schema marshals).
func optionalSchema(m map[string]any, k string, s *apiextensionsv1.JSONSchemaProps) error {
	if s == nil {
		m[k] = nil
		return nil
	}
	v, err := schemaValue(s)
	if err != nil {
		return err
	}
	m[k] = v
	return nil
}

func schemaList(l []apiextensionsv1.JSONSchemaProps) ([]any, error) {
	out := make([]any, len(l))
	for i := range l {
		v, err := schemaValue(&l[i])
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

func stringList(l []string) []any {
	out := make([]any, len(l))
	for i, s := range l {
		out[i] = s
	}
	return out
}

// jsonValue decodes a JSON field's raw value as the unstructured
// converter does: integers as int64, other numbers as float64, empty as
// null.
func jsonValue(j *apiextensionsv1.JSON) (any, error) {
	if len(j.Raw) == 0 {
		return nil, nil
	}
	var v any
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(j.Raw, &v); err != nil {
		return nil, err
	}
	return v, nil
}
