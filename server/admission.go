package server

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"

	"github.com/trellis-project/trellis/internal/admission"
	"github.com/trellis-project/trellis/internal/admission/initializer"
	admissionwebhook "github.com/trellis-project/trellis/internal/admission/webhook"
	"github.com/trellis-project/trellis/internal/apiextensions"
	"github.com/trellis-project/trellis/internal/resource"
	"github.com/trellis-project/trellis/internal/webhook"
)

// admissionChain builds the admission plugins, in kube-apiserver's order
// (namespace lifecycle runs inside the handler, before them), over
// informers of the given factory. The returned syncs must be complete
// before the server reports ready, as kube-apiserver refuses admission
// until its webhook configurations are loaded.
func (s *Server) admissionChain(factory informers.SharedInformerFactory, dynamicFactory dynamicinformer.DynamicSharedInformerFactory, client kubernetes.Interface) (admission.Interface, []func() bool) {
	initializers := dynamicFactory.ForResource(initializer.ConfigurationResource)
	mutating := factory.Admissionregistration().V1().MutatingWebhookConfigurations().Informer()
	validating := factory.Admissionregistration().V1().ValidatingWebhookConfigurations().Informer()
	namespaces := factory.Core().V1().Namespaces()
	webhooks := admissionwebhook.New(mutating, validating, admissionwebhook.Options{
		Resolver:   webhook.EndpointsResolver{Client: client},
		Namespaces: namespaceLabels{lister: namespaces.Lister(), client: client},
		Backoff:    s.cfg.AdmissionWebhookBackoff,
		Metrics:    admissionwebhook.NewMetrics(s.metrics.registry),
	})
	synced := []func() bool{mutating.HasSynced, validating.HasSynced, namespaces.Informer().HasSynced, initializers.Informer().HasSynced}
	return admission.Chain{initializer.New(initializers.Lister()), webhooks}, synced
}

// namespaceLabels reads namespace labels from the informer, and from the
// API for a namespace created too recently to be there yet.
type namespaceLabels struct {
	lister corelisters.NamespaceLister
	client kubernetes.Interface
}

func (n namespaceLabels) Labels(ctx context.Context, name string) (labels.Set, error) {
	ns, err := n.lister.Get(name)
	if apierrors.IsNotFound(err) {
		ns, err = n.client.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	}
	if err != nil {
		return nil, err
	}
	return ns.Labels, nil
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
