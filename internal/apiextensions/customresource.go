// Package apiextensions serves CustomResourceDefinitions: the controller
// that turns each CRD into resource descriptors at run time, and the
// Strategy of custom resources (structural schema validation, defaulting,
// pruning, CEL rules, status and printer columns), built from the
// apiextensions-apiserver schema libraries.
package apiextensions

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync/atomic"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	apiextensionsinternal "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	structurallisttype "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/listtype"
	schemaobjectmeta "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/objectmeta"
	structuralpruning "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apiextensions-apiserver/pkg/registry/customresource/tableconvertor"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metavalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/apimachinery/pkg/util/validation/field"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"k8s.io/client-go/util/jsonpath"
	"k8s.io/kube-openapi/pkg/validation/spec"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"

	"github.com/trellis-project/trellis/internal/budget"
	"github.com/trellis-project/trellis/internal/fieldmanager"
	"github.com/trellis-project/trellis/internal/resource"
)

// customResource is the Strategy of one served version of a CRD.
type customResource struct {
	gvk        schema.GroupVersionKind
	listGVK    schema.GroupVersionKind
	storageGV  schema.GroupVersion
	namespaced bool

	// schema is the version's compiled schema, shared with the versions
	// whose schemas are equal and with the CRD's conversion.
	schema    *compiledSchema
	hasStatus bool
	scale     *apiextensionsinternal.CustomResourceSubresourceScale
	table     interface {
		ConvertToTable(ctx context.Context, obj runtime.Object, opts runtime.Object) (*metav1.Table, error)
	}
	// replicasPaths is the spec replicas path of every version of the
	// CRD (nil for a version without /scale).
	replicasPaths managedfields.ResourcePathMappings
	selectable    []selectableField
	// conv converts between the CRD's versions; shared by all of them.
	conv *crdConversion
	// terminating is set once the CRD is being deleted: no new objects.
	terminating atomic.Bool
	// fields is the type information the field manager needs, shared by
	// every version of the CRD.
	fields *fieldmanager.CustomKind
}

// CreateAllowed refuses creates while the CRD is being deleted, as
// kube-apiserver does.
func (s *customResource) CreateAllowed() error {
	if s.terminating.Load() {
		return apierrors.NewMethodNotSupported(schema.GroupResource{Group: s.gvk.Group, Resource: strings.ToLower(s.gvk.Kind)}, "create")
	}
	return nil
}

type selectableField struct {
	name string // "spec.color"
	path *jsonpath.JSONPath
}

var _ resource.Strategy = (*customResource)(nil)

// newCustomResource builds the strategy of version v of crd, whose
// schemas are compiled. fields is shared by the strategies of all of crd's
// versions.
func newCustomResource(crd *apiextensionsv1.CustomResourceDefinition, v *apiextensionsv1.CustomResourceDefinitionVersion, storage string, fields *fieldmanager.CustomKind, schemas crdSchemas) (*customResource, error) {
	gv := schema.GroupVersion{Group: crd.Spec.Group, Version: v.Name}
	s := &customResource{
		gvk:        gv.WithKind(crd.Spec.Names.Kind),
		listGVK:    gv.WithKind(crd.Spec.Names.ListKind),
		storageGV:  schema.GroupVersion{Group: crd.Spec.Group, Version: storage},
		namespaced: crd.Spec.Scope == apiextensionsv1.NamespaceScoped,
		fields:     fields,
		schema:     schemas[v.Name],
		hasStatus:  v.Subresources != nil && v.Subresources.Status != nil,
	}
	if v.Subresources != nil && v.Subresources.Scale != nil {
		s.scale = &apiextensionsinternal.CustomResourceSubresourceScale{}
		if err := apiextensionsv1.Convert_v1_CustomResourceSubresourceScale_To_apiextensions_CustomResourceSubresourceScale(v.Subresources.Scale, s.scale, nil); err != nil {
			return nil, err
		}
	}
	s.replicasPaths = replicasPaths(crd)
	columns := v.AdditionalPrinterColumns
	if len(columns) == 0 {
		columns = []apiextensionsv1.CustomResourceColumnDefinition{{
			Name: "Age", Type: "date", JSONPath: ".metadata.creationTimestamp",
			Description: metav1.ObjectMeta{}.SwaggerDoc()["creationTimestamp"],
		}}
	}
	var err error
	if s.table, err = tableconvertor.New(columns); err != nil {
		return nil, err
	}
	for _, f := range v.SelectableFields {
		p := jsonpath.New(f.JSONPath)
		if err := p.Parse("{" + f.JSONPath + "}"); err != nil {
			return nil, fmt.Errorf("selectable field %s: %w", f.JSONPath, err)
		}
		p.AllowMissingKeys(true)
		s.selectable = append(s.selectable, selectableField{name: strings.TrimPrefix(f.JSONPath, "."), path: p})
	}
	return s, nil
}

