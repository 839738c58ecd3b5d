package builtin

import (
	"encoding/json"
	"math"
	"math/rand"
	"reflect"
	"testing"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsfuzzer "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/fuzzer"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/apitesting/fuzzer"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	sigsjson "sigs.k8s.io/json"
)

// decodeValidationUpstream is how a CRD's schema is decoded without the
// parser.
func decodeValidationUpstream(t *testing.T, raw []byte) *apiextensionsv1.CustomResourceValidation {
	t.Helper()
	v := &apiextensionsv1.CustomResourceValidation{}
	if strict, err := sigsjson.UnmarshalStrict(raw, v); err != nil || len(strict) > 0 {
		t.Fatalf("sigs.k8s.io/json refuses %s: %v %v", raw, err, strict)
	}
	return v
}

// Random schemas, compact and indented, parse to what sigs.k8s.io/json
// decodes, and the parser accepts every one of them.
func TestSchemaParserMatchesSigsJSON(t *testing.T) {
	f := fuzzer.FuzzerFor(apiextensionsfuzzer.Funcs, rand.NewSource(3), serializer.NewCodecFactory(Scheme))
	for i := range 400 {
		var internal apiextensions.CustomResourceValidation
		f.Fill(&internal)
		var v apiextensionsv1.CustomResourceValidation
		if err := Scheme.Convert(&internal, &v, nil); err != nil {
			t.Fatal(err)
		}
		raw, err := json.Marshal(&v)
		if err != nil {
			t.Fatal(err)
		}
		if i%2 == 1 {
			if raw, err = json.MarshalIndent(&v, " ", "\t"); err != nil {
				t.Fatal(err)
			}
		}
		got, ok := parseValidation(raw)
		if !ok {
			t.Fatalf("schema %d: refused\n%s", i, raw)
		}
		if want := decodeValidationUpstream(t, raw); !reflect.DeepEqual(got, want) {
			t.Fatalf("schema %d parses as\n%#v\nsigs.k8s.io/json gives\n%#v", i, got, want)
		}
	}
}

// The spellings real CRDs use, and the corners of encoding/json's
// decoding: escapes, nulls, empty lists and maps, both forms of items and
// additionalProperties, numbers.
func TestSchemaParserCorners(t *testing.T) {
	for name, raw := range map[string]string{
		"escapes":        `{"openAPIV3Schema":{"description":"say \"hi\"\n\ttab \\ \/ \u00e9\u4e2d \b\f\r é","pattern":"^[a-z]\\d+$"}}`,
		"nulls":          `{"openAPIV3Schema":{"type":null,"items":null,"properties":null,"default":null,"maximum":null,"required":null,"nullable":null,"enum":[null,"a"],"x-kubernetes-validations":[null,{"rule":"self","reason":null}]}}`,
		"null schema":    `{"openAPIV3Schema":null}`,
		"empty":          `{}`,
		"empty lists":    `{"openAPIV3Schema":{"required":[],"enum":[],"allOf":[],"items":[],"properties":{},"x-kubernetes-list-map-keys":[],"x-kubernetes-validations":[]}}`,
		"items schema":   `{"openAPIV3Schema":{"type":"array","items":{"type":"object","properties":{"a":{"type":"integer","format":"int32","minimum":-1.5e3,"maximum":1E+2,"multipleOf":0.5}}}}}`,
		"items list":     `{"openAPIV3Schema":{"items":[{"type":"string"},{"type":"integer","maxLength":-0}],"additionalItems":false}}`,
		"additional":     `{"openAPIV3Schema":{"additionalProperties":true,"properties":{"m":{"additionalProperties":{"type":"string"}},"n":{"additionalProperties":false}}}}`,
		"raw values":     `{"openAPIV3Schema":{"default":{"a":[1, 2.5e1, "x", true, null, {}]},"example": "s","enum":[1,"two",{"three":3},[4]]}}`,
		"dependencies":   `{"openAPIV3Schema":{"dependencies":{"a":["b","c"],"d":{"type":"object"},"e":null}}}`,
		"definitions":    `{"openAPIV3Schema":{"definitions":{"x":{"type":"string"}},"patternProperties":{"^a":{"type":"string"}},"not":{"type":"null"}}}`,
		"extensions":     `{"openAPIV3Schema":{"x-kubernetes-preserve-unknown-fields":false,"x-kubernetes-embedded-resource":true,"x-kubernetes-int-or-string":true,"x-kubernetes-list-type":"map","x-kubernetes-list-map-keys":["name"],"x-kubernetes-map-type":"atomic"}}`,
		"validations":    `{"openAPIV3Schema":{"x-kubernetes-validations":[{"rule":"self.a == oldSelf.a","message":"m","messageExpression":"'x'","reason":"FieldValueForbidden","fieldPath":".a","optionalOldSelf":true}]}}`,
		"refs and ids":   `{"openAPIV3Schema":{"id":"i","$schema":"http://json-schema.org/schema#","$ref":"#/d","title":"t","externalDocs":{"description":"d","url":"u"},"uniqueItems":true,"exclusiveMaximum":true,"exclusiveMinimum":false,"maxItems":3,"minItems":0,"maxProperties":9,"minProperties":1,"minLength":2}}`,
		"whitespace":     " \n{ \"openAPIV3Schema\" : { \"type\" :\t\"object\" , \"required\" : [ \"a\" , \"b\" ] } }\r\n",
		"unicode":        `{"openAPIV3Schema":{"properties":{"ключ":{"description":"日本語 🙂"},"a\"b\u00e9":{}}}}`,
		"escaped quotes": `{"openAPIV3Schema":{"description":"ends with a backslash \\","title":"\\\"quoted\\\""}}`,
	} {
		got, ok := parseValidation([]byte(raw))
		if !ok {
			t.Errorf("%s: refused", name)
			continue
		}
		if want := decodeValidationUpstream(t, []byte(raw)); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: parses as\n%#v\nsigs.k8s.io/json gives\n%#v", name, got, want)
		}
	}
}

