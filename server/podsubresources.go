package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"

	"github.com/trellis-project/trellis/internal/resource"
	"github.com/trellis-project/trellis/internal/store"
)

var podsResource = corev1.SchemeGroupVersion.WithResource("pods")

// podSubresources serves pods/binding and pods/eviction, the two requests
// schedulers and drains send for a pod.
func (s *Server) podSubresources() error {
	d, ok := s.registry.Lookup(podsResource)
	if !ok {
		return nil
	}
	client, err := kubernetes.NewForConfig(s.LoopbackConfig())
	if err != nil {
		return err
	}
	pods := d
	d = d.WithCreater("binding", &resource.SubresourceCreater{
		Kind: corev1.SchemeGroupVersion.WithKind("Binding"),
		New:  func() runtime.Object { return &corev1.Binding{} },
		Create: func(ctx context.Context, cr *resource.CreateRequest) (runtime.Object, error) {
			return s.bindPod(ctx, pods, cr)
		},
	})
	d = d.WithCreater("eviction", &resource.SubresourceCreater{
		Kind: policyv1.SchemeGroupVersion.WithKind("Eviction"),
		New:  func() runtime.Object { return &policyv1.Eviction{} },
		Create: func(ctx context.Context, cr *resource.CreateRequest) (runtime.Object, error) {
			return evictPod(ctx, client, cr)
		},
	})
	s.registry.Add(d)
	return nil
}

func success() runtime.Object {
	return &metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusSuccess}
}

// bindPod follows kube-apiserver's BindingREST: it sets spec.nodeName of a
// pod not yet bound nor being deleted, copies the binding's annotations,
// and marks the pod scheduled — in storage, since pod validation forbids
// changing spec.nodeName through an update.
func (s *Server) bindPod(ctx context.Context, d *resource.Descriptor, cr *resource.CreateRequest) (runtime.Object, error) {
	b := cr.Object.(*corev1.Binding)
	if b.Name != "" && b.Name != cr.Name {
		return nil, apierrors.NewBadRequest("name in URL does not match name in Binding object")
	}
	if b.Target.Name == "" || (b.Target.Kind != "" && b.Target.Kind != "Node") {
		return nil, apierrors.NewInvalid(schema.GroupKind{Kind: "Binding"}, cr.Name, nil)
	}
	ch, err := s.caches.forPrefix(d.StoragePrefix)
	if err != nil {
		return nil, err
	}
	key := d.Key(cr.Namespace, cr.Name)
	for {
		kv, err := ch.Get(ctx, key)
		if errors.Is(err, store.ErrNotFound) {
			return nil, apierrors.NewNotFound(podsResource.GroupResource(), cr.Name)
		}
		if err != nil {
			return nil, err
		}
		var pod corev1.Pod
		if err := json.Unmarshal(kv.Value, &pod); err != nil {
			return nil, err
		}
		conflict := func(msg string) error {
			return apierrors.NewConflict(podsResource.GroupResource(), cr.Name, errors.New(msg))
		}
		switch {
		case b.UID != "" && b.UID != pod.UID:
			return nil, conflict(fmt.Sprintf("Precondition failed: UID in precondition: %v, UID in object meta: %v", b.UID, pod.UID))
		case pod.DeletionTimestamp != nil:
			return nil, conflict(fmt.Sprintf("pod %s is being deleted, cannot be assigned to a host", pod.Name))
		case pod.Spec.NodeName != "":
			return nil, conflict(fmt.Sprintf("pod %v is already assigned to node %q", pod.Name, pod.Spec.NodeName))
		}
		pod.Spec.NodeName = b.Target.Name
		for k, v := range b.Annotations {
			if pod.Annotations == nil {
				pod.Annotations = map[string]string{}
			}
			pod.Annotations[k] = v
		}
		scheduled := corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}
		found := false
		for i := range pod.Status.Conditions {
			if pod.Status.Conditions[i].Type == corev1.PodScheduled {
				pod.Status.Conditions[i], found = scheduled, true
			}
		}
		if !found {
			pod.Status.Conditions = append(pod.Status.Conditions, scheduled)
		}
		raw, err := json.Marshal(&pod)
		if err != nil {
			return nil, err
		}
		_, err = ch.Update(ctx, key, raw, store.Precondition{ModRevision: kv.ModRevision})
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return success(), nil
	}
}

// evictPod follows kube-apiserver's EvictionREST: a pod no
// PodDisruptionBudget covers, or that is not running, is deleted with the
// eviction's delete options; one budget that allows a disruption is
// charged first; a budget that allows none answers 429.
func evictPod(ctx context.Context, client kubernetes.Interface, cr *resource.CreateRequest) (runtime.Object, error) {
	ev := cr.Object.(*policyv1.Eviction)
	if ev.Name != "" && ev.Name != cr.Name {
		return nil, apierrors.NewBadRequest("name in URL does not match name in Eviction object")
	}
	opts := metav1.DeleteOptions{}
	if ev.DeleteOptions != nil {
		opts = *ev.DeleteOptions
	}
	pods := client.CoreV1().Pods(cr.Namespace)
	pod, err := pods.Get(ctx, cr.Name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	if opts.Preconditions == nil || opts.Preconditions.UID == nil {
		opts.Preconditions = &metav1.Preconditions{UID: &pod.UID}
	}
	ignoresBudgets := pod.DeletionTimestamp != nil || pod.Status.Phase == corev1.PodSucceeded ||
		pod.Status.Phase == corev1.PodFailed || pod.Status.Phase == corev1.PodPending || pod.Status.Phase == ""
	if !ignoresBudgets {
		if err := chargeBudget(ctx, client, pod); err != nil {
			return nil, err
		}
	}
	if err := pods.Delete(ctx, cr.Name, opts); err != nil {
		return nil, err
	}
	return success(), nil
}

func chargeBudget(ctx context.Context, client kubernetes.Interface, pod *corev1.Pod) error {
	list, err := client.PolicyV1().PodDisruptionBudgets(pod.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	var matching []policyv1.PodDisruptionBudget
	for _, pdb := range list.Items {
		sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		if err != nil || sel.Empty() || !sel.Matches(labels.Set(pod.Labels)) {
			continue
		}
		matching = append(matching, pdb)
	}
	switch {
	case len(matching) == 0:
		return nil
	case len(matching) > 1:
		return apierrors.NewInternalError(errors.New("This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."))
	}
	pdb := matching[0]
	if pdb.Status.ObservedGeneration < pdb.Generation || pdb.Status.DisruptionsAllowed <= 0 {
		err := apierrors.NewTooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", 0)
		err.ErrStatus.Details.Causes = append(err.ErrStatus.Details.Causes, metav1.StatusCause{
			Type: policyv1.DisruptionBudgetCause, Message: fmt.Sprintf("The disruption budget %s needs %d healthy pods and has %d currently", pdb.Name, pdb.Status.DesiredHealthy, pdb.Status.CurrentHealthy),
		})
		return err
	}
	pdb.Status.DisruptionsAllowed--
	if pdb.Status.DisruptedPods == nil {
		pdb.Status.DisruptedPods = map[string]metav1.Time{}
	}
	pdb.Status.DisruptedPods[pod.Name] = metav1.Now()
	_, err = client.PolicyV1().PodDisruptionBudgets(pod.Namespace).UpdateStatus(ctx, &pdb, metav1.UpdateOptions{})
	return err
}
