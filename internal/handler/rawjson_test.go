package handler

import (
	"encoding/json"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestSetResourceVersion(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"kind":"ConfigMap","metadata":{"name":"a"}}`, `{"kind":"ConfigMap","metadata":{"resourceVersion":"42","name":"a"}}`},
		{`{"metadata":{}}`, `{"metadata":{"resourceVersion":"42"}}`},
		{`{"metadata":{"name":"a","resourceVersion":"7"},"data":{"x":"y"}}`, `{"metadata":{"name":"a","resourceVersion":"42"},"data":{"x":"y"}}`},
		// A nested "metadata" key before the real one must not be touched.
		{`{"data":{"metadata":{"a":"\"}"}},"metadata":{"name":"b"}}`, `{"data":{"metadata":{"a":"\"}"}},"metadata":{"resourceVersion":"42","name":"b"}}`},
		{`{"spec":{"template":{"metadata":{"labels":{}}}},"metadata":{"labels":{"resourceVersion":"x"}}}`, `{"spec":{"template":{"metadata":{"labels":{}}}},"metadata":{"resourceVersion":"42","labels":{"resourceVersion":"x"}}}`},
	} {
		got := SetResourceVersion([]byte(tc.in), 42)
		if string(got) != tc.want {
			t.Errorf("SetResourceVersion(%s)\n got %s\nwant %s", tc.in, got, tc.want)
		}
		if !json.Valid(got) {
			t.Errorf("invalid JSON %s", got)
		}
	}
	if got := SetResourceVersion([]byte(`{"kind":"x"}`), 1); got != nil {
		t.Errorf("no metadata: got %s, want nil", got)
	}
}

func TestWithoutTypeMetaDropsOnlyTopLevelKindAndAPIVersion(t *testing.T) {
	cases := map[string]string{
		`{"kind":"Pod","apiVersion":"v1","metadata":{"name":"a"}}`:                    `{"metadata":{"name":"a"}}`,
		`{"metadata":{"name":"a"},"kind":"Pod","apiVersion":"v1"}`:                    `{"metadata":{"name":"a"}}`,
		`{"kind":"Pod","apiVersion":"v1"}`:                                            `{}`,
		`{"metadata":{"name":"a","kind":"x"},"spec":{"apiVersion":"y"},"kind":"Pod"}`: `{"metadata":{"name":"a","kind":"x"},"spec":{"apiVersion":"y"}}`,
		`{"metadata":{}}`: `{"metadata":{}}`,
	}
	for in, want := range cases {
		raw := []byte(in)
		if got := string(withoutTypeMeta(raw)); got != want {
			t.Errorf("withoutTypeMeta(%s) = %s, want %s", in, got, want)
		}
		if string(raw) != in {
			t.Errorf("withoutTypeMeta modified its input: %s", raw)
		}
	}
}

func TestPeekTypeMeta(t *testing.T) {
	for _, tc := range []struct {
		body string
		want metav1.TypeMeta
		ok   bool
	}{
		{`{"kind":"ConfigMap","metadata":{"kind":"x","apiVersion":"y"},"apiVersion":"v1"}`, metav1.TypeMeta{Kind: "ConfigMap", APIVersion: "v1"}, true},
		{` { "apiVersion" : "apps/v1" , "kind" : "Deployment" } `, metav1.TypeMeta{Kind: "Deployment", APIVersion: "apps/v1"}, true},
		{`{"metadata":{"kind":"x","apiVersion":"y"}}`, metav1.TypeMeta{}, false},
		{`{"apiVersion":"v1"}`, metav1.TypeMeta{}, false},
		{`{"apiVersion":"v\u0031","kind":"ConfigMap"}`, metav1.TypeMeta{}, false},
		{`{"apiVersion":1,"kind":"ConfigMap"}`, metav1.TypeMeta{}, false},
		{`{"apiVersion":"v1","kind":"ConfigMap"`, metav1.TypeMeta{}, false},
	} {
		got, ok := peekTypeMeta([]byte(tc.body))
		if ok != tc.ok || got != tc.want {
			t.Errorf("peekTypeMeta(%s) = %+v, %v; want %+v, %v", tc.body, got, ok, tc.want, tc.ok)
		}
	}
}
