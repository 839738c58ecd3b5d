package serviceaccount

import (
	"bytes"
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/trellis-project/trellis/internal/controller"
)

// SignFunc signs the legacy token of a service-account token Secret.
type SignFunc func(ctx context.Context, sa *corev1.ServiceAccount, secret *corev1.Secret) (string, error)

// Tokens fills Secrets of type kubernetes.io/service-account-token, as
// kube-controller-manager's token controller does: the service account's
// long-lived token under "token", the CA bundle under "ca.crt" and the
// namespace under "namespace", and the service account's UID annotation.
// A token Secret whose service account is gone (or was recreated with
// another UID) is deleted.
type Tokens struct {
	client  kubernetes.Interface
	sign    SignFunc
	caPEM   []byte
	factory informers.SharedInformerFactory
	inf     cache.SharedIndexInformer
	secrets corelisters.SecretLister
	sasF    informers.SharedInformerFactory
	saInf   cache.SharedIndexInformer
	queue   workqueue.TypedRateLimitingInterface[string]
}

// NewTokens builds the controller; Run starts it. caPEM may be nil.
func NewTokens(client kubernetes.Interface, sign SignFunc, caPEM []byte) *Tokens {
	f := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("type", string(corev1.SecretTypeServiceAccountToken)).String()
	}))
	inf := f.Core().V1().Secrets()
	c := &Tokens{
		client: client, sign: sign, caPEM: caPEM, factory: f, inf: inf.Informer(), secrets: inf.Lister(),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](20*time.Millisecond, 5*time.Second),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "serviceaccount-tokens"}),
	}
	enqueue := func(obj any) {
		if key, err := cache.MetaNamespaceKeyFunc(obj); err == nil {
			c.queue.Add(key)
		}
	}
	c.inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: enqueue, UpdateFunc: func(_, o any) { enqueue(o) }})
	c.sasF = informers.NewSharedInformerFactory(client, 0)
	c.saInf = c.sasF.Core().V1().ServiceAccounts().Informer()
	c.saInf.AddEventHandler(cache.ResourceEventHandlerFuncs{DeleteFunc: c.serviceAccountDeleted})
	return c
}

// serviceAccountDeleted queues the token Secrets of a deleted service
// account, which then go too.
func (c *Tokens) serviceAccountDeleted(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	sa, ok := obj.(*corev1.ServiceAccount)
	if !ok {
		return
	}
	secrets, _ := c.secrets.Secrets(sa.Namespace).List(labels.Everything())
	for _, s := range secrets {
		if s.Annotations[corev1.ServiceAccountNameKey] == sa.Name {
			c.queue.Add(s.Namespace + "/" + s.Name)
		}
	}
}

// Run reconciles until ctx ends.
func (c *Tokens) Run(ctx context.Context) {
	defer c.queue.ShutDown()
	c.factory.Start(ctx.Done())
	defer c.factory.Shutdown()
	c.sasF.Start(ctx.Done())
	defer c.sasF.Shutdown()
	if !controller.WaitForSync(ctx, c.inf.HasSynced) || !controller.WaitForSync(ctx, c.saInf.HasSynced) {
		return
	}
	go controller.ProcessQueue(ctx, c.queue, c.sync)
	<-ctx.Done()
}

func (c *Tokens) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	secret, err := c.secrets.Secrets(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	sa, err := c.client.CoreV1().ServiceAccounts(ns).Get(ctx, secret.Annotations[corev1.ServiceAccountNameKey], metav1.GetOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	if uid := secret.Annotations[corev1.ServiceAccountUIDKey]; err != nil || uid != "" && uid != string(sa.UID) {
		err := c.client.CoreV1().Secrets(ns).Delete(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &secret.UID}})
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			return nil
		}
		return err
	}

	needsCA := len(c.caPEM) > 0 && !bytes.Equal(secret.Data[corev1.ServiceAccountRootCAKey], c.caPEM)
	needsNamespace := !bytes.Equal(secret.Data[corev1.ServiceAccountNamespaceKey], []byte(ns))
	needsToken := len(secret.Data[corev1.ServiceAccountTokenKey]) == 0
	if !needsCA && !needsNamespace && !needsToken {
		return nil
	}
	// The update carries the cached resourceVersion: a Secret changed
	// meanwhile is a conflict, and its update event brings it back here.
	secret = secret.DeepCopy()
	if secret.Data == nil {
		secret.Data = map[string][]byte{}
	}
	if needsCA {
		secret.Data[corev1.ServiceAccountRootCAKey] = c.caPEM
	}
	if needsNamespace {
		secret.Data[corev1.ServiceAccountNamespaceKey] = []byte(ns)
	}
	if needsToken {
		token, err := c.sign(ctx, sa, secret)
		if err != nil {
			return err
		}
		secret.Data[corev1.ServiceAccountTokenKey] = []byte(token)
	}
	if secret.Annotations == nil {
		secret.Annotations = map[string]string{}
	}
	secret.Annotations[corev1.ServiceAccountUIDKey] = string(sa.UID)
	_, err = c.client.CoreV1().Secrets(ns).Update(ctx, secret, metav1.UpdateOptions{})
	if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
