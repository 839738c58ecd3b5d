// Package apfconfig keeps kube-apiserver's bootstrap API Priority and
// Fairness configuration in the cluster, as kube-apiserver's
// priority-and-fairness-config-producer does.
//
// The bootstrap objects are upstream's (k8s.io/apiserver/pkg/apis/flowcontrol/bootstrap)
// and come in two sorts:
//
//   - mandatory (FlowSchemas exempt and catch-all, their priority levels):
//     recreated when deleted, and their spec restored when changed. Only
//     the exempt level's nominalConcurrencyShares and lendablePercent are
//     the operator's to tune.
//   - suggested (the rest): recreated when deleted; their spec follows the
//     bootstrap one while the annotation apf.kubernetes.io/autoupdate-spec
//     is "true". An object without a readable annotation is updated only if
//     nobody has changed its spec (generation 1), and the annotation is then
//     written to say which way it went.
//
// Objects outside the bootstrap set that carry autoupdate-spec "true" were
// bootstrap objects of an earlier release and are deleted.
//
// Unlike upstream, which reconciles once a minute, the controller also
// reconciles on every change it sees, so a deleted mandatory object is
// back within milliseconds.
package apfconfig

import (
	"context"
	"fmt"
	"log"
	"strconv"
	"time"

	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/apis/flowcontrol/bootstrap"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	flowcontroldefaults "k8s.io/kubernetes/pkg/apis/flowcontrol/v1"

	"github.com/trellis-project/trellis/internal/controller"
)

// FieldManager is the manager of the controller's writes, upstream's.
const FieldManager = "api-priority-and-fairness-config-producer-v1"

// DefaultResync is how often the whole configuration is checked even if
// nothing was seen to change, as upstream.
const DefaultResync = time.Minute

// Controller reconciles the bootstrap FlowSchemas and
// PriorityLevelConfigurations.
type Controller struct {
	factory        informers.SharedInformerFactory
	synced         []cache.InformerSynced
	flowSchemas    kind[*flowcontrolv1.FlowSchema]
	priorityLevels kind[*flowcontrolv1.PriorityLevelConfiguration]
	// One key: every change leads to the same check of everything.
	queue  workqueue.TypedRateLimitingInterface[string]
	resync time.Duration
}

const queueKey = "bootstrap"

// New builds the controller; Run starts it.
func New(client kubernetes.Interface) *Controller {
	factory := informers.NewSharedInformerFactory(client, 0)
	fs := factory.Flowcontrol().V1().FlowSchemas()
	pl := factory.Flowcontrol().V1().PriorityLevelConfigurations()
	c := &Controller{
		factory: factory,
		synced:  []cache.InformerSynced{fs.Informer().HasSynced, pl.Informer().HasSynced},
		flowSchemas: kind[*flowcontrolv1.FlowSchema]{
			resource: "flowschemas", lister: fs.Lister(), api: client.FlowcontrolV1().FlowSchemas(),
			mandatory: bootstrap.MandatoryFlowSchemas, suggested: bootstrap.SuggestedFlowSchemas,
			specMatches: flowSchemaSpecMatches, withSpecOf: flowSchemaWithSpecOf,
			deepCopy: (*flowcontrolv1.FlowSchema).DeepCopy,
		},
		priorityLevels: kind[*flowcontrolv1.PriorityLevelConfiguration]{
			resource: "prioritylevelconfigurations", lister: pl.Lister(), api: client.FlowcontrolV1().PriorityLevelConfigurations(),
			mandatory: bootstrap.MandatoryPriorityLevelConfigurations, suggested: bootstrap.SuggestedPriorityLevelConfigurations,
			specMatches: priorityLevelSpecMatches, withSpecOf: priorityLevelWithSpecOf,
			deepCopy: (*flowcontrolv1.PriorityLevelConfiguration).DeepCopy,
		},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](200*time.Millisecond, time.Minute),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "apf-config-producer"}),
		resync: DefaultResync,
	}
	enqueue := func(any) { c.queue.Add(queueKey) }
	handlers := cache.ResourceEventHandlerFuncs{
		AddFunc: enqueue, UpdateFunc: func(_, o any) { enqueue(o) }, DeleteFunc: enqueue,
	}
	fs.Informer().AddEventHandler(handlers)
	pl.Informer().AddEventHandler(handlers)
	return c
}

