package server_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/trellis-project/trellis/trellistest"
)

func TestKubectlApplyAndDelete(t *testing.T) {
	kc := startWithKubeconfig(t)
	manifest := `apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: cart
  namespace: shop
data:
  items: "3"
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  selector:
    app: web
  ports:
  - port: 80
    targetPort: 8080
`
	dir := t.TempDir()
	path := filepath.Join(dir, "m.yaml")
	os.WriteFile(path, []byte(manifest), 0o600)
	out := mustKubectl(t, kc, "", "apply", "-f", path)
	for _, want := range []string{"namespace/shop created", "configmap/cart created", "service/web created"} {
		if !strings.Contains(out, want) {
			t.Errorf("apply output lacks %q:\n%s", want, out)
		}
	}
	// Client-side apply keeps last-applied-configuration; a second apply
	// with a change patches only that.
	os.WriteFile(path, []byte(strings.Replace(manifest, `items: "3"`, `items: "4"`, 1)), 0o600)
	out = mustKubectl(t, kc, "", "apply", "-f", path)
	if !strings.Contains(out, "configmap/cart configured") || !strings.Contains(out, "namespace/shop unchanged") {
		t.Errorf("second apply:\n%s", out)
	}
	if got := mustKubectl(t, kc, "", "get", "cm", "cart", "-n", "shop", "-o", "jsonpath={.data.items}"); got != "4" {
		t.Errorf("items = %q", got)
	}
	out = mustKubectl(t, kc, "", "get", "svc", "-n", "shop")
	if !strings.Contains(out, "ClusterIP") || !strings.Contains(out, "80/TCP") {
		t.Errorf("get svc:\n%s", out)
	}

	out = mustKubectl(t, kc, "", "delete", "namespace", "shop", "--wait=true", "--timeout=20s")
	if !strings.Contains(out, `namespace "shop" deleted`) {
		t.Errorf("delete namespace:\n%s", out)
	}
	r := kubectl(t, kc, "", "get", "cm", "cart", "-n", "shop")
	if r.code == 0 {
		t.Errorf("configmap survived its namespace: %s", r.stdout)
	}
}

func TestKubectlWaitEditAndWatch(t *testing.T) {
	srv := trellistest.StartServer(t)
	kc := srv.KubeconfigPath()
	cms := kubernetes.NewForConfigOrDie(srv.Config).CoreV1().ConfigMaps("default")
	mustKubectl(t, kc, "", "create", "configmap", "w", "--from-literal=a=1")

	// kubectl edit through an "editor" that rewrites the file.
	editor := filepath.Join(t.TempDir(), "editor.sh")
	os.WriteFile(editor, []byte("#!/bin/sh\nsed -i 's/a: \"1\"/a: \"2\"/' \"$1\"\n"), 0o755)
	t.Setenv("KUBE_EDITOR", editor)
	mustKubectl(t, kc, "", "edit", "configmap", "w")
	if got := mustKubectl(t, kc, "", "get", "cm", "w", "-o", "jsonpath={.data.a}"); got != "2" {
		t.Errorf("after edit a = %q", got)
	}

	// get --watch prints the table, then each change (a Table watch); the
	// request timeout ends it.
	go func() {
		time.Sleep(500 * time.Millisecond)
		cms.Create(context.Background(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "arrived"}}, metav1.CreateOptions{})
	}()
	r := kubectl(t, kc, "", "get", "configmaps", "--watch", "--request-timeout=2s")
	if !strings.HasPrefix(r.stdout, "NAME") || !strings.Contains(r.stdout, "\nw ") || !strings.Contains(r.stdout, "\narrived ") {
		t.Errorf("get --watch:\n%s\n%s", r.stdout, r.stderr)
	}

	// wait --for=delete returns once the object is gone.
	go func() {
		time.Sleep(300 * time.Millisecond)
		cms.Delete(context.Background(), "w", metav1.DeleteOptions{})
	}()
	mustKubectl(t, kc, "", "wait", "--for=delete", "configmap/w", "--timeout=10s")
	if _, err := cms.Get(context.Background(), "w", metav1.GetOptions{}); err == nil {
		t.Error("wait returned before the delete")
	}
}
