package apiextensions

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset/scheme"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	sigsjson "sigs.k8s.io/json"

	"github.com/trellis-project/trellis/internal/jsonscan"
	"github.com/trellis-project/trellis/internal/resource/builtin"
)

// keepSchemas receives the version schemas (JSON, in spec.versions order,
// nil for a version without one) of the resourceVersion rv of CRD name.
type keepSchemas func(name, rv string, schemas []json.RawMessage)

// crdListWatch lists and watches CRDs through client, the
// apiextensions.k8s.io/v1 REST client, decoding each into a typed CRD
// without its version schemas and managed fields, which are nearly all
// of a large CRD's bytes; keep receives the schemas undecoded.
//
// client-go's own decoding of a watch event scans a large CRD several
// times (the event, the object's kind, the object) and decodes every
// schema node: about 8 ms for a 170 KB CRD, on the path between a new
// CRD's create and its first use. Here a scanner frames each event and
// cuts the schemas out (builtin.SplitCRDSchemas), and only the rest,
// a few kilobytes, is decoded.
func crdListWatch(client rest.Interface, keep keepSchemas) cache.ListerWatcher {
	return &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			raw, err := client.Get().Resource("customresourcedefinitions").
				VersionedParams(&opts, scheme.ParameterCodec).Do(ctx).Raw()
			if err != nil {
				return nil, err
			}
			var list struct {
				Metadata metav1.ListMeta `json:"metadata"`
				Items    []wireCRD       `json:"items"`
			}
			if err := sigsjson.UnmarshalCaseSensitivePreserveInts(raw, &list); err != nil {
				return nil, fmt.Errorf("decoding the CRD list: %w", err)
			}
			out := &apiextensionsv1.CustomResourceDefinitionList{ListMeta: list.Metadata,
				Items: make([]apiextensionsv1.CustomResourceDefinition, len(list.Items))}
			for i := range list.Items {
				out.Items[i] = *list.Items[i].typed(keep)
			}
			return out, nil
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			opts.Watch = true
			body, err := client.Get().Resource("customresourcedefinitions").
				VersionedParams(&opts, scheme.ParameterCodec).Stream(ctx)
			if err != nil {
				return nil, err
			}
			return watch.NewStreamWatcher(&crdEvents{body: body, keep: keep},
				apierrors.NewClientErrorReporter(http.StatusInternalServerError, "GET", "ClientWatchDecoding")), nil
		},
	}
}

// crdEvents decodes a JSON watch stream of CRDs.
type crdEvents struct {
	body   io.ReadCloser
	buf    []byte // read and not yet decoded
	framer jsonscan.Framer
	keep   keepSchemas
}

// maxWatchEvent bounds the bytes buffered while looking for the end of
// one event: far above any object the API stores.
const maxWatchEvent = 64 << 20