// Run reconciles until ctx ends.
func (c *Controller) Run(ctx context.Context) {
	defer c.queue.ShutDown()
	c.factory.Start(ctx.Done())
	defer c.factory.Shutdown()
	for _, synced := range c.synced {
		if !controller.WaitForSync(ctx, synced) {
			return
		}
	}
	go func() {
		tick := time.NewTicker(c.resync)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				c.queue.Add(queueKey)
			}
		}
	}()
	c.queue.Add(queueKey)
	go func() {
		for {
			key, quit := c.queue.Get()
			if quit {
				return
			}
			if err := c.sync(ctx); err != nil {
				if ctx.Err() == nil {
					log.Printf("apf config: %v (will retry)", err)
				}
				c.queue.AddRateLimited(key)
			} else {
				c.queue.Forget(key)
			}
			c.queue.Done(key)
		}
	}()
	<-ctx.Done()
}

// sync makes one pass in upstream's order: suggested objects, mandatory
// objects, then the removal of retired ones. It stops at the first error.
func (c *Controller) sync(ctx context.Context) error {
	steps := []func(context.Context) error{
		func(ctx context.Context) error { return c.priorityLevels.ensureAll(ctx, false) },
		func(ctx context.Context) error { return c.flowSchemas.ensureAll(ctx, false) },
		func(ctx context.Context) error { return c.priorityLevels.ensureAll(ctx, true) },
		func(ctx context.Context) error { return c.flowSchemas.ensureAll(ctx, true) },
		c.flowSchemas.removeRetired,
		c.priorityLevels.removeRetired,
	}
	for _, step := range steps {
		if err := step(ctx); err != nil {
			return err
		}
	}
	return nil
}

// object is a FlowSchema or a PriorityLevelConfiguration pointer.
type object interface {
	comparable
	metav1.Object
	runtime.Object
}

// kind is what the controller needs to know of one configuration kind.
type kind[T object] struct {
	resource string
	lister   interface {
		Get(name string) (T, error)
		List(labels.Selector) ([]T, error)
	}
	api interface {
		Get(ctx context.Context, name string, opts metav1.GetOptions) (T, error)
		Create(ctx context.Context, obj T, opts metav1.CreateOptions) (T, error)
		Update(ctx context.Context, obj T, opts metav1.UpdateOptions) (T, error)
		Delete(ctx context.Context, name string, opts metav1.DeleteOptions) error
	}
	mandatory, suggested []T
	// specMatches reports whether current's spec is boot's, once boot is
	// defaulted as the server would default it.
	specMatches func(boot, current T) bool
	// withSpecOf returns a copy of current with boot's spec.
	withSpecOf func(current, boot T) T
	deepCopy   func(T) T
}

func (k kind[T]) ensureAll(ctx context.Context, mandatory bool) error {
	boots := k.suggested
	if mandatory {
		boots = k.mandatory
	}
	for _, boot := range boots {
		if err := k.ensure(ctx, boot, mandatory); err != nil {
			return err
		}
	}
	return nil
}

// ensure creates boot if it is missing, else brings the existing object's
// spec and annotation to what its sort asks for.
func (k kind[T]) ensure(ctx context.Context, boot T, mandatory bool) error {
	name := boot.GetName()
	current, err := k.lister.Get(name)
	if apierrors.IsNotFound(err) {
		_, err = k.api.Create(ctx, k.deepCopy(boot), metav1.CreateOptions{FieldManager: FieldManager})
		if !apierrors.IsAlreadyExists(err) {
			if err != nil {
				return fmt.Errorf("create %s %s: %w", k.resource, name, err)
			}
			return nil
		}
		// Created meanwhile (or our informer has not seen it yet): check
		// what is there.
		current, err = k.api.Get(ctx, name, metav1.GetOptions{})
	}
	if err != nil {
		return fmt.Errorf("get %s %s: %w", k.resource, name, err)
	}
	revised, ok := k.revise(current, boot, mandatory)
	if !ok {
		return nil
	}
	_, err = k.api.Update(ctx, revised, metav1.UpdateOptions{FieldManager: FieldManager})
	if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		// Someone else wrote it; the informer brings us back to it.
		return nil
	}
	if err != nil {
		return fmt.Errorf("update %s %s: %w", k.resource, name, err)
	}
	return nil
}

