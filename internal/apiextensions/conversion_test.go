package apiextensions

import (
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// twoVersionCRD: v1 (storage) knows spec.a (default "A") and spec.both;
// v2 knows spec.b (default "B") and spec.both.
func twoVersionCRD() *apiextensionsv1.CustomResourceDefinition {
	props := func(extra string, def string) map[string]apiextensionsv1.JSONSchemaProps {
		p := map[string]apiextensionsv1.JSONSchemaProps{
			"both": {Type: "string"},
			extra:  {Type: "string", Default: &apiextensionsv1.JSON{Raw: []byte(`"` + def + `"`)}},
		}
		return p
	}
	version := func(name string, storage bool, spec map[string]apiextensionsv1.JSONSchemaProps) apiextensionsv1.CustomResourceDefinitionVersion {
		return apiextensionsv1.CustomResourceDefinitionVersion{Name: name, Served: true, Storage: storage,
			Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
				Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{"spec": {Type: "object", Properties: spec}},
			}}}
	}
	crd := &apiextensionsv1.CustomResourceDefinition{}
	crd.Name = "widgets.example.com"
	crd.Spec.Group = "example.com"
	crd.Spec.Names.Kind = "Widget"
	crd.Spec.Versions = []apiextensionsv1.CustomResourceDefinitionVersion{version("v1", true, props("a", "A")), version("v2", false, props("b", "B"))}
	crd.Status.StoredVersions = []string{"v1"}
	return crd
}

func TestCRDConversionReadAndWrite(t *testing.T) {
	c, err := testConversion(twoVersionCRD())
	if err != nil {
		t.Fatal(err)
	}
	v1 := schema.GroupVersion{Group: "example.com", Version: "v1"}
	v2 := schema.GroupVersion{Group: "example.com", Version: "v2"}
	stored := func() *unstructured.Unstructured {
		return widgetObj("example.com/v1", map[string]any{"name": "w", "generation": int64(0)},
			map[string]any{"both": "x", "b": "written-before-a-schema-change", "junk": "j"})
	}

	// Read in the storage version: its defaults apply, unknown fields go,
	// a missing generation is repaired.
	out, err := c.fromStorage([]*unstructured.Unstructured{stored()}, v1, false)
	if err != nil {
		t.Fatal(err)
	}
	spec := out[0].Object["spec"].(map[string]any)
	if spec["a"] != "A" || spec["both"] != "x" || spec["b"] != nil || spec["junk"] != nil {
		t.Errorf("read in v1: spec %v", spec)
	}
	if out[0].GetGeneration() != 1 {
		t.Errorf("generation %d, want repaired to 1", out[0].GetGeneration())
	}

	// Read in v2: storage defaults, then converted and pruned with v2's
	// schema; v2's own defaults do not apply on read.
	out, err = c.fromStorage([]*unstructured.Unstructured{stored()}, v2, false)
	if err != nil {
		t.Fatal(err)
	}
	spec = out[0].Object["spec"].(map[string]any)
	if out[0].GetAPIVersion() != "example.com/v2" || spec["a"] != nil || spec["b"] != nil || spec["both"] != "x" {
		t.Errorf("read in v2: %s spec %v", out[0].GetAPIVersion(), spec)
	}

	// Written from v2: converted and pruned with the storage schema, not
	// defaulted; the input is left alone.
	in := widgetObj("example.com/v2", map[string]any{"name": "w"}, map[string]any{"both": "y", "b": "B"})
	st, err := c.toStorage(in)
	if err != nil {
		t.Fatal(err)
	}
	spec = st.Object["spec"].(map[string]any)
	if st.GetAPIVersion() != "example.com/v1" || spec["b"] != nil || spec["a"] != nil || spec["both"] != "y" {
		t.Errorf("stored: %s spec %v", st.GetAPIVersion(), spec)
	}
	if in.GetAPIVersion() != "example.com/v2" || in.Object["spec"].(map[string]any)["b"] != "B" {
		t.Errorf("toStorage modified its input: %v", in.Object)
	}
	// Already in the storage version: stored as it is.
	same := widgetObj("example.com/v1", map[string]any{"name": "w"}, map[string]any{"junk": "kept"})
	if st, err := c.toStorage(same); err != nil || st != same {
		t.Errorf("storage-version write was converted: %v %v", st, err)
	}

	// Versions the CRD does not have.
	bad := widgetObj("example.com/v0", map[string]any{"name": "w"}, nil)
	if _, err := c.fromStorage([]*unstructured.Unstructured{bad}, v2, false); err == nil || !strings.Contains(err.Error(), "request to convert CR from an invalid group/version: example.com/v0") {
		t.Errorf("unknown stored version: %v", err)
	}
	if _, err := c.fromStorage([]*unstructured.Unstructured{stored()}, schema.GroupVersion{Group: "example.com", Version: "v9"}, false); err == nil || !strings.Contains(err.Error(), "request to convert CR to an invalid group/version: example.com/v9") {
		t.Errorf("unknown target version: %v", err)
	}
}

