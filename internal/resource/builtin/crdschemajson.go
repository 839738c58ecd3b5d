package builtin

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unicode/utf8"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	sigsjson "sigs.k8s.io/json"

	"github.com/trellis-project/trellis/internal/jsonscan"
)

// parseValidation decodes a CRD version's schema
// ({"openAPIV3Schema": {...}}) in one pass. It gives what
// sigsjson.UnmarshalStrict gives for the JSON it accepts, and refuses
// (ok=false) anything outside the plain shape real CRDs have: unknown or
// duplicate fields, escaped names, surrogate escapes, invalid UTF-8,
// values of the wrong type. The caller then decodes the usual way, which
// treats those as upstream does.
func parseValidation(d []byte) (*apiextensionsv1.CustomResourceValidation, bool) {
	p := schemaParser{d: d}
	v := &apiextensionsv1.CustomResourceValidation{}
	end, ok := jsonscan.EachField(d, jsonscan.SkipSpace(d, 0), func(key []byte, start int) (int, bool) {
		if string(key) != "openAPIV3Schema" || v.OpenAPIV3Schema != nil {
			return 0, false
		}
		if end, null := p.null(start); null {
			return end, true
		}
		v.OpenAPIV3Schema = &apiextensionsv1.JSONSchemaProps{}
		return p.props(start, v.OpenAPIV3Schema)
	})
	if !ok || jsonscan.SkipSpace(d, end) != len(d) {
		return nil, false
	}
	return v, true
}

// schemaParser's methods each decode the value that starts at d[start]
// and return where it ends.
type schemaParser struct{ d []byte }

// null reports whether the value at start is null, and where it ends.
func (p *schemaParser) null(start int) (int, bool) {
	if len(p.d)-start >= 4 && string(p.d[start:start+4]) == "null" {
		return start + 4, true
	}
	return 0, false
}

// The fields of JSONSchemaProps, each a bit of a set of those seen.
const (
	fID = iota
	fSchema
	fRef
	fDescription
	fType
	fFormat
	fTitle
	fDefault
	fMaximum
	fExclusiveMaximum
	fMinimum
	fExclusiveMinimum
	fMaxLength
	fMinLength
	fPattern
	fMaxItems
	fMinItems
	fUniqueItems
	fMultipleOf
	fEnum
	fMaxProperties
	fMinProperties
	fRequired
	fItems
	fAllOf
	fOneOf
	fAnyOf
	fNot
	fProperties
	fAdditionalProperties
	fPatternProperties
	fDependencies
	fAdditionalItems
	fDefinitions
	fExternalDocs
	fExample
	fNullable
	fPreserveUnknownFields
	fEmbeddedResource
	fIntOrString
	fListMapKeys
	fListType
	fMapType
	fValidations
)

var schemaFields = map[string]int{
	"id": fID, "$schema": fSchema, "$ref": fRef, "description": fDescription, "type": fType,
	"format": fFormat, "title": fTitle, "default": fDefault, "maximum": fMaximum,
	"exclusiveMaximum": fExclusiveMaximum, "minimum": fMinimum, "exclusiveMinimum": fExclusiveMinimum,
	"maxLength": fMaxLength, "minLength": fMinLength, "pattern": fPattern, "maxItems": fMaxItems,
	"minItems": fMinItems, "uniqueItems": fUniqueItems, "multipleOf": fMultipleOf, "enum": fEnum,
	"maxProperties": fMaxProperties, "minProperties": fMinProperties, "required": fRequired,
	"items": fItems, "allOf": fAllOf, "oneOf": fOneOf, "anyOf": fAnyOf, "not": fNot,
	"properties": fProperties, "additionalProperties": fAdditionalProperties,
	"patternProperties": fPatternProperties, "dependencies": fDependencies,
	"additionalItems": fAdditionalItems, "definitions": fDefinitions, "externalDocs": fExternalDocs,
	"example": fExample, "nullable": fNullable,
	"x-kubernetes-preserve-unknown-fields": fPreserveUnknownFields,
	"x-kubernetes-embedded-resource":       fEmbeddedResource,
	"x-kubernetes-int-or-string":           fIntOrString,
	"x-kubernetes-list-map-keys":           fListMapKeys,
	"x-kubernetes-list-type":               fListType,
	"x-kubernetes-map-type":                fMapType,
	"x-kubernetes-validations":             fValidations,
}

