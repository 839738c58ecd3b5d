package apiextensions

import (
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
// CRD's create and its first use. This decodes it in one pass and skips
// the schemas.
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
			return watch.NewStreamWatcher(&crdEvents{body: body, dec: json.NewDecoder(body), keep: keep},
				apierrors.NewClientErrorReporter(http.StatusInternalServerError, "GET", "ClientWatchDecoding")), nil
		},
	}
}

// crdEvents decodes a JSON watch stream of CRDs.
type crdEvents struct {
	body io.ReadCloser
	dec  *json.Decoder
	keep keepSchemas
}

func (d *crdEvents) Decode() (watch.EventType, runtime.Object, error) {
	var ev struct {
		Type   watch.EventType `json:"type"`
		Object json.RawMessage `json:"object"`
	}
	if err := d.dec.Decode(&ev); err != nil {
		return "", nil, err
	}
	switch ev.Type {
	case watch.Added, watch.Modified, watch.Deleted, watch.Bookmark:
		var w wireCRD
		if err := sigsjson.UnmarshalCaseSensitivePreserveInts(ev.Object, &w); err != nil {
			return "", nil, fmt.Errorf("decoding a CRD watch event: %w", err)
		}
		return ev.Type, w.typed(d.keep), nil
	case watch.Error:
		st := &metav1.Status{}
		if err := json.Unmarshal(ev.Object, st); err != nil {
			return "", nil, fmt.Errorf("decoding a watch error: %w", err)
		}
		return ev.Type, st, nil
	}
	return "", nil, fmt.Errorf("unknown watch event type %q", ev.Type)
}

func (d *crdEvents) Close() { d.body.Close() }

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
