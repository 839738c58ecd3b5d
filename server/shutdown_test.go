package server_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// TestShutdownLosesNoAcknowledgedWrite stops the server while writers are
// busy (as SIGTERM does for the binary): every write that was answered
// with success is there after a restart, and open watches end.
func TestShutdownLosesNoAcknowledgedWrite(t *testing.T) {
	dir := t.TempDir()
	srv, stop := runServer(t, dir, "127.0.0.1:0")
	cfg := srv.AdminConfig()
	client := kubernetes.NewForConfigOrDie(cfg)
	ctx := context.Background()

	w, err := client.CoreV1().ConfigMaps("default").Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var acked []string
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				name := fmt.Sprintf("g%d-%d", g, i)
				_, err := client.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
				if err != nil {
					return
				}
				mu.Lock()
				acked = append(acked, name)
				mu.Unlock()
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	stop()
	wg.Wait()
	select {
	case _, open := <-w.ResultChan():
		for open {
			_, open = <-w.ResultChan()
		}
	case <-time.After(5 * time.Second):
		t.Fatal("watch still open after shutdown")
	}

	srv2, _ := runServer(t, dir, "127.0.0.1:0")
	list, err := kubernetes.NewForConfigOrDie(srv2.AdminConfig()).CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, cm := range list.Items {
		have[cm.Name] = true
	}
	if len(acked) == 0 {
		t.Fatal("no write was acknowledged before shutdown")
	}
	for _, name := range acked {
		if !have[name] {
			t.Fatalf("acknowledged %s is missing after restart (%d acknowledged, %d stored)", name, len(acked), len(have))
		}
	}
	t.Logf("%d acknowledged writes survived shutdown", len(acked))
}