// props decodes the schema object at start into s. As with encoding/json,
// null leaves a field (or the whole schema) at its zero value.
func (p *schemaParser) props(start int, s *apiextensionsv1.JSONSchemaProps) (int, bool) {
	if end, null := p.null(start); null {
		return end, true
	}
	var seen uint64
	return jsonscan.EachField(p.d, start, func(key []byte, vs int) (int, bool) {
		f, known := schemaFields[string(key)]
		if !known || seen&(1<<f) != 0 {
			return 0, false
		}
		seen |= 1 << f
		if end, null := p.null(vs); null {
			return end, true
		}
		switch f {
		case fID:
			return p.str(vs, &s.ID)
		case fSchema:
			return p.str(vs, (*string)(&s.Schema))
		case fRef:
			return p.strPtr(vs, &s.Ref)
		case fDescription:
			return p.str(vs, &s.Description)
		case fType:
			return p.str(vs, &s.Type)
		case fFormat:
			return p.str(vs, &s.Format)
		case fTitle:
			return p.str(vs, &s.Title)
		case fDefault:
			return p.raw(vs, &s.Default)
		case fMaximum:
			return p.float(vs, &s.Maximum)
		case fExclusiveMaximum:
			return p.boolean(vs, &s.ExclusiveMaximum)
		case fMinimum:
			return p.float(vs, &s.Minimum)
		case fExclusiveMinimum:
			return p.boolean(vs, &s.ExclusiveMinimum)
		case fMaxLength:
			return p.integer(vs, &s.MaxLength)
		case fMinLength:
			return p.integer(vs, &s.MinLength)
		case fPattern:
			return p.str(vs, &s.Pattern)
		case fMaxItems:
			return p.integer(vs, &s.MaxItems)
		case fMinItems:
			return p.integer(vs, &s.MinItems)
		case fUniqueItems:
			return p.boolean(vs, &s.UniqueItems)
		case fMultipleOf:
			return p.float(vs, &s.MultipleOf)
		case fEnum:
			return p.enum(vs, &s.Enum)
		case fMaxProperties:
			return p.integer(vs, &s.MaxProperties)
		case fMinProperties:
			return p.integer(vs, &s.MinProperties)
		case fRequired:
			return p.strings(vs, &s.Required)
		case fItems:
			return p.items(vs, &s.Items)
		case fAllOf:
			return p.list(vs, &s.AllOf)
		case fOneOf:
			return p.list(vs, &s.OneOf)
		case fAnyOf:
			return p.list(vs, &s.AnyOf)
		case fNot:
			s.Not = &apiextensionsv1.JSONSchemaProps{}
			return p.object(vs, s.Not)
		case fProperties:
			return p.propsMap(vs, &s.Properties)
		case fAdditionalProperties:
			return p.propsOrBool(vs, &s.AdditionalProperties)
		case fPatternProperties:
			return p.propsMap(vs, &s.PatternProperties)
		case fDependencies:
			return p.dependencies(vs, &s.Dependencies)
		case fAdditionalItems:
			return p.propsOrBool(vs, &s.AdditionalItems)
		case fDefinitions:
			return p.propsMap(vs, (*map[string]apiextensionsv1.JSONSchemaProps)(&s.Definitions))
		case fExternalDocs:
			return p.externalDocs(vs, &s.ExternalDocs)
		case fExample:
			return p.raw(vs, &s.Example)
		case fNullable:
			return p.boolean(vs, &s.Nullable)
		case fPreserveUnknownFields:
			var b bool
			s.XPreserveUnknownFields = &b
			return p.boolean(vs, &b)
		case fEmbeddedResource:
			return p.boolean(vs, &s.XEmbeddedResource)
		case fIntOrString:
			return p.boolean(vs, &s.XIntOrString)
		case fListMapKeys:
			return p.strings(vs, &s.XListMapKeys)
		case fListType:
			return p.strPtr(vs, &s.XListType)
		case fMapType:
			return p.strPtr(vs, &s.XMapType)
		case fValidations:
			return p.validations(vs, (*[]apiextensionsv1.ValidationRule)(&s.XValidations))
		}
		return 0, false
	})
}