// What the parser does not decode exactly as upstream is left to the
// caller: errors, and spellings whose decoding has special cases.
func TestSchemaParserRefuses(t *testing.T) {
	for name, raw := range map[string]string{
		"unknown field":          `{"openAPIV3Schema":{"type":"object","bogus":1}}`,
		"unknown nested field":   `{"openAPIV3Schema":{"items":{"bogus":1}}}`,
		"unknown top-level":      `{"openAPIV3Schema":{},"other":{}}`,
		"duplicate field":        `{"openAPIV3Schema":{"type":"object","type":"string"}}`,
		"duplicate property":     `{"openAPIV3Schema":{"properties":{"a":{},"a":{}}}}`,
		"wrong type":             `{"openAPIV3Schema":{"type":1}}`,
		"string for bool":        `{"openAPIV3Schema":{"nullable":"true"}}`,
		"fraction for integer":   `{"openAPIV3Schema":{"maxLength":1.5}}`,
		"exponent for integer":   `{"openAPIV3Schema":{"maxLength":1e2}}`,
		"integer overflow":       `{"openAPIV3Schema":{"maxLength":99999999999999999999}}`,
		"float overflow":         `{"openAPIV3Schema":{"maximum":1e999}}`,
		"not a number":           `{"openAPIV3Schema":{"maximum":01}}`,
		"plus sign":              `{"openAPIV3Schema":{"maximum":+1}}`,
		"invalid default":        `{"openAPIV3Schema":{"default":{"a":1,}}}`,
		"invalid enum":           `{"openAPIV3Schema":{"enum":[tru]}}`,
		"items string":           `{"openAPIV3Schema":{"items":"x"}}`,
		"additional number":      `{"openAPIV3Schema":{"additionalProperties":1}}`,
		"surrogate escape":       `{"openAPIV3Schema":{"description":"\ud83d\ude42"}}`,
		"invalid utf-8":          "{\"openAPIV3Schema\":{\"description\":\"\xff\"}}",
		"control character":      "{\"openAPIV3Schema\":{\"description\":\"a\tb\"}}",
		"escaped field name":     `{"openAPIV3Schema":{"typ\u0065":"object"}}`,
		"trailing data":          `{"openAPIV3Schema":{}} {}`,
		"unterminated":           `{"openAPIV3Schema":{"type":"object"`,
		"bad escape":             `{"openAPIV3Schema":{"description":"\x"}}`,
		"unknown rule field":     `{"openAPIV3Schema":{"x-kubernetes-validations":[{"rule":"self","bogus":1}]}}`,
		"dependency number":      `{"openAPIV3Schema":{"dependencies":{"a":1}}}`,
		"property not an object": `{"openAPIV3Schema":{"properties":{"a":1}}}`,
		"missing colon":          `{"openAPIV3Schema" {}}`,
		"missing comma":          `{"openAPIV3Schema":{"type":"a" "format":"b"}}`,
	} {
		if _, ok := parseValidation([]byte(raw)); ok {
			t.Errorf("%s: parsed", name)
		}
	}
}