func (s *customResource) New() runtime.Object {
	u := &unstructured.Unstructured{Object: map[string]any{}}
	u.SetGroupVersionKind(s.gvk)
	return u
}

func (s *customResource) NewList() runtime.Object {
	l := &unstructured.UnstructuredList{Object: map[string]any{}}
	l.SetGroupVersionKind(s.listGVK)
	return l
}

// Unstructured marks custom resources for the handler: no protobuf, no
// strategic merge patch, as upstream.
func (s *customResource) Unstructured() bool { return true }

func (s *customResource) TracksGeneration() bool { return true }

// Decoded coerces metadata and prunes fields the schema does not know,
// returning their paths for fieldValidation to report.
func (s *customResource) Decoded(obj runtime.Object) ([]string, error) {
	u := obj.(*unstructured.Unstructured)
	structural := s.schema.structural()
	ferr, unknownMeta := schemaobjectmeta.CoerceWithOptions(nil, u.Object, structural, true, schemaobjectmeta.CoerceOptions{ReturnUnknownFieldPaths: true})
	if ferr != nil {
		return nil, ferr
	}
	pruned := structuralpruning.PruneWithOptions(u.Object, structural, true, structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})
	return append(unknownMeta, pruned...), nil
}

func (s *customResource) Default(obj runtime.Object) {
	structuraldefaulting.Default(obj.(*unstructured.Unstructured).Object, s.schema.structural())
}

func (s *customResource) PrepareForCreate(ctx context.Context, obj runtime.Object) {
	if s.hasStatus {
		delete(obj.(*unstructured.Unstructured).Object, "status")
	}
}

func (s *customResource) PrepareForUpdate(ctx context.Context, obj, old runtime.Object, sub string) {
	n, o := obj.(*unstructured.Unstructured).Object, old.(*unstructured.Unstructured).Object
	if sub == "status" {
		// Only status changes: everything else comes from the stored object.
		status, has := n["status"]
		for k := range n {
			if k != "metadata" {
				delete(n, k)
			}
		}
		for k, v := range o {
			if k != "metadata" && k != "status" {
				n[k] = runtime.DeepCopyJSONValue(v)
			}
		}
		if has {
			n["status"] = status
		}
		return
	}
	if s.hasStatus {
		if st, ok := o["status"]; ok {
			n["status"] = runtime.DeepCopyJSONValue(st)
		} else {
			delete(n, "status")
		}
	}
}

func (s *customResource) SpecChanged(obj, old runtime.Object) bool {
	strip := func(m map[string]any) map[string]any {
		out := make(map[string]any, len(m))
		for k, v := range m {
			if k != "metadata" && !(s.hasStatus && k == "status") {
				out[k] = v
			}
		}
		return out
	}
	return !apiequality.Semantic.DeepEqual(strip(obj.(*unstructured.Unstructured).Object), strip(old.(*unstructured.Unstructured).Object))
}

func (s *customResource) validateTypeMeta(u *unstructured.Unstructured) field.ErrorList {
	var errs field.ErrorList
	if u.GetKind() != s.gvk.Kind {
		errs = append(errs, field.Invalid(field.NewPath("kind"), u.GetKind(), fmt.Sprintf("must be %v", s.gvk.Kind)))
	}
	if u.GetAPIVersion() != s.gvk.GroupVersion().String() {
		errs = append(errs, field.Invalid(field.NewPath("apiVersion"), u.GetAPIVersion(), fmt.Sprintf("must be %v", s.gvk.GroupVersion())))
	}
	return errs
}

