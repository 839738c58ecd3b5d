package server

import (
	"context"
	"errors"
	"log"
	"slices"
	"strconv"
	"sync"

	"k8s.io/kube-openapi/pkg/validation/spec"

	apiextensionsscheme "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset/scheme"
	validatingpolicy "k8s.io/apiserver/pkg/admission/plugin/policy/validating"
	"k8s.io/apiserver/pkg/cel/openapi/resolver"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/restmapper"
	generatedopenapi "k8s.io/kubernetes/pkg/generated/openapi"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/trellis-project/trellis/internal/apiextensions"
	"github.com/trellis-project/trellis/internal/controller/apfconfig"
	"github.com/trellis-project/trellis/internal/controller/clusterroleaggregation"
	"github.com/trellis-project/trellis/internal/controller/namespace"
	"github.com/trellis-project/trellis/internal/controller/policystatus"
	"github.com/trellis-project/trellis/internal/controller/serviceaccount"
	"github.com/trellis-project/trellis/internal/resource/builtin"
	"github.com/trellis-project/trellis/internal/store"
	"github.com/trellis-project/trellis/internal/webhook"
)

// startControllers runs the in-process controllers against the server's
// own API through the loopback identity, like any other client.
func (s *Server) startControllers() {
	// The CRD controllers run inside kube-apiserver upstream, the
	// namespace controller in kube-controller-manager: their writes are
	// recorded under those managers.
	cfg := rest.CopyConfig(s.LoopbackConfig())
	cfg.UserAgent = userAgent("kube-controller-manager")
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		log.Printf("controllers: %v", err)
		return
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		log.Printf("controllers: %v", err)
		return
	}
	apiserverCfg := rest.CopyConfig(cfg)
	apiserverCfg.UserAgent = userAgent("kube-apiserver")
	extClient, err := apiextensionsclient.NewForConfig(apiserverCfg)
	if err != nil {
		log.Printf("controllers: %v", err)
		return
	}
	crdDynamic, err := dynamic.NewForConfig(apiserverCfg)
	if err != nil {
		log.Printf("controllers: %v", err)
		return
	}
	crdc := apiextensions.NewController(extClient, crdDynamic, s.registry,
		apiextensions.WithServiceResolver(webhook.EndpointsResolver{Client: client}),
		apiextensions.WithWebhookTimeout(s.cfg.ConversionWebhookTimeout),
		apiextensions.WithSchemaPool(s.schemaPool),
		apiextensions.WithFieldTypes(builtinFieldTypes()),
		apiextensions.WithStoredRevision(s.storedCRDRevision))
	s.crdController.Store(crdc)
	s.controllers.Add(1)
	go func() {
		defer s.controllers.Done()
		crdc.Run(s.stopCtx)
	}()
	s.crdsServed = crdc.Initialized()

	if s.controllerEnabled("clusterrole-aggregation") {
		agg := clusterroleaggregation.New(client)
		s.controllers.Add(1)
		go func() {
			defer s.controllers.Done()
			agg.Run(s.stopCtx)
		}()
	}

	// kube-controller-manager's in upstream; envtest runs none.
	if s.controllerEnabled("validatingadmissionpolicy-status") {
		vapStatus := policystatus.New(client, policyTypeChecker(client))
		s.controllers.Add(1)
		go func() {
			defer s.controllers.Done()
			vapStatus.Run(s.stopCtx)
		}()
	}

	// kube-apiserver's own post-start work: its
	// priority-and-fairness-config-producer.
	apiserverClient, err := kubernetes.NewForConfig(apiserverCfg)
	if err != nil {
		log.Printf("controllers: %v", err)
		return
	}
	apf := apfconfig.New(apiserverClient)
	s.controllers.Add(1)
	go func() {
		defer s.controllers.Done()
		apf.Run(s.stopCtx)
	}()

	if s.controllerEnabled("namespace") {
		nsc := namespace.New(client, dyn, s.namespacedResources)
		s.controllers.Add(1)
		go func() {
			defer s.controllers.Done()
			nsc.Run(s.stopCtx)
		}()
	}

	if s.controllerEnabled("serviceaccount") {
		sac := serviceaccount.New(client)
		s.controllers.Add(1)
		go func() {
			defer s.controllers.Done()
			sac.Run(s.stopCtx)
		}()
	}
	if s.controllerEnabled("serviceaccount-token") {
		s.startTokenController(client)
	}
	// Without a CA of its own (a serving certificate from the system
	// roots) there is nothing to publish, as kube-controller-manager
	// without --root-ca-file.
	if ca := s.pki.ServerCAPEM(); ca != nil && s.controllerEnabled("root-ca-cert-publisher") {
		pub := serviceaccount.NewRootCAPublisher(client, ca)
		s.controllers.Add(1)
		go func() {
			defer s.controllers.Done()
			pub.Run(s.stopCtx)
		}()
	}
}

