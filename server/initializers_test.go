package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/trellis-project/trellis/internal/admission/initializer"
	"github.com/trellis-project/trellis/trellistest"
)

// runInitializer is a small initializer controller written with client-go:
// it watches ConfigMaps including uninitialized ones and, for each whose
// first pending initializer is name, calls act and writes the result back.
// act returns the annotation to finish with (done or failed) and its
// value, or "" to leave the object alone.
func runInitializer(ctx context.Context, t *testing.T, cs kubernetes.Interface, name string, act func(cm *corev1.ConfigMap) (string, string)) *sync.WaitGroup {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		w, err := cs.CoreV1().RESTClient().Get().Resource("configmaps").
			Param("watch", "true").Param(initializer.IncludeUninitializedParam, "true").Watch(ctx)
		if err != nil {
			t.Errorf("initializer %s: watch: %v", name, err)
			return
		}
		defer w.Stop()
		for ev := range w.ResultChan() {
			cm, ok := ev.Object.(*corev1.ConfigMap)
			if !ok || ev.Type == watch.Deleted {
				continue
			}
			pending := strings.Split(cm.Annotations[initializer.PendingAnnotation], ",")
			if pending[0] != name || cm.Annotations[initializer.FailedAnnotation] != "" {
				continue
			}
			key, value := act(cm)
			if key == "" {
				continue
			}
			cm.Annotations[key] = value
			if _, err := cs.CoreV1().ConfigMaps(cm.Namespace).Update(ctx, cm, metav1.UpdateOptions{}); err != nil && ctx.Err() == nil {
				t.Errorf("initializer %s: update %s: %v", name, cm.Name, err)
			}
		}
	}()
	return &wg
}

