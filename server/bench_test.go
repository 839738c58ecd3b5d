package server_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/trellis-project/trellis/trellistest"
)

// BenchmarkListConfigMaps lists 10,000 ~1 KB ConfigMaps through the whole
// request path (TLS, HTTP/2, authentication, watch cache) as JSON.
func BenchmarkListConfigMaps(b *testing.B) {
	cfg := trellistest.Start(b)
	c := kubernetes.NewForConfigOrDie(cfg)
	ctx := context.Background()
	value := strings.Repeat("x", 900)
	var wg sync.WaitGroup
	work := make(chan int)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				_, err := c.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{
					ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%05d", i)},
					Data:       map[string]string{"v": value},
				}, metav1.CreateOptions{})
				if err != nil {
					b.Error(err)
				}
			}
		}()
	}
	for i := range 10000 {
		work <- i
	}
	close(work)
	wg.Wait()
	rc := c.CoreV1().RESTClient()
	b.ResetTimer()
	for b.Loop() {
		raw, err := rc.Get().AbsPath("/api/v1/namespaces/default/configmaps").DoRaw(ctx)
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(raw)))
	}
}