func (s *customResource) Validate(ctx context.Context, obj runtime.Object) field.ErrorList {
	u := obj.(*unstructured.Unstructured)
	if errs := s.validateTypeMeta(u); len(errs) > 0 {
		return errs
	}
	p := s.schema.get()
	var errs field.ErrorList
	errs = append(errs, metavalidation.ValidateObjectMetaAccessor(u, s.namespaced, metavalidation.NameIsDNSSubdomain, field.NewPath("metadata"))...)
	errs = append(errs, apiservervalidation.ValidateCustomResource(nil, u.Object, p.validator)...)
	errs = append(errs, s.validateScale(u)...)
	errs = append(errs, schemaobjectmeta.Validate(ctx, nil, u.Object, p.structural, false)...)
	errs = append(errs, structurallisttype.ValidateListSetsAndMaps(nil, p.structural, u.Object)...)
	if len(errs) == 0 {
		celErrs, _ := p.cel.Validate(ctx, nil, p.structural, u.Object, nil, celconfig.RuntimeCELCostBudget)
		errs = append(errs, celErrs...)
	}
	return errs
}

func (s *customResource) ValidateUpdate(ctx context.Context, obj, old runtime.Object, sub string) field.ErrorList {
	u, o := obj.(*unstructured.Unstructured), old.(*unstructured.Unstructured)
	if errs := s.validateTypeMeta(u); len(errs) > 0 {
		return errs
	}
	p := s.schema.get()
	var errs field.ErrorList
	errs = append(errs, metavalidation.ValidateObjectMetaAccessorUpdate(u, o, field.NewPath("metadata"))...)
	if sub == "status" && s.hasStatus && p.statusValidator != nil {
		if st, ok := u.Object["status"]; ok {
			errs = append(errs, apiservervalidation.ValidateCustomResourceUpdate(field.NewPath("status"), st, o.Object["status"], p.statusValidator)...)
		}
	} else {
		errs = append(errs, apiservervalidation.ValidateCustomResourceUpdate(nil, u.Object, o.Object, p.validator)...)
	}
	errs = append(errs, s.validateScale(u)...)
	errs = append(errs, schemaobjectmeta.Validate(ctx, nil, u.Object, p.structural, false)...)
	if len(structurallisttype.ValidateListSetsAndMaps(nil, p.structural, o.Object)) == 0 {
		errs = append(errs, structurallisttype.ValidateListSetsAndMaps(nil, p.structural, u.Object)...)
	}
	if len(errs) == 0 {
		celErrs, _ := p.cel.Validate(ctx, nil, p.structural, u.Object, o.Object, celconfig.RuntimeCELCostBudget)
		errs = append(errs, celErrs...)
	}
	return errs
}

// validateScale checks the replica paths of the scale subresource.
func (s *customResource) validateScale(u *unstructured.Unstructured) field.ErrorList {
	if s.scale == nil {
		return nil
	}
	var errs field.ErrorList
	check := func(path string) {
		p := strings.TrimPrefix(path, ".")
		n, _, err := unstructured.NestedInt64(u.Object, strings.Split(p, ".")...)
		switch {
		case err != nil:
			errs = append(errs, field.Invalid(field.NewPath(path), n, err.Error()))
		case n < 0:
			errs = append(errs, field.Invalid(field.NewPath(path), n, "should be a non-negative integer"))
		case n > math.MaxInt32:
			errs = append(errs, field.Invalid(field.NewPath(path), n, fmt.Sprintf("should be less than or equal to %v", math.MaxInt32)))
		}
	}
	check(s.scale.SpecReplicasPath)
	check(s.scale.StatusReplicasPath)
	return errs
}

func (s *customResource) ToStorage(obj runtime.Object) (runtime.Object, error) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return nil, fmt.Errorf("custom resource of type %T", obj)
	}
	return s.conv.toStorage(u)
}

