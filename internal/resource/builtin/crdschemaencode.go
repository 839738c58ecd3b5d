package builtin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
)

// appendValidationJSON appends json.Marshal(v) to dst, writing each schema
// once. encoding/json marshals a nested schema behind items or
// additionalProperties through its MarshalJSON and then copies and
// rescans what that returned, at every level: a deep schema costs many
// times its size. The bytes are encoding/json's (tested against it); an
// error means a value encoding/json refuses too (a NaN, invalid JSON in a
// default).
func appendValidationJSON(dst []byte, v *apiextensionsv1.CustomResourceValidation) ([]byte, error) {
	if v == nil {
		return append(dst, "null"...), nil
	}
	e := schemaEncoder{buf: dst}
	e.buf = append(e.buf, '{')
	if v.OpenAPIV3Schema != nil {
		e.buf = append(e.buf, `"openAPIV3Schema":`...)
		e.props(v.OpenAPIV3Schema)
	}
	e.buf = append(e.buf, '}')
	return e.buf, e.err
}

type schemaEncoder struct {
	buf   []byte
	comma bool // whether the object being written has a member
	err   error
}

// field starts the member name of the object being written.
func (e *schemaEncoder) field(name string) {
	if e.comma {
		e.buf = append(e.buf, ',')
	}
	e.comma = true
	e.buf = append(e.buf, '"')
	e.buf = append(e.buf, name...)
	e.buf = append(e.buf, '"', ':')
}

func (e *schemaEncoder) str(name, s string) {
	if s != "" {
		e.field(name)
		e.buf = appendJSONString(e.buf, s)
	}
}

func (e *schemaEncoder) strPtr(name string, s *string) {
	if s != nil {
		e.field(name)
		e.buf = appendJSONString(e.buf, *s)
	}
}

func (e *schemaEncoder) boolean(name string, b bool) {
	if b {
		e.field(name)
		e.buf = append(e.buf, "true"...)
	}
}

func (e *schemaEncoder) boolPtr(name string, b *bool) {
	if b != nil {
		e.field(name)
		e.buf = strconv.AppendBool(e.buf, *b)
	}
}

func (e *schemaEncoder) integer(name string, n *int64) {
	if n != nil {
		e.field(name)
		e.buf = strconv.AppendInt(e.buf, *n, 10)
	}
}