// SplitCRDSchemas finds each version's schema, whatever the order and
// spacing of the fields around it, and leaves null in its place.
func TestSplitCRDSchemas(t *testing.T) {
	raw := `{"kind":"CustomResourceDefinition","spec":{"group":"g","versions":[` +
		`{"name":"v1","schema":{"openAPIV3Schema":{"description":"has \"schema\": {in it}"}}},` +
		` {"schema" : null, "name":"v2"},` +
		`{"name":"v3"}]},"status":{"acceptedNames":{"kind":"K"}}}`
	rest, schemas, ok := SplitCRDSchemas([]byte(raw))
	if !ok {
		t.Fatal("refused")
	}
	want := `{"kind":"CustomResourceDefinition","spec":{"group":"g","versions":[` +
		`{"name":"v1","schema":null},` +
		` {"schema" : null, "name":"v2"},` +
		`{"name":"v3"}]},"status":{"acceptedNames":{"kind":"K"}}}`
	if string(rest) != want {
		t.Errorf("rest is\n%s\nwant\n%s", rest, want)
	}
	if len(schemas) != 3 || string(schemas[0]) != `{"openAPIV3Schema":{"description":"has \"schema\": {in it}"}}` ||
		string(schemas[1]) != "null" || schemas[2] != nil {
		t.Errorf("schemas are %q", schemas)
	}
	for name, raw := range map[string]string{
		"two specs":        `{"spec":{},"spec":{}}`,
		"two versions":     `{"spec":{"versions":[],"versions":[]}}`,
		"two schemas":      `{"spec":{"versions":[{"schema":{},"schema":{}}]}}`,
		"escaped key":      `{"sp\u0065c":{}}`,
		"unbalanced":       `{"spec":{"versions":[{"schema":{]}}`,
		"not an object":    `[1]`,
		"trailing garbage": `{} x`,
	} {
		if _, _, ok := SplitCRDSchemas([]byte(raw)); ok {
			t.Errorf("%s: split", name)
		}
	}
}

// The schema encoder writes encoding/json's bytes for random schemas and
// for the corners of its encoding.
func TestSchemaEncoderMatchesEncodingJSON(t *testing.T) {
	f := fuzzer.FuzzerFor(apiextensionsfuzzer.Funcs, rand.NewSource(4), serializer.NewCodecFactory(Scheme))
	var schemas []*apiextensionsv1.CustomResourceValidation
	for range 400 {
		var internal apiextensions.CustomResourceValidation
		f.Fill(&internal)
		v := &apiextensionsv1.CustomResourceValidation{}
		if err := Scheme.Convert(&internal, v, nil); err != nil {
			t.Fatal(err)
		}
		schemas = append(schemas, v)
	}
	f64 := func(f float64) *float64 { return &f }
	i64 := func(i int64) *int64 { return &i }
	b := func(b bool) *bool { return &b }
	reason := apiextensionsv1.FieldValueForbidden
	schemas = append(schemas, nil, &apiextensionsv1.CustomResourceValidation{}, &apiextensionsv1.CustomResourceValidation{
		OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
			Description: "<b>&amp;</b> \u2028\u2029 \x00\x1f\x7f \b\f\n\r\t \"q\" \\ é 🙂 \xff\xfe invalid",
			Default:     &apiextensionsv1.JSON{Raw: []byte(" { \"a\" : [ 1 , \"<x>\" , \"\u2028\" ] } ")},
			Example:     &apiextensionsv1.JSON{},
			Enum:        []apiextensionsv1.JSON{{}, {Raw: []byte(`"a&b"`)}, {Raw: []byte("1e3")}},
			Maximum:     f64(1e21), Minimum: f64(-1e-7), MultipleOf: f64(0.000001),
			MaxLength: i64(0), MinLength: i64(-5),
			Items:                &apiextensionsv1.JSONSchemaPropsOrArray{},
			AdditionalProperties: &apiextensionsv1.JSONSchemaPropsOrBool{},
			AdditionalItems:      &apiextensionsv1.JSONSchemaPropsOrBool{Allows: true},
			Required:             []string{},
			Properties: map[string]apiextensionsv1.JSONSchemaProps{
				"b": {Items: &apiextensionsv1.JSONSchemaPropsOrArray{JSONSchemas: []apiextensionsv1.JSONSchemaProps{{}, {Type: "x"}}}},
				"a": {Items: &apiextensionsv1.JSONSchemaPropsOrArray{Schema: &apiextensionsv1.JSONSchemaProps{Nullable: true}}},
				"<": {}, "\xff": {},
			},
			Dependencies: apiextensionsv1.JSONSchemaDependencies{
				"p": {Property: []string{"x", "<"}}, "s": {Schema: &apiextensionsv1.JSONSchemaProps{}}, "n": {}, "e": {Property: []string{}},
			},
			ExternalDocs:           &apiextensionsv1.ExternalDocumentation{},
			XPreserveUnknownFields: b(false),
			XValidations:           apiextensionsv1.ValidationRules{{}, {Rule: "self > 1", Reason: &reason, OptionalOldSelf: b(true)}},
		}})
	for i, v := range schemas {
		want, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		got, err := appendValidationJSON([]byte("prefix"), v)
		if err != nil || string(got) != "prefix"+string(want) {
			t.Fatalf("schema %d: encodes as\n%s (%v)\nencoding/json gives\n%s", i, got, err, want)
		}
	}
	// What encoding/json refuses, the encoder refuses.
	for _, v := range []*apiextensionsv1.JSONSchemaProps{
		{Maximum: f64(math.NaN())}, {Minimum: f64(math.Inf(1))}, {Default: &apiextensionsv1.JSON{Raw: []byte("{bad")}},
	} {
		if _, err := appendValidationJSON(nil, &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: v}); err == nil {
			t.Errorf("%+v encoded", v)
		}
	}
}
