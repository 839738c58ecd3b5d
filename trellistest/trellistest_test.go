package trellistest_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
