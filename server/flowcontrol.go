package server

import (
	"context"
	"log"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/apis/flowcontrol/bootstrap"
	"k8s.io/client-go/kubernetes"
)

// ensureFlowControlDefaults creates kube-apiserver's mandatory and
// suggested PriorityLevelConfigurations and FlowSchemas (upstream's
// bootstrap objects, with their auto-update annotation) that are missing,
// as its priority-and-fairness configuration producer does after start.
// Existing objects are left as they are. Requests are not yet classified
// by them: the in-flight limits still decide.
func ensureFlowControlDefaults(ctx context.Context, client kubernetes.Interface) {
	fc := client.FlowcontrolV1()
	for _, pl := range append(bootstrap.MandatoryPriorityLevelConfigurations, bootstrap.SuggestedPriorityLevelConfigurations...) {
		if _, err := fc.PriorityLevelConfigurations().Create(ctx, pl, metav1.CreateOptions{FieldManager: "api-priority-and-fairness-config-producer-v1"}); err != nil && !apierrors.IsAlreadyExists(err) && ctx.Err() == nil {
			log.Printf("flow control: create PriorityLevelConfiguration %s: %v", pl.Name, err)
		}
	}
	for _, fs := range append(bootstrap.MandatoryFlowSchemas, bootstrap.SuggestedFlowSchemas...) {
		if _, err := fc.FlowSchemas().Create(ctx, fs, metav1.CreateOptions{FieldManager: "api-priority-and-fairness-config-producer-v1"}); err != nil && !apierrors.IsAlreadyExists(err) && ctx.Err() == nil {
			log.Printf("flow control: create FlowSchema %s: %v", fs.Name, err)
		}
	}
}
