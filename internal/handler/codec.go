package handler

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/trellis-project/trellis/internal/resource"
	"github.com/trellis-project/trellis/internal/store"
)

func schemaGR() schema.GroupResource { return schema.GroupResource{} }

// decodeStored turns stored bytes into an object of the descriptor's served
// version, with resourceVersion set from the store's revision.
func (rc *reqCtx) decodeStored(raw []byte, rev int64) (runtime.Object, error) {
	return decodeStored(rc.d, raw, rev)
}

func decodeStored(d *resource.Descriptor, raw []byte, rev int64) (runtime.Object, error) {
	obj, err := decodeInto(d, raw, d.StorageVersion)
	if err != nil {
		return nil, fmt.Errorf("decode stored %s: %w", d.Resource, err)
	}
	if obj, err = d.Strategy.FromStorage(obj); err != nil {
		return nil, err
	}
	obj.GetObjectKind().SetGroupVersionKind(d.GroupVersionKind())
	if rev > 0 {
		if m, err := meta.Accessor(obj); err == nil {
			m.SetResourceVersion(strconv.FormatInt(rev, 10))
		}
	}
	return obj, nil
}

// decodeStoredList decodes a page of stored objects like decodeStored. A
// strategy that converts pages at once (custom resources: one review for
// a conversion webhook) gets the whole page.
func (rc *reqCtx) decodeStoredList(kvs []store.KV) ([]runtime.Object, error) {
	objs := make([]runtime.Object, len(kvs))
	lc, ok := rc.d.Strategy.(interface {
		FromStorageList([]runtime.Object) ([]runtime.Object, error)
	})
	if !ok {
		for i, kv := range kvs {
			obj, err := rc.decodeStored(kv.Value, kv.ModRevision)
			if err != nil {
				return nil, err
			}
			objs[i] = obj
		}
		return objs, nil
	}
	for i, kv := range kvs {
		obj, err := decodeInto(rc.d, kv.Value, rc.d.StorageVersion)
		if err != nil {
			return nil, fmt.Errorf("decode stored %s: %w", rc.d.Resource, err)
		}
		objs[i] = obj
	}
	objs, err := lc.FromStorageList(objs)
	if err != nil {
		return nil, err
	}
	for i, obj := range objs {
		obj.GetObjectKind().SetGroupVersionKind(rc.d.GroupVersionKind())
		if m, err := meta.Accessor(obj); err == nil {
			m.SetResourceVersion(strconv.FormatInt(kvs[i].ModRevision, 10))
		}
	}
	return objs, nil
}

// servesStoredBytes reports whether stored bytes are the served form and
// can be written out without decoding: the served version is the storage
// version, and the strategy does not change objects on read (custom
// resources may be stored in another version, or have defaults to apply).
// storedAsServed checks one stored object's apiVersion: an object written
// just before a storage-version change can sit in the old version even
// after storedVersions was trimmed, and must then be converted.
func (rc *reqCtx) storedAsServed(raw []byte) bool {
	vs, ve, ok := topLevelValue(raw, "apiVersion", '"')
	return ok && string(raw[vs+1:ve-1]) == rc.d.GroupVersion().String()
}

func (rc *reqCtx) servesStoredBytes() bool {
	if rc.d.StorageVersion != rc.d.GroupVersion() {
		return false
	}
	s, ok := rc.d.Strategy.(interface{ ServesStoredBytes() bool })
	return !ok || s.ServesStoredBytes()
}

// decodeInto unmarshals JSON into a new object of the descriptor's kind in
// version gv (the served version when gv is the served one).
func decodeInto(d *resource.Descriptor, raw []byte, gv schema.GroupVersion) (runtime.Object, error) {
	var obj runtime.Object
	if gv == d.GroupVersion() {
		obj = d.Strategy.New()
	} else {
		var err error
		if obj, err = newObjectIn(d, gv); err != nil {
			return nil, err
		}
	}
	if u, ok := obj.(*unstructured.Unstructured); ok {
		content := map[string]any{}
		if err := sigsjson.UnmarshalCaseSensitivePreserveInts(raw, &content); err != nil {
			return nil, err
		}
		u.Object = content
		if u.GetAPIVersion() != "" {
			// A custom resource keeps the version it was written in (the
			// storage version may have changed since): FromStorage
			// converts from there.
			return obj, nil
		}
	} else if fast, ok := decodeFast(d, raw, gv); ok {
		obj = fast
	} else if err := sigsjson.UnmarshalCaseSensitivePreserveInts(raw, obj); err != nil {
		return nil, err
	}
	obj.GetObjectKind().SetGroupVersionKind(gv.WithKind(d.Kind))
	return obj, nil
}

// fastJSON is implemented by strategies with a faster JSON codec for
// their kind than encoding/json (CRDs, whose nested schemas encoding/json
// scans many times over), giving the same result.
type fastJSON interface {
	// EncodeJSON returns json.Marshal(obj); ok is false when there is no
	// faster way for obj.
	EncodeJSON(obj runtime.Object) (raw []byte, ok bool, err error)
	// DecodeJSON decodes an object of the served version as
	// sigsjson.UnmarshalStrict does; ok is false when the caller must
	// decode it itself (unknown or duplicate fields, errors).
	DecodeJSON(data []byte) (obj runtime.Object, ok bool)
}