// FromStorage converts a decoded stored object, which keeps the version
// it was stored in, to the served version, with the defaulting and
// pruning kube-apiserver applies on the way.
func (s *customResource) FromStorage(obj runtime.Object) (runtime.Object, error) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return nil, fmt.Errorf("custom resource of type %T", obj)
	}
	out, err := s.conv.fromStorage([]*unstructured.Unstructured{u}, s.gvk.GroupVersion(), false)
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// FromStorageList is FromStorage for a page of a list: a conversion
// webhook gets all of its objects in one review.
func (s *customResource) FromStorageList(objs []runtime.Object) ([]runtime.Object, error) {
	us := make([]*unstructured.Unstructured, len(objs))
	for i, o := range objs {
		u, ok := o.(*unstructured.Unstructured)
		if !ok {
			return nil, fmt.Errorf("custom resource of type %T", o)
		}
		us[i] = u
	}
	out, err := s.conv.fromStorage(us, s.gvk.GroupVersion(), true)
	if err != nil {
		return nil, err
	}
	for i, u := range out {
		objs[i] = u
	}
	return objs, nil
}

// ServesStoredBytes reports whether stored objects may be served as they
// are in the storage version: not when some are stored in another
// version, nor when the storage version's schema has defaults, which
// kube-apiserver applies on every read.
func (s *customResource) ServesStoredBytes() bool { return s.conv.servesStoredBytes }

func (s *customResource) Fields(obj runtime.Object) fields.Set {
	set := fields.Set{}
	m, err := meta.Accessor(obj)
	if err != nil {
		return set
	}
	set["metadata.name"] = m.GetName()
	if s.namespaced {
		set["metadata.namespace"] = m.GetNamespace()
	}
	u, _ := obj.(*unstructured.Unstructured)
	for _, f := range s.selectable {
		if u == nil {
			set[f.name] = ""
			continue
		}
		results, err := f.path.FindResults(u.Object)
		if err != nil || len(results) == 0 || len(results[0]) == 0 {
			set[f.name] = ""
			continue
		}
		set[f.name] = fmt.Sprint(results[0][0].Interface())
	}
	return set
}

func (s *customResource) Table(ctx context.Context, obj runtime.Object, opts *metav1.TableOptions) (*metav1.Table, error) {
	return s.table.ConvertToTable(ctx, obj, opts)
}

// NewIn returns an empty object of this kind in another version of the
// group (the storage version).
func (s *customResource) NewIn(gv schema.GroupVersion) (runtime.Object, error) {
	u := &unstructured.Unstructured{Object: map[string]any{}}
	u.SetGroupVersionKind(gv.WithKind(s.gvk.Kind))
	return u, nil
}

// newCustomKind describes every version of crd, served or not, to the
// field manager, which converts between them with conv. The type
// converter is built from the compiled schemas on the first write, and
// kept in pool.
func newCustomKind(crd *apiextensionsv1.CustomResourceDefinition, conv converter, schemas crdSchemas, pool *budget.Pool) *fieldmanager.CustomKind {
	var versions []string
	for _, v := range crd.Spec.Versions {
		versions = append(versions, v.Name)
	}
	models := func() map[string]*spec.Schema {
		out := make(map[string]*spec.Schema, len(versions))
		// Versions that share a compiled schema share its model (the
		// type converter then holds it once).
		byCompiled := map[*compiledSchema]*spec.Schema{}
		for _, v := range versions {
			c := schemas[v]
			s, ok := byCompiled[c]
			if !ok {
				// A schema that does not convert has no model (the CRD
				// then fails to register anyway).
				s, _ = c.openAPI()
				byCompiled[c] = s
			}
			out[v] = s
		}
		return out
	}
	convert := func(u *unstructured.Unstructured, to schema.GroupVersion) (*unstructured.Unstructured, error) {
		out, err := conv.convert([]*unstructured.Unstructured{u}, to, false)
		if err != nil {
			return nil, err
		}
		return out[0], nil
	}
	return fieldmanager.NewCustomKind(crd.Spec.Group, crd.Spec.Names.Kind, crd.Spec.PreserveUnknownFields, versions, models, convert, pool)
}

// CustomKind is the type information of the CRD for the field manager.
func (s *customResource) CustomKind() *fieldmanager.CustomKind { return s.fields }

