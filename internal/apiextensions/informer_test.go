package apiextensions

import (
	"encoding/json"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
)

// The CRD watch decoder returns CRDs without schemas or managed fields,
// hands the schemas over as JSON, and passes bookmarks and errors on,
// however the stream's bytes arrive.
func TestCRDWatchDecoding(t *testing.T) {
	for name, split := range map[string]func(io.Reader) io.Reader{
		"whole":         func(r io.Reader) io.Reader { return r },
		"byte by byte":  iotest.OneByteReader,
		"half of reads": iotest.HalfReader,
	} {
		t.Run(name, func(t *testing.T) { testCRDWatchDecoding(t, split) })
	}
}

func testCRDWatchDecoding(t *testing.T, split func(io.Reader) io.Reader) {
	stream := `{"type":"ADDED","object":{"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition",
  "metadata":{"name":"things.example.com","resourceVersion":"7","managedFields":[{"manager":"kubectl","fieldsV1":{"f:spec":{}}}]},
  "spec":{"group":"example.com","scope":"Namespaced","names":{"plural":"things","kind":"Thing"},
    "versions":[{"name":"v1","served":true,"storage":true,"schema":{"openAPIV3Schema":{"type":"object","description":"a \\\"quoted}\\\" ] word"}}},
                {"name":"v2","served":false,"storage":false}]},
  "status":{"storedVersions":["v1"]}}}
{"type":"BOOKMARK","object":{"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition","metadata":{"resourceVersion":"9"}}}
{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Expired","code":410,"message":"too old"}}
{"type":"SURPRISE","object":{}}
`
	type kept struct {
		name, rv string
		schemas  []json.RawMessage
	}
	var got []kept
	d := &crdEvents{body: io.NopCloser(split(strings.NewReader(stream))), keep: func(name, rv string, schemas []json.RawMessage) {
		got = append(got, kept{name, rv, schemas})
	}}

	typ, obj, err := d.Decode()
	if err != nil || typ != watch.Added {
		t.Fatalf("first event: %v %v", typ, err)
	}
	crd := obj.(*apiextensionsv1.CustomResourceDefinition)
	if crd.Name != "things.example.com" || crd.ResourceVersion != "7" || crd.Spec.Names.Kind != "Thing" ||
		len(crd.Spec.Versions) != 2 || crd.Spec.Versions[0].Name != "v1" || !crd.Spec.Versions[0].Storage ||
		crd.Status.StoredVersions[0] != "v1" {
		t.Fatalf("decoded %+v", crd)
	}
	if crd.ManagedFields != nil || crd.Spec.Versions[0].Schema != nil {
		t.Fatalf("managed fields or schemas kept: %+v", crd)
	}
	if len(got) != 1 || got[0].name != crd.Name || got[0].rv != "7" || len(got[0].schemas) != 2 ||
		string(got[0].schemas[0]) != `{"openAPIV3Schema":{"type":"object","description":"a \\\"quoted}\\\" ] word"}}` || got[0].schemas[1] != nil {
		t.Fatalf("schemas handed over: %+v", got)
	}

	typ, obj, err = d.Decode()
	if err != nil || typ != watch.Bookmark || obj.(*apiextensionsv1.CustomResourceDefinition).ResourceVersion != "9" {
		t.Fatalf("bookmark: %v %v %v", typ, obj, err)
	}
	if len(got) != 1 {
		t.Fatalf("a bookmark's (absent) schemas were kept: %+v", got)
	}

	typ, obj, err = d.Decode()
	if err != nil || typ != watch.Error || obj.(*metav1.Status).Code != 410 {
		t.Fatalf("error event: %v %v %v", typ, obj, err)
	}
	if _, _, err = d.Decode(); err == nil || !strings.Contains(err.Error(), "SURPRISE") {
		t.Fatalf("unknown event type: %v", err)
	}
	if _, _, err = d.Decode(); err != io.EOF {
		t.Fatalf("end of stream: %v", err)
	}
}

// A stream that ends inside an event, or holds something other than an
// object, is an error, not a hang or a partial event.
func TestCRDWatchDecodingBrokenStreams(t *testing.T) {
	for name, stream := range map[string]string{
		"cut in an event":  `{"type":"ADDED","object":{"metadata":{"name":"a"`,
		"cut in a string":  `{"type":"ADDED","object":{"metadata":{"name":"a`,
		"not an object":    `["ADDED"]`,
		"unbalanced":       `{"type":"ADDED","object":{"spec":[}}`,
		"no object member": `{"type":"ADDED"}`,
	} {
		d := &crdEvents{body: io.NopCloser(iotest.HalfReader(strings.NewReader(stream)))}
		if _, _, err := d.Decode(); err == nil || err == io.EOF {
			t.Errorf("%s: %v", name, err)
		}
	}
}
