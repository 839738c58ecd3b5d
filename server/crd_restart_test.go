package server_test

import (
	"context"
	"net"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
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
