package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"

	"github.com/trellis-project/trellis/internal/auth"
	"github.com/trellis-project/trellis/internal/auth/satoken"
	"github.com/trellis-project/trellis/internal/store"
)

// serviceAccountTokens resolves the service-account token configuration
// and serves serviceaccounts/token.
func (s *Server) serviceAccountTokens() error {
	cfg, err := satoken.Options{
		KeyFiles: s.cfg.ServiceAccountKeyFiles, SigningKeyFile: s.cfg.ServiceAccountSigningKeyFile,
		Issuers: s.cfg.ServiceAccountIssuers, APIAudiences: s.cfg.APIAudiences,
		MaxExpiration: s.cfg.ServiceAccountMaxTokenExpiration, JWKSURI: s.cfg.ServiceAccountJWKSURI,
	}.Resolve(satoken.Generated{Key: s.pki.ServiceAccountKey, PublicKeyFile: s.pki.Paths.ServiceAccountPub})
	if err != nil {
		return err
	}
	s.saTokens = cfg
	tr, err := satoken.NewTokenRequests(cfg, storedObjects{s})
	if err != nil {
		return err
	}
	gvr := schema.GroupVersionResource{Version: "v1", Resource: "serviceaccounts"}
	if d, ok := s.registry.Lookup(gvr); ok {
		s.registry.Add(d.WithCreater("token", tr.Creater()))
	}
	return nil
}

// serviceAccountAuthenticator verifies service-account tokens; legacy
// tokens record their last use on their Secret through the loopback.
func (s *Server) serviceAccountAuthenticator() (auth.Authenticator, error) {
	client, err := kubernetes.NewForConfig(s.LoopbackConfig())
	if err != nil {
		return nil, err
	}
	tok, err := s.saTokens.Authenticator(storedObjects{s}, client.CoreV1())
	if err != nil {
		return nil, err
	}
	return auth.Bearer{Token: tok}, nil
}

// issuerDiscovery serves /.well-known/openid-configuration and
// /openid/v1/jwks, or nil when the issuer cannot have them (not https).
func (s *Server) issuerDiscovery() http.Handler {
	h, err := s.saTokens.DiscoveryHandler(s.Addr())
	if err != nil {
		log.Printf("service account issuer discovery is not served: %v", err)
		return nil
	}
	return h
}

// isIssuerDiscoveryPath reports the issuer discovery paths, which
// anonymous requests may reach so that RBAC decides (kube-apiserver's
// system:service-account-issuer-discovery role; bind it to
// system:unauthenticated to publish them).
func isIssuerDiscoveryPath(p string) bool {
	switch p {
	case satoken.OpenIDConfigPath, satoken.OpenIDConfigPath + "/", satoken.JWKSPath, satoken.JWKSPath + "/":
		return true
	}
	return false
}

// storedObjects reads the objects service-account tokens name straight
// from the watch caches (falling back to the store for objects the cache
// has not seen yet), without a round trip through the API.
type storedObjects struct{ s *Server }

var _ satoken.Objects = storedObjects{}

func (o storedObjects) get(ctx context.Context, gvr schema.GroupVersionResource, namespace, name string, into any) error {
	return o.read(ctx, gvr, namespace, name, into, false)
}

func (o storedObjects) getLatest(ctx context.Context, gvr schema.GroupVersionResource, namespace, name string, into any) error {
	return o.read(ctx, gvr, namespace, name, into, true)
}

func (o storedObjects) read(ctx context.Context, gvr schema.GroupVersionResource, namespace, name string, into any, latest bool) error {
	d, ok := o.s.registry.Lookup(gvr)
	if !ok {
		return apierrors.NewNotFound(gvr.GroupResource(), name)
	}
	if d.StorageVersion != d.GroupVersion() {
		return fmt.Errorf("%s is not stored as %s", gvr.Resource, d.GroupVersion())
	}
	ch, err := o.s.caches.forPrefix(d.StoragePrefix)
	if err != nil {
		return err
	}
	key := d.Key(namespace, name)
	var kv store.KV
	if !latest {
		kv, err = ch.GetCached(ctx, key, 0)
	}
	if latest || errors.Is(err, store.ErrNotFound) {
		kv, err = ch.Get(ctx, key)
	}
	if errors.Is(err, store.ErrNotFound) {
		return apierrors.NewNotFound(gvr.GroupResource(), name)
	}
	if err != nil {
		return err
	}
	return json.Unmarshal(kv.Value, into)
}

func (o storedObjects) GetServiceAccount(ctx context.Context, namespace, name string) (*corev1.ServiceAccount, error) {
	sa := &corev1.ServiceAccount{}
	return sa, o.get(ctx, corev1.SchemeGroupVersion.WithResource("serviceaccounts"), namespace, name, sa)
}

func (o storedObjects) GetPod(ctx context.Context, namespace, name string) (*corev1.Pod, error) {
	pod := &corev1.Pod{}
	return pod, o.get(ctx, corev1.SchemeGroupVersion.WithResource("pods"), namespace, name, pod)
}

// GetSecret reads through to the store: a legacy token is compared with
// its Secret's data, which the watch cache may not have caught up with
// right after the token controller filled it.
func (o storedObjects) GetSecret(ctx context.Context, namespace, name string) (*corev1.Secret, error) {
	secret := &corev1.Secret{}
	return secret, o.getLatest(ctx, corev1.SchemeGroupVersion.WithResource("secrets"), namespace, name, secret)
}

func (o storedObjects) GetNode(ctx context.Context, name string) (*corev1.Node, error) {
	node := &corev1.Node{}
	return node, o.get(ctx, corev1.SchemeGroupVersion.WithResource("nodes"), "", name, node)
}

func (o storedObjects) GetValidatingWebhookConfiguration(ctx context.Context, name string) (*admissionregistrationv1.ValidatingWebhookConfiguration, error) {
	c := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	return c, o.get(ctx, admissionregistrationv1.SchemeGroupVersion.WithResource("validatingwebhookconfigurations"), "", name, c)
}

func (o storedObjects) GetMutatingWebhookConfiguration(ctx context.Context, name string) (*admissionregistrationv1.MutatingWebhookConfiguration, error) {
	c := &admissionregistrationv1.MutatingWebhookConfiguration{}
	return c, o.get(ctx, admissionregistrationv1.SchemeGroupVersion.WithResource("mutatingwebhookconfigurations"), "", name, c)
}
