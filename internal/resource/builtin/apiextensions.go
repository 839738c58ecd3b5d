package builtin

import (
	"context"
	"reflect"
	"slices"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsinstall "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/install"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsvalidation "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/conversion"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apiserver/pkg/registry/rest"
)

func init() {
	apiextensionsinstall.Install(Scheme)
	// Replaces upstream's registration of the same conversion.
	if err := Scheme.AddConversionFunc((*apiextensionsv1.CustomResourceDefinition)(nil), (*apiextensions.CustomResourceDefinition)(nil), func(a, b any, s conversion.Scope) error {
		return convertCRDToInternal(a.(*apiextensionsv1.CustomResourceDefinition), b.(*apiextensions.CustomResourceDefinition), s)
	}); err != nil {
		panic(err)
	}
}

// convertCRDToInternal is upstream's v1 → internal conversion of a CRD,
// with a cheaper test for identical version schemas. Upstream compares the schemas with Semantic.DeepEqual, whose bookkeeping makes
// it cost ~7 ms per pair for a large schema and dominated every write of
// a large CRD (each converts the object several times). The schemas hold
// no type with a custom semantic equality (quantities, times, selectors),
// so reflect.DeepEqual decides the same, three times faster.
func convertCRDToInternal(in *apiextensionsv1.CustomResourceDefinition, out *apiextensions.CustomResourceDefinition, s conversion.Scope) error {
	// Upstream's conversion of everything but the schemas: with no
	// schemas it finds them identical and leaves them all nil.
	bare := *in
	bare.Spec.Versions = slices.Clone(in.Spec.Versions)
	for i := range bare.Spec.Versions {
		bare.Spec.Versions[i].Schema = nil
	}
	if err := apiextensionsv1.Convert_v1_CustomResourceDefinition_To_apiextensions_CustomResourceDefinition(&bare, out, s); err != nil {
		return err
	}
	if len(in.Spec.Versions) == 0 {
		return nil
	}
	// Conversion is a function of its input, so versions whose v1 schemas
	// are equal share one conversion: a large CRD usually repeats one
	// schema in every version.
	schemas := make([]*apiextensions.CustomResourceValidation, len(in.Spec.Versions))
	for i, v := range in.Spec.Versions {
		if v.Schema == nil {
			continue
		}
		for j := range i {
			if in.Spec.Versions[j].Schema != nil && (in.Spec.Versions[j].Schema == v.Schema || reflect.DeepEqual(in.Spec.Versions[j].Schema, v.Schema)) {
				schemas[i] = schemas[j]
				break
			}
		}
		if schemas[i] != nil {
			continue
		}
		schemas[i] = &apiextensions.CustomResourceValidation{}
		if err := apiextensionsv1.Convert_v1_CustomResourceValidation_To_apiextensions_CustomResourceValidation(v.Schema, schemas[i], s); err != nil {
			return err
		}
	}
	identical := true
	for _, sc := range schemas[1:] {
		if !reflect.DeepEqual(sc, schemas[0]) {
			identical = false
			break
		}
	}
	if identical {
		out.Spec.Validation = schemas[0]
		return nil
	}
	// Upstream gives each version its own copy.
	for i := range out.Spec.Versions {
		if schemas[i] != nil && i > 0 && slices.Contains(schemas[:i], schemas[i]) {
			out.Spec.Versions[i].Schema = schemas[i].DeepCopy()
			continue
		}
		out.Spec.Versions[i].Schema = schemas[i]
	}
	return nil
}

// CRDCleanupFinalizer holds a CustomResourceDefinition until its custom
// resources are deleted.
const CRDCleanupFinalizer = "customresourcecleanup.apiextensions.k8s.io"

// customResourceDefinitions mirror apiextensions-apiserver's CRD strategy
// and the cleanup finalizer its storage adds; the CRD controller serves
// their custom resources.
func customResourceDefinitions() kindDef {
	main, st := newHooks(), newHooks()
	// The prepare steps take the served v1 object (prepareServed): a
	// large CRD's conversion to the internal version and back costs
	// milliseconds.
	main.prepareCreate = func(ctx context.Context, obj runtime.Object) {
		crd := obj.(*apiextensionsv1.CustomResourceDefinition)
		crd.Status = apiextensionsv1.CustomResourceDefinitionStatus{}
		recordStoredVersion(crd)
		for _, f := range crd.Finalizers {
			if f == CRDCleanupFinalizer {
				return
			}
		}
		crd.Finalizers = append(crd.Finalizers, CRDCleanupFinalizer)
	}
	main.prepareUpdate = func(ctx context.Context, obj, old runtime.Object) {
		crd, oldCRD := obj.(*apiextensionsv1.CustomResourceDefinition), old.(*apiextensionsv1.CustomResourceDefinition)
		crd.Status = oldCRD.Status
		if !apiequality.Semantic.DeepEqual(crd.Spec, oldCRD.Spec) {
			recordStoredVersion(crd)
		}
	}
	main.validate = func(ctx context.Context, obj runtime.Object) field.ErrorList {
		return apiextensionsvalidation.ValidateCustomResourceDefinition(ctx, obj.(*apiextensions.CustomResourceDefinition))
	}
	main.validateUpdate = func(ctx context.Context, obj, old runtime.Object) field.ErrorList {
		return apiextensionsvalidation.ValidateCustomResourceDefinitionUpdate(ctx, obj.(*apiextensions.CustomResourceDefinition), old.(*apiextensions.CustomResourceDefinition))
	}
	st.prepareUpdate = func(ctx context.Context, obj, old runtime.Object) {
		obj.(*apiextensionsv1.CustomResourceDefinition).Spec = old.(*apiextensionsv1.CustomResourceDefinition).Spec
	}
	st.validateUpdate = func(ctx context.Context, obj, old runtime.Object) field.ErrorList {
		return apiextensionsvalidation.ValidateUpdateCustomResourceDefinitionStatus(ctx, obj.(*apiextensions.CustomResourceDefinition), old.(*apiextensions.CustomResourceDefinition))
	}
	return kindDef{
		gv: apiextensionsv1.SchemeGroupVersion, kind: "CustomResourceDefinition", resource: "customresourcedefinitions",
		short: []string{"crd", "crds"}, categories: []string{"api-extensions"},
		prefix:    "/registry/apiextensions.k8s.io/customresourcedefinitions/",
		specField: "Spec", rules: main, subs: status(st), prepareServed: true,
		// Status validation reads metadata and status only.
		statusLight: func(obj runtime.Object) runtime.Object {
			crd := *obj.(*apiextensionsv1.CustomResourceDefinition)
			crd.Spec.Versions = slices.Clone(crd.Spec.Versions)
			for i := range crd.Spec.Versions {
				crd.Spec.Versions[i].Schema = nil
			}
			return &crd
		},
		table: rest.NewDefaultTableConvertor(apiextensions.Resource("customresourcedefinitions")),
		json:  crdJSON{},
		reset: map[string][]string{"": {"status"}, "status": {"spec"}},
	}
}

// recordStoredVersion adds the storage version to status.storedVersions,
// as upstream does, so migrations know which versions are on disk.
func recordStoredVersion(crd *apiextensionsv1.CustomResourceDefinition) {
	for _, v := range crd.Spec.Versions {
		if !v.Storage {
			continue
		}
		for _, s := range crd.Status.StoredVersions {
			if s == v.Name {
				return
			}
		}
		crd.Status.StoredVersions = append(crd.Status.StoredVersions, v.Name)
		return
	}
}
