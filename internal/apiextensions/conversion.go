package apiextensions

import (
	"fmt"
	"net/http"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	schemaobjectmeta "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/objectmeta"
	structuralpruning "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// converter changes the version of custom resources. Every object handed
// to it is in a version other than to, and it returns one object per
// input, in order, in version to. It may modify and return its inputs.
//
// batch says the objects come from one list: a webhook reports errors
// with the object's index in the review, as upstream does for lists.
type converter interface {
	convert(objs []*unstructured.Unstructured, to schema.GroupVersion, batch bool) ([]*unstructured.Unstructured, error)
}

// noneConverter is the None strategy: only apiVersion changes.
type noneConverter struct{}

func (noneConverter) convert(objs []*unstructured.Unstructured, to schema.GroupVersion, _ bool) ([]*unstructured.Unstructured, error) {
	for _, u := range objs {
		u.SetAPIVersion(to.String())
	}
	return objs, nil
}

// crdConversion moves the custom resources of one CRD between its
// versions the way kube-apiserver's storage codec does:
//
//	read:  stored object in version S (the storage version when it was
//	       written) → pruned and coerced with S's schema → defaulted with
//	       S's schema → converted to the served version T → pruned and
//	       coerced with T's schema
//	write: object in T → converted to the storage version → pruned and
//	       coerced with its schema; nothing is defaulted, so only the
//	       request version's defaults are persisted
//
// One value serves the strategies of every version of a CRD; the
// controller builds a new one whenever the CRD changes.
type crdConversion struct {
	group, kind string
	storage     string
	// schemas holds every version's compiled schema, served or not:
	// objects may be stored in a version that is no longer served.
	schemas  crdSchemas
	preserve bool // spec.preserveUnknownFields: no pruning
	conv     converter
	// servesStoredBytes is true when an object read in the storage
	// version is exactly its stored bytes: every object is stored in
	// the storage version and its schema has no defaults to apply.
	servesStoredBytes bool
}

// newCRDConversion prepares the conversion of crd's objects with its
// compiled schemas. conv is the converter of its strategy (noneConverter
// or a webhook).
func newCRDConversion(crd *apiextensionsv1.CustomResourceDefinition, conv converter, schemas crdSchemas) *crdConversion {
	c := &crdConversion{
		group: crd.Spec.Group, kind: crd.Spec.Names.Kind,
		schemas:  schemas,
		preserve: crd.Spec.PreserveUnknownFields,
		conv:     conv,
	}
	for _, v := range crd.Spec.Versions {
		if v.Storage {
			c.storage = v.Name
		}
	}
	c.servesStoredBytes = c.schemas[c.storage] != nil && !c.schemas[c.storage].hasDefaults()
	for _, v := range crd.Status.StoredVersions {
		if v != c.storage {
			c.servesStoredBytes = false
		}
	}
	return c
}

// hasDefaults reports whether a schema defaults any field.
func hasDefaults(s *structuralschema.Structural) bool {
	if s == nil {
		return false
	}
	if s.Default.Object != nil {
		return true
	}
	for _, p := range s.Properties {
		if hasDefaults(&p) {
			return true
		}
	}
	if s.AdditionalProperties != nil && hasDefaults(s.AdditionalProperties.Structural) {
		return true
	}
	return hasDefaults(s.Items)
}

// fromStorage turns decoded stored objects into version to, in place
// where it can; it returns the objects in order. batch is set for a list.
func (c *crdConversion) fromStorage(objs []*unstructured.Unstructured, to schema.GroupVersion, batch bool) ([]*unstructured.Unstructured, error) {
	if _, ok := c.schemas[to.Version]; !ok || to.Group != c.group {
		return nil, conversionError(fmt.Errorf("request to convert CR to an invalid group/version: %s", to))
	}
	var todo []int
	for i, u := range objs {
		gv, err := schema.ParseGroupVersion(u.GetAPIVersion())
		if err != nil {
			return nil, conversionError(err)
		}
		if _, ok := c.schemas[gv.Version]; !ok || gv.Group != c.group {
			return nil, conversionError(fmt.Errorf("request to convert CR from an invalid group/version: %s", gv))
		}
		// What kube-apiserver does to every object it decodes from etcd:
		// drop what its version's schema does not know, repair metadata
		// and apply that version's defaults.
		if err := c.coerce(u, gv.Version, true); err != nil {
			return nil, conversionError(err)
		}
		structuraldefaulting.Default(u.Object, c.schemas[gv.Version].structural())
		if gv != to {
			todo = append(todo, i)
		}
	}
	if len(todo) == 0 {
		return objs, nil
	}
	in := make([]*unstructured.Unstructured, len(todo))
	for j, i := range todo {
		in[j] = objs[i]
	}
	out, err := c.conv.convert(in, to, batch)
	if err != nil {
		return nil, conversionError(err)
	}
	for j, i := range todo {
		if err := c.coerce(out[j], to.Version, false); err != nil {
			return nil, conversionError(err)
		}
		objs[i] = out[j]
	}
	return objs, nil
}

// toStorage returns obj in the storage version; obj is not modified. An
// object already in the storage version is returned as it is, as
// kube-apiserver's encoder does.
func (c *crdConversion) toStorage(obj *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	to := schema.GroupVersion{Group: c.group, Version: c.storage}
	if obj.GetAPIVersion() == to.String() {
		return obj, nil
	}
	out, err := c.conv.convert([]*unstructured.Unstructured{obj.DeepCopy()}, to, false)
	if err != nil {
		return nil, conversionError(err)
	}
	if err := c.coerce(out[0], c.storage, false); err != nil {
		return nil, conversionError(err)
	}
	return out[0], nil
}

// coerce prunes u with the schema of version, as upstream's
// schema-coercing decoder and converter do, and on read repairs a
// missing generation. Upstream also round-trips metadata through
// ObjectMeta to drop malformed fields; Trellis validates metadata on every
// write and a webhook can only change labels and annotations, which are
// checked, so stored metadata is trusted and that costly step is skipped.
func (c *crdConversion) coerce(u *unstructured.Unstructured, version string, onRead bool) error {
	s := c.schemas[version].structural()
	apiVersion, kind := u.GetAPIVersion(), u.GetKind()
	if !c.preserve {
		structuralpruning.PruneWithOptions(u.Object, s, true, structuralschema.UnknownFieldPathOptions{})
		structuraldefaulting.PruneNonNullableNullsWithoutDefaults(u.Object, s)
	}
	// Embedded resources (x-kubernetes-embedded-resource) get their
	// metadata coerced; the root's is left alone.
	if err, _ := schemaobjectmeta.CoerceWithOptions(nil, u.Object, s, false, schemaobjectmeta.CoerceOptions{DropInvalidFields: onRead}); err != nil {
		return err
	}
	u.SetAPIVersion(apiVersion)
	u.SetKind(kind)
	if onRead {
		if m, ok := u.Object["metadata"].(map[string]any); ok {
			if g, _, _ := unstructured.NestedInt64(m, "generation"); g == 0 {
				m["generation"] = int64(1)
			}
		}
	}
	return nil
}

// conversionError is what kube-apiserver answers when a conversion
// fails: it does not wrap the converter's error in a Status, so the
// client sees a 500 with the bare message and no reason.
func conversionError(err error) error {
	if _, ok := err.(apierrors.APIStatus); ok {
		return err
	}
	return &apierrors.StatusError{ErrStatus: metav1.Status{
		Status:  metav1.StatusFailure,
		Code:    http.StatusInternalServerError,
		Message: err.Error(),
	}}
}