// object is props for a schema that must be an object or null.
func (p *schemaParser) object(start int, s *apiextensionsv1.JSONSchemaProps) (int, bool) {
	if p.d[start] != '{' && p.d[start] != 'n' {
		return 0, false
	}
	return p.props(start, s)
}

// raw is a JSON field's value as its UnmarshalJSON keeps it: the bytes,
// copied. The scanner only framed them, so they are checked here.
func (p *schemaParser) raw(start int, dst **apiextensionsv1.JSON) (int, bool) {
	end, ok := jsonscan.ValueEnd(p.d, start)
	if !ok || !json.Valid(p.d[start:end]) {
		return 0, false
	}
	*dst = &apiextensionsv1.JSON{Raw: bytes.Clone(p.d[start:end])}
	return end, true
}

func (p *schemaParser) str(start int, dst *string) (end int, ok bool) {
	*dst, end, ok = p.unquote(start)
	return end, ok
}

func (p *schemaParser) strPtr(start int, dst **string) (int, bool) {
	s, end, ok := p.unquote(start)
	*dst = &s
	return end, ok
}

func (p *schemaParser) boolean(start int, dst *bool) (int, bool) {
	rest := p.d[start:]
	switch {
	case bytes.HasPrefix(rest, []byte("true")):
		*dst = true
		return start + 4, true
	case bytes.HasPrefix(rest, []byte("false")):
		*dst = false
		return start + 5, true
	}
	return 0, false
}

// number returns the JSON number at start, as text.
func (p *schemaParser) number(start int) (string, int, bool) {
	end := start
	for end < len(p.d) && (p.d[end] >= '0' && p.d[end] <= '9' || p.d[end] == '-' || p.d[end] == '+' || p.d[end] == '.' || p.d[end] == 'e' || p.d[end] == 'E') {
		end++
	}
	lit := p.d[start:end]
	return string(lit), end, isJSONNumber(lit)
}

func (p *schemaParser) float(start int, dst **float64) (int, bool) {
	lit, end, ok := p.number(start)
	if !ok {
		return 0, false
	}
	f, err := strconv.ParseFloat(lit, 64)
	*dst = &f
	return end, err == nil
}

func (p *schemaParser) integer(start int, dst **int64) (int, bool) {
	lit, end, ok := p.number(start)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(lit, 10, 64)
	*dst = &n
	return end, err == nil
}

func (p *schemaParser) strings(start int, dst *[]string) (int, bool) {
	out := []string{}
	end, ok := jsonscan.EachElement(p.d, start, func(vs int) (int, bool) {
		s, end, ok := p.unquote(vs)
		out = append(out, s)
		return end, ok
	})
	*dst = out
	return end, ok
}

func (p *schemaParser) enum(start int, dst *[]apiextensionsv1.JSON) (int, bool) {
	out := []apiextensionsv1.JSON{}
	end, ok := jsonscan.EachElement(p.d, start, func(vs int) (int, bool) {
		if end, null := p.null(vs); null {
			out = append(out, apiextensionsv1.JSON{})
			return end, true
		}
		var v *apiextensionsv1.JSON
		end, ok := p.raw(vs, &v)
		if ok {
			out = append(out, *v)
		}
		return end, ok
	})
	*dst = out
	return end, ok
}

func (p *schemaParser) list(start int, dst *[]apiextensionsv1.JSONSchemaProps) (int, bool) {
	out := []apiextensionsv1.JSONSchemaProps{}
	end, ok := jsonscan.EachElement(p.d, start, func(vs int) (int, bool) {
		out = append(out, apiextensionsv1.JSONSchemaProps{})
		return p.object(vs, &out[len(out)-1])
	})
	*dst = out
	return end, ok
}

