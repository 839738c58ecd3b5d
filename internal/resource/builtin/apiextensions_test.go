package builtin

import (
	"testing"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/registry/rest"
)

// The scheme's CRD conversion must give exactly what upstream's gives:
// schemas hoisted to spec.validation when every version's is identical,
// kept per version otherwise.
func TestCRDSpecConversionMatchesUpstream(t *testing.T) {
	schema := func(desc string) *apiextensionsv1.CustomResourceValidation {
		return &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
			Type: "object",
			Properties: map[string]apiextensionsv1.JSONSchemaProps{
				"spec": {Type: "object", Description: desc, Properties: map[string]apiextensionsv1.JSONSchemaProps{
					"size": {Type: "integer", Default: &apiextensionsv1.JSON{Raw: []byte(`3`)}},
					"tags": {Type: "array", Items: &apiextensionsv1.JSONSchemaPropsOrArray{Schema: &apiextensionsv1.JSONSchemaProps{Type: "string"}}},
				}},
			},
		}}
	}
	version := func(name string, s *apiextensionsv1.CustomResourceValidation) apiextensionsv1.CustomResourceDefinitionVersion {
		return apiextensionsv1.CustomResourceDefinitionVersion{Name: name, Served: true, Storage: name == "v1", Schema: s}
	}
	for name, versions := range map[string][]apiextensionsv1.CustomResourceDefinitionVersion{
		"one version":        {version("v1", schema("a"))},
		"identical":          {version("v1", schema("a")), version("v2", schema("a")), version("v3", schema("a"))},
		"one differs":        {version("v1", schema("a")), version("v2", schema("a")), version("v3", schema("b"))},
		"first differs":      {version("v1", schema("b")), version("v2", schema("a"))},
		"one without schema": {version("v1", schema("a")), version("v2", nil)},
		"none with schema":   {version("v1", nil), version("v2", nil)},
	} {
		t.Run(name, func(t *testing.T) {
			crd := &apiextensionsv1.CustomResourceDefinition{Spec: apiextensionsv1.CustomResourceDefinitionSpec{
				Group: "example.com", Scope: apiextensionsv1.NamespaceScoped, Versions: versions,
				Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "things", Kind: "Thing"},
			}}
			crd.SetGroupVersionKind(apiextensionsv1.SchemeGroupVersion.WithKind("CustomResourceDefinition"))
			var want apiextensions.CustomResourceDefinition
			if err := apiextensionsv1.Convert_v1_CustomResourceDefinition_To_apiextensions_CustomResourceDefinition(crd, &want, nil); err != nil {
				t.Fatal(err)
			}
			for _, convert := range []func(runtime.Object, runtime.GroupVersioner) (runtime.Object, error){Scheme.ConvertToVersion, Scheme.UnsafeConvertToVersion} {
				got, err := convert(crd.DeepCopy(), apiextensions.SchemeGroupVersion)
				if err != nil {
					t.Fatal(err)
				}
				if spec := got.(*apiextensions.CustomResourceDefinition).Spec; !apiequality.Semantic.DeepEqual(spec, want.Spec) {
					t.Errorf("spec converted to\n%#v\nupstream converts it to\n%#v", spec, want)
				}
			}
		})
	}
}

// Declarative validation runs for the hand-written kinds whose upstream
// strategy has it, and not for CRDs, whose upstream strategy has none.
func TestDeclarativeValidationAsUpstream(t *testing.T) {
	crd := customResourceDefinitions()
	if _, ok := crd.rules.(rest.DeclarativeValidationStrategy); ok {
		t.Error("CRDs run declarative validation; upstream's CRD strategy does not")
	}
	for name, s := range map[string]any{
		"serviceaccounts": serviceAccountRules(), "endpoints": endpointsRules(), "endpointslices": endpointSliceRules(),
		"resourceclaims": resourceClaimRules(), "resourceclaims/status": resourceClaimStatusRules(),
		"resourceclaimtemplates": resourceClaimTemplateRules(),
	} {
		if _, ok := s.(rest.DeclarativeValidationStrategy); !ok {
			t.Errorf("%s: no declarative validation", name)
		}
	}
}
