package fieldmanager_test

import (
	"fmt"
	"math/rand"
	"reflect"
	"testing"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsfuzzer "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/fuzzer"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/apitesting/fuzzer"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/utils/ptr"

	"github.com/trellis-project/trellis/internal/fieldmanager"
	"github.com/trellis-project/trellis/internal/resource/builtin"
)

// The CRD fast path must read a CRD exactly as the unstructured converter
// (and structured-merge-diff's reflection) does: every field of random
// CRDs, and a large realistic one.
func TestCRDToUnstructuredMatchesConverter(t *testing.T) {
	f := fuzzer.FuzzerFor(apiextensionsfuzzer.Funcs, rand.NewSource(1), serializer.NewCodecFactory(builtin.Scheme))
	// Shapes the fuzzer rarely makes: present but empty wrappers.
	edges := largeCRD()
	edges.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["edges"] = apiextensionsv1.JSONSchemaProps{
		Items:           &apiextensionsv1.JSONSchemaPropsOrArray{},
		Default:         &apiextensionsv1.JSON{},
		Dependencies:    apiextensionsv1.JSONSchemaDependencies{"a": {}, "b": {Property: []string{"x"}}, "c": {Schema: &apiextensionsv1.JSONSchemaProps{Type: "string"}}},
		Not:             &apiextensionsv1.JSONSchemaProps{Items: &apiextensionsv1.JSONSchemaPropsOrArray{JSONSchemas: []apiextensionsv1.JSONSchemaProps{{Type: "string"}, {}}}},
		AdditionalItems: &apiextensionsv1.JSONSchemaPropsOrBool{},
		ExternalDocs:    &apiextensionsv1.ExternalDocumentation{},
		Example:         &apiextensionsv1.JSON{Raw: []byte(`12345678901234567890`)},
	}
	edges.Spec.Versions[1].Schema = &apiextensionsv1.CustomResourceValidation{}
	crds := []*apiextensionsv1.CustomResourceDefinition{largeCRD(), edges}
	for range 200 {
		var internal apiextensions.CustomResourceDefinition
		f.Fill(&internal)
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := builtin.Scheme.Convert(&internal, crd, nil); err != nil {
			t.Fatal(err)
		}
		crd.ManagedFields = nil // random bytes, and not what the fast path changes
		crds = append(crds, crd)
	}
	for i, crd := range crds {
		want, err := runtime.DefaultUnstructuredConverter.ToUnstructured(crd)
		if err != nil {
			t.Fatal(err)
		}
		got, err := fieldmanager.CRDToUnstructured(crd)
		if err != nil {
			t.Fatal(err)
		}
		if d := firstDifference("", got.Object, want); d != "" {
			t.Fatalf("CRD %d: the fast path differs from the unstructured converter at %s", i, d)
		}
	}
}

// A CRD's managed fields come out the same through the fast path and
// through structured-merge-diff's reflection.
func TestCRDFastPathTypedValue(t *testing.T) {
	crd := largeCRD()
	crd.SetGroupVersionKind(apiextensionsv1.SchemeGroupVersion.WithKind("CustomResourceDefinition"))
	slow, err := fieldmanager.ObjectToTypedByReflection(builtinTypes, crd)
	if err != nil {
		t.Fatal(err)
	}
	fast, err := fieldmanager.ObjectToTyped(builtinTypes, crd)
	if err != nil {
		t.Fatal(err)
	}
	cmp, err := slow.Compare(fast)
	if err != nil {
		t.Fatal(err)
	}
	if !cmp.IsSame() {
		t.Fatalf("fast path differs: %v", cmp)
	}
	slowSet, err := slow.ToFieldSet()
	if err != nil {
		t.Fatal(err)
	}
	fastSet, err := fast.ToFieldSet()
	if err != nil {
		t.Fatal(err)
	}
	if !slowSet.Equals(fastSet) {
		t.Fatalf("field sets differ:\n%v\n%v", slowSet, fastSet)
	}
	if slowSet.Size() < 10 {
		t.Fatalf("the test CRD is too small to mean much: %d fields", slowSet.Size())
	}
}