// namespacedResources lists each stored namespaced resource once (one
// version per storage prefix).
func (s *Server) namespacedResources() []schema.GroupVersionResource {
	seen := map[string]bool{}
	var out []schema.GroupVersionResource
	for _, d := range s.registry.All() {
		if !d.Namespaced || !d.Stored() || seen[d.StoragePrefix] {
			continue
		}
		seen[d.StoragePrefix] = true
		out = append(out, schema.GroupVersionResource{Group: d.Group, Version: d.Version, Resource: d.Resource})
	}
	return out
}

// policyTypeChecker checks policy expressions against the schemas of
// built-in kinds (compiled in) and of custom resources (read from the
// server's /openapi/v3), as kube-controller-manager does.
// The definitions are loaded on the first check, not at start-up.
func policyTypeChecker(client kubernetes.Interface) *validatingpolicy.TypeChecker {
	disc := memory.NewMemCacheClient(client.Discovery())
	schemas := &lazySchemas{load: func() resolver.SchemaResolver {
		return resolver.NewDefinitionsSchemaResolver(generatedopenapi.GetOpenAPIDefinitions, builtin.Scheme, apiextensionsscheme.Scheme).
			Combine(&resolver.ClientDiscoveryResolver{Discovery: client.Discovery()})
	}}
	return &validatingpolicy.TypeChecker{SchemaResolver: schemas, RestMapper: restmapper.NewDeferredDiscoveryRESTMapper(disc)}
}

type lazySchemas struct {
	once     sync.Once
	load     func() resolver.SchemaResolver
	resolver resolver.SchemaResolver
}

func (l *lazySchemas) ResolveSchema(gvk schema.GroupVersionKind) (*spec.Schema, error) {
	l.once.Do(func() { l.resolver = l.load() })
	return l.resolver.ResolveSchema(gvk)
}

func (s *Server) controllerEnabled(name string) bool {
	return !slices.Contains(s.cfg.DisabledControllers, name)
}

// startTokenController fills legacy service-account token Secrets.
func (s *Server) startTokenController(client kubernetes.Interface) {
	if sign, err := s.saTokens.LegacyTokens(); err != nil {
		log.Printf("controllers: service account token controller: %v", err)
	} else {
		tokens := serviceaccount.NewTokens(client, serviceaccount.SignFunc(sign), s.pki.ServerCAPEM())
		s.controllers.Add(1)
		go func() {
			defer s.controllers.Done()
			tokens.Run(s.stopCtx)
		}()
	}
}

// storedCRDRevision reads the resourceVersion of a stored CRD from the
// watch cache, without decoding it.
func (s *Server) storedCRDRevision(ctx context.Context, name string) (string, error) {
	const prefix = "/registry/apiextensions.k8s.io/customresourcedefinitions/"
	ch, err := s.caches.forPrefix(prefix)
	if err != nil {
		return "", err
	}
	kv, err := ch.Get(ctx, prefix+name)
	if errors.Is(err, store.ErrNotFound) {
		return "", apierrors.NewNotFound(apiextensionsv1.Resource("customresourcedefinitions"), name)
	}
	if err != nil {
		return "", err
	}
	return strconv.FormatInt(kv.ModRevision, 10), nil
}

// handOverCRDs has the API hand every CRD it stores to the CRD controller,
// which then serves a new CRD without waiting for its watch event, and
// every CRD it validates, whose schemas the controller compiles meanwhile.
// It is set before the server serves; the controller starts later.
func (s *Server) handOverCRDs() {
	d, ok := s.registry.Lookup(apiextensionsv1.SchemeGroupVersion.WithResource("customresourcedefinitions"))
	if !ok {
		return
	}
	d.Written = func(obj runtime.Object) {
		if c := s.crdController.Load(); c != nil {
			c.Observe(obj)
		}
	}
	// The controller's status write follows each change of a CRD.
	d.KeepWritten = true
	d.Validating = func(obj runtime.Object) {
		if c := s.crdController.Load(); c != nil {
			c.Validating(obj)
		}
	}
}