// float writes a number as encoding/json does: like ES6, exponent form
// only for very small or large magnitudes, without exponent padding.
func (e *schemaEncoder) float(name string, f *float64) {
	if f == nil {
		return
	}
	e.field(name)
	if math.IsInf(*f, 0) || math.IsNaN(*f) {
		e.fail(fmt.Errorf("json: unsupported value: %v", *f))
		return
	}
	format := byte('f')
	if abs := math.Abs(*f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	e.buf = strconv.AppendFloat(e.buf, *f, format, -1, 64)
	if n := len(e.buf); format == 'e' && n >= 4 && e.buf[n-4] == 'e' && e.buf[n-3] == '-' && e.buf[n-2] == '0' {
		e.buf[n-2] = e.buf[n-1] // e-09 → e-9
		e.buf = e.buf[:n-1]
	}
}

// raw writes a JSON value's bytes as encoding/json writes what a
// MarshalJSON returns: checked, compacted and HTML-escaped.
func (e *schemaEncoder) raw(v apiextensionsv1.JSON) {
	if len(v.Raw) == 0 {
		e.buf = append(e.buf, "null"...)
		return
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, v.Raw); err != nil {
		e.fail(err)
		return
	}
	var escaped bytes.Buffer
	json.HTMLEscape(&escaped, compact.Bytes())
	e.buf = append(e.buf, escaped.Bytes()...)
}

// list writes a JSON array of n elements, each written by elem.
func (e *schemaEncoder) list(n int, elem func(i int)) {
	e.buf = append(e.buf, '[')
	for i := range n {
		if i > 0 {
			e.buf = append(e.buf, ',')
		}
		elem(i)
	}
	e.buf = append(e.buf, ']')
}

func (e *schemaEncoder) fail(err error) {
	if e.err == nil {
		e.err = err
	}
}

func (e *schemaEncoder) strings(name string, l []string) {
	if len(l) == 0 {
		return
	}
	e.field(name)
	e.stringList(l)
}

func (e *schemaEncoder) stringList(l []string) {
	if l == nil {
		e.buf = append(e.buf, "null"...)
		return
	}
	e.list(len(l), func(i int) { e.buf = appendJSONString(e.buf, l[i]) })
}

func (e *schemaEncoder) schemas(name string, l []apiextensionsv1.JSONSchemaProps) {
	if len(l) == 0 {
		return
	}
	e.field(name)
	e.schemaList(l)
}

func (e *schemaEncoder) schemaList(l []apiextensionsv1.JSONSchemaProps) {
	e.list(len(l), func(i int) { e.props(&l[i]) })
}

func (e *schemaEncoder) schemaMap(name string, m map[string]apiextensionsv1.JSONSchemaProps) {
	if len(m) == 0 {
		return
	}
	e.field(name)
	e.keyed(sortedKeys(m), func(k string) {
		s := m[k]
		e.props(&s)
	})
}

// keyed writes a JSON object of the members keys (sorted, as
// encoding/json sorts map keys), each value written by value.
func (e *schemaEncoder) keyed(keys []string, value func(k string)) {
	e.buf = append(e.buf, '{')
	for i, k := range keys {
		if i > 0 {
			e.buf = append(e.buf, ',')
		}
		e.buf = appendJSONString(e.buf, k)
		e.buf = append(e.buf, ':')
		value(k)
	}
	e.buf = append(e.buf, '}')
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// propsOrBool is JSONSchemaPropsOrBool.MarshalJSON.
func (e *schemaEncoder) propsOrBool(name string, v *apiextensionsv1.JSONSchemaPropsOrBool) {
	if v == nil {
		return
	}
	e.field(name)
	switch {
	case v.Schema != nil:
		e.props(v.Schema)
	case v.Allows:
		e.buf = append(e.buf, "true"...)
	default:
		e.buf = append(e.buf, "false"...)
	}
}

// props writes one schema; the fields in JSONSchemaProps's order, each
// left out when empty (they are all omitempty).
func (e *schemaEncoder) props(s *apiextensionsv1.JSONSchemaProps) {
	outer := e.comma
	e.comma = false
	e.buf = append(e.buf, '{')
	e.str("id", s.ID)
	e.str("$schema", string(s.Schema))
	e.strPtr("$ref", s.Ref)
	e.str("description", s.Description)
	e.str("type", s.Type)
	e.str("format", s.Format)
	e.str("title", s.Title)
	if s.Default != nil {
		e.field("default")
		e.raw(*s.Default)
	}
	e.float("maximum", s.Maximum)
	e.boolean("exclusiveMaximum", s.ExclusiveMaximum)
	e.float("minimum", s.Minimum)
	e.boolean("exclusiveMinimum", s.ExclusiveMinimum)
	e.integer("maxLength", s.MaxLength)
	e.integer("minLength", s.MinLength)
	e.str("pattern", s.Pattern)
	e.integer("maxItems", s.MaxItems)
	e.integer("minItems", s.MinItems)
	e.boolean("uniqueItems", s.UniqueItems)
	e.float("multipleOf", s.MultipleOf)
	if len(s.Enum) > 0 {
		e.field("enum")
		e.list(len(s.Enum), func(i int) { e.raw(s.Enum[i]) })
	}
	e.integer("maxProperties", s.MaxProperties)
	e.integer("minProperties", s.MinProperties)
	e.strings("required", s.Required)
	if s.Items != nil {
		// JSONSchemaPropsOrArray.MarshalJSON: the list if it has
		// elements, else the schema (null when there is none).
		e.field("items")
		switch {
		case len(s.Items.JSONSchemas) > 0:
			e.schemaList(s.Items.JSONSchemas)
		case s.Items.Schema != nil:
			e.props(s.Items.Schema)
		default:
			e.buf = append(e.buf, "null"...)
		}
	}
	e.schemas("allOf", s.AllOf)
	e.schemas("oneOf", s.OneOf)
	e.schemas("anyOf", s.AnyOf)
	if s.Not != nil {
		e.field("not")
		e.props(s.Not)
	}
	e.schemaMap("properties", s.Properties)
	e.propsOrBool("additionalProperties", s.AdditionalProperties)
	e.schemaMap("patternProperties", s.PatternProperties)
	if len(s.Dependencies) > 0 {
		e.field("dependencies")
		e.keyed(sortedKeys(s.Dependencies), func(k string) {
			// JSONSchemaPropsOrStringArray.MarshalJSON.
			switch d := s.Dependencies[k]; {
			case len(d.Property) > 0:
				e.stringList(d.Property)
			case d.Schema != nil:
				e.props(d.Schema)
			default:
				e.buf = append(e.buf, "null"...)
			}
		})
	}
	e.propsOrBool("additionalItems", s.AdditionalItems)
	e.schemaMap("definitions", s.Definitions)
	if s.ExternalDocs != nil {
		e.field("externalDocs")
		comma := e.comma
		e.comma = false
		e.buf = append(e.buf, '{')
		e.str("description", s.ExternalDocs.Description)
		e.str("url", s.ExternalDocs.URL)
		e.buf = append(e.buf, '}')
		e.comma = comma
	}
	if s.Example != nil {
		e.field("example")
		e.raw(*s.Example)
	}
	e.boolean("nullable", s.Nullable)
	e.boolPtr("x-kubernetes-preserve-unknown-fields", s.XPreserveUnknownFields)
	e.boolean("x-kubernetes-embedded-resource", s.XEmbeddedResource)
	e.boolean("x-kubernetes-int-or-string", s.XIntOrString)
	e.strings("x-kubernetes-list-map-keys", s.XListMapKeys)
	e.strPtr("x-kubernetes-list-type", s.XListType)
	e.strPtr("x-kubernetes-map-type", s.XMapType)
	if len(s.XValidations) > 0 {
		e.field("x-kubernetes-validations")
		e.list(len(s.XValidations), func(i int) {
			r := s.XValidations[i]
			e.comma = false
			e.buf = append(e.buf, '{')
			e.field("rule") // not omitempty
			e.buf = appendJSONString(e.buf, r.Rule)
			e.str("message", r.Message)
			e.str("messageExpression", r.MessageExpression)
			if r.Reason != nil {
				e.field("reason")
				e.buf = appendJSONString(e.buf, string(*r.Reason))
			}
			e.str("fieldPath", r.FieldPath)
			e.boolPtr("optionalOldSelf", r.OptionalOldSelf)
			e.buf = append(e.buf, '}')
		})
		e.comma = true
	}
	e.buf = append(e.buf, '}')
	e.comma = outer
}

const hexDigits = "0123456789abcdef"

// appendJSONString writes s as encoding/json does: HTML characters,
// control characters, U+2028 and U+2029 escaped, invalid UTF-8 replaced.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' && b != '<' && b != '>' && b != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case c == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case c == '\u2028' || c == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[c&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
