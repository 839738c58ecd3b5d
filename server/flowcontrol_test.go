package server_test

import (
	"context"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/trellis-project/trellis/trellistest"
)

// The mandatory and suggested APF objects exist shortly after start.
func TestFlowControlDefaults(t *testing.T) {
	cs := kubernetes.NewForConfigOrDie(trellistest.Start(t))
	ctx := context.Background()
	waitFor(t, "the flow-control defaults", func() bool {
		fs, err1 := cs.FlowcontrolV1().FlowSchemas().List(ctx, metav1.ListOptions{})
		pl, err2 := cs.FlowcontrolV1().PriorityLevelConfigurations().List(ctx, metav1.ListOptions{})
		return err1 == nil && err2 == nil && len(fs.Items) == 11 && len(pl.Items) == 8
	})
	for _, name := range []string{"exempt", "catch-all", "system-leader-election", "probes", "global-default"} {
		fs, err := cs.FlowcontrolV1().FlowSchemas().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Errorf("FlowSchema %s: %v", name, err)
			continue
		}
		if fs.Annotations["apf.kubernetes.io/autoupdate-spec"] != "true" {
			t.Errorf("FlowSchema %s annotations %v", name, fs.Annotations)
		}
	}
	if _, err := cs.FlowcontrolV1().PriorityLevelConfigurations().Get(ctx, "workload-high", metav1.GetOptions{}); err != nil {
		t.Error(err)
	}
}
