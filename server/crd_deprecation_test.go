package server_test

import (
	"context"
	"sync"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/trellis-project/trellis/trellistest"
)

type warnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnings) HandleWarningHeader(code int, agent, msg string) {
	w.mu.Lock()
	w.msgs = append(w.msgs, msg)
	w.mu.Unlock()
}

func TestDeprecatedCRDVersionWarns(t *testing.T) {
	cfg := trellistest.Start(t)
	crd := widgetCRD()
	v1 := crd.Spec.Versions[0]
	v1.Storage, v1.Deprecated = false, true
	v2 := *crd.Spec.Versions[0].DeepCopy()
	v2.Name, v2.Storage = "v2", true
	v1beta := *v1.DeepCopy()
	v1beta.Name, v1beta.DeprecationWarning = "v1beta1", ptr.To("v1beta1 widgets go away in 2027")
	crd.Spec.Versions = append(crd.Spec.Versions[:0], v1beta, v1, v2)
	installCRD(t, cfg, crd)

	for _, tc := range []struct{ version, want string }{
		{"v1", "example.com/v1 Widget is deprecated; use example.com/v2 Widget"},
		{"v1beta1", "v1beta1 widgets go away in 2027"},
		{"v2", ""},
	} {
		w := &warnings{}
		c := rest.CopyConfig(cfg)
		c.WarningHandler = w
		gvr := widgetGVR
		gvr.Version = tc.version
		if _, err := dynamic.NewForConfigOrDie(c).Resource(gvr).Namespace("default").List(context.Background(), metav1.ListOptions{}); err != nil {
			t.Fatal(err)
		}
		got := ""
		if len(w.msgs) > 0 {
			got = w.msgs[0]
		}
		if got != tc.want || len(w.msgs) > 1 {
			t.Errorf("%s: warnings %q, want %q", tc.version, w.msgs, tc.want)
		}
	}
}
