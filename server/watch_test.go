package server_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/trellis-project/trellis/trellistest"
)

func nextEvent(t *testing.T, w watch.Interface) watch.Event {
	t.Helper()
	select {
	case ev, ok := <-w.ResultChan():
		if !ok {
			t.Fatal("watch closed")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no watch event within 10s")
	}
	return watch.Event{}
}

func TestWatchFromResourceVersion(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	cms := c.CoreV1().ConfigMaps("default")
	first, _ := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "a"}}, metav1.CreateOptions{})
	cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "b", Labels: map[string]string{"x": "y"}}}, metav1.CreateOptions{})
	cms.Delete(ctx, "a", metav1.DeleteOptions{})

	// Resuming from the first create replays what followed, in order.
	w, err := cms.Watch(ctx, metav1.ListOptions{ResourceVersion: first.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	// The root-CA publisher may write kube-root-ca.crt into default after
	// the first create; its event is not what this test is about.
	next := func() watch.Event {
		for {
			ev := nextEvent(t, w)
			if cm, ok := ev.Object.(*corev1.ConfigMap); !ok || cm.Name != "kube-root-ca.crt" {
				return ev
			}
		}
	}
	if ev := next(); ev.Type != watch.Added || ev.Object.(*corev1.ConfigMap).Name != "b" {
		t.Fatalf("first replayed event = %s %v", ev.Type, ev.Object)
	}
	ev := next()
	if ev.Type != watch.Deleted || ev.Object.(*corev1.ConfigMap).Name != "a" {
		t.Fatalf("second replayed event = %s %v", ev.Type, ev.Object)
	}
	if ev.Object.(*corev1.ConfigMap).ResourceVersion == first.ResourceVersion {
		t.Error("DELETED event carries the old resourceVersion, want the deletion's")
	}

	// A label selector turns an object leaving the selection into DELETED.
	sel, err := cms.Watch(ctx, metav1.ListOptions{LabelSelector: "x=y", ResourceVersion: ev.Object.(*corev1.ConfigMap).ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer sel.Stop()
	b, _ := cms.Get(ctx, "b", metav1.GetOptions{})
	b.Labels = nil
	cms.Update(ctx, b, metav1.UpdateOptions{})
	if ev := nextEvent(t, sel); ev.Type != watch.Deleted {
		t.Fatalf("object leaving the selector: %s, want DELETED", ev.Type)
	}
}

func TestWatchListStreamsInitialEventsThenBookmark(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	cms := c.CoreV1().ConfigMaps("default")
	// The label keeps the root-CA publisher's kube-root-ca.crt out.
	labels := map[string]string{"watchlist": "test"}
	for i := range 3 {
		cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("s%d", i), Labels: labels}}, metav1.CreateOptions{})
	}
	w, err := cms.Watch(ctx, metav1.ListOptions{
		LabelSelector:        "watchlist=test",
		SendInitialEvents:    ptr.To(true),
		AllowWatchBookmarks:  true,
		ResourceVersionMatch: metav1.ResourceVersionMatchNotOlderThan,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	for i := range 3 {
		if ev := nextEvent(t, w); ev.Type != watch.Added || ev.Object.(*corev1.ConfigMap).Name != fmt.Sprintf("s%d", i) {
			t.Fatalf("initial event %d = %s %v", i, ev.Type, ev.Object)
		}
	}
	ev := nextEvent(t, w)
	cm := ev.Object.(*corev1.ConfigMap)
	if ev.Type != watch.Bookmark || cm.Annotations["k8s.io/initial-events-end"] != "true" || cm.ResourceVersion == "" {
		t.Fatalf("after initial events: %s %+v, want the initial-events-end bookmark", ev.Type, cm.ObjectMeta)
	}
	cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "later", Labels: labels}}, metav1.CreateOptions{})
	ev = nextEvent(t, w)
	for ev.Type == watch.Bookmark { // periodic bookmarks may come first
		ev = nextEvent(t, w)
	}
	if ev.Type != watch.Added || ev.Object.(*corev1.ConfigMap).Name != "later" {
		t.Fatalf("live event = %s", ev.Type)
	}

	// sendInitialEvents needs resourceVersionMatch=NotOlderThan, as upstream.
	_, err = cms.Watch(ctx, metav1.ListOptions{SendInitialEvents: ptr.To(true), AllowWatchBookmarks: true})
	if !apierrors.IsInvalid(err) {
		t.Fatalf("sendInitialEvents without resourceVersionMatch: %v, want 422", err)
	}
}

