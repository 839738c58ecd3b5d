// Package serviceaccount holds the controllers that give every namespace
// what its pods expect to find: the "default" ServiceAccount (as
// kube-controller-manager's serviceaccount controller does) and the
// kube-root-ca.crt ConfigMap with the CA bundle that verifies the API
// server (its root-ca-cert-publisher). Both recreate their object when it
// is deleted; the publisher also restores it when it is changed. Tokens
// is the token controller that fills legacy service-account token
// Secrets.
package serviceaccount

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/trellis-project/trellis/internal/controller"
)

// DefaultName is the ServiceAccount every active namespace gets.
const DefaultName = "default"

// Controller creates the default ServiceAccount in active namespaces.
type Controller struct {
	client kubernetes.Interface
	ns     *namespaces
	saInf  cache.SharedIndexInformer
	sas    corelisters.ServiceAccountLister
	sasF   informers.SharedInformerFactory
}

// New builds the controller; Run starts it.
func New(client kubernetes.Interface) *Controller {
	// Only the default ServiceAccounts matter; the others are not cached.
	sasF := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTweakListOptions(byName(DefaultName)))
	inf := sasF.Core().V1().ServiceAccounts()
	c := &Controller{client: client, ns: newNamespaces(client, "serviceaccount"), saInf: inf.Informer(), sas: inf.Lister(), sasF: sasF}
	c.saInf.AddEventHandler(cache.ResourceEventHandlerFuncs{DeleteFunc: c.ns.enqueueNamespaceOf})
	return c
}

// Run reconciles until ctx ends.
func (c *Controller) Run(ctx context.Context) {
	c.sasF.Start(ctx.Done())
	defer c.sasF.Shutdown()
	c.ns.run(ctx, []cache.InformerSynced{c.saInf.HasSynced}, c.sync)
}

func (c *Controller) sync(ctx context.Context, ns *corev1.Namespace) error {
	if ns.Status.Phase != corev1.NamespaceActive {
		return nil
	}
	switch _, err := c.sas.ServiceAccounts(ns.Name).Get(DefaultName); {
	case err == nil:
		return nil
	case !apierrors.IsNotFound(err):
		return err
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: DefaultName, Namespace: ns.Name}}
	_, err := c.client.CoreV1().ServiceAccounts(ns.Name).Create(ctx, sa, metav1.CreateOptions{})
	return ignoreGone(err)
}

// ignoreGone drops the errors of a create that raced with the object's
// own creation or with the namespace going away.
func ignoreGone(err error) error {
	if err == nil || apierrors.IsAlreadyExists(err) || apierrors.IsNotFound(err) ||
		apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
		return nil
	}
	return err
}

func byName(name string) func(*metav1.ListOptions) {
	return func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("metadata.name", name).String()
	}
}

// namespaces is the part both controllers share: a namespace informer
// and a queue of namespace names to sync.
type namespaces struct {
	factory informers.SharedInformerFactory
	inf     cache.SharedIndexInformer
	lister  corelisters.NamespaceLister
	queue   workqueue.TypedRateLimitingInterface[string]
}

func newNamespaces(client kubernetes.Interface, name string) *namespaces {
	f := informers.NewSharedInformerFactory(client, 0)
	inf := f.Core().V1().Namespaces()
	n := &namespaces{
		factory: f, inf: inf.Informer(), lister: inf.Lister(),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](20*time.Millisecond, 5*time.Second),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: name}),
	}
	n.inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { n.enqueue(obj) },
		UpdateFunc: func(_, obj any) { n.enqueue(obj) },
	})
	return n
}

func (n *namespaces) enqueue(obj any) {
	if ns, ok := obj.(*corev1.Namespace); ok {
		n.queue.Add(ns.Name)
	}
}

// enqueueNamespaceOf queues the namespace of a (possibly deleted) object.
func (n *namespaces) enqueueNamespaceOf(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	if m, ok := obj.(metav1.Object); ok {
		n.queue.Add(m.GetNamespace())
	}
}

// run syncs queued namespaces once the informers have synced, until ctx
// ends. A namespace that no longer exists is skipped.
func (n *namespaces) run(ctx context.Context, synced []cache.InformerSynced, sync func(context.Context, *corev1.Namespace) error) {
	defer n.queue.ShutDown()
	n.factory.Start(ctx.Done())
	defer n.factory.Shutdown()
	for _, s := range append(synced, n.inf.HasSynced) {
		if !controller.WaitForSync(ctx, s) {
			return
		}
	}
	go func() {
		for {
			name, quit := n.queue.Get()
			if quit {
				return
			}
			err := func() error {
				ns, err := n.lister.Get(name)
				if apierrors.IsNotFound(err) {
					return nil
				}
				if err != nil {
					return err
				}
				return sync(ctx, ns)
			}()
			if err != nil && ctx.Err() == nil {
				n.queue.AddRateLimited(name)
			} else {
				n.queue.Forget(name)
			}
			n.queue.Done(name)
		}
	}()
	<-ctx.Done()
}
