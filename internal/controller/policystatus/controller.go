// Package policystatus writes the type checking of each
// ValidatingAdmissionPolicy into its status, as kube-controller-manager's
// validatingadmissionpolicy-status controller does: the expressions are
// checked against the schemas of the kinds the policy matches (and of its
// paramKind), and each expression with a type error gets an
// ExpressionWarning in status.typeChecking.
package policystatus

import (
	"context"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/admission/plugin/policy/validating"
	admissionregistrationv1apply "k8s.io/client-go/applyconfigurations/admissionregistration/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	admissionlisters "k8s.io/client-go/listers/admissionregistration/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/trellis-project/trellis/internal/controller"
)

// FieldManager is the manager of the status it writes, as upstream's.
const FieldManager = "validatingadmissionpolicy-status"

// Controller reconciles the status of ValidatingAdmissionPolicies.
type Controller struct {
	client   kubernetes.Interface
	factory  informers.SharedInformerFactory
	informer cache.SharedIndexInformer
	lister   admissionlisters.ValidatingAdmissionPolicyLister
	checker  *validating.TypeChecker
	queue    workqueue.TypedRateLimitingInterface[string]
}

// New builds the controller over upstream's type checker; Run starts it.
func New(client kubernetes.Interface, checker *validating.TypeChecker) *Controller {
	factory := informers.NewSharedInformerFactory(client, 0)
	inf := factory.Admissionregistration().V1().ValidatingAdmissionPolicies()
	c := &Controller{
		client: client, factory: factory, informer: inf.Informer(), lister: inf.Lister(), checker: checker,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](20*time.Millisecond, 5*time.Second),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: FieldManager}),
	}
	enqueue := func(obj any) {
		if p, ok := obj.(*admissionregistrationv1.ValidatingAdmissionPolicy); ok {
			c.queue.Add(p.Name)
		}
	}
	c.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueue, UpdateFunc: func(_, o any) { enqueue(o) },
	})
	return c
}

// Run reconciles until ctx ends.
func (c *Controller) Run(ctx context.Context) {
	defer c.queue.ShutDown()
	c.factory.Start(ctx.Done())
	if !controller.WaitForSync(ctx, c.informer.HasSynced) {
		return
	}
	go controller.ProcessQueue(ctx, c.queue, c.sync)
	<-ctx.Done()
	c.factory.Shutdown()
}

// sync checks a policy whose spec changed since its status was written.
func (c *Controller) sync(ctx context.Context, name string) error {
	p, err := c.lister.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil || p.Generation <= p.Status.ObservedGeneration {
		return err
	}
	warnings := c.checker.Check(p)
	applied := make([]*admissionregistrationv1apply.ExpressionWarningApplyConfiguration, 0, len(warnings))
	for _, w := range warnings {
		applied = append(applied, admissionregistrationv1apply.ExpressionWarning().WithFieldRef(w.FieldRef).WithWarning(w.Warning))
	}
	status := admissionregistrationv1apply.ValidatingAdmissionPolicy(p.Name).
		WithStatus(admissionregistrationv1apply.ValidatingAdmissionPolicyStatus().
			WithObservedGeneration(p.Generation).
			WithTypeChecking(admissionregistrationv1apply.TypeChecking().WithExpressionWarnings(applied...)))
	_, err = c.client.AdmissionregistrationV1().ValidatingAdmissionPolicies().ApplyStatus(ctx, status,
		metav1.ApplyOptions{FieldManager: FieldManager, Force: true})
	return err
}