func TestWatchTooOldIsGoneEvent(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	w, err := c.CoreV1().ConfigMaps("default").Watch(ctx, metav1.ListOptions{ResourceVersion: "1"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	ev := nextEvent(t, w)
	st, ok := ev.Object.(*metav1.Status)
	if ev.Type != watch.Error || !ok || st.Code != http.StatusGone || st.Reason != metav1.StatusReasonExpired {
		t.Fatalf("watch from a revision older than the cache: %s %+v, want ERROR 410 Expired", ev.Type, ev.Object)
	}
}

func TestWatchTimeoutSecondsEndsWatch(t *testing.T) {
	c := newClient(t)
	start := time.Now()
	w, err := c.CoreV1().ConfigMaps("default").Watch(context.Background(), metav1.ListOptions{TimeoutSeconds: ptr.To[int64](1)})
	if err != nil {
		t.Fatal(err)
	}
	for range w.ResultChan() {
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("watch with timeoutSeconds=1 lasted %v", d)
	}
}

func TestTableAndPartialMetadata(t *testing.T) {
	cfg := trellistest.Start(t)
	ctx := context.Background()
	c := kubernetes.NewForConfigOrDie(cfg)
	// The label keeps the root-CA publisher's kube-root-ca.crt out.
	c.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "t", Labels: map[string]string{"table": "t"}}, Data: map[string]string{"a": "1", "b": "2"}}, metav1.CreateOptions{})
	rc, err := rest.RESTClientFor(restConfigJSON(cfg))
	if err != nil {
		t.Fatal(err)
	}
	table := &metav1.Table{}
	err = rc.Get().AbsPath("/api/v1/namespaces/default/configmaps").Param("labelSelector", "table=t").
		SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").Do(ctx).Into(table)
	if err != nil {
		t.Fatal(err)
	}
	if len(table.ColumnDefinitions) < 3 || table.ColumnDefinitions[0].Name != "Name" || table.ColumnDefinitions[1].Name != "Data" {
		t.Fatalf("columns = %+v", table.ColumnDefinitions)
	}
	if len(table.Rows) != 1 || table.Rows[0].Cells[0] != "t" || fmt.Sprint(table.Rows[0].Cells[1]) != "2" {
		t.Fatalf("rows = %+v", table.Rows)
	}
	raw, err := rc.Get().AbsPath("/api/v1/namespaces/default/configmaps").
		SetHeader("Accept", "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io").DoRaw(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), `"kind":"PartialObjectMetadataList"`) || strings.Contains(string(raw), `"data"`) {
		t.Fatalf("partial metadata list: %s", raw)
	}
	// Only CBOR acceptable: 406 (protobuf is served, see protobuf_test.go).
	err = rc.Get().AbsPath("/api/v1/namespaces/default/configmaps").SetHeader("Accept", "application/cbor").Do(ctx).Error()
	if !apierrors.IsNotAcceptable(err) {
		t.Fatalf("CBOR-only Accept: %v, want 406", err)
	}
}

func restConfigJSON(cfg *rest.Config) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.GroupVersion = &corev1.SchemeGroupVersion
	c.APIPath = "/api"
	c.NegotiatedSerializer = scheme.Codecs.WithoutConversion()
	return c
}
