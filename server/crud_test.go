package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/trellis-project/trellis/trellistest"
)

func newClient(t *testing.T) kubernetes.Interface {
	t.Helper()
	return kubernetes.NewForConfigOrDie(trellistest.Start(t))
}

func TestConfigMapLifecycle(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	cms := c.CoreV1().ConfigMaps("default")

	created, err := cms.Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "app", Labels: map[string]string{"tier": "web"}},
		Data:       map[string]string{"a": "1"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if created.UID == "" || created.ResourceVersion == "" || created.CreationTimestamp.IsZero() {
		t.Fatalf("server-owned metadata missing: %+v", created.ObjectMeta)
	}

	got, err := cms.Get(ctx, "app", metav1.GetOptions{})
	if err != nil || got.Data["a"] != "1" || got.ResourceVersion != created.ResourceVersion {
		t.Fatalf("get = %+v, %v", got, err)
	}

	// Update with the current resourceVersion succeeds and bumps it.
	got.Data["a"] = "2"
	updated, err := cms.Update(ctx, got, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if updated.ResourceVersion == created.ResourceVersion {
		t.Fatal("update kept the resourceVersion")
	}
	// A stale resourceVersion is a 409 Conflict with kube-apiserver's words.
	got.Data["a"] = "3"
	_, err = cms.Update(ctx, got, metav1.UpdateOptions{})
	if !apierrors.IsConflict(err) {
		t.Fatalf("stale update: %v, want Conflict", err)
	}
	want := `Operation cannot be fulfilled on configmaps "app": the object has been modified; please apply your changes to the latest version and try again`
	if err.Error() != want {
		t.Fatalf("conflict message:\n got %q\nwant %q", err.Error(), want)
	}

	// Every patch flavour.
	for _, p := range []struct {
		typ  types.PatchType
		body string
		key  string
		val  string
	}{
		{types.MergePatchType, `{"data":{"b":"merge"}}`, "b", "merge"},
		{types.JSONPatchType, `[{"op":"add","path":"/data/c","value":"json"}]`, "c", "json"},
		{types.StrategicMergePatchType, `{"data":{"d":"smp"}}`, "d", "smp"},
	} {
		patched, err := cms.Patch(ctx, "app", p.typ, []byte(p.body), metav1.PatchOptions{})
		if err != nil {
			t.Fatalf("%s: %v", p.typ, err)
		}
		if patched.Data[p.key] != p.val {
			t.Fatalf("%s: data = %v", p.typ, patched.Data)
		}
	}
	// A JSON patch whose test fails changes nothing.
	_, err = cms.Patch(ctx, "app", types.JSONPatchType, []byte(`[{"op":"test","path":"/data/a","value":"nope"},{"op":"remove","path":"/data/a"}]`), metav1.PatchOptions{})
	if err == nil {
		t.Fatal("failed JSON patch test op was accepted")
	}
	if got, _ := cms.Get(ctx, "app", metav1.GetOptions{}); got.Data["a"] != "2" {
		t.Fatalf("failed patch changed data: %v", got.Data)
	}

	// Immutable ConfigMaps refuse data changes with upstream's message.
	imm := true
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "frozen"}, Data: map[string]string{"k": "v"}, Immutable: &imm}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err = cms.Patch(ctx, "frozen", types.MergePatchType, []byte(`{"data":{"k":"x"}}`), metav1.PatchOptions{})
	if !apierrors.IsInvalid(err) {
		t.Fatalf("changing an immutable configmap: %v, want Invalid", err)
	}

	if err := cms.Delete(ctx, "app", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cms.Get(ctx, "app", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("get after delete: %v", err)
	}
	if err := cms.Delete(ctx, "app", metav1.DeleteOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("second delete: %v", err)
	}
}

func TestCreateErrors(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	cms := c.CoreV1().ConfigMaps("default")
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "dup"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "dup"}}, metav1.CreateOptions{})
	if !apierrors.IsAlreadyExists(err) || err.Error() != `configmaps "dup" already exists` {
		t.Fatalf("duplicate create: %v", err)
	}

	_, err = cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "bad-key"}, Data: map[string]string{"no/slash": "v"}}, metav1.CreateOptions{})
	status, ok := err.(apierrors.APIStatus)
	if !ok || status.Status().Code != 422 {
		t.Fatalf("invalid key: %v", err)
	}
	causes := status.Status().Details.Causes
	if len(causes) != 1 || causes[0].Field != "data[no/slash]" || causes[0].Type != metav1.CauseTypeFieldValueInvalid {
		t.Fatalf("causes = %+v", causes)
	}

	_, err = c.CoreV1().ConfigMaps("missing").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{})
	if !apierrors.IsNotFound(err) || err.Error() != `namespaces "missing" not found` {
		t.Fatalf("create in missing namespace: %v", err)
	}

	gen, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{GenerateName: "gen-"}}, metav1.CreateOptions{})
	if err != nil || len(gen.Name) != len("gen-")+5 {
		t.Fatalf("generateName: %v %q", err, gen.GetName())
	}

	// dryRun validates and answers but stores nothing.
	_, err = cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "dry"}}, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cms.Get(ctx, "dry", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("dry-run create was stored: %v", err)
	}
}