// ResetFields tells the field manager what writes discard, as upstream's
// custom resource strategies do: status on the main resource (when the
// status subresource is on), metadata and spec on /status.
func (s *customResource) ResetFields(sub string) map[fieldpath.APIVersion]*fieldpath.Set {
	v := fieldpath.APIVersion(s.gvk.GroupVersion().String())
	switch {
	case sub == "status":
		return map[fieldpath.APIVersion]*fieldpath.Set{v: fieldpath.NewSet(fieldpath.MakePathOrDie("metadata"), fieldpath.MakePathOrDie("spec"))}
	case sub == "" && s.hasStatus:
		return map[fieldpath.APIVersion]*fieldpath.Set{v: fieldpath.NewSet(fieldpath.MakePathOrDie("status"))}
	}
	return nil
}

// OpenAPISchema publishes the structural schema in /openapi/v2 and v3, so
// kubectl explain and client-side tools see custom resources' fields.
func (s *customResource) OpenAPISchema() *spec.Schema { return s.schema.structural().ToKubeOpenAPI() }

// ScaleOf maps a custom resource to its autoscaling/v1 Scale through the
// CRD's scale subresource paths.
func (s *customResource) ScaleOf(obj runtime.Object) (*autoscalingv1.Scale, error) {
	if s.scale == nil {
		return nil, fmt.Errorf("%s has no scale subresource", s.gvk.Kind)
	}
	u := obj.(*unstructured.Unstructured)
	sc := &autoscalingv1.Scale{
		TypeMeta: metav1.TypeMeta{APIVersion: "autoscaling/v1", Kind: "Scale"},
		ObjectMeta: metav1.ObjectMeta{
			Name: u.GetName(), Namespace: u.GetNamespace(), UID: u.GetUID(),
			ResourceVersion: u.GetResourceVersion(), CreationTimestamp: u.GetCreationTimestamp(),
		},
	}
	if n, ok, err := unstructured.NestedInt64(u.Object, pathOf(s.scale.SpecReplicasPath)...); err == nil && ok {
		sc.Spec.Replicas = int32(n)
	}
	if n, ok, err := unstructured.NestedInt64(u.Object, pathOf(s.scale.StatusReplicasPath)...); err == nil && ok {
		sc.Status.Replicas = int32(n)
	}
	if s.scale.LabelSelectorPath != nil {
		if sel, ok, err := unstructured.NestedString(u.Object, pathOf(*s.scale.LabelSelectorPath)...); err == nil && ok {
			sc.Status.Selector = sel
		}
	}
	return sc, nil
}

// SetReplicas writes a Scale's replicas into spec at the scale path.
func (s *customResource) SetReplicas(obj runtime.Object, replicas int32) error {
	if s.scale == nil {
		return fmt.Errorf("%s has no scale subresource", s.gvk.Kind)
	}
	return unstructured.SetNestedField(obj.(*unstructured.Unstructured).Object, int64(replicas), pathOf(s.scale.SpecReplicasPath)...)
}

// UnsetReplicas reports a custom resource without a value at the scale
// subresource's specReplicasPath.
func (s *customResource) UnsetReplicas(obj runtime.Object) (string, bool) {
	if s.scale == nil {
		return "", false
	}
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return "", false
	}
	_, found, err := unstructured.NestedFieldNoCopy(u.Object, pathOf(s.scale.SpecReplicasPath)...)
	return s.scale.SpecReplicasPath, err == nil && !found
}

// ReplicasPaths says where each version of the CRD keeps the replicas
// /scale writes, for the managed fields of /scale writes.
func (s *customResource) ReplicasPaths() managedfields.ResourcePathMappings { return s.replicasPaths }

// replicasPaths maps every version of crd to its scale subresource's
// specReplicasPath, or to nil if it has no /scale, as kube-apiserver's
// CRD handler does.
func replicasPaths(crd *apiextensionsv1.CustomResourceDefinition) managedfields.ResourcePathMappings {
	m := managedfields.ResourcePathMappings{}
	for _, v := range crd.Spec.Versions {
		gv := schema.GroupVersion{Group: crd.Spec.Group, Version: v.Name}.String()
		if v.Subresources == nil || v.Subresources.Scale == nil {
			m[gv] = nil
			continue
		}
		var path fieldpath.Path
		for _, name := range pathOf(v.Subresources.Scale.SpecReplicasPath) {
			path = append(path, fieldpath.PathElement{FieldName: &name})
		}
		m[gv] = path
	}
	return m
}

func pathOf(jsonPath string) []string {
	return strings.Split(strings.TrimPrefix(jsonPath, "."), ".")
}
