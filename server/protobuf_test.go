package server_test

import (
	"context"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/trellis-project/trellis/trellistest"
)

// A client that accepts only protobuf gets protobuf, also on watch; one
// that accepts protobuf and JSON gets JSON (objects are stored as JSON).
func TestProtobufOnlyClients(t *testing.T) {
	cfg := trellistest.Start(t)
	ctx := context.Background()
	protoCfg := rest.CopyConfig(cfg)
	protoCfg.ContentType = "application/vnd.kubernetes.protobuf"
	protoCfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf"
	cs := kubernetes.NewForConfigOrDie(protoCfg)

	w, err := cs.CoreV1().ConfigMaps("default").Watch(ctx, metav1.ListOptions{LabelSelector: "proto=yes"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	cm, err := cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "pb", Labels: map[string]string{"proto": "yes"}}, Data: map[string]string{"k": "v"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cm.Data["k"] != "v" || cm.ResourceVersion == "" || cm.UID == "" {
		t.Errorf("created: %+v", cm)
	}
	select {
	case ev := <-w.ResultChan():
		if got, ok := ev.Object.(*corev1.ConfigMap); ev.Type != watch.Added || !ok || got.Name != "pb" || got.ResourceVersion != cm.ResourceVersion {
			t.Errorf("protobuf watch event: %s %#v", ev.Type, ev.Object)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no protobuf watch event")
	}
	list, err := cs.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{LabelSelector: "proto=yes"})
	if err != nil || len(list.Items) != 1 || list.ResourceVersion == "" {
		t.Fatalf("protobuf list: %v %+v", err, list)
	}
	labels := map[string]string{"app": "pb"}
	dep, err := cs.AppsV1().Deployments("default").Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "pb"},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](2), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "nginx"}}}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if dep.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType {
		t.Errorf("defaults lost in protobuf: %+v", dep.Spec.Strategy)
	}
	sc, err := cs.AppsV1().Deployments("default").GetScale(ctx, "pb", metav1.GetOptions{})
	if err != nil || sc.Spec.Replicas != 2 {
		t.Errorf("protobuf scale: %v %+v", err, sc)
	}
	if err := cs.CoreV1().ConfigMaps("default").Delete(ctx, "pb", metav1.DeleteOptions{}); err != nil {
		t.Errorf("protobuf delete: %v", err)
	}
	if _, err := cs.CoreV1().ConfigMaps("default").Get(ctx, "pb", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("get after delete: %v", err)
	}

	// The wire: protobuf only when JSON is not acceptable.
	jsonClient := kubernetes.NewForConfigOrDie(cfg)
	if _, err := jsonClient.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "wire"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	raw := jsonClient.CoreV1().RESTClient()
	for accept, want := range map[string]string{
		"application/vnd.kubernetes.protobuf":                   "application/vnd.kubernetes.protobuf",
		"application/vnd.kubernetes.protobuf, application/json": "application/json",
	} {
		res := raw.Get().AbsPath("/api/v1/namespaces/default/configmaps/wire").SetHeader("Accept", accept).Do(ctx)
		var ct string
		res.ContentType(&ct)
		if err := res.Error(); err != nil || ct != want {
			t.Errorf("Accept %q: %v, Content-Type %q, want %q", accept, err, ct, want)
		}
	}
	// Custom resources are never protobuf: 406, as upstream.
	installCRD(t, cfg, widgetCRD())
	err = raw.Get().AbsPath("/apis/example.com/v1/namespaces/default/widgets").SetHeader("Accept", "application/vnd.kubernetes.protobuf").Do(ctx).Error()
	if !apierrors.IsNotAcceptable(err) {
		t.Errorf("protobuf-only list of a custom resource: %v, want 406", err)
	}
}