// revise returns the update current needs, if any: boot's spec when the
// object follows the bootstrap configuration and differs from it, and the
// auto-update annotation when it does not say what was decided.
func (k kind[T]) revise(current, boot T, mandatory bool) (T, bool) {
	var zero T
	follow := mandatory || followsBootstrap(current)
	specStale := follow && !k.specMatches(boot, current)
	annotationStale := !annotationSays(current, follow)
	if !specStale && !annotationStale {
		return zero, false
	}
	var revised T
	if specStale {
		revised = k.withSpecOf(current, boot)
	} else {
		revised = k.deepCopy(current)
	}
	a := revised.GetAnnotations()
	if a == nil {
		a = map[string]string{}
	}
	a[flowcontrolv1.AutoUpdateAnnotationKey] = strconv.FormatBool(follow)
	revised.SetAnnotations(a)
	return revised, true
}

// followsBootstrap reports whether a suggested object's spec is kept up
// to date: as its annotation says or, without a readable one, only if
// its spec was never changed.
func followsBootstrap(o metav1.Object) bool {
	if v, err := strconv.ParseBool(o.GetAnnotations()[flowcontrolv1.AutoUpdateAnnotationKey]); err == nil {
		return v
	}
	return o.GetGeneration() == 1
}

func annotationSays(o metav1.Object, want bool) bool {
	v, ok := o.GetAnnotations()[flowcontrolv1.AutoUpdateAnnotationKey]
	if !ok {
		return false
	}
	got, err := strconv.ParseBool(v)
	return err == nil && got == want
}

// removeRetired deletes objects that are no longer bootstrap objects but
// still say they follow the bootstrap configuration. Objects without the
// annotation, or with "false", are the operator's and stay.
func (k kind[T]) removeRetired(ctx context.Context) error {
	wanted := map[string]bool{}
	for _, b := range append(append([]T(nil), k.mandatory...), k.suggested...) {
		wanted[b.GetName()] = true
	}
	all, err := k.lister.List(labels.Everything())
	if err != nil {
		return err
	}
	for _, o := range all {
		if wanted[o.GetName()] {
			continue
		}
		if v, err := strconv.ParseBool(o.GetAnnotations()[flowcontrolv1.AutoUpdateAnnotationKey]); err != nil || !v {
			continue
		}
		if err := k.api.Delete(ctx, o.GetName(), metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete retired %s %s: %w", k.resource, o.GetName(), err)
		}
	}
	return nil
}

func flowSchemaSpecMatches(boot, current *flowcontrolv1.FlowSchema) bool {
	want := boot.Spec.DeepCopy()
	flowcontroldefaults.SetDefaults_FlowSchemaSpec(want)
	return apiequality.Semantic.DeepEqual(want, &current.Spec)
}

func flowSchemaWithSpecOf(current, boot *flowcontrolv1.FlowSchema) *flowcontrolv1.FlowSchema {
	out := current.DeepCopy()
	boot.Spec.DeepCopyInto(&out.Spec)
	return out
}

func priorityLevelSpecMatches(boot, current *flowcontrolv1.PriorityLevelConfiguration) bool {
	want := boot.DeepCopy()
	flowcontroldefaults.SetObjectDefaults_PriorityLevelConfiguration(want)
	if want.Name == flowcontrolv1.PriorityLevelConfigurationNameExempt {
		// The exempt level's shares are the operator's to set.
		if current.Spec.Exempt == nil || want.Spec.Exempt == nil {
			return false
		}
		want.Spec.Exempt.NominalConcurrencyShares = current.Spec.Exempt.NominalConcurrencyShares
		want.Spec.Exempt.LendablePercent = current.Spec.Exempt.LendablePercent
	}
	return apiequality.Semantic.DeepEqual(want.Spec, current.Spec)
}

func priorityLevelWithSpecOf(current, boot *flowcontrolv1.PriorityLevelConfiguration) *flowcontrolv1.PriorityLevelConfiguration {
	out := current.DeepCopy()
	boot.Spec.DeepCopyInto(&out.Spec)
	return out
}
