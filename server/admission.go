package server

import (
	"context"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"

	"github.com/trellis-project/trellis/internal/admission"
	"github.com/trellis-project/trellis/internal/admission/initializer"
	admissionpolicy "github.com/trellis-project/trellis/internal/admission/policy"
	admissionwebhook "github.com/trellis-project/trellis/internal/admission/webhook"
	"github.com/trellis-project/trellis/internal/apiextensions"
	"github.com/trellis-project/trellis/internal/auth"
	"github.com/trellis-project/trellis/internal/resource"
	"github.com/trellis-project/trellis/internal/webhook"
)

// admissionChain builds the admission plugins, in kube-apiserver's order
// (namespace lifecycle runs inside the handler, before them): Trellis's
// initializers, mutating policies, mutating webhooks, validating policies,
// validating webhooks.
// They read their configuration through informers of the given factory;
// the returned syncs must be complete before the server reports ready, as
// kube-apiserver refuses admission until its configuration is loaded.
func (s *Server) admissionChain(factory informers.SharedInformerFactory, dynamicFactory dynamicinformer.DynamicSharedInformerFactory, client kubernetes.Interface, dyn dynamic.Interface, authz auth.Authorizer, types admissionpolicy.TypeConverters) (admission.Interface, []func() bool) {
	initializers := dynamicFactory.ForResource(initializer.ConfigurationResource)
	reg := factory.Admissionregistration().V1()
	mutating := reg.MutatingWebhookConfigurations().Informer()
	validating := reg.ValidatingWebhookConfigurations().Informer()
	namespaces := factory.Core().V1().Namespaces()
	nsLookup := namespaceLabels{lister: namespaces.Lister(), client: client}
	webhooks := admissionwebhook.New(mutating, validating, admissionwebhook.Options{
		Resolver:   webhook.EndpointsResolver{Client: client},
		Namespaces: nsLookup,
		Backoff:    s.cfg.AdmissionWebhookBackoff,
		Authorizer: auth.Upstream(authz),
		Metrics:    admissionwebhook.NewMetrics(s.metrics.registry),
	})
	policyOpts := admissionpolicy.Options{
		Namespaces: nsLookup,
		Params:     admissionpolicy.NewParams(dyn, &kindResolver{registry: s.registry}, s.stopCtx.Done()),
		Authorizer: auth.Upstream(authz),
	}
	vap := admissionpolicy.NewValidating(reg.ValidatingAdmissionPolicies().Informer(),
		reg.ValidatingAdmissionPolicyBindings().Informer(), policyOpts)
	mapp := admissionpolicy.NewMutating(reg.MutatingAdmissionPolicies().Informer(),
		reg.MutatingAdmissionPolicyBindings().Informer(), types, policyOpts)
	synced := []func() bool{mutating.HasSynced, validating.HasSynced, namespaces.Informer().HasSynced, vap.HasSynced, mapp.HasSynced,
		initializers.Informer().HasSynced}
	// A Chain runs every mutator, then every validator, in this order.
	return admission.Chain{initializer.New(initializers.Lister()), mapp, vap, webhooks}, synced
}

// namespaceLabels reads namespaces from the informer, and from the API
// for a namespace created too recently to be there yet.
type namespaceLabels struct {
	lister corelisters.NamespaceLister
	client kubernetes.Interface
}

func (n namespaceLabels) Namespace(ctx context.Context, name string) (*corev1.Namespace, error) {
	ns, err := n.lister.Get(name)
	if apierrors.IsNotFound(err) {
		ns, err = n.client.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	}
	return ns, err
}

func (n namespaceLabels) Labels(ctx context.Context, name string) (labels.Set, error) {
	ns, err := n.Namespace(ctx, name)
	if err != nil {
		return nil, err
	}
	return ns.Labels, nil
}

// kindResolver maps kinds to resources over the registry, rebuilt when
// the set of served resources changes.
type kindResolver struct {
	registry *resource.Registry

	mu         sync.Mutex
	generation int64
	kinds      map[schema.GroupVersionKind]*resource.Descriptor
}

func (k *kindResolver) ResourceFor(gvk schema.GroupVersionKind) (schema.GroupVersionResource, bool, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if gen := k.registry.Generation(); k.kinds == nil || gen != k.generation {
		k.generation = gen
		k.kinds = map[schema.GroupVersionKind]*resource.Descriptor{}
		for _, d := range k.registry.All() {
			if _, dup := k.kinds[d.GroupVersionKind()]; !dup {
				k.kinds[d.GroupVersionKind()] = d
			}
		}
	}
	d, ok := k.kinds[gvk]
	if !ok {
		return schema.GroupVersionResource{}, false, false
	}
	return schema.GroupVersionResource{Group: d.Group, Version: d.Version, Resource: d.Resource}, d.Namespaced, true
}

// registerTrellisKinds serves the configuration kinds Trellis adds to
// Kubernetes' (InitializerConfiguration), defined by CRD-shaped schemas
// but built in: they exist from the first request, with no CRD object.
func registerTrellisKinds(reg *resource.Registry) error {
	descs, err := apiextensions.BuiltinDescriptors(initializer.ConfigurationCRD())
	if err != nil {
		return fmt.Errorf("InitializerConfiguration: %w", err)
	}
	for _, d := range descs {
		reg.Add(d)
	}
	return nil
}