// next returns the next event's JSON, reading until the framer finds
// where it ends. The slice is valid until the next call.
func (d *crdEvents) next() ([]byte, error) {
	for {
		if d.framer.Idle() {
			d.buf = d.buf[jsonscan.SkipSpace(d.buf, 0):]
		}
		n, done, err := d.framer.Frame(d.buf)
		if err != nil {
			return nil, fmt.Errorf("decoding a CRD watch event: %w", err)
		}
		if done {
			ev := d.buf[:n]
			d.buf = d.buf[n:]
			return ev, nil
		}
		if len(d.buf) > maxWatchEvent {
			return nil, fmt.Errorf("a CRD watch event is over %d bytes", maxWatchEvent)
		}
		if cap(d.buf)-len(d.buf) < 16<<10 {
			grown := make([]byte, len(d.buf), 2*len(d.buf)+32<<10)
			copy(grown, d.buf)
			d.buf = grown
		}
		read, err := d.body.Read(d.buf[len(d.buf):cap(d.buf)])
		d.buf = d.buf[:len(d.buf)+read]
		if err != nil && read == 0 {
			if err == io.EOF && !d.framer.Idle() {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
}

func (d *crdEvents) Decode() (watch.EventType, runtime.Object, error) {
	raw, err := d.next()
	if err != nil {
		return "", nil, err
	}
	var typ watch.EventType
	var object []byte
	if _, ok := jsonscan.EachField(raw, 0, func(key []byte, start int) (int, bool) {
		end, ok := jsonscan.ValueEnd(raw, start)
		switch {
		case !ok:
		case string(key) == "type":
			ok = json.Unmarshal(raw[start:end], &typ) == nil
		case string(key) == "object":
			object = raw[start:end]
		}
		return end, ok
	}); !ok || object == nil {
		return "", nil, fmt.Errorf("decoding a CRD watch event: not an object with a type and an object: %.100q", raw)
	}
	switch typ {
	case watch.Added, watch.Modified, watch.Deleted, watch.Bookmark:
		crd, err := decodeWireCRD(object, d.keep)
		if err != nil {
			return "", nil, fmt.Errorf("decoding a CRD watch event: %w", err)
		}
		return typ, crd, nil
	case watch.Error:
		st := &metav1.Status{}
		if err := json.Unmarshal(object, st); err != nil {
			return "", nil, fmt.Errorf("decoding a watch error: %w", err)
		}
		return typ, st, nil
	}
	return "", nil, fmt.Errorf("unknown watch event type %q", typ)
}

func (d *crdEvents) Close() { d.body.Close() }

// decodeWireCRD decodes a CRD without its schemas, handing copies of
// their JSON to keep. The schemas are cut out before the rest is decoded,
// unless the JSON has a shape the splitter does not follow.
func decodeWireCRD(raw []byte, keep keepSchemas) (*apiextensionsv1.CustomResourceDefinition, error) {
	var w wireCRD
	rest, schemas, ok := builtin.SplitCRDSchemas(raw)
	if !ok {
		rest, schemas = raw, nil
	}
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(rest, &w); err != nil {
		return nil, err
	}
	if ok {
		if len(schemas) != len(w.Spec.Versions) {
			return nil, fmt.Errorf("found %d version schemas for %d versions", len(schemas), len(w.Spec.Versions))
		}
		for i, s := range schemas {
			w.Spec.Versions[i].RawSchema = bytes.Clone(s)
		}
	}
	return w.typed(keep), nil
}

// wireCRD is a CRD as JSON, with its version schemas left undecoded and
// its managed fields skipped. The outer fields take precedence over the
// embedded ones of the same JSON name.
type wireCRD struct {
	metav1.TypeMeta
	Metadata struct {
		metav1.ObjectMeta
		ManagedFields skipJSON `json:"managedFields,omitempty"`
	} `json:"metadata"`
	Spec struct {
		apiextensionsv1.CustomResourceDefinitionSpec
		Versions []struct {
			apiextensionsv1.CustomResourceDefinitionVersion
			RawSchema json.RawMessage `json:"schema,omitempty"`
		} `json:"versions"`
	} `json:"spec"`
	Status apiextensionsv1.CustomResourceDefinitionStatus `json:"status"`
}

// typed returns the CRD without schemas, handing its schemas to keep.
func (w *wireCRD) typed(keep keepSchemas) *apiextensionsv1.CustomResourceDefinition {
	crd := &apiextensionsv1.CustomResourceDefinition{TypeMeta: w.TypeMeta, ObjectMeta: w.Metadata.ObjectMeta,
		Spec: w.Spec.CustomResourceDefinitionSpec, Status: w.Status}
	crd.ManagedFields = nil
	crd.Spec.Versions = make([]apiextensionsv1.CustomResourceDefinitionVersion, len(w.Spec.Versions))
	schemas := make([]json.RawMessage, len(w.Spec.Versions))
	for i, v := range w.Spec.Versions {
		crd.Spec.Versions[i] = v.CustomResourceDefinitionVersion
		crd.Spec.Versions[i].Schema = nil
		if len(v.RawSchema) > 0 && string(v.RawSchema) != "null" {
			schemas[i] = v.RawSchema
		}
	}
	if keep != nil && crd.Name != "" {
		keep(crd.Name, crd.ResourceVersion, schemas)
	}
	return crd
}

// skipJSON is a field whose JSON is read past, not decoded.
type skipJSON struct{}

func (*skipJSON) UnmarshalJSON([]byte) error { return nil }
