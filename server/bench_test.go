package server_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
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

// BenchmarkCreateCustomResource creates ~1 KB custom resources from 16
// goroutines through the whole request path.
func BenchmarkCreateCustomResource(b *testing.B) {
	srv := trellistest.StartServer(b)
	installCRDB(b, srv)
	widgets := dynamic.NewForConfigOrDie(srv.Config).Resource(widgetGVR).Namespace("default")
	ctx := context.Background()
	var next atomic.Int64
	b.ResetTimer()
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				w := widget(fmt.Sprintf("w-%07d", i), map[string]any{"color": "red", "size": int64(4), "note": strings.Repeat("n", 800)})
				if _, err := widgets.Create(ctx, w, metav1.CreateOptions{FieldValidation: "Ignore"}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "creates/s")
}

func installCRDB(b *testing.B, srv *trellistest.Server) {
	ctx := context.Background()
	ext := apiextensionsclient.NewForConfigOrDie(srv.Config)
	if _, err := ext.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, widgetCRD(), metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	for {
		crd, err := ext.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, "widgets.example.com", metav1.GetOptions{})
		if err == nil && len(crd.Status.Conditions) > 0 && crd.Status.AcceptedNames.Kind != "" {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}
