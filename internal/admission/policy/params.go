package policy

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
)

// KindResolver finds the resource that serves a kind, as a RESTMapper
// would: built-in kinds and custom resources alike.
type KindResolver interface {
	ResourceFor(gvk schema.GroupVersionKind) (gvr schema.GroupVersionResource, namespaced bool, ok bool)
}

// Params reads the params bindings refer to through the API: one
// informer per param resource, started when a policy first needs it, and
// a direct read for a param created too recently to be in it yet.
type Params struct {
	client   dynamic.Interface
	resolver KindResolver
	stop     <-chan struct{}
	// syncWait bounds the wait for a new informer's first list.
	syncWait time.Duration

	mu        sync.Mutex
	informers map[schema.GroupVersionResource]informers.GenericInformer
}

// NewParams returns a param reader over client; its informers run until
// stop is closed.
func NewParams(client dynamic.Interface, resolver KindResolver, stop <-chan struct{}) *Params {
	return &Params{client: client, resolver: resolver, stop: stop, syncWait: time.Second,
		informers: map[schema.GroupVersionResource]informers.GenericInformer{}}
}

// paramResource is a resolved paramKind.
type paramResource struct {
	gvr        schema.GroupVersionResource
	namespaced bool
	informer   informers.GenericInformer
}

func (p *Params) resolve(kind *admissionregistrationv1.ParamKind) (*paramResource, error) {
	gv, err := schema.ParseGroupVersion(kind.APIVersion)
	if err != nil {
		return nil, fmt.Errorf("failed to parse paramKind APIVersion: %w", err)
	}
	gvk := gv.WithKind(kind.Kind)
	var gvr schema.GroupVersionResource
	var namespaced, ok bool
	if p != nil && p.resolver != nil {
		gvr, namespaced, ok = p.resolver.ResourceFor(gvk)
	}
	if !ok {
		return nil, fmt.Errorf("failed to find resource referenced by paramKind: '%v'", gvk)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	inf, ok := p.informers[gvr]
	if !ok {
		inf = dynamicinformer.NewFilteredDynamicInformer(p.client, gvr, metav1.NamespaceAll, 10*time.Minute,
			cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc}, nil)
		go inf.Informer().Run(p.stop)
		p.informers[gvr] = inf
	}
	return &paramResource{gvr: gvr, namespaced: namespaced, informer: inf}, nil
}

// collect returns the params a binding's paramRef selects for a request
// in namespace, with kube-apiserver's rules and wording: [nil] when the
// policy or the binding uses none, an error when parameterNotFoundAction
// is Deny and none is found.
func (p *Params) collect(ctx context.Context, kind *admissionregistrationv1.ParamKind, ref *admissionregistrationv1.ParamRef, namespace string) ([]runtime.Object, error) {
	if kind == nil || ref == nil {
		return []runtime.Object{nil}, nil
	}
	res, err := p.resolve(kind)
	if err != nil {
		return nil, err
	}
	lister := res.informer.Lister()
	var store cache.GenericNamespaceLister = lister
	paramNamespace := ""
	if res.namespaced {
		paramNamespace = namespace
		if ref.Namespace != "" {
			paramNamespace = ref.Namespace
		} else if paramNamespace == "" {
			return nil, errors.New("cannot use namespaced paramRef in policy binding that matches cluster-scoped resources")
		}
		store = lister.ByNamespace(paramNamespace)
	} else if ref.Namespace != "" {
		return nil, errors.New("paramRef.namespace must not be provided for a cluster-scoped `paramKind`")
	}
	waitCtx, cancel := context.WithTimeout(ctx, p.syncWait)
	defer cancel()
	if !cache.WaitForCacheSync(waitCtx.Done(), res.informer.Informer().HasSynced) {
		return nil, fmt.Errorf("paramKind kind `%v` not yet synced to use for admission", kind.String())
	}

	var params []runtime.Object
	switch {
	case ref.Name != "":
		if ref.Selector != nil {
			return nil, errors.New("paramRef.name and paramRef.selector are mutually exclusive")
		}
		param, err := store.Get(ref.Name)
		if apierrors.IsNotFound(err) {
			// Created a moment ago, perhaps, and not yet seen by the
			// informer: ask the API.
			var ri dynamic.ResourceInterface = p.client.Resource(res.gvr)
			if res.namespaced {
				ri = p.client.Resource(res.gvr).Namespace(paramNamespace)
			}
			param, err = ri.Get(ctx, ref.Name, metav1.GetOptions{})
		}
		switch {
		case err == nil:
			params = []runtime.Object{param}
		case apierrors.IsNotFound(err):
		default:
			return nil, err
		}
	case ref.Selector != nil:
		sel, err := metav1.LabelSelectorAsSelector(ref.Selector)
		if err != nil {
			return nil, err
		}
		if params, err = store.List(sel); err != nil {
			return nil, err
		}
	default:
		return nil, errors.New("one of name or selector must be provided")
	}
	if len(params) == 0 && ref.ParameterNotFoundAction != nil && *ref.ParameterNotFoundAction == admissionregistrationv1.DenyAction {
		return nil, errors.New("no params found for policy binding with `Deny` parameterNotFoundAction")
	}
	return params, nil
}
