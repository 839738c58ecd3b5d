package server_test

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/trellis-project/trellis/trellistest"
)

func TestMetricsCountRequests(t *testing.T) {
	cfg := trellistest.Start(t)
	c := kubernetes.NewForConfigOrDie(cfg)
	ctx := context.Background()
	// Secrets: no in-process controller creates or reads them by name
	// (the root-CA publisher creates ConfigMaps).
	c.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "m"}}, metav1.CreateOptions{})
	c.CoreV1().Secrets("default").Get(ctx, "missing", metav1.GetOptions{})
	c.CoreV1().Secrets("default").List(ctx, metav1.ListOptions{})
	c.CoreV1().Secrets("default").Patch(ctx, "m", types.MergePatchType, []byte(`{"metadata":{"labels":{"a":"b"}}}`), metav1.PatchOptions{})
	c.CoreV1().Secrets("default").Patch(ctx, "m", types.ApplyPatchType, []byte(`{"apiVersion":"v1","kind":"Secret","metadata":{"name":"m"}}`), metav1.PatchOptions{FieldManager: "t"})
	c.CoreV1().Secrets("default").Update(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "m"}}, metav1.UpdateOptions{})
	c.CoreV1().Secrets("default").DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: "none=none"})
	raw, err := c.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	for _, want := range []string{
		// The verbs are kube-apiserver's metric verbs, not request verbs.
		// (In-process controllers may also list secrets: no count there.)
		`apiserver_request_total{code="201",group="",resource="secrets",subresource="",verb="POST",version="v1"} 1`,
		`apiserver_request_total{code="404",group="",resource="secrets",subresource="",verb="GET",version="v1"} 1`,
		`apiserver_request_total{code="200",group="",resource="secrets",subresource="",verb="LIST",version="v1"} `,
		`apiserver_request_total{code="200",group="",resource="secrets",subresource="",verb="PATCH",version="v1"} `,
		`apiserver_request_total{code="200",group="",resource="secrets",subresource="",verb="APPLY",version="v1"} `,
		`apiserver_request_total{code="200",group="",resource="secrets",subresource="",verb="PUT",version="v1"} `,
		`apiserver_request_total{code="200",group="",resource="secrets",subresource="",verb="DELETECOLLECTION",version="v1"} `,
		`apiserver_request_duration_seconds_bucket{group="",resource="secrets",subresource="",verb="POST",version="v1",le=`,
		`apiserver_current_inflight_requests{request_kind="readOnly"}`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestAnonymousRefusedExceptHealth(t *testing.T) {
	cfg := trellistest.Start(t)
	anon := rest.AnonymousClientConfig(cfg)
	c := kubernetes.NewForConfigOrDie(anon)
	_, err := c.CoreV1().Namespaces().List(context.Background(), metav1.ListOptions{})
	if !apierrors.IsUnauthorized(err) {
		t.Fatalf("anonymous list: %v, want 401", err)
	}
	body, err := c.CoreV1().RESTClient().Get().AbsPath("/readyz").DoRaw(context.Background())
	if err != nil || string(body) != "ok" {
		t.Fatalf("anonymous /readyz: %q %v", body, err)
	}
}
