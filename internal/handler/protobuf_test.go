package handler

import (
	"bytes"
	"encoding/json"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/utils/ptr"
)

func protobufTestScheme(t *testing.T) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme} {
		if err := add(s); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// viaDeserializer is the reference transcoding: the scheme's universal
// deserializer, then the protobuf serializer.
func viaDeserializer(t *testing.T, s *runtime.Scheme, raw []byte) []byte {
	t.Helper()
	obj, _, err := serializer.NewCodecFactory(s).UniversalDeserializer().Decode(raw, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := runtime.Encode(protobuf.NewSerializer(s, s), obj)
	if err != nil {
		t.Fatal(err)
	}
	return pb
}

// The short cuts of the protobuf responses (encoding typed objects
// directly; reading kind and apiVersion without decoding the body) give
// the bytes the scheme's deserializer and serializer give.
func TestProtobufShortCutsMatchTheDeserializer(t *testing.T) {
	s := protobufTestScheme(t)
	labels := map[string]string{"app": "a", "tier": "web"}
	dep := &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "default", ResourceVersion: "7", Labels: labels, Annotations: map[string]string{"x": "y"}},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](2), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "nginx", Env: []corev1.EnvVar{{Name: "K", Value: "V"}}}}}}},
	}
	depJSON, err := encodeJSON(dep)
	if err != nil {
		t.Fatal(err)
	}
	want := viaDeserializer(t, s, depJSON)

	got, ok := encodeProtobuf(s, dep)
	if !ok || !bytes.Equal(got, want) {
		t.Errorf("encodeProtobuf(Deployment) = %v, %q\nwant %q", ok, got, want)
	}
	if got, err := toProtobuf(s, depJSON); err != nil || !bytes.Equal(got, want) {
		t.Errorf("toProtobuf(Deployment) = %v, %q\nwant %q", err, got, want)
	}

	// A list whose kind and apiVersion come after its items, as this
	// package never writes them, and with escapes in the strings.
	item := withoutTypeMeta(depJSON)
	list := []byte(`{"metadata":{"resourceVersion":"9","continue":"c\u0021"},"items":[` + string(item) + `,` + string(item) + `],"kind":"Deployment\u004cist","apiVersion":"apps/v1"}`)
	if !json.Valid(list) {
		t.Fatalf("invalid test list %s", list)
	}
	if got, err := toProtobuf(s, list); err != nil || !bytes.Equal(got, viaDeserializer(t, s, list)) {
		t.Errorf("toProtobuf(DeploymentList) = %v, %q", err, got)
	}
}

// encodeProtobuf declines what it cannot encode as toProtobuf does, so the
// response falls back to the JSON route.
func TestEncodeProtobufDeclines(t *testing.T) {
	s := protobufTestScheme(t)
	for name, obj := range map[string]any{
		"no kind":       &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "a"}},
		"unknown kind":  &appsv1.ControllerRevision{TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Unknown"}},
		"Table":         &metav1.Table{TypeMeta: metav1.TypeMeta{APIVersion: "meta.k8s.io/v1", Kind: "Table"}},
		"not an object": map[string]any{"kind": "ConfigMap", "apiVersion": "v1"},
		"no scheme":     nil,
	} {
		sc := s
		if name == "no scheme" {
			sc, obj = nil, &corev1.ConfigMap{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"}}
		}
		if pb, ok := encodeProtobuf(sc, obj); ok {
			t.Errorf("%s: encodeProtobuf = %q, want declined", name, pb)
		}
	}
}
