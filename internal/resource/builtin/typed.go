// Package builtin registers Kubernetes' built-in kinds. Defaulting,
// conversion, validation, the create and update rules of each kind, and
// table printing are upstream's own code (the k8s.io/kubernetes internal
// API packages and registry strategies); this package only wires them
// into resource descriptors.
package builtin

import (
	"context"
	"fmt"
	"reflect"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apiserver/pkg/registry/rest"
	"k8s.io/kubernetes/pkg/api/legacyscheme"
	"k8s.io/kubernetes/pkg/printers"
	printersinternal "k8s.io/kubernetes/pkg/printers/internalversion"
	printerstorage "k8s.io/kubernetes/pkg/printers/storage"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"

	"github.com/trellis-project/trellis/internal/resource"
)

// Scheme knows every built-in type, internal and versioned, with
// upstream's conversions, defaulters and declarative validations.
var Scheme = legacyscheme.Scheme

var tables = printerstorage.TableConvertor{TableGenerator: printers.NewTableGenerator().With(printersinternal.AddHandlers)}

// typed is the Strategy of a built-in kind. Its rules receive internal
// objects, as upstream's strategies, validation and printers expect;
// objects are served and stored in their versioned form.
type typed struct {
	served   schema.GroupVersionKind
	storage  schema.GroupVersion
	internal schema.GroupVersion

	// rules decide what a create or update may change and validate it.
	rules rules
	// before runs ahead of the rules' prepare step, as the storage hooks
	// of some upstream kinds do (a service's address allocation); old is
	// nil on create.
	before func(ctx context.Context, obj, old runtime.Object, sub string)

	// specField names the field whose change bumps generation ("Spec")
	// for kinds whose rules leave generation alone; upstream's own
	// strategies bump it themselves.
	specField string
	// fields returns the kind's own selectable fields of an internal
	// object (upstream's GetAttrs); metadata.name and metadata.namespace
	// are added. selectable maps each field label the served version
	// accepts to the field it reads (see selectableLabels).
	fields     func(obj runtime.Object) fields.Set
	selectable map[string]string
	// table renders `kubectl get` columns; nil means upstream's printers.
	table rest.TableConvertor
	// scale maps the kind to autoscaling/v1 Scale; nil if /scale is not
	// served.
	scale func(obj runtime.Object) scaleFields
	// replicasPaths maps group/versions to the replicas field.
	replicasPaths managedfields.ResourcePathMappings

	// beginDelete runs on the served object when a delete starts; true
	// defers the removal (the namespace's spec.finalizers).
	beginDelete func(obj runtime.Object) bool
	// pendingFinalizers reports finalizers kept outside metadata.
	pendingFinalizers func(obj runtime.Object) bool
	// reset names, per subresource ("" for the main resource), the
	// top-level fields a write there discards, for kinds whose rules do
	// not report them themselves (upstream's GetResetFields).
	reset map[string][]string
	// prepareServed: the rules' prepare steps take served objects.
	prepareServed bool
	// statusLight strips what /status validation never reads.
	statusLight func(obj runtime.Object) runtime.Object
	json        jsonCodec
}

// jsonCodec encodes and decodes a kind's objects faster than
// encoding/json, with the same result.
type jsonCodec interface {
	// encode returns json.Marshal(obj); ok is false if obj is not the
	// codec's kind.
	encode(obj runtime.Object) (raw []byte, ok bool, err error)
	// decode decodes an object of the served version as
	// sigsjson.UnmarshalStrict does; ok is false if the JSON has unknown
	// or duplicate fields or does not decode (the caller decodes it the
	// usual way, to word the errors).
	decode(data []byte) (obj runtime.Object, ok bool)
}

// EncodeJSON returns json.Marshal(obj), faster for some kinds; ok is
// false when the kind has no faster way.
func (t *typed) EncodeJSON(obj runtime.Object) ([]byte, bool, error) {
	if t.json == nil {
		return nil, false, nil
	}
	return t.json.encode(obj)
}

