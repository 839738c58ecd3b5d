package server_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"

	"github.com/trellis-project/trellis/internal/store"
	"github.com/trellis-project/trellis/internal/store/bolt"
)

// TestStorageVersionMigration moves a CRD's storage version and checks
// that every stored object is rewritten in it and storedVersions trimmed.
func TestStorageVersionMigration(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	srv, stop := runServer(t, dir, "127.0.0.1:0")
	cfg := srv.AdminConfig()
	crd := widgetCRD()
	v2 := *crd.Spec.Versions[0].DeepCopy()
	v2.Name, v2.Storage = "v2", false
	crd.Spec.Versions = append(crd.Spec.Versions, v2)
	installCRD(t, cfg, crd)
	widgets := dynamic.NewForConfigOrDie(cfg).Resource(widgetGVR).Namespace("default")
	for i := range 3 {
		if _, err := widgets.Create(ctx, widget(fmt.Sprintf("m%d", i), map[string]any{"color": "red"}), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	ext := apiextensionsclient.NewForConfigOrDie(cfg).ApiextensionsV1().CustomResourceDefinitions()
	got, err := ext.Get(ctx, crd.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got.Spec.Versions[0].Storage, got.Spec.Versions[1].Storage = false, true
	if _, err := ext.Update(ctx, got, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	var stored []string
	err = wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		c, err := ext.Get(ctx, crd.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		stored = c.Status.StoredVersions
		return slices.Equal(stored, []string{"v2"}), nil
	})
	if err != nil {
		t.Fatalf("storedVersions stayed %v, want [v2]", stored)
	}

	stop()
	s, err := bolt.Open(bolt.Options{Dir: dir, CompactionInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	res, err := s.List(ctx, "/registry/example.com/widgets/", store.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.KVs) != 3 {
		t.Fatalf("%d widgets stored, want 3", len(res.KVs))
	}
	for _, kv := range res.KVs {
		if !strings.Contains(string(kv.Value), `"apiVersion":"example.com/v2"`) {
			t.Errorf("%s still stored as %s", kv.Key, kv.Value[:60])
		}
	}
}
