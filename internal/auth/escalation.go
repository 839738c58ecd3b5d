package auth

import (
	"context"
	"errors"

	rbacv1 "k8s.io/api/rbac/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/kubernetes/pkg/apis/rbac"
	rbacregistry "k8s.io/kubernetes/pkg/registry/rbac"
	rbacregistryvalidation "k8s.io/kubernetes/pkg/registry/rbac/validation"

	"github.com/trellis-project/trellis/internal/request"
)

// Escalation is RBAC's escalation prevention, as kube-apiserver's
// policy-based RBAC storages apply it: a user may create or update a Role
// or ClusterRole only with rules they already hold (or with the escalate
// verb on it), and a RoleBinding or ClusterRoleBinding only to a role
// whose rules they hold (or with the bind verb on it). Members of
// system:masters, which include the server's own loopback client, are
// exempt. The checks, the rule comparison and the wording are upstream's.
type Escalation struct {
	// Authorizer answers the escalate and bind checks.
	Authorizer Authorizer
	// Resolver lists the rules a user holds and the rules of a role
	// reference. It should read current data, not a lagging cache:
	// upstream reads through its storage.
	Resolver rbacregistryvalidation.AuthorizationRuleResolver
}

var (
	roles               = rbacv1.SchemeGroupVersion.WithResource("roles").GroupResource()
	clusterRoles        = rbacv1.SchemeGroupVersion.WithResource("clusterroles").GroupResource()
	roleBindings        = rbacv1.SchemeGroupVersion.WithResource("rolebindings").GroupResource()
	clusterRoleBindings = rbacv1.SchemeGroupVersion.WithResource("clusterrolebindings").GroupResource()
)

// fullAuthority is what setting or changing an aggregationRule requires.
var fullAuthority = []rbacv1.PolicyRule{
	{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}},
	{Verbs: []string{"*"}, NonResourceURLs: []string{"*"}},
}

// GuardWrite refuses writing obj (an rbac.authorization.k8s.io/v1 object)
// when it would grant the writer more than they hold; old is nil on
// create. It runs before validation, where upstream's storages run it.
func (e *Escalation) GuardWrite(ctx context.Context, obj, old runtime.Object) error {
	u := UserFrom(ctx)
	if u != nil && isPrivileged(u) {
		return nil
	}
	ctx = e.upstreamContext(ctx, u)
	az := Upstream(e.Authorizer)
	if old != nil && rbacregistry.IsOnlyMutatingGCFields(obj, old, apiequality.Semantic) {
		return nil
	}
	switch o := obj.(type) {
	case *rbacv1.Role:
		if rbacregistry.RoleEscalationAuthorized(ctx, az) {
			return nil
		}
		return e.confirm(ctx, roles, o.Name, o.Rules)
	case *rbacv1.ClusterRole:
		if rbacregistry.RoleEscalationAuthorized(ctx, az) {
			return nil
		}
		if err := e.confirm(ctx, clusterRoles, o.Name, o.Rules); err != nil {
			return err
		}
		oldRole, _ := old.(*rbacv1.ClusterRole)
		if hasAggregationRule(o) || oldRole != nil && hasAggregationRule(oldRole) {
			if rbacregistryvalidation.ConfirmNoEscalation(ctx, e.Resolver, fullAuthority) != nil {
				return apierrors.NewForbidden(clusterRoles, o.Name, errors.New("must have cluster-admin privileges to use the aggregationRule"))
			}
		}
		return nil
	case *rbacv1.RoleBinding:
		ns, _ := genericapirequest.NamespaceFrom(ctx)
		return e.confirmBinding(ctx, roleBindings, o.Name, o.RoleRef, ns)
	case *rbacv1.ClusterRoleBinding:
		return e.confirmBinding(ctx, clusterRoleBindings, o.Name, o.RoleRef, "")
	}
	return nil
}

// upstreamContext carries the user, namespace and request into the
// context keys upstream's checks read.
func (e *Escalation) upstreamContext(ctx context.Context, u *User) context.Context {
	if u != nil {
		ctx = genericapirequest.WithUser(ctx, u)
	}
	if info := request.InfoFrom(ctx); info != nil {
		ctx = genericapirequest.WithNamespace(ctx, info.Namespace)
		ctx = genericapirequest.WithRequestInfo(ctx, &genericapirequest.RequestInfo{
			IsResourceRequest: info.IsResourceRequest, Path: info.Path, Verb: info.Verb,
			APIPrefix: info.APIPrefix, APIGroup: info.APIGroup, APIVersion: info.APIVersion,
			Namespace: info.Namespace, Resource: info.Resource, Subresource: info.Subresource,
			Name: info.Name, Parts: info.Parts,
		})
	}
	return ctx
}

func (e *Escalation) confirm(ctx context.Context, gr schema.GroupResource, name string, rules []rbacv1.PolicyRule) error {
	if err := rbacregistryvalidation.ConfirmNoEscalation(ctx, e.Resolver, rules); err != nil {
		return apierrors.NewForbidden(gr, name, err)
	}
	return nil
}

func (e *Escalation) confirmBinding(ctx context.Context, gr schema.GroupResource, name string, ref rbacv1.RoleRef, namespace string) error {
	internalRef := rbac.RoleRef{APIGroup: ref.APIGroup, Kind: ref.Kind, Name: ref.Name}
	if rbacregistry.BindingAuthorized(ctx, internalRef, namespace, Upstream(e.Authorizer)) {
		return nil
	}
	rules, err := e.Resolver.GetRoleReferenceRules(ctx, ref, namespace)
	if err != nil {
		return err
	}
	return e.confirm(ctx, gr, name, rules)
}

func hasAggregationRule(r *rbacv1.ClusterRole) bool {
	return r.AggregationRule != nil && len(r.AggregationRule.ClusterRoleSelectors) > 0
}

func isPrivileged(u *User) bool {
	for _, g := range u.Groups {
		if g == "system:masters" {
			return true
		}
	}
	return false
}