func TestInitializers(t *testing.T) {
	srv := trellistest.StartServer(t)
	cs := kubernetes.NewForConfigOrDie(srv.Config)
	dyn := dynamic.NewForConfigOrDie(srv.Config)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	createNamespace(t, cs, "init", nil)

	config := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "admission.trellis.dev/v1alpha1", "kind": "InitializerConfiguration",
		"metadata": map[string]any{"name": "configmaps"},
		"initializers": []any{
			map[string]any{"name": "labeler.example.com", "rules": []any{map[string]any{"apiGroups": []any{""}, "apiVersions": []any{"v1"}, "resources": []any{"configmaps"}}}},
			map[string]any{"name": "checker.example.com", "rules": []any{map[string]any{"apiGroups": []any{""}, "apiVersions": []any{"*"}, "resources": []any{"configmaps"}}}},
		},
	}}
	if _, err := dyn.Resource(initializer.ConfigurationResource).Create(ctx, config, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	bad := config.DeepCopy()
	bad.SetName("bad-name")
	bad.Object["initializers"] = []any{map[string]any{"name": "unqualified"}}
	if _, err := dyn.Resource(initializer.ConfigurationResource).Create(ctx, bad, metav1.CreateOptions{}); !apierrors.IsInvalid(err) {
		t.Errorf("initializer name without two dots: %v, want 422", err)
	}

	// Wait until the configuration is in effect: a create with
	// includeUninitialized returns at once, with the pending list.
	var probe *corev1.ConfigMap
	waitFor(t, "the initializer configuration", func() bool {
		var err error
		probe = &corev1.ConfigMap{}
		err = cs.CoreV1().RESTClient().Post().Namespace("init").Resource("configmaps").Param(initializer.IncludeUninitializedParam, "true").
			Body(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{GenerateName: "probe-", Labels: map[string]string{"hold": "yes"}}}).Do(ctx).Into(probe)
		if err == nil && probe.Annotations[initializer.PendingAnnotation] == "" {
			// Created before the configuration took effect.
			cs.CoreV1().ConfigMaps("init").Delete(ctx, probe.Name, metav1.DeleteOptions{})
			return false
		}
		return err == nil
	})
	if got := probe.Annotations[initializer.PendingAnnotation]; got != "labeler.example.com,checker.example.com" {
		t.Errorf("pending %q, want both initializers in order", got)
	}

	// A plain watcher (no includeUninitialized) starts before the creates.
	plain, err := cs.CoreV1().ConfigMaps("init").Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Stop()

	labeler := runInitializer(ctx, t, cs, "labeler.example.com", func(cm *corev1.ConfigMap) (string, string) {
		if cm.Labels["hold"] == "yes" {
			return "", ""
		}
		if cm.Labels == nil {
			cm.Labels = map[string]string{}
		}
		cm.Labels["labeled"] = "yes"
		return initializer.DoneAnnotation, "labeler.example.com"
	})
	checker := runInitializer(ctx, t, cs, "checker.example.com", func(cm *corev1.ConfigMap) (string, string) {
		if cm.Data["bad"] != "" {
			st, _ := json.Marshal(metav1.Status{Code: http.StatusUnprocessableEntity, Reason: metav1.StatusReasonInvalid, Message: "bad data is not allowed"})
			return initializer.FailedAnnotation, string(st)
		}
		return initializer.DoneAnnotation, "checker.example.com"
	})
	defer func() { cancel(); labeler.Wait(); checker.Wait() }()

	// The creator waits for both initializers and gets the initialized
	// object.
	good, err := cs.CoreV1().ConfigMaps("init").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "good"}, Data: map[string]string{"k": "v"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if good.Labels["labeled"] != "yes" || good.Annotations[initializer.PendingAnnotation] != "" || good.Annotations[initializer.DoneAnnotation] != "" {
		t.Errorf("initialized object: labels %v annotations %v", good.Labels, good.Annotations)
	}
	// A failed initialization deletes the object and fails the create.
	_, err = cs.CoreV1().ConfigMaps("init").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "rejected"}, Data: map[string]string{"bad": "yes"}}, metav1.CreateOptions{})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "bad data is not allowed") {
		t.Errorf("create failed by an initializer: %v", err)
	}
	if _, err := cs.CoreV1().RESTClient().Get().Namespace("init").Resource("configmaps").Name("rejected").Param(initializer.IncludeUninitializedParam, "true").Do(ctx).Get(); !apierrors.IsNotFound(err) {
		t.Errorf("failed object still exists: %v", err)
	}

	// The plain watcher saw "good" appear once, initialized, and never
	// saw "rejected" or the held probe.
	deadline := time.After(10 * time.Second)
	for seen := false; !seen; {
		select {
		case ev := <-plain.ResultChan():
			cm := ev.Object.(*corev1.ConfigMap)
			if cm.Name == "kube-root-ca.crt" {
				continue // published into every namespace
			}
			if cm.Name != "good" || ev.Type != watch.Added || cm.Labels["labeled"] != "yes" {
				t.Errorf("plain watcher saw %s %s (labels %v)", ev.Type, cm.Name, cm.Labels)
			}
			seen = cm.Name == "good"
		case <-deadline:
			t.Fatal("plain watcher never saw the initialized object")
		}
	}

	// The held probe is invisible to get and list, visible with
	// includeUninitialized, and an update from a typed client that drops
	// the pending annotation keeps it.
	if _, err := cs.CoreV1().ConfigMaps("init").Get(ctx, probe.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("get of an uninitialized object: %v, want 404", err)
	}
	list, err := cs.CoreV1().ConfigMaps("init").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, cm := range list.Items {
		if strings.HasPrefix(cm.Name, "probe-") {
			t.Errorf("list shows uninitialized %s", cm.Name)
		}
	}
	held := &corev1.ConfigMap{}
	if err := cs.CoreV1().RESTClient().Get().Namespace("init").Resource("configmaps").Name(probe.Name).Param(initializer.IncludeUninitializedParam, "true").Do(ctx).Into(held); err != nil {
		t.Fatal(err)
	}
	delete(held.Annotations, initializer.PendingAnnotation)
	held.Data = map[string]string{"edited": "yes"}
	updated, err := cs.CoreV1().ConfigMaps("init").Update(ctx, held, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if updated.Annotations[initializer.PendingAnnotation] != "labeler.example.com,checker.example.com" || updated.Data["edited"] != "yes" {
		t.Errorf("typed update lost the pending list: %v", updated.Annotations)
	}
	// Only the first pending initializer may finish.
	updated.Annotations[initializer.DoneAnnotation] = "checker.example.com"
	if _, err := cs.CoreV1().ConfigMaps("init").Update(ctx, updated, metav1.UpdateOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("second initializer finishing first: %v, want 403", err)
	}

	// kubectl shows initialized objects only.
	out := mustKubectl(t, srv.KubeconfigPath(), "", "get", "configmaps", "-n", "init", "-o", "name")
	if !strings.Contains(out, "configmap/good") || strings.Contains(out, "probe-") {
		t.Errorf("kubectl get: %q", out)
	}
}
