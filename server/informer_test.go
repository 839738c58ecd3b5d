package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"sort"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/trellis-project/trellis/internal/store/bolt"
	"github.com/trellis-project/trellis/server"
)

// runServer starts a server on addr with data in dir and returns a stop
// function that waits for shutdown.
func runServer(t *testing.T, dir, addr string) (*server.Server, func()) {
	t.Helper()
	srv, err := server.New(server.Config{DataDir: dir, Listen: addr, ShutdownTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	select {
	case <-srv.Ready():
	case err := <-done:
		t.Fatalf("server stopped: %v", err)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("shutdown: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return srv, stop
}

// recorder counts informer notifications per object name.
type recorder struct {
	mu      sync.Mutex
	adds    map[string]int
	deletes map[string]int
}

func (r *recorder) handlers() cache.ResourceEventHandlerFuncs {
	return cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			r.mu.Lock()
			r.adds[obj.(*corev1.ConfigMap).Name]++
			r.mu.Unlock()
		},
		DeleteFunc: func(obj any) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			r.mu.Lock()
			r.deletes[obj.(*corev1.ConfigMap).Name]++
			r.mu.Unlock()
		},
	}
}

func TestInformerSurvivesRestartAndExpiredWatch(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	srv, stop := runServer(t, dir, addr)
	cfg := srv.AdminConfig()
	client := kubernetes.NewForConfigOrDie(cfg)
	cms := client.CoreV1().ConfigMaps("default")
	for i := range 5 {
		if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("before-%d", i)}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	factory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace("default"))
	inf := factory.Core().V1().ConfigMaps().Informer()
	rec := &recorder{adds: map[string]int{}, deletes: map[string]int{}}
	inf.AddEventHandler(rec.handlers())
	stopCh := make(chan struct{})
	defer close(stopCh)
	factory.Start(stopCh)
	if !cache.WaitForCacheSync(stopCh, inf.HasSynced) {
		t.Fatal("informer never synced")
	}
	if err := cms.Delete(ctx, "before-0", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}

	// Restart, and while the server is down write behind the informer's
	// back, so its watch resumes from a revision the new watch cache
	// never saw: it must get 410 Gone and relist.
	stop()
	offline, err := bolt.Open(bolt.Options{Dir: dir, CompactionInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": "offline", "namespace": "default", "uid": "0f0f0f0f-0000-0000-0000-000000000001", "creationTimestamp": "2026-01-01T00:00:00Z"},
	})
	if _, err := offline.Create(ctx, "/registry/configmaps/default/offline", raw); err != nil {
		t.Fatal(err)
	}
	offline.Delete(ctx, "/registry/configmaps/default/before-1", storePrecondition())
	offline.Close()

	runServer(t, dir, addr)
	for i := range 3 {
		if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("after-%d", i)}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	// The informer converges on exactly the server's state.
	var want, have []string
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 20*time.Second, true, func(ctx context.Context) (bool, error) {
		list, err := cms.List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		want = want[:0]
		for _, cm := range list.Items {
			want = append(want, cm.Name+"@"+cm.ResourceVersion)
		}
		have = have[:0]
		for _, obj := range inf.GetStore().List() {
			cm := obj.(*corev1.ConfigMap)
			have = append(have, cm.Name+"@"+cm.ResourceVersion)
		}
		sort.Strings(have)
		return fmt.Sprint(want) == fmt.Sprint(have), nil
	})
	if err != nil {
		t.Fatalf("informer diverged:\nserver   %v\ninformer %v", want, have)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for name, n := range rec.adds {
		if n != 1 {
			t.Errorf("%s added %d times", name, n)
		}
	}
	for _, name := range []string{"before-0", "before-1"} {
		if rec.deletes[name] != 1 {
			t.Errorf("%s deleted %d times, want 1", name, rec.deletes[name])
		}
	}
	if rec.adds["offline"] != 1 {
		t.Errorf("object written while the server was down was not seen")
	}
}
