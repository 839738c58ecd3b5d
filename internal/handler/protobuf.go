package handler

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1beta1 "k8s.io/apimachinery/pkg/apis/meta/v1beta1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/apimachinery/pkg/watch"
	sigsjson "sigs.k8s.io/json"
)

// Protobuf responses are for clients that accept nothing else: objects
// are stored as JSON, so a JSON answer serves stored bytes and a protobuf
// one has to decode and re-encode them. When a client accepts both (as
// client-go's typed clients do) it gets JSON.

// metaScheme knows the meta.k8s.io kinds (Table, PartialObjectMetadata).
var metaScheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := metav1.AddMetaToScheme(s); err != nil {
		panic(err)
	}
	if err := metav1beta1.AddMetaToScheme(s); err != nil {
		panic(err)
	}
	metav1.AddToGroupVersion(s, schema.GroupVersion{Version: "v1"})
	return s
}()

// toProtobuf transcodes a JSON response body to Kubernetes' protobuf
// envelope, with the scheme that knows its kind.
func toProtobuf(scheme *runtime.Scheme, raw []byte) ([]byte, error) {
	tm, err := typeMetaOf(raw)
	if err != nil {
		return nil, err
	}
	gv, err := schema.ParseGroupVersion(tm.APIVersion)
	if err != nil {
		return nil, err
	}
	s := scheme
	if gv.Group == metav1.GroupName || (tm.Kind == "Status" && gv.Group == "") && !scheme.Recognizes(gv.WithKind(tm.Kind)) {
		s = metaScheme
	}
	if s == nil {
		return nil, fmt.Errorf("no scheme for %s", tm.APIVersion)
	}
	// What the scheme's JSON deserializer does, without its two extra
	// passes over raw to find the kind: for a list of 2,000 Deployments
	// they took 40 % of the transcoding time.
	obj, err := s.New(gv.WithKind(tm.Kind))
	if err != nil {
		return nil, err
	}
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(raw, obj); err != nil {
		return nil, err
	}
	return runtime.Encode(protobuf.NewSerializer(s, s), obj)
}

// typeMetaOf reads kind and apiVersion at the top level of a JSON object
// without decoding the rest. This package's encoders write them first,
// so even for a list of many megabytes it reads a few bytes.
func typeMetaOf(raw []byte) (metav1.TypeMeta, error) {
	var tm metav1.TypeMeta
	for _, f := range []struct {
		key string
		dst *string
	}{{"kind", &tm.Kind}, {"apiVersion", &tm.APIVersion}} {
		if vs, ve, ok := stringField(raw, f.key); ok {
			if err := json.Unmarshal(raw[vs:ve], f.dst); err != nil {
				return tm, err
			}
		}
	}
	return tm, nil
}

// encodeProtobuf encodes a typed object straight to the protobuf
// envelope, without toProtobuf's JSON round trip. It declines (false)
// what it cannot encode as toProtobuf would: objects whose kind the
// scheme does not know, and meta.k8s.io kinds, whose Table rows hold
// objects only the JSON encoding renders.
func encodeProtobuf(scheme *runtime.Scheme, obj any) ([]byte, bool) {
	o, ok := obj.(runtime.Object)
	if !ok || scheme == nil {
		return nil, false
	}
	gvk := o.GetObjectKind().GroupVersionKind()
	if gvk.Kind == "" || gvk.Group == metav1.GroupName || !scheme.Recognizes(gvk) {
		return nil, false
	}
	pb, err := runtime.Encode(protobuf.NewSerializer(scheme, scheme), o)
	return pb, err == nil
}

// writeProtobuf writes a JSON response body as protobuf.
func writeProtobuf(w http.ResponseWriter, code int, out output, raw []byte) {
	pb, err := toProtobuf(out.scheme, raw)
	if err != nil {
		// A kind protobuf cannot carry: answer in JSON, which the
		// client can tell from the Content-Type.
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		w.Write(raw)
		return
	}
	writeProtobufBody(w, code, pb)
}

func writeProtobufBody(w http.ResponseWriter, code int, pb []byte) {
	w.Header().Set("Content-Type", ProtobufMediaType)
	w.WriteHeader(code)
	w.Write(pb)
}

// protobufWatchFrame is one event of a protobuf watch stream: a
// length-prefixed WatchEvent whose object is the enveloped protobuf of the
// object, as kube-apiserver streams them.
func protobufWatchFrame(scheme *runtime.Scheme, t watch.EventType, objJSON []byte) ([]byte, error) {
	obj, err := toProtobuf(scheme, objJSON)
	if err != nil {
		return nil, err
	}
	ev := metav1.WatchEvent{Type: string(t), Object: runtime.RawExtension{Raw: obj}}
	body, err := ev.Marshal()
	if err != nil {
		return nil, err
	}
	frame := make([]byte, 4+len(body))
	binary.BigEndian.PutUint32(frame, uint32(len(body)))
	copy(frame[4:], body)
	return frame, nil
}
