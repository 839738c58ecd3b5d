package builtin

import (
	"bytes"
	"encoding/json"
	"fmt"
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

// The CRD codec gives encoding/json's bytes and sigs.k8s.io/json's
// objects, for random CRDs and for CRDs whose versions share a schema.
func TestCRDJSONMatchesEncodingJSON(t *testing.T) {
	f := fuzzer.FuzzerFor(apiextensionsfuzzer.Funcs, rand.NewSource(2), serializer.NewCodecFactory(Scheme))
	var crds []*apiextensionsv1.CustomResourceDefinition
	for i := range 300 {
		var internal apiextensions.CustomResourceDefinition
		f.Fill(&internal)
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := Scheme.Convert(&internal, crd, nil); err != nil {
			t.Fatal(err)
		}
		crd.ManagedFields = nil // random bytes, not JSON
		if i%3 == 0 && len(crd.Spec.Versions) > 1 {
			// One schema shared by every version (how the codec decodes
			// identical schemas), or equal copies of it.
			for j := range crd.Spec.Versions {
				if i%2 == 0 {
					crd.Spec.Versions[j].Schema = crd.Spec.Versions[0].Schema
				} else {
					crd.Spec.Versions[j].Schema = crd.Spec.Versions[0].Schema.DeepCopy()
				}
			}
		}
		crds = append(crds, crd)
	}
	// A field holding exactly what the encoder uses as a placeholder.
	clash := crds[0].DeepCopy()
	clash.Labels = map[string]string{"a": "\x00trellis-schema-0", "b": "\x00trellis-schema-1"}
	crds = append(crds, clash)
	for i, crd := range crds {
		want, err := json.Marshal(crd)
		if err != nil {
			t.Fatal(err)
		}
		got, err := encodeCRD(crd)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("CRD %d encodes as\n%s\nencoding/json gives\n%s", i, got, want)
		}
		var wantObj apiextensionsv1.CustomResourceDefinition
		if strict, err := sigsjson.UnmarshalStrict(want, &wantObj); err != nil || len(strict) > 0 {
			t.Fatalf("CRD %d: %v %v", i, err, strict)
		}
		gotObj, ok := decodeCRD(want)
		if !ok {
			t.Fatalf("CRD %d: the codec refused JSON that decodes", i)
		}
		if !reflect.DeepEqual(gotObj, &wantObj) {
			t.Fatalf("CRD %d decodes as\n%#v\nsigs.k8s.io/json gives\n%#v", i, gotObj, &wantObj)
		}
	}
}

// JSON the codec does not decode exactly as upstream (unknown or
// duplicate fields, wrong types) is left to the caller.
func TestCRDJSONLeavesErrorsToTheCaller(t *testing.T) {
	for name, body := range map[string]string{
		"unknown top-level field": `{"spec":{"group":"g"},"bogus":1}`,
		"unknown schema field":    `{"spec":{"versions":[{"name":"v1","schema":{"openAPIV3Schema":{"type":"object","bogus":1}}}]}}`,
		"duplicate field":         `{"spec":{"group":"a","group":"b"}}`,
		"wrong type":              `{"spec":{"versions":[{"name":"v1","served":"yes"}]}}`,
		"wrong schema type":       `{"spec":{"versions":[{"name":"v1","schema":{"openAPIV3Schema":{"type":1}}}]}}`,
		"not JSON":                `{"spec":`,
	} {
		if _, ok := decodeCRD([]byte(body)); ok {
			t.Errorf("%s: decoded", name)
		}
	}
	crd, ok := decodeCRD([]byte(`{"spec":{"versions":[{"name":"v1","schema":{"openAPIV3Schema":{"type":"object"}}},{"name":"v2","schema":{"openAPIV3Schema":{"type":"object"}}},{"name":"v3","schema":null}]}}`))
	if !ok || crd.Spec.Versions[0].Schema != crd.Spec.Versions[1].Schema || crd.Spec.Versions[2].Schema != nil {
		t.Fatalf("identical schemas are not shared, or null is not nil: %#v", crd)
	}
}

func BenchmarkCRDJSON(b *testing.B) {
	schema := func() *apiextensionsv1.CustomResourceValidation {
		props := map[string]apiextensionsv1.JSONSchemaProps{}
		for i := range 300 {
			props[fmt.Sprintf("field%03d", i)] = apiextensionsv1.JSONSchemaProps{Type: "array", Description: "a field",
				Items: &apiextensionsv1.JSONSchemaPropsOrArray{Schema: &apiextensionsv1.JSONSchemaProps{Type: "object",
					Properties: map[string]apiextensionsv1.JSONSchemaProps{"name": {Type: "string"}, "value": {Type: "integer"}}}}}
		}
		return &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{Type: "object", Properties: props}}
	}
	s := schema()
	crd := &apiextensionsv1.CustomResourceDefinition{Spec: apiextensionsv1.CustomResourceDefinitionSpec{Versions: []apiextensionsv1.CustomResourceDefinitionVersion{
		{Name: "v1", Schema: s}, {Name: "v2", Schema: s}, {Name: "v3", Schema: s}}}}
	raw, _ := json.Marshal(crd)
	b.Run("encode/encoding-json", func(b *testing.B) {
		for b.Loop() {
			json.Marshal(crd)
		}
	})
	b.Run("encode/codec", func(b *testing.B) {
		for b.Loop() {
			encodeCRD(crd)
		}
	})
	b.Run("decode/sigs-json", func(b *testing.B) {
		for b.Loop() {
			var c apiextensionsv1.CustomResourceDefinition
			sigsjson.UnmarshalStrict(raw, &c)
		}
	})
	b.Run("decode/codec", func(b *testing.B) {
		for b.Loop() {
			decodeCRD(raw)
		}
	})
}
