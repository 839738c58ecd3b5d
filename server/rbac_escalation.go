package server

import (
	"context"
	"encoding/json"
	"errors"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	rbacregistryvalidation "k8s.io/kubernetes/pkg/registry/rbac/validation"

	"github.com/trellis-project/trellis/internal/auth"
	"github.com/trellis-project/trellis/internal/store"
)

// guardRBACWrites installs RBAC escalation prevention on the four RBAC
// resources. It applies in every authorization mode, as upstream's
// policy-based storages do; under AlwaysAllow the escalate and bind
// checks always pass.
func (s *Server) guardRBACWrites(authz auth.Authorizer) {
	g := rbacStoreGetters{caches: s.caches}
	guard := &auth.Escalation{
		Authorizer: authz,
		Resolver:   rbacregistryvalidation.NewDefaultRuleResolver(g, g, g, g),
	}
	for _, r := range []string{"roles", "rolebindings", "clusterroles", "clusterrolebindings"} {
		if d, ok := s.registry.Lookup(schema.GroupVersionResource{Group: rbacv1.GroupName, Version: "v1", Resource: r}); ok {
			d.WriteGuard = guard
		}
	}
}

// rbacStoreGetters read RBAC objects from the store, as kube-apiserver's
// escalation checks read them through its storage, so that a binding
// written right after its role sees the role; the authorizer's informer
// caches may lag by a moment.
type rbacStoreGetters struct{ caches *caches }

func (g rbacStoreGetters) get(ctx context.Context, resource, key, name string, into any) error {
	ch, err := g.caches.forPrefix("/registry/" + resource + "/")
	if err != nil {
		return err
	}
	kv, err := ch.Get(ctx, "/registry/"+resource+"/"+key)
	if errors.Is(err, store.ErrNotFound) {
		return apierrors.NewNotFound(rbacv1.Resource(resource), name)
	}
	if err != nil {
		return err
	}
	return json.Unmarshal(kv.Value, into)
}

// list reads every object of resource under sub ("<namespace>/" or "").
func (g rbacStoreGetters) list(ctx context.Context, resource, sub string, each func([]byte) error) error {
	prefix := "/registry/" + resource + "/"
	ch, err := g.caches.forPrefix(prefix)
	if err != nil {
		return err
	}
	res, err := ch.List(ctx, prefix+sub, store.ListOptions{})
	if err != nil {
		return err
	}
	for _, kv := range res.KVs {
		if err := each(kv.Value); err != nil {
			return err
		}
	}
	return nil
}

func (g rbacStoreGetters) GetRole(ctx context.Context, namespace, name string) (*rbacv1.Role, error) {
	r := &rbacv1.Role{}
	return r, g.get(ctx, "roles", namespace+"/"+name, name, r)
}

func (g rbacStoreGetters) GetClusterRole(ctx context.Context, name string) (*rbacv1.ClusterRole, error) {
	r := &rbacv1.ClusterRole{}
	return r, g.get(ctx, "clusterroles", name, name, r)
}

func (g rbacStoreGetters) ListRoleBindings(ctx context.Context, namespace string) ([]*rbacv1.RoleBinding, error) {
	var out []*rbacv1.RoleBinding
	err := g.list(ctx, "rolebindings", namespace+"/", func(raw []byte) error {
		b := &rbacv1.RoleBinding{}
		out = append(out, b)
		return json.Unmarshal(raw, b)
	})
	return out, err
}

func (g rbacStoreGetters) ListClusterRoleBindings(ctx context.Context) ([]*rbacv1.ClusterRoleBinding, error) {
	var out []*rbacv1.ClusterRoleBinding
	err := g.list(ctx, "clusterrolebindings", "", func(raw []byte) error {
		b := &rbacv1.ClusterRoleBinding{}
		out = append(out, b)
		return json.Unmarshal(raw, b)
	})
	return out, err
}