func (p *schemaParser) propsMap(start int, dst *map[string]apiextensionsv1.JSONSchemaProps) (int, bool) {
	out := map[string]apiextensionsv1.JSONSchemaProps{}
	end, ok := jsonscan.EachMember(p.d, start, func(ks, _, vs int) (int, bool) {
		key, _, ok := p.unquote(ks)
		if _, dup := out[key]; dup || !ok {
			return 0, false
		}
		var s apiextensionsv1.JSONSchemaProps
		end, ok := p.object(vs, &s)
		out[key] = s
		return end, ok
	})
	*dst = out
	return end, ok
}

// items is JSONSchemaPropsOrArray.UnmarshalJSON: a schema or a list.
func (p *schemaParser) items(start int, dst **apiextensionsv1.JSONSchemaPropsOrArray) (int, bool) {
	v := &apiextensionsv1.JSONSchemaPropsOrArray{}
	*dst = v
	switch p.d[start] {
	case '{':
		v.Schema = &apiextensionsv1.JSONSchemaProps{}
		return p.props(start, v.Schema)
	case '[':
		return p.list(start, &v.JSONSchemas)
	}
	return 0, false
}

// propsOrBool is JSONSchemaPropsOrBool.UnmarshalJSON: a schema (which
// allows) or a boolean.
func (p *schemaParser) propsOrBool(start int, dst **apiextensionsv1.JSONSchemaPropsOrBool) (int, bool) {
	v := &apiextensionsv1.JSONSchemaPropsOrBool{}
	*dst = v
	if p.d[start] == '{' {
		v.Allows, v.Schema = true, &apiextensionsv1.JSONSchemaProps{}
		return p.props(start, v.Schema)
	}
	return p.boolean(start, &v.Allows)
}

// dependencies holds JSONSchemaPropsOrStringArray values: a schema, a
// list of property names, or null (the zero value).
func (p *schemaParser) dependencies(start int, dst *apiextensionsv1.JSONSchemaDependencies) (int, bool) {
	out := apiextensionsv1.JSONSchemaDependencies{}
	end, ok := jsonscan.EachMember(p.d, start, func(ks, _, vs int) (int, bool) {
		key, _, ok := p.unquote(ks)
		if _, dup := out[key]; dup || !ok {
			return 0, false
		}
		var v apiextensionsv1.JSONSchemaPropsOrStringArray
		var end int
		switch p.d[vs] {
		case 'n':
			end, ok = p.null(vs)
		case '{':
			v.Schema = &apiextensionsv1.JSONSchemaProps{}
			end, ok = p.props(vs, v.Schema)
		case '[':
			end, ok = p.strings(vs, &v.Property)
		default:
			return 0, false
		}
		out[key] = v
		return end, ok
	})
	*dst = out
	return end, ok
}

func (p *schemaParser) externalDocs(start int, dst **apiextensionsv1.ExternalDocumentation) (int, bool) {
	v := &apiextensionsv1.ExternalDocumentation{}
	*dst = v
	var seenDescription, seenURL bool
	return jsonscan.EachField(p.d, start, func(key []byte, vs int) (int, bool) {
		var dst *string
		switch string(key) {
		case "description":
			if seenDescription {
				return 0, false
			}
			seenDescription, dst = true, &v.Description
		case "url":
			if seenURL {
				return 0, false
			}
			seenURL, dst = true, &v.URL
		default:
			return 0, false
		}
		if end, null := p.null(vs); null {
			return end, true
		}
		return p.str(vs, dst)
	})
}