func TestCRDConversionListMixedVersions(t *testing.T) {
	c, err := testConversion(twoVersionCRD())
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	c.conv = converterFunc(func(objs []*unstructured.Unstructured, to schema.GroupVersion, batch bool) ([]*unstructured.Unstructured, error) {
		calls++
		if !batch || len(objs) != 1 || objs[0].GetName() != "old" {
			t.Errorf("converter got %d objects (batch %v)", len(objs), batch)
		}
		return noneConverter{}.convert(objs, to, batch)
	})
	objs := []*unstructured.Unstructured{
		widgetObj("example.com/v2", map[string]any{"name": "new"}, map[string]any{"b": "b"}),
		widgetObj("example.com/v1", map[string]any{"name": "old"}, map[string]any{"a": "a"}),
	}
	out, err := c.fromStorage(objs, schema.GroupVersion{Group: "example.com", Version: "v2"}, true)
	if err != nil {
		t.Fatal(err)
	}
	if calls != 1 || out[0].GetName() != "new" || out[1].GetName() != "old" || out[1].GetAPIVersion() != "example.com/v2" {
		t.Errorf("calls %d, out %v %v", calls, out[0].Object, out[1].Object)
	}
}

type converterFunc func([]*unstructured.Unstructured, schema.GroupVersion, bool) ([]*unstructured.Unstructured, error)

func (f converterFunc) convert(objs []*unstructured.Unstructured, to schema.GroupVersion, batch bool) ([]*unstructured.Unstructured, error) {
	return f(objs, to, batch)
}

func TestServesStoredBytes(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*apiextensionsv1.CustomResourceDefinition)
		want bool
	}{
		{"storage schema has defaults", func(*apiextensionsv1.CustomResourceDefinition) {}, false},
		{"no defaults", func(crd *apiextensionsv1.CustomResourceDefinition) {
			crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"].Properties["a"] = apiextensionsv1.JSONSchemaProps{Type: "string"}
		}, true},
		{"objects stored in another version", func(crd *apiextensionsv1.CustomResourceDefinition) {
			crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"].Properties["a"] = apiextensionsv1.JSONSchemaProps{Type: "string"}
			crd.Status.StoredVersions = []string{"v0", "v1"}
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			crd := twoVersionCRD()
			tc.edit(crd)
			c, err := testConversion(crd)
			if err != nil {
				t.Fatal(err)
			}
			if c.servesStoredBytes != tc.want {
				t.Errorf("servesStoredBytes = %v, want %v", c.servesStoredBytes, tc.want)
			}
		})
	}
}

// testConversion compiles crd's schemas (with no pool bound) and prepares
// the None conversion of its objects.
func testConversion(crd *apiextensionsv1.CustomResourceDefinition) (*crdConversion, error) {
	schemas, err := newCRDSchemas(nil, crd)
	if err != nil {
		return nil, err
	}
	if err := schemas.compile(); err != nil {
		return nil, err
	}
	return newCRDConversion(crd, noneConverter{}, schemas), nil
}
