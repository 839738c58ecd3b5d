package server_test

import (
	"context"
	"slices"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/trellis-project/trellis/trellistest"
)

// Duplicate fields in a built-in object's JSON are strict decoding errors,
// as kube-apiserver reports them: a 400 under fieldValidation=Strict, a
// warning under Warn (the object decodes as encoding/json decodes it: the
// two data maps merge), nothing under Ignore.
func TestDuplicateFieldsOfTypedObjects(t *testing.T) {
	cfg := trellistest.Start(t)
	warnings := &warningRecorder{}
	cfg.WarningHandler = warnings
	cs := kubernetes.NewForConfigOrDie(cfg)
	ctx := context.Background()
	body := func(name string) []byte {
		return []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"` + name + `"},"data":{"a":"1"},"data":{"b":"2"},"bogus":1}`)
	}
	create := func(name, validation string) error {
		return cs.CoreV1().RESTClient().Post().Namespace("default").Resource("configmaps").
			Param("fieldValidation", validation).SetHeader("Content-Type", "application/json").
			Body(body(name)).Do(ctx).Error()
	}
	err := create("strict", "Strict")
	const want = `strict decoding error: duplicate field "data", unknown field "bogus"`
	if !apierrors.IsBadRequest(err) || err.Error() != want {
		t.Fatalf("Strict: want 400 %q, got %v", want, err)
	}
	if err := create("warn", "Warn"); err != nil {
		t.Fatal(err)
	}
	warnings.mu.Lock()
	got := slices.Clone(warnings.msgs)
	warnings.mu.Unlock()
	if !slices.Contains(got, `duplicate field "data"`) || !slices.Contains(got, `unknown field "bogus"`) {
		t.Fatalf("Warn: warnings %q", got)
	}
	cm, err := cs.CoreV1().ConfigMaps("default").Get(ctx, "warn", metav1.GetOptions{})
	if err != nil || cm.Data["a"] != "1" || cm.Data["b"] != "2" {
		t.Fatalf("Warn: stored %v, %v", cm, err)
	}
	if err := create("ignore", "Ignore"); err != nil {
		t.Fatal(err)
	}
}

// A CRD body decoded by the CRD codec still has its apiVersion and kind
// checked, with kube-apiserver's words.
func TestCRDBodyTypeMetaChecked(t *testing.T) {
	cfg := trellistest.Start(t)
	cs := kubernetes.NewForConfigOrDie(cfg)
	for body, want := range map[string]string{
		`{"apiVersion":"apiextensions.k8s.io/v1","kind":"Widget","metadata":{"name":"a.example.com"}}`:                   "the kind in the data (Widget) does not match the expected kind (CustomResourceDefinition)",
		`{"apiVersion":"apiextensions.k8s.io/v9","kind":"CustomResourceDefinition","metadata":{"name":"a.example.com"}}`: "the API version in the data (apiextensions.k8s.io/v9) does not match the expected API version (apiextensions.k8s.io/v1)",
		`{"apiVersion":"a/b/c","kind":"CustomResourceDefinition","metadata":{"name":"a.example.com"}}`:                   "the API version in the data (a/b/c) does not match the expected API version (apiextensions.k8s.io/v1)",
	} {
		err := cs.Discovery().RESTClient().Post().AbsPath("/apis/apiextensions.k8s.io/v1/customresourcedefinitions").
			SetHeader("Content-Type", "application/json").Body([]byte(body)).Do(context.Background()).Error()
		if !apierrors.IsBadRequest(err) || err.Error() != want {
			t.Errorf("%s: want 400 %q, got %v", body, want, err)
		}
	}
}