// DecodeJSON decodes JSON of the served version, faster for some kinds;
// ok is false when the caller must decode it itself (see jsonCodec).
func (t *typed) DecodeJSON(data []byte) (runtime.Object, bool) {
	if t.json == nil {
		return nil, false
	}
	return t.json.decode(data)
}

var _ resource.Strategy = (*typed)(nil)

// ResetFields tells the field manager which fields a write to sub
// discards, so it does not credit the writer with them: upstream's
// GetResetFields of the strategy serving sub, or the reset table.
func (t *typed) ResetFields(sub string) map[fieldpath.APIVersion]*fieldpath.Set {
	if r, ok := t.rules.forUpdate(sub).(rest.ResetFieldsStrategy); ok {
		return r.GetResetFields()
	}
	names, ok := t.reset[sub]
	if !ok {
		return nil
	}
	set := fieldpath.NewSet()
	for _, n := range names {
		set.Insert(fieldpath.MakePathOrDie(n))
	}
	return map[fieldpath.APIVersion]*fieldpath.Set{fieldpath.APIVersion(t.served.GroupVersion().String()): set}
}

// TracksGeneration reports whether the handler must start generation at
// 1; kinds with upstream strategies set it in PrepareForCreate.
func (t *typed) TracksGeneration() bool { return t.specField != "" }

// BeginDelete is called by the handler before deleting obj.
func (t *typed) BeginDelete(obj runtime.Object) bool {
	return t.beginDelete != nil && t.beginDelete(obj)
}

// PendingFinalizers reports finalizers outside metadata.finalizers.
func (t *typed) PendingFinalizers(obj runtime.Object) bool {
	return t.pendingFinalizers != nil && t.pendingFinalizers(obj)
}

func (t *typed) New() runtime.Object {
	obj, err := Scheme.New(t.served)
	if err != nil {
		panic(fmt.Sprintf("built-in kind %v not in scheme: %v", t.served, err))
	}
	return obj
}

// NewIn returns an empty object of this kind in another version (the
// storage version, when it differs from the served one).
func (t *typed) NewIn(gv schema.GroupVersion) (runtime.Object, error) {
	return Scheme.New(gv.WithKind(t.served.Kind))
}

func (t *typed) NewList() runtime.Object {
	obj, err := Scheme.New(t.served.GroupVersion().WithKind(t.served.Kind + "List"))
	if err != nil {
		panic(fmt.Sprintf("built-in list %vList not in scheme: %v", t.served, err))
	}
	return obj
}

func (t *typed) Default(obj runtime.Object) { Scheme.Default(obj) }

func (t *typed) toInternal(obj runtime.Object) runtime.Object {
	in, err := Scheme.ConvertToVersion(obj, t.internal)
	if err != nil {
		panic(fmt.Sprintf("convert %T to internal: %v", obj, err))
	}
	return in
}

// readOnlyInternal converts obj to the internal version for code that only
// reads the result (validation): the result may share memory with obj,
// which saves a deep copy of every written object.
func (t *typed) readOnlyInternal(obj runtime.Object) runtime.Object {
	in, err := Scheme.UnsafeConvertToVersion(obj, t.internal)
	if err != nil {
		panic(fmt.Sprintf("convert %T to internal: %v", obj, err))
	}
	return in
}

// fromInternal converts back into out (the served version) in place.
func (t *typed) fromInternal(in runtime.Object, out runtime.Object) {
	if err := Scheme.Convert(in, out, nil); err != nil {
		panic(fmt.Sprintf("convert %T from internal: %v", in, err))
	}
	out.GetObjectKind().SetGroupVersionKind(t.served)
}

