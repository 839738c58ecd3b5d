package server_test

import (
	"context"
	"fmt"
	"testing"

	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/trellis-project/trellis/trellistest"
)

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

func TestFlowControlBootstrapReconciled(t *testing.T) {
	admin := kubernetes.NewForConfigOrDie(trellistest.Start(t))
	ctx := context.Background()
	fsc := admin.FlowcontrolV1().FlowSchemas()
	plc := admin.FlowcontrolV1().PriorityLevelConfigurations()
	waitFor(t, "the bootstrap objects", func() bool {
		l, err := fsc.List(ctx, metav1.ListOptions{})
		return err == nil && len(l.Items) == 11
	})

	recreated := func(name string) {
		t.Helper()
		old, err := fsc.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := fsc.Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "FlowSchema "+name+" recreated", func() error {
			got, err := fsc.Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if got.UID == old.UID {
				return fmt.Errorf("still the old object")
			}
			return nil
		})
	}
	recreated("exempt")         // mandatory
	recreated("global-default") // suggested

	// Validation keeps mandatory specs fixed (but for the exempt level's
	// shares); a mandatory object always auto-updates.
	catchAll, err := plc.Get(ctx, "catch-all", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	catchAll.Annotations["apf.kubernetes.io/autoupdate-spec"] = "false"
	if _, err := plc.Update(ctx, catchAll, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "catch-all's annotation restored", func() error {
		got, err := plc.Get(ctx, "catch-all", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if got.Annotations["apf.kubernetes.io/autoupdate-spec"] != "true" {
			return fmt.Errorf("annotations %v", got.Annotations)
		}
		return nil
	})

	// A suggested object that still auto-updates is restored too.
	sa, err := fsc.Get(ctx, "service-accounts", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sa.Spec.MatchingPrecedence = 8000
	if _, err := fsc.Update(ctx, sa, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "service-accounts' spec restored", func() error {
		got, err := fsc.Get(ctx, "service-accounts", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if got.Spec.MatchingPrecedence != 9000 {
			return fmt.Errorf("matchingPrecedence %d", got.Spec.MatchingPrecedence)
		}
		return nil
	})

	// One that says "false" keeps the operator's spec, and the exempt
	// level keeps the shares an operator gave it. Each pass of the
	// reconciler checks priority levels, then suggested FlowSchemas, then
	// mandatory ones: once catch-all, deleted after these changes, is back
	// twice, a whole pass that saw them has run (the first recreation
	// proves the changes were seen, the second is a later pass).
	exempt, err := plc.Get(ctx, "exempt", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	exempt.Spec.Exempt.NominalConcurrencyShares = ptr.To[int32](3)
	if _, err := plc.Update(ctx, exempt, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	gd, err := fsc.Get(ctx, "global-default", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	gd.Annotations["apf.kubernetes.io/autoupdate-spec"] = "false"
	gd.Spec.MatchingPrecedence = 9500
	if _, err := fsc.Update(ctx, gd, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Retired: annotated "true" but no longer a bootstrap object.
	retired := &flowcontrolv1.FlowSchema{
		ObjectMeta: metav1.ObjectMeta{Name: "retired", Annotations: map[string]string{"apf.kubernetes.io/autoupdate-spec": "true"}},
		Spec: flowcontrolv1.FlowSchemaSpec{
			PriorityLevelConfiguration: flowcontrolv1.PriorityLevelConfigurationReference{Name: "global-default"},
			MatchingPrecedence:         9800,
		},
	}
	if _, err := fsc.Create(ctx, retired, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	recreated("catch-all")
	recreated("catch-all")
	got, err := fsc.Get(ctx, "global-default", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Spec.MatchingPrecedence != 9500 || got.Annotations["apf.kubernetes.io/autoupdate-spec"] != "false" {
		t.Errorf("global-default with autoupdate-spec false: matchingPrecedence %d, annotations %v; want the operator's", got.Spec.MatchingPrecedence, got.Annotations)
	}
	if got, err := plc.Get(ctx, "exempt", metav1.GetOptions{}); err != nil || *got.Spec.Exempt.NominalConcurrencyShares != 3 {
		t.Errorf("exempt level: %v, want the operator's shares kept", err)
	}
	if _, err := fsc.Get(ctx, "retired", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("retired FlowSchema: %v, want it deleted", err)
	}
}
