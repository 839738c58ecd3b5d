// Package builtin registers Kubernetes' built-in kinds. Defaulting,
// conversion, validation and table printing are upstream's own code (the
// k8s.io/kubernetes internal API packages); this package only wires them
// into resource descriptors.
package builtin

import (
	"context"
	"fmt"
	"reflect"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/kubernetes/pkg/api/legacyscheme"
	"k8s.io/kubernetes/pkg/printers"
	printersinternal "k8s.io/kubernetes/pkg/printers/internalversion"
	printerstorage "k8s.io/kubernetes/pkg/printers/storage"

	"github.com/trellis-project/trellis/internal/resource"
)

// Scheme knows every built-in type, internal and versioned, with
// upstream's conversions and defaulters.
var Scheme = legacyscheme.Scheme

var tables = printerstorage.TableConvertor{TableGenerator: printers.NewTableGenerator().With(printersinternal.AddHandlers)}

// typed is the Strategy of a built-in kind. Hooks receive internal
// objects, as upstream's validation and printers expect.
type typed struct {
	served   schema.GroupVersionKind
	storage  schema.GroupVersion
	internal schema.GroupVersion

	// prepareCreate and prepareUpdate run on the internal object.
	prepareCreate  func(ctx context.Context, obj runtime.Object)
	prepareUpdate  func(ctx context.Context, obj, old runtime.Object, sub string)
	validate       func(ctx context.Context, obj runtime.Object) field.ErrorList
	validateUpdate func(ctx context.Context, obj, old runtime.Object) field.ErrorList
	// specField names the field whose change bumps generation ("Spec");
	// empty means generation never changes after creation.
	specField string
	fields    func(obj runtime.Object) fields.Set
	// beginDelete runs on the served object when a delete starts; true
	// defers the removal (the namespace's spec.finalizers).
	beginDelete func(obj runtime.Object) bool
	// pendingFinalizers reports finalizers kept outside metadata.
	pendingFinalizers func(obj runtime.Object) bool
}

// TracksGeneration reports whether metadata.generation counts spec changes.
func (t *typed) TracksGeneration() bool { return t.specField != "" }

// BeginDelete is called by the handler before deleting obj.
func (t *typed) BeginDelete(obj runtime.Object) bool {
	return t.beginDelete != nil && t.beginDelete(obj)
}

// PendingFinalizers reports finalizers outside metadata.finalizers.
func (t *typed) PendingFinalizers(obj runtime.Object) bool {
	return t.pendingFinalizers != nil && t.pendingFinalizers(obj)
}

var _ resource.Strategy = (*typed)(nil)

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

// fromInternal converts back into out (the served version) in place.
func (t *typed) fromInternal(in runtime.Object, out runtime.Object) {
	if err := Scheme.Convert(in, out, nil); err != nil {
		panic(fmt.Sprintf("convert %T from internal: %v", in, err))
	}
	out.GetObjectKind().SetGroupVersionKind(t.served)
}

func (t *typed) PrepareForCreate(ctx context.Context, obj runtime.Object) {
	if t.prepareCreate == nil {
		return
	}
	in := t.toInternal(obj)
	t.prepareCreate(ctx, in)
	t.fromInternal(in, obj)
}

func (t *typed) PrepareForUpdate(ctx context.Context, obj, old runtime.Object, sub string) {
	if t.prepareUpdate == nil {
		return
	}
	in := t.toInternal(obj)
	t.prepareUpdate(ctx, in, t.toInternal(old), sub)
	t.fromInternal(in, obj)
}

func (t *typed) Validate(ctx context.Context, obj runtime.Object) field.ErrorList {
	return t.validate(ctx, t.toInternal(obj))
}

func (t *typed) ValidateUpdate(ctx context.Context, obj, old runtime.Object, sub string) field.ErrorList {
	return t.validateUpdate(ctx, t.toInternal(obj), t.toInternal(old))
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
	return Scheme.ConvertToVersion(obj, t.storage)
}

func (t *typed) FromStorage(obj runtime.Object) (runtime.Object, error) {
	if t.storage == t.served.GroupVersion() {
		return obj, nil
	}
	return Scheme.ConvertToVersion(obj, t.served.GroupVersion())
}

func (t *typed) Fields(obj runtime.Object) fields.Set {
	in := t.toInternal(obj)
	set := fields.Set{}
	if m, ok := in.(metav1.Object); ok {
		set["metadata.name"] = m.GetName()
		if m.GetNamespace() != "" {
			set["metadata.namespace"] = m.GetNamespace()
		}
	}
	if t.fields != nil {
		for k, v := range t.fields(in) {
			set[k] = v
		}
	}
	return set
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
	return tables.ConvertToTable(ctx, in, opts)
}

// statusOnly is the usual rule for kinds with a status subresource: a
// write to the main resource keeps the old status, a write to /status
// keeps the old spec and everything else.
func statusOnly(obj, old runtime.Object, sub string) {
	nv, ov := reflect.ValueOf(obj).Elem(), reflect.ValueOf(old).Elem()
	if sub == "status" {
		spec := nv.FieldByName("Spec")
		if spec.IsValid() {
			spec.Set(ov.FieldByName("Spec"))
		}
		return
	}
	status := nv.FieldByName("Status")
	if status.IsValid() {
		status.Set(ov.FieldByName("Status"))
	}
}
