package server_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"

	"github.com/trellis-project/trellis/trellistest"
)

// BenchmarkCreateCustomResource creates ~1 KB custom resources from 16
// goroutines through the whole request path.
func BenchmarkCreateCustomResource(b *testing.B) {
	srv := trellistest.StartServer(b)
	installCRDB(b, srv)
	widgets := dynamic.NewForConfigOrDie(srv.Config).Resource(widgetGVR).Namespace("default")
	ctx := context.Background()
	benchCreates(b, 16, func(i int) error {
		w := widget(fmt.Sprintf("w-%07d", i), map[string]any{"color": "red", "size": int64(4), "note": strings.Repeat("n", 800)})
		_, err := widgets.Create(ctx, w, metav1.CreateOptions{FieldValidation: "Ignore"})
		return err
	})
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
