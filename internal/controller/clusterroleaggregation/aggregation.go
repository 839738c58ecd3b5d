// Package clusterroleaggregation keeps aggregated ClusterRoles (those with
// an aggregationRule, such as admin, edit and view) holding the union of
// the rules of every ClusterRole their selectors match.
package clusterroleaggregation

import (
	"context"
	"sort"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	rbaclisters "k8s.io/client-go/listers/rbac/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/trellis-project/trellis/internal/controller"
)

// Controller reconciles aggregated ClusterRoles.
type Controller struct {
	client   kubernetes.Interface
	factory  informers.SharedInformerFactory
	informer cache.SharedIndexInformer
	lister   rbaclisters.ClusterRoleLister
	queue    workqueue.TypedRateLimitingInterface[string]
}

// New builds the controller; Run starts it.
func New(client kubernetes.Interface) *Controller {
	factory := informers.NewSharedInformerFactory(client, 0)
	inf := factory.Rbac().V1().ClusterRoles()
	c := &Controller{
		client: client, factory: factory, informer: inf.Informer(), lister: inf.Lister(),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](20*time.Millisecond, 2*time.Second),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "clusterrole-aggregation"}),
	}
	// Any ClusterRole change may change what an aggregated role selects.
	enqueueAll := func(any) {
		roles, _ := c.lister.List(labels.Everything())
		for _, r := range roles {
			if r.AggregationRule != nil {
				c.queue.Add(r.Name)
			}
		}
	}
	c.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueueAll, UpdateFunc: func(_, o any) { enqueueAll(o) }, DeleteFunc: enqueueAll,
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

func (c *Controller) sync(ctx context.Context, name string) error {
	role, err := c.lister.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil || role.AggregationRule == nil {
		return err
	}
	rules, err := c.aggregate(role)
	if err != nil {
		return err
	}
	if apiequality.Semantic.DeepEqual(rules, role.Rules) {
		return nil
	}
	updated := role.DeepCopy()
	updated.Rules = rules
	_, err = c.client.RbacV1().ClusterRoles().Update(ctx, updated, metav1.UpdateOptions{})
	return err
}

// aggregate collects, in a stable order and without duplicates, the rules
// of every other ClusterRole the aggregation rule selects.
func (c *Controller) aggregate(role *rbacv1.ClusterRole) ([]rbacv1.PolicyRule, error) {
	var sources []*rbacv1.ClusterRole
	seen := map[string]bool{}
	for _, sel := range role.AggregationRule.ClusterRoleSelectors {
		selector, err := metav1.LabelSelectorAsSelector(&sel)
		if err != nil {
			return nil, err
		}
		matched, err := c.lister.List(selector)
		if err != nil {
			return nil, err
		}
		for _, m := range matched {
			if m.Name != role.Name && !seen[m.Name] {
				seen[m.Name] = true
				sources = append(sources, m)
			}
		}
	}
	sort.Slice(sources, func(i, j int) bool { return sources[i].Name < sources[j].Name })
	var rules []rbacv1.PolicyRule
	for _, src := range sources {
		for _, r := range src.Rules {
			dup := false
			for _, have := range rules {
				if apiequality.Semantic.DeepEqual(have, r) {
					dup = true
					break
				}
			}
			if !dup {
				rules = append(rules, r)
			}
		}
	}
	if rules == nil {
		rules = []rbacv1.PolicyRule{}
	}
	return rules, nil
}