func (p *schemaParser) validations(start int, dst *[]apiextensionsv1.ValidationRule) (int, bool) {
	out := []apiextensionsv1.ValidationRule{}
	end, ok := jsonscan.EachElement(p.d, start, func(vs int) (int, bool) {
		out = append(out, apiextensionsv1.ValidationRule{})
		if end, null := p.null(vs); null {
			return end, true
		}
		r := &out[len(out)-1]
		var seen uint8
		return jsonscan.EachField(p.d, vs, func(key []byte, fs int) (int, bool) {
			var bit uint8
			switch string(key) {
			case "rule":
				bit = 1
			case "message":
				bit = 2
			case "messageExpression":
				bit = 4
			case "reason":
				bit = 8
			case "fieldPath":
				bit = 16
			case "optionalOldSelf":
				bit = 32
			default:
				return 0, false
			}
			if seen&bit != 0 {
				return 0, false
			}
			seen |= bit
			if end, null := p.null(fs); null {
				return end, true
			}
			switch bit {
			case 1:
				return p.str(fs, &r.Rule)
			case 2:
				return p.str(fs, &r.Message)
			case 4:
				return p.str(fs, &r.MessageExpression)
			case 8:
				s, end, ok := p.unquote(fs)
				reason := apiextensionsv1.FieldValueErrorReason(s)
				r.Reason = &reason
				return end, ok
			case 16:
				return p.str(fs, &r.FieldPath)
			default:
				var b bool
				r.OptionalOldSelf = &b
				return p.boolean(fs, &b)
			}
		})
	})
	*dst = out
	return end, ok
}

// unquote decodes the JSON string at start as encoding/json does,
// refusing the rare spellings (surrogate escapes, invalid UTF-8) whose
// decoding has special cases.
func (p *schemaParser) unquote(start int) (string, int, bool) {
	if p.d[start] != '"' {
		return "", 0, false
	}
	end, escaped, ok := jsonscan.StringEnd(p.d, start)
	if !ok {
		return "", 0, false
	}
	s := p.d[start+1 : end-1]
	if !escaped {
		if !validString(s) {
			return "", 0, false
		}
		return string(s), end, true
	}
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); {
		c := s[i]
		if c != '\\' {
			if c < 0x20 {
				return "", 0, false
			}
			out = append(out, c)
			i++
			continue
		}
		if i+1 >= len(s) {
			return "", 0, false
		}
		switch s[i+1] {
		case '"', '\\', '/':
			out = append(out, s[i+1])
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			if i+6 > len(s) {
				return "", 0, false
			}
			r, err := strconv.ParseUint(string(s[i+2:i+6]), 16, 32)
			if err != nil || (r >= 0xD800 && r < 0xE000) {
				return "", 0, false
			}
			out = utf8.AppendRune(out, rune(r))
			i += 6
			continue
		default:
			return "", 0, false
		}
		i += 2
	}
	if !utf8.Valid(out) {
		return "", 0, false
	}
	return string(out), end, true
}

// validString reports whether raw string bytes (no escapes) decode to
// themselves: valid UTF-8 without control characters.
func validString(s []byte) bool {
	ascii := true
	for _, c := range s {
		if c < 0x20 {
			return false
		}
		if c >= utf8.RuneSelf {
			ascii = false
		}
	}
	return ascii || utf8.Valid(s)
}

// isJSONNumber reports whether lit is a JSON number:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func isJSONNumber(lit []byte) bool {
	i := 0
	if i < len(lit) && lit[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(lit) && lit[i] >= '0' && lit[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if i < len(lit) && lit[i] == '0' {
		i++
	} else if digits() == 0 {
		return false
	}
	if i < len(lit) && lit[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(lit) && (lit[i] == 'e' || lit[i] == 'E') {
		i++
		if i < len(lit) && (lit[i] == '+' || lit[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(lit)
}

// DecodeCRDSchema decodes a CRD version's schema as
// sigsjson.UnmarshalCaseSensitivePreserveInts does (unknown fields
// dropped), in one pass when the JSON has the plain shape.
func DecodeCRDSchema(raw []byte) (*apiextensionsv1.CustomResourceValidation, error) {
	if v, ok := parseValidation(raw); ok {
		return v, nil
	}
	v := &apiextensionsv1.CustomResourceValidation{}
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(raw, v); err != nil {
		return nil, err
	}
	return v, nil
}

// EncodeCRDSchema is json.Marshal(v), writing each nested schema once.
func EncodeCRDSchema(v *apiextensionsv1.CustomResourceValidation) ([]byte, error) {
	raw, err := appendValidationJSON(nil, v)
	if err != nil {
		return json.Marshal(v) // which words the error
	}
	return raw, nil
}