// decodeFast decodes raw, of version gv, with d's fast codec if it has
// one for gv (the served version).
func decodeFast(d *resource.Descriptor, raw []byte, gv schema.GroupVersion) (runtime.Object, bool) {
	if f, ok := d.Strategy.(fastJSON); ok && gv == d.GroupVersion() {
		return f.DecodeJSON(raw)
	}
	return nil, false
}

// encodeJSON encodes an object of the descriptor's kind for storage.
func (rc *reqCtx) encodeJSON(obj runtime.Object) ([]byte, error) {
	if f, ok := rc.d.Strategy.(fastJSON); ok {
		if raw, ok, err := f.EncodeJSON(obj); ok {
			return raw, err
		}
	}
	return encodeJSON(obj)
}

// newObjectIn makes an empty object of kind d.Kind in gv through the
// strategy's scheme-backed New, converted to another version.
func newObjectIn(d *resource.Descriptor, gv schema.GroupVersion) (runtime.Object, error) {
	if n, ok := d.Strategy.(interface {
		NewIn(schema.GroupVersion) (runtime.Object, error)
	}); ok {
		return n.NewIn(gv)
	}
	return nil, fmt.Errorf("no type for %s in %s", d.Kind, gv)
}

// encodeJSON encodes an object for storage or for a response.
func encodeJSON(obj any) ([]byte, error) {
	if u, ok := obj.(*unstructured.Unstructured); ok {
		// The same bytes as marshalling u, without encoding/json
		// re-validating and compacting what u.MarshalJSON returns.
		return json.Marshal(u.Object)
	}
	return json.Marshal(obj)
}

// writeRaw writes an already encoded JSON object, converting to YAML if
// the client asked for it.
func writeRaw(w http.ResponseWriter, code int, out output, raw []byte) {
	if out.proto {
		writeProtobuf(w, code, out, raw)
		return
	}
	if out.yaml {
		y, err := yaml.JSONToYAML(raw)
		if err == nil {
			w.Header().Set("Content-Type", "application/yaml")
			w.WriteHeader(code)
			w.Write(y)
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(raw)
	if len(raw) == 0 || raw[len(raw)-1] != '\n' {
		w.Write([]byte("\n"))
	}
}

// writeObject encodes obj and writes it.
func writeObject(w http.ResponseWriter, r *http.Request, code int, out output, obj any) {
	if out.proto {
		if pb, ok := encodeProtobuf(out.scheme, obj); ok {
			writeProtobufBody(w, code, pb)
			return
		}
	}
	raw, err := encodeJSON(obj)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeRaw(w, code, out, raw)
}

// partialMetadata strips an object down to its type and object metadata.
func partialMetadata(obj runtime.Object, metaVersion string) (*metav1.PartialObjectMetadata, error) {
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil, err
	}
	p := &metav1.PartialObjectMetadata{}
	p.APIVersion = metav1.SchemeGroupVersion.Group + "/" + metaVersion
	p.Kind = "PartialObjectMetadata"
	om := metav1.ObjectMeta{
		Name: m.GetName(), GenerateName: m.GetGenerateName(), Namespace: m.GetNamespace(),
		UID: m.GetUID(), ResourceVersion: m.GetResourceVersion(), Generation: m.GetGeneration(),
		CreationTimestamp: m.GetCreationTimestamp(), DeletionTimestamp: m.GetDeletionTimestamp(),
		DeletionGracePeriodSeconds: m.GetDeletionGracePeriodSeconds(), Labels: m.GetLabels(),
		Annotations: m.GetAnnotations(), OwnerReferences: m.GetOwnerReferences(),
		Finalizers: m.GetFinalizers(), ManagedFields: m.GetManagedFields(),
	}
	p.ObjectMeta = om
	return p, nil
}

// objectMeta is the part of a stored object the fast paths look at.
type objectMeta struct {
	Metadata struct {
		Name      string            `json:"name"`
		Namespace string            `json:"namespace"`
		Labels    map[string]string `json:"labels"`
	} `json:"metadata"`
}

func peekMeta(raw []byte) (objectMeta, error) {
	var m objectMeta
	err := json.Unmarshal(raw, &m)
	return m, err
}

// writeList writes a list envelope around already encoded items. JSON is
// streamed in chunks, so a list of many megabytes is never assembled in
// one buffer; YAML needs the whole document to convert.
func writeList(w http.ResponseWriter, out output, listKind, apiVersion string, lm metav1.ListMeta, items [][]byte) {
	if out.yaml || out.proto {
		var b bytes.Buffer
		writeListJSON(&b, listKind, apiVersion, lm, items)
		writeRaw(w, http.StatusOK, out, b.Bytes())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 256<<10)
	writeListJSON(bw, listKind, apiVersion, lm, items)
	bw.Flush()
}

func writeListJSON(b io.Writer, listKind, apiVersion string, lm metav1.ListMeta, items [][]byte) {
	metaJSON, _ := json.Marshal(lm)
	io.WriteString(b, `{"kind":`)
	writeJSONString(b, listKind)
	io.WriteString(b, `,"apiVersion":`)
	writeJSONString(b, apiVersion)
	io.WriteString(b, `,"metadata":`)
	b.Write(metaJSON)
	io.WriteString(b, `,"items":[`)
	for i, it := range items {
		if i > 0 {
			io.WriteString(b, ",")
		}
		b.Write(bytes.TrimRight(it, "\n"))
	}
	io.WriteString(b, "]}\n")
}

func writeJSONString(b io.Writer, s string) {
	q, _ := json.Marshal(s)
	b.Write(q)
}