func BenchmarkCRDObjectToTyped(b *testing.B) {
	crd := largeCRD()
	crd.SetGroupVersionKind(apiextensionsv1.SchemeGroupVersion.WithKind("CustomResourceDefinition"))
	for _, tc := range []struct {
		name string
		read func(*fieldmanager.BuiltinTypes, runtime.Object) (any, error)
	}{
		{"reflection", func(bt *fieldmanager.BuiltinTypes, o runtime.Object) (any, error) {
			return fieldmanager.ObjectToTypedByReflection(bt, o)
		}},
		{"fast", func(bt *fieldmanager.BuiltinTypes, o runtime.Object) (any, error) {
			return fieldmanager.ObjectToTyped(bt, o)
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := tc.read(builtinTypes, crd); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// largeCRD is a CRD of the size real projects ship: three versions of a
// schema with nested objects, lists of objects, maps, defaults, enums and
// CEL rules.
func largeCRD() *apiextensionsv1.CustomResourceDefinition {
	str := apiextensionsv1.JSONSchemaProps{Type: "string", MaxLength: ptr.To[int64](253)}
	var object func(depth int) apiextensionsv1.JSONSchemaProps
	object = func(depth int) apiextensionsv1.JSONSchemaProps {
		s := apiextensionsv1.JSONSchemaProps{Type: "object", Description: fmt.Sprintf("level %d", depth),
			Properties: map[string]apiextensionsv1.JSONSchemaProps{
				"name":     str,
				"replicas": {Type: "integer", Format: "int32", Minimum: ptr.To(0.0), Default: &apiextensionsv1.JSON{Raw: []byte(`1`)}},
				"ratio":    {Type: "number", Default: &apiextensionsv1.JSON{Raw: []byte(`0.5`)}},
				"mode":     {Type: "string", Enum: []apiextensionsv1.JSON{{Raw: []byte(`"A"`)}, {Raw: []byte(`"B"`)}}},
				"labels":   {Type: "object", AdditionalProperties: &apiextensionsv1.JSONSchemaPropsOrBool{Allows: true, Schema: &str}},
				"extra":    {Type: "object", XPreserveUnknownFields: ptr.To(true), Default: &apiextensionsv1.JSON{Raw: []byte(`{"a":[1,2.5,"x",null,true]}`)}},
				"port":     {XIntOrString: true, AnyOf: []apiextensionsv1.JSONSchemaProps{{Type: "integer"}, {Type: "string"}}},
			},
			Required:     []string{"name"},
			XValidations: apiextensionsv1.ValidationRules{{Rule: "self.replicas >= 0", Message: "m", Reason: ptr.To(apiextensionsv1.FieldValueInvalid), FieldPath: ".replicas"}},
		}
		if depth > 0 {
			child := object(depth - 1)
			s.Properties["children"] = apiextensionsv1.JSONSchemaProps{Type: "array", XListType: ptr.To("map"), XListMapKeys: []string{"name"},
				Items: &apiextensionsv1.JSONSchemaPropsOrArray{Schema: &child}}
			s.Properties["single"] = child
			s.Properties["tags"] = apiextensionsv1.JSONSchemaProps{Type: "array", XListType: ptr.To("set"), Items: &apiextensionsv1.JSONSchemaPropsOrArray{Schema: &str}}
		}
		return s
	}
	root := apiextensionsv1.JSONSchemaProps{Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{
		"spec": object(3), "status": object(1)}}
	crd := &apiextensionsv1.CustomResourceDefinition{Spec: apiextensionsv1.CustomResourceDefinitionSpec{
		Group: "example.com", Scope: apiextensionsv1.NamespaceScoped,
		Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "things", Kind: "Thing"}}}
	crd.Name = "things.example.com"
	for _, v := range []string{"v1alpha1", "v1beta1", "v1"} {
		crd.Spec.Versions = append(crd.Spec.Versions, apiextensionsv1.CustomResourceDefinitionVersion{Name: v, Served: true, Storage: v == "v1",
			Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: root.DeepCopy()}})
	}
	return crd
}

// firstDifference names where two unstructured values first differ ("" if
// they are equal).
func firstDifference(path string, a, b any) string {
	switch a := a.(type) {
	case map[string]any:
		b, ok := b.(map[string]any)
		if !ok {
			return fmt.Sprintf("%s: %T against %T", path, a, b)
		}
		for k := range a {
			if _, ok := b[k]; !ok {
				return fmt.Sprintf("%s.%s: only in the first (%v)", path, k, a[k])
			}
			if d := firstDifference(path+"."+k, a[k], b[k]); d != "" {
				return d
			}
		}
		for k := range b {
			if _, ok := a[k]; !ok {
				return fmt.Sprintf("%s.%s: only in the second (%v)", path, k, b[k])
			}
		}
		return ""
	case []any:
		b, ok := b.([]any)
		if !ok || len(a) != len(b) {
			return fmt.Sprintf("%s: %v against %v", path, a, b)
		}
		for i := range a {
			if d := firstDifference(fmt.Sprintf("%s[%d]", path, i), a[i], b[i]); d != "" {
				return d
			}
		}
		return ""
	}
	if x, ok := number(a); ok {
		if y, ok := number(b); ok && x == y {
			return ""
		}
	}
	if !reflect.DeepEqual(a, b) {
		return fmt.Sprintf("%s: %#v against %#v", path, a, b)
	}
	return ""
}

// number is v's value if v is a number. The unstructured converter reads
// a float below a field with its own MarshalJSON (items,
// additionalProperties) back from JSON, as an int64 when it is whole;
// structured-merge-diff compares numbers by value, so both are the same.
func number(v any) (float64, bool) {
	switch n := v.(type) {
	case int64:
		return float64(n), true
	case float64:
		return n, true
	}
	return 0, false
}