func (t *typed) PrepareForCreate(ctx context.Context, obj runtime.Object) {
	ctx = t.upstreamContext(ctx, "")
	if t.prepareServed {
		t.rules.main.PrepareForCreate(ctx, obj)
		return
	}
	in := t.toInternal(obj)
	if t.before != nil {
		t.before(ctx, in, nil, "")
	}
	t.rules.main.PrepareForCreate(ctx, in)
	t.fromInternal(in, obj)
}

func (t *typed) PrepareForUpdate(ctx context.Context, obj, old runtime.Object, sub string) {
	ctx = t.upstreamContext(ctx, sub)
	if t.prepareServed {
		t.rules.forUpdate(sub).PrepareForUpdate(ctx, obj, old)
		return
	}
	in, oldIn := t.toInternal(obj), t.toInternal(old)
	if t.before != nil {
		t.before(ctx, in, oldIn, sub)
	}
	t.rules.forUpdate(sub).PrepareForUpdate(ctx, in, oldIn)
	t.fromInternal(in, obj)
}

// Validate runs what kube-apiserver runs on create: the strategy's
// validation, then object metadata and declarative validation.
func (t *typed) Validate(ctx context.Context, obj runtime.Object) field.ErrorList {
	in := t.readOnlyInternal(obj)
	return rest.ValidateCreate(t.upstreamContext(ctx, ""), in, t.rules.main)
}

// ValidateUpdate runs what kube-apiserver runs on update of sub.
func (t *typed) ValidateUpdate(ctx context.Context, obj, old runtime.Object, sub string) field.ErrorList {
	if sub == "status" && t.statusLight != nil {
		obj, old = t.statusLight(obj), t.statusLight(old)
	}
	return rest.ValidateUpdate(t.upstreamContext(ctx, sub), t.readOnlyInternal(obj), t.readOnlyInternal(old), t.rules.forUpdate(sub))
}

func (t *typed) SpecChanged(obj, old runtime.Object) bool {
	if t.specField == "" {
		return false
	}
	a := reflect.ValueOf(obj).Elem().FieldByName(t.specField)
	b := reflect.ValueOf(old).Elem().FieldByName(t.specField)
	return !apiequality.Semantic.DeepEqual(a.Interface(), b.Interface())
}

func (t *typed) ToStorage(obj runtime.Object) (runtime.Object, error) {
	if t.storage == t.served.GroupVersion() {
		return obj, nil
	}
	return convertVia(obj, t.internal, t.storage)
}

func (t *typed) FromStorage(obj runtime.Object) (runtime.Object, error) {
	if t.storage == t.served.GroupVersion() {
		return obj, nil
	}
	return convertVia(obj, schema.GroupVersion{Group: t.storage.Group, Version: runtime.APIVersionInternal}, t.served.GroupVersion())
}

// convertVia converts obj to version to through the internal version of
// its group (hub), as kube-apiserver converts between a served and the
// storage version: autoscaling/v1 and v2 HorizontalPodAutoscalers,
// events.k8s.io/v1 and core/v1 Events.
func convertVia(obj runtime.Object, hub, to schema.GroupVersion) (runtime.Object, error) {
	in, err := Scheme.ConvertToVersion(obj, hub)
	if err != nil {
		return nil, err
	}
	return Scheme.ConvertToVersion(in, to)
}

// Fields returns the values of every field label the served version
// accepts in a field selector, keyed by that label.
func (t *typed) Fields(obj runtime.Object) fields.Set {
	attrs := t.attrs(t.toInternal(obj))
	set := make(fields.Set, len(t.selectable))
	for label, from := range t.selectable {
		set[label] = attrs[from]
	}
	return set
}

// attrs are upstream's selectable fields of an internal object.
func (t *typed) attrs(in runtime.Object) fields.Set {
	set := fields.Set{}
	if m, err := meta.Accessor(in); err == nil {
		set["metadata.name"] = m.GetName()
		// Cluster-scoped objects match an empty namespace, as upstream's
		// selectors match a missing field.
		set["metadata.namespace"] = m.GetNamespace()
	}
	if t.fields != nil {
		for k, v := range t.fields(in) {
			set[k] = v
		}
	}
	return set
}

