package trellistest_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/trellis-project/trellis/trellistest"
)

// TestFiftyServersInOneProcess starts fifty servers side by side; each
// keeps its own data.
func TestFiftyServersInOneProcess(t *testing.T) {
	const n = 50
	clients := make([]kubernetes.Interface, n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cfg := trellistest.Start(t)
			c := kubernetes.NewForConfigOrDie(cfg)
			mu.Lock()
			clients[i] = c
			mu.Unlock()
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	ctx := context.Background()
	for i, c := range clients {
		name := fmt.Sprintf("only-in-%d", i)
		if _, err := c.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
			t.Fatalf("server %d: %v", i, err)
		}
	}
	for i, c := range clients {
		list, err := c.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatalf("server %d: %v", i, err)
		}
		var names []string
		for _, cm := range list.Items {
			if cm.Name != "kube-root-ca.crt" { // the root-CA publisher's
				names = append(names, cm.Name)
			}
		}
		if len(names) != 1 || names[0] != fmt.Sprintf("only-in-%d", i) {
			t.Fatalf("server %d sees %v: its data is not its own", i, names)
		}
	}
}

// CRDs from a folder are installed and Established before Start returns.
func TestWithCRDs(t *testing.T) {
	dir := t.TempDir()
	crd := `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gizmos.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: gizmos, singular: gizmo, kind: Gizmo, listKind: GizmoList}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, properties: {size: {type: integer}}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: not-a-crd}
`
	if err := os.WriteFile(filepath.Join(dir, "gizmos.yaml"), []byte(crd), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := trellistest.Start(t, trellistest.WithCRDs(dir))
	gizmos := dynamic.NewForConfigOrDie(cfg).Resource(schema.GroupVersionResource{Group: "example.com", Version: "v1", Resource: "gizmos"}).Namespace("default")
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "example.com/v1", "kind": "Gizmo", "metadata": map[string]any{"name": "g"}, "spec": map[string]any{"size": int64(2)},
	}}
	if _, err := gizmos.Create(context.Background(), obj, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create right after Start: %v", err)
	}
}
