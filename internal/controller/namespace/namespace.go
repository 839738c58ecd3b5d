// Package namespace is the namespace lifecycle controller: when a
// namespace is being deleted it deletes everything inside it, waits for
// the contents' own finalizers, then removes the "kubernetes" finalizer so
// the namespace itself goes away.
package namespace

import (
	"context"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/trellis-project/trellis/internal/controller"
)

// Resources lists the namespaced resources to empty, one version each.
type Resources func() []schema.GroupVersionResource

// Controller empties and finalizes terminating namespaces.
type Controller struct {
	client    kubernetes.Interface
	dynamic   dynamic.Interface
	resources Resources
	queue     workqueue.TypedRateLimitingInterface[string]
	informer  cache.SharedIndexInformer
	factory   informers.SharedInformerFactory
}

// New builds a controller; Run starts it.
func New(client kubernetes.Interface, dyn dynamic.Interface, resources Resources) *Controller {
	factory := informers.NewSharedInformerFactory(client, 0)
	c := &Controller{
		client: client, dynamic: dyn, resources: resources, factory: factory,
		informer: factory.Core().V1().Namespaces().Informer(),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](50*time.Millisecond, 5*time.Second),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "namespace"}),
	}
	enqueue := func(obj any) {
		if ns, ok := obj.(*corev1.Namespace); ok && ns.DeletionTimestamp != nil {
			c.queue.Add(ns.Name)
		}
	}
	c.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
	})
	return c
}

// Run processes namespaces until ctx ends.
func (c *Controller) Run(ctx context.Context) {
	defer c.queue.ShutDown()
	c.factory.Start(ctx.Done())
	if !controller.WaitForSync(ctx, c.informer.HasSynced) {
		return
	}
	go func() {
		for c.next(ctx) {
		}
	}()
	<-ctx.Done()
	c.factory.Shutdown()
}

func (c *Controller) next(ctx context.Context) bool {
	name, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(name)
	requeue, err := c.sync(ctx, name)
	switch {
	case err != nil || requeue:
		c.queue.AddRateLimited(name)
	default:
		c.queue.Forget(name)
	}
	return true
}

// sync deletes the namespace's contents; it reports requeue=true while
// objects remain (finalizers of their own still pending).
func (c *Controller) sync(ctx context.Context, name string) (bool, error) {
	ns, err := c.client.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if ns.DeletionTimestamp == nil || !slices.Contains(ns.Spec.Finalizers, corev1.FinalizerKubernetes) {
		return false, nil
	}
	remaining := 0
	background := metav1.DeletePropagationBackground
	for _, gvr := range c.resources() {
		ri := c.dynamic.Resource(gvr).Namespace(name)
		err := ri.DeleteCollection(ctx, metav1.DeleteOptions{PropagationPolicy: &background}, metav1.ListOptions{})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsMethodNotSupported(err) {
			return false, fmt.Errorf("delete %s in %s: %w", gvr.Resource, name, err)
		}
		list, err := ri.List(ctx, metav1.ListOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return false, err
		}
		if list != nil {
			remaining += len(list.Items)
		}
	}
	if remaining > 0 {
		return true, nil
	}
	ns.Spec.Finalizers = slices.DeleteFunc(ns.Spec.Finalizers, func(f corev1.FinalizerName) bool {
		return f == corev1.FinalizerKubernetes
	})
	_, err = c.client.CoreV1().Namespaces().Finalize(ctx, ns, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	return false, err
}