// selectableLabels works out which field labels the served version
// accepts: upstream's field label conversion for the version (the
// scheme's, which allows only metadata.name and metadata.namespace when a
// version registers none) applied to the kind's selectable fields and to
// extra labels a version spells differently (events.k8s.io's
// "regarding.kind").
func (t *typed) selectableLabels(extra []string) map[string]string {
	attrs := t.attrs(t.toInternal(t.New()))
	candidates := extra
	for k := range attrs {
		candidates = append(candidates, k)
	}
	out := map[string]string{}
	for _, label := range candidates {
		from, _, err := Scheme.ConvertFieldLabel(t.served, label, "")
		if _, known := attrs[from]; err == nil && known {
			out[label] = from
		}
	}
	return out
}

func (t *typed) Table(ctx context.Context, obj runtime.Object, opts *metav1.TableOptions) (*metav1.Table, error) {
	var in runtime.Object
	if meta, ok := obj.(metav1.ListInterface); ok && meta != nil {
		internalList, err := Scheme.ConvertToVersion(obj, t.internal)
		if err != nil {
			return nil, err
		}
		in = internalList
	} else {
		in = t.toInternal(obj)
	}
	if t.table != nil {
		return t.table.ConvertToTable(ctx, in, opts)
	}
	return tables.ConvertToTable(ctx, in, opts)
}

// scaleFields are what a kind's /scale subresource reads and writes on
// an internal object.
type scaleFields struct {
	replicas *int32
	status   int32
	selector string
}

// ScaleOf maps obj to autoscaling/v1 Scale as upstream's scale
// subresources do: the object's identity, spec.replicas, status.replicas
// and the label selector in string form.
func (t *typed) ScaleOf(obj runtime.Object) (*autoscalingv1.Scale, error) {
	if t.scale == nil {
		return nil, fmt.Errorf("%s has no scale subresource", t.served.Kind)
	}
	f := t.scale(t.toInternal(obj))
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil, err
	}
	return &autoscalingv1.Scale{
		TypeMeta: metav1.TypeMeta{APIVersion: autoscalingv1.SchemeGroupVersion.String(), Kind: "Scale"},
		ObjectMeta: metav1.ObjectMeta{
			Name: m.GetName(), Namespace: m.GetNamespace(), UID: m.GetUID(),
			ResourceVersion: m.GetResourceVersion(), CreationTimestamp: m.GetCreationTimestamp(),
		},
		Spec:   autoscalingv1.ScaleSpec{Replicas: *f.replicas},
		Status: autoscalingv1.ScaleStatus{Replicas: f.status, Selector: f.selector},
	}, nil
}

// ReplicasPaths says where each group/version of the kind keeps the
// replicas a Scale writes, for the managed fields of /scale writes. The
// versions are every one upstream ever served the kind in (its registry's
// ReplicasPathMappings), so that entries recorded through an old version
// survive a scale.
func (t *typed) ReplicasPaths() managedfields.ResourcePathMappings { return t.replicasPaths }

// specReplicasIn maps each group/version to spec.replicas.
func specReplicasIn(groupVersions ...string) managedfields.ResourcePathMappings {
	m := managedfields.ResourcePathMappings{}
	for _, gv := range groupVersions {
		m[gv] = fieldpath.MakePathOrDie("spec", "replicas")
	}
	return m
}

// SetReplicas writes a Scale's replicas into obj's spec.
func (t *typed) SetReplicas(obj runtime.Object, replicas int32) error {
	if t.scale == nil {
		return fmt.Errorf("%s has no scale subresource", t.served.Kind)
	}
	in := t.toInternal(obj)
	*t.scale(in).replicas = replicas
	t.fromInternal(in, obj)
	return nil
}