func TestListPaginationAndSelectors(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	cms := c.CoreV1().ConfigMaps("default")
	for i := range 25 {
		tier := "a"
		if i%5 == 0 {
			tier = "b"
		}
		if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
			Name: fmt.Sprintf("cm-%02d", i), Labels: map[string]string{"tier": tier},
		}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	var names []string
	opts := metav1.ListOptions{Limit: 10}
	pages := 0
	for {
		list, err := cms.List(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, cm := range list.Items {
			if cm.Name == "kube-root-ca.crt" {
				continue // the root-CA publisher's, there or not yet
			}
			names = append(names, cm.Name)
		}
		// Writes between pages do not show up: pages share one snapshot.
		cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("late-%d", pages)}}, metav1.CreateOptions{})
		if list.Continue == "" {
			break
		}
		opts.Continue = list.Continue
	}
	if pages != 3 || len(names) != 25 {
		t.Logf("names: %v", names)
		t.Fatalf("paged list: %d pages, %d items", pages, len(names))
	}
	for i, n := range names {
		if n != fmt.Sprintf("cm-%02d", i) {
			t.Fatalf("item %d = %s, lists must be sorted by name", i, n)
		}
	}

	b, err := cms.List(ctx, metav1.ListOptions{LabelSelector: "tier=b"})
	if err != nil || len(b.Items) != 5 {
		t.Fatalf("label selector: %d items, %v", len(b.Items), err)
	}
	one, err := cms.List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=cm-07"})
	if err != nil || len(one.Items) != 1 || one.Items[0].Name != "cm-07" {
		t.Fatalf("field selector: %+v, %v", one, err)
	}
	_, err = cms.List(ctx, metav1.ListOptions{FieldSelector: "spec.nope=x"})
	if !apierrors.IsBadRequest(err) {
		t.Fatalf("unsupported field selector: %v", err)
	}
	// A label-selected page stops at the limit and continues correctly.
	page, err := cms.List(ctx, metav1.ListOptions{LabelSelector: "tier=b", Limit: 2})
	if err != nil || len(page.Items) != 2 || page.Continue == "" {
		t.Fatalf("selected page: %d items, continue %q, %v", len(page.Items), page.Continue, err)
	}
	// Secrets select on their type.
	secrets := c.CoreV1().Secrets("default")
	secrets.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "tls"}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{"tls.crt": []byte("c"), "tls.key": []byte("k")}}, metav1.CreateOptions{})
	secrets.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "plain"}}, metav1.CreateOptions{})
	tls, err := secrets.List(ctx, metav1.ListOptions{FieldSelector: "type=kubernetes.io/tls"})
	if err != nil || len(tls.Items) != 1 || tls.Items[0].Name != "tls" {
		t.Fatalf("secret type selector: %+v %v", tls, err)
	}
}

func TestNamespaceDeletionRemovesContents(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "doomed"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cms := c.CoreV1().ConfigMaps("doomed")
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "plain"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "held", Finalizers: []string{"example.com/hold"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.CoreV1().Namespaces().Delete(ctx, "doomed", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	ns, err := c.CoreV1().Namespaces().Get(ctx, "doomed", metav1.GetOptions{})
	if err != nil || ns.Status.Phase != corev1.NamespaceTerminating || ns.DeletionTimestamp == nil {
		t.Fatalf("deleting namespace: %+v %v", ns.Status, err)
	}
	_, err = cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "late"}}, metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) || err.Error() != `configmaps "late" is forbidden: unable to create new content in namespace doomed because it is being terminated` {
		t.Fatalf("create in terminating namespace: %v", err)
	}
	// The finalizer holds the object (and so the namespace) until removed.
	err = wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := cms.Get(ctx, "plain", metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		t.Fatal("plain configmap not deleted with its namespace")
	}
	held, err := cms.Get(ctx, "held", metav1.GetOptions{})
	if err != nil || held.DeletionTimestamp == nil {
		t.Fatalf("finalized configmap: %+v %v", held, err)
	}
	if _, err := c.CoreV1().Namespaces().Get(ctx, "doomed", metav1.GetOptions{}); err != nil {
		t.Fatalf("namespace went away while content remains: %v", err)
	}
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"finalizers": nil}})
	if _, err := cms.Patch(ctx, "held", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := c.CoreV1().Namespaces().Get(ctx, "doomed", metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		t.Fatal("namespace not removed after its content was")
	}
}
