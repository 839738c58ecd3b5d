package builtin

import (
	"context"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsinstall "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/install"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsvalidation "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/trellis-project/trellis/internal/resource"
)

func init() { apiextensionsinstall.Install(Scheme) }

// CRDCleanupFinalizer holds a CustomResourceDefinition until its custom
// resources are deleted.
const CRDCleanupFinalizer = "customresourcecleanup.apiextensions.k8s.io"

func customResourceDefinitions() *resource.Descriptor {
	gv := apiextensionsv1.SchemeGroupVersion
	return &resource.Descriptor{
		Group: gv.Group, Version: gv.Version, Kind: "CustomResourceDefinition", ListKind: "CustomResourceDefinitionList",
		Resource: "customresourcedefinitions", Singular: "customresourcedefinition", ShortNames: []string{"crd", "crds"},
		Categories: []string{"api-extensions"}, Verbs: resource.StandardVerbs,
		StoragePrefix: "/registry/apiextensions.k8s.io/customresourcedefinitions/", StorageVersion: gv,
		Subresources: []string{"status"},
		Strategy: &typed{
			served:    gv.WithKind("CustomResourceDefinition"),
			storage:   gv,
			internal:  schema.GroupVersion{Group: gv.Group, Version: runtime.APIVersionInternal},
			specField: "Spec",
			prepareCreate: func(ctx context.Context, obj runtime.Object) {
				crd := obj.(*apiextensions.CustomResourceDefinition)
				crd.Status = apiextensions.CustomResourceDefinitionStatus{}
				recordStoredVersion(crd)
				for _, f := range crd.Finalizers {
					if f == CRDCleanupFinalizer {
						return
					}
				}
				crd.Finalizers = append(crd.Finalizers, CRDCleanupFinalizer)
			},
			prepareUpdate: func(ctx context.Context, obj, old runtime.Object, sub string) {
				crd, oldCRD := obj.(*apiextensions.CustomResourceDefinition), old.(*apiextensions.CustomResourceDefinition)
				if sub == "status" {
					crd.Spec = oldCRD.Spec
					return
				}
				crd.Status = oldCRD.Status
				if !apiequality.Semantic.DeepEqual(crd.Spec, oldCRD.Spec) {
					recordStoredVersion(crd)
				}
			},
			validate: func(ctx context.Context, obj runtime.Object) field.ErrorList {
				return apiextensionsvalidation.ValidateCustomResourceDefinition(ctx, obj.(*apiextensions.CustomResourceDefinition))
			},
			validateUpdate: func(ctx context.Context, obj, old runtime.Object) field.ErrorList {
				crd, oldCRD := obj.(*apiextensions.CustomResourceDefinition), old.(*apiextensions.CustomResourceDefinition)
				if apiequality.Semantic.DeepEqual(crd.Spec, oldCRD.Spec) && !apiequality.Semantic.DeepEqual(crd.Status, oldCRD.Status) {
					return apiextensionsvalidation.ValidateUpdateCustomResourceDefinitionStatus(ctx, crd, oldCRD)
				}
				return apiextensionsvalidation.ValidateCustomResourceDefinitionUpdate(ctx, crd, oldCRD)
			},
		},
	}
}

// recordStoredVersion adds the storage version to status.storedVersions,
// as upstream does, so migrations know which versions are on disk.
func recordStoredVersion(crd *apiextensions.CustomResourceDefinition) {
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
