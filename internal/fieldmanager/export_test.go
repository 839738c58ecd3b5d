package fieldmanager

import (
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/structured-merge-diff/v6/typed"
)

var CRDToUnstructured = crdToUnstructured

// ObjectToTypedByReflection reads obj as structured-merge-diff does on
// its own, without the CRD fast path.
func ObjectToTypedByReflection(b *BuiltinTypes, obj runtime.Object) (*typed.TypedValue, error) {
	tc, err := b.typeConverter(obj.GetObjectKind().GroupVersionKind())
	if err != nil {
		return nil, err
	}
	return tc.(crdFastPath).TypeConverter.ObjectToTyped(obj, typed.AllowDuplicates)
}

// ObjectToTyped reads obj through the built-in kinds' type converter.
func ObjectToTyped(b *BuiltinTypes, obj runtime.Object) (*typed.TypedValue, error) {
	tc, err := b.typeConverter(obj.GetObjectKind().GroupVersionKind())
	if err != nil {
		return nil, err
	}
	return tc.ObjectToTyped(obj, typed.AllowDuplicates)
}
