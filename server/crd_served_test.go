package server_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"

	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/trellis-project/trellis/trellistest"
)

// A server started on the data of another serves the CRDs stored there
// with their whole schemas (read back from the store at start, not handed
// over by a create): defaults, OpenAPI and CEL validation work on the
// restarted server before it reports ready.
func TestCRDsServedAfterRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	srv, stop := runServer(t, dir, addr)
	installCRD(t, srv.AdminConfig(), wideWidgetCRD("restart.example.com"))
	stop()

	srv, _ = runServer(t, dir, addr)
	r := dynamic.NewForConfigOrDie(srv.AdminConfig()).
		Resource(schema.GroupVersionResource{Group: "restart.example.com", Version: "v1", Resource: "widgets"}).Namespace("default")
	w := widget("after", map[string]any{"color": "red", "extra003": "x"})
	w.SetAPIVersion("restart.example.com/v1")
	got, err := r.Create(ctx, w, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create right after the restart: %v", err)
	}
	if spec := got.Object["spec"].(map[string]any); spec["size"] != int64(3) || spec["extra003"] != "x" {
		t.Errorf("spec %v; want size defaulted to 3 and extra003 kept", spec)
	}
	bad := widget("bad", map[string]any{"color": "red", "size": int64(5), "max": int64(2)})
	bad.SetAPIVersion("restart.example.com/v1")
	if _, err := r.Create(ctx, bad, metav1.CreateOptions{}); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "size must not exceed max") {
		t.Errorf("create breaking the CEL rule answered %v", err)
	}
	bad = widget("bad", map[string]any{"color": "green"})
	bad.SetAPIVersion("restart.example.com/v1")
	if _, err := r.Create(ctx, bad, metav1.CreateOptions{}); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), `spec.color: Unsupported value: "green"`) {
		t.Errorf("create with a color outside the enum answered %v", err)
	}
}

// A CRD's /status write is still validated as upstream validates it (its
// accepted names), although its schemas are left out of that validation.
func TestCRDStatusWriteValidated(t *testing.T) {
	cfg := trellistest.Start(t)
	installCRD(t, cfg, wideWidgetCRD("status.example.com"))
	ext := apiextensionsclient.NewForConfigOrDie(cfg)
	ctx := context.Background()
	crd, err := ext.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, "widgets.status.example.com", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	crd.Status.AcceptedNames.Plural = "Not_A_Name"
	_, err = ext.ApiextensionsV1().CustomResourceDefinitions().UpdateStatus(ctx, crd, metav1.UpdateOptions{})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "status.acceptedNames.plural: Invalid value") {
		t.Fatalf("status write with an invalid accepted plural answered %v; want 422 on status.acceptedNames.plural", err)
	}
	if got, _ := ext.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, crd.Name, metav1.GetOptions{}); got.Spec.Versions[0].Schema == nil || len(got.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"].Properties) < 400 {
		t.Fatal("the stored CRD lost its schema")
	}
}

// Once a CRD is Established its resource is served, and stays served:
// the controller's own status write, handed over before the watch cache
// has it, must not unserve the CRD meanwhile. Many small installs, each
// used at once, catch that window.
func TestCRDServedOnceEstablished(t *testing.T) {
	cfg := trellistest.Start(t)
	dyn := dynamic.NewForConfigOrDie(cfg)
	ctx := context.Background()
	for i := range 20 {
		group := fmt.Sprintf("g%d.established.example.com", i)
		crd := widgetCRD()
		crd.Name, crd.Spec.Group, crd.Spec.Names.ShortNames = "widgets."+group, group, nil
		installCRD(t, cfg, crd)
		w := widget("w", map[string]any{"color": "red"})
		w.SetAPIVersion(group + "/v1")
		r := dyn.Resource(schema.GroupVersionResource{Group: group, Version: "v1", Resource: "widgets"}).Namespace("default")
		for j := range 3 {
			w.SetName(fmt.Sprintf("w%d", j))
			if _, err := r.Create(ctx, w, metav1.CreateOptions{}); err != nil {
				t.Fatalf("CRD %d, create %d right after Established: %v", i, j, err)
			}
		}
	}
}
