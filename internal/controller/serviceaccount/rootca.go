package serviceaccount

import (
	"context"
	"maps"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/kubernetes/pkg/controller/certificates/rootcacertpublisher"
)

// RootCAConfigMap is the ConfigMap the publisher keeps in every namespace.
const RootCAConfigMap = rootcacertpublisher.RootCACertConfigMapName

// RootCAPublisher keeps kube-root-ca.crt in every namespace holding the
// CA bundle under "ca.crt" and upstream's description annotation.
type RootCAPublisher struct {
	client kubernetes.Interface
	caPEM  string
	ns     *namespaces
	cmInf  cache.SharedIndexInformer
	cms    corelisters.ConfigMapLister
	cmsF   informers.SharedInformerFactory
}

// NewRootCAPublisher builds the publisher of caPEM; Run starts it.
func NewRootCAPublisher(client kubernetes.Interface, caPEM []byte) *RootCAPublisher {
	cmsF := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTweakListOptions(byName(RootCAConfigMap)))
	inf := cmsF.Core().V1().ConfigMaps()
	p := &RootCAPublisher{
		client: client, caPEM: string(caPEM), ns: newNamespaces(client, "root-ca-cert-publisher"),
		cmInf: inf.Informer(), cms: inf.Lister(), cmsF: cmsF,
	}
	p.cmInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(_, obj any) { p.ns.enqueueNamespaceOf(obj) },
		DeleteFunc: p.ns.enqueueNamespaceOf,
	})
	return p
}

// Run reconciles until ctx ends.
func (p *RootCAPublisher) Run(ctx context.Context) {
	p.cmsF.Start(ctx.Done())
	defer p.cmsF.Shutdown()
	p.ns.run(ctx, []cache.InformerSynced{p.cmInf.HasSynced}, p.sync)
}

func (p *RootCAPublisher) sync(ctx context.Context, ns *corev1.Namespace) error {
	if ns.DeletionTimestamp != nil {
		return nil
	}
	data := map[string]string{"ca.crt": p.caPEM}
	cm, err := p.cms.ConfigMaps(ns.Name).Get(RootCAConfigMap)
	switch {
	case apierrors.IsNotFound(err):
		cm = &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{
				Name: RootCAConfigMap, Namespace: ns.Name,
				Annotations: map[string]string{rootcacertpublisher.DescriptionAnnotation: rootcacertpublisher.Description},
			},
			Data: data,
		}
		_, err = p.client.CoreV1().ConfigMaps(ns.Name).Create(ctx, cm, metav1.CreateOptions{})
		return ignoreGone(err)
	case err != nil:
		return err
	}
	if maps.Equal(cm.Data, data) && cm.Annotations[rootcacertpublisher.DescriptionAnnotation] != "" {
		return nil
	}
	cm = cm.DeepCopy()
	cm.Data = data
	if cm.Annotations == nil {
		cm.Annotations = map[string]string{}
	}
	cm.Annotations[rootcacertpublisher.DescriptionAnnotation] = rootcacertpublisher.Description
	_, err = p.client.CoreV1().ConfigMaps(ns.Name).Update(ctx, cm, metav1.UpdateOptions{})
	return err
}
