package auth

import (
	"context"
	"fmt"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/labels"
	rbaclisters "k8s.io/client-go/listers/rbac/v1"
	rbacregistryvalidation "k8s.io/kubernetes/pkg/registry/rbac/validation"
)

// RBAC authorizes by the Roles, ClusterRoles and their bindings, read from
// informer caches. Rule resolution (which bindings apply to a user) is
// upstream's, run over the user's bindings from a subject index
// (rbacindex.go); matching a rule against a request is below.
type RBAC struct {
	listers  RBACListers
	getters  *rbacGetters                                // the listers, for the resolver
	resolver *rbacregistryvalidation.DefaultRuleResolver // scans every binding
	state    indexState
}

// RBACListers are the caches RBAC reads.
type RBACListers struct {
	Roles               rbaclisters.RoleLister
	RoleBindings        rbaclisters.RoleBindingLister
	ClusterRoles        rbaclisters.ClusterRoleLister
	ClusterRoleBindings rbaclisters.ClusterRoleBindingLister
}

// NewRBAC builds the authorizer.
func NewRBAC(l RBACListers) *RBAC {
	g := &rbacGetters{l}
	return &RBAC{listers: l, getters: g, resolver: rbacregistryvalidation.NewDefaultRuleResolver(g, g, g, g)}
}

func (r *RBAC) Authorize(ctx context.Context, a Attributes) (Decision, string, error) {
	if a.User == nil {
		return NoOpinion, "", nil
	}
	var reason string
	var errs []string
	allowed := false
	r.resolverFor(a.User, a.Namespace).VisitRulesFor(ctx, a.User, a.Namespace, func(source fmt.Stringer, rule *rbacv1.PolicyRule, err error) bool {
		if rule != nil && RuleAllows(a, rule) {
			allowed = true
			reason = "RBAC: allowed by " + source.String()
			return false
		}
		if err != nil {
			errs = append(errs, err.Error())
		}
		return true
	})
	if allowed {
		return Allow, reason, nil
	}
	if len(errs) > 0 {
		return NoOpinion, "RBAC: " + strings.Join(errs, ", "), nil
	}
	return NoOpinion, "", nil
}

// RuleAllows reports whether rule grants the request.
func RuleAllows(a Attributes, rule *rbacv1.PolicyRule) bool {
	if a.ResourceRequest {
		resource := a.Resource
		if a.Subresource != "" {
			resource += "/" + a.Subresource
		}
		return matchesAny(rule.Verbs, a.Verb) &&
			matchesAny(rule.APIGroups, a.APIGroup) &&
			resourceMatches(rule.Resources, resource, a.Subresource) &&
			(len(rule.ResourceNames) == 0 || contains(rule.ResourceNames, a.Name))
	}
	return matchesAny(rule.Verbs, a.Verb) && nonResourceURLMatches(rule.NonResourceURLs, a.Path)
}

func matchesAny(set []string, v string) bool {
	for _, s := range set {
		if s == rbacv1.VerbAll || s == v {
			return true
		}
	}
	return false
}

func contains(set []string, v string) bool {
	for _, s := range set {
		if s == v {
			return true
		}
	}
	return false
}

// resourceMatches: "*" matches everything, "pods" the resource, "pods/log"
// the subresource, "*/scale" that subresource of any resource.
func resourceMatches(rules []string, combined, sub string) bool {
	for _, r := range rules {
		switch {
		case r == rbacv1.ResourceAll, r == combined:
			return true
		case sub != "" && strings.HasPrefix(r, "*/") && r[2:] == sub:
			return true
		}
	}
	return false
}

func nonResourceURLMatches(rules []string, path string) bool {
	for _, r := range rules {
		switch {
		case r == rbacv1.NonResourceAll, r == path:
			return true
		case strings.HasSuffix(r, "*") && strings.HasPrefix(path, strings.TrimSuffix(r, "*")):
			return true
		}
	}
	return false
}

// rbacGetters adapts client-go listers to the resolver's interfaces.
type rbacGetters struct{ l RBACListers }

func (g rbacGetters) GetRole(_ context.Context, ns, name string) (*rbacv1.Role, error) {
	return g.l.Roles.Roles(ns).Get(name)
}

func (g rbacGetters) ListRoleBindings(_ context.Context, ns string) ([]*rbacv1.RoleBinding, error) {
	return g.l.RoleBindings.RoleBindings(ns).List(labels.Everything())
}

func (g rbacGetters) GetClusterRole(_ context.Context, name string) (*rbacv1.ClusterRole, error) {
	return g.l.ClusterRoles.Get(name)
}

func (g rbacGetters) ListClusterRoleBindings(context.Context) ([]*rbacv1.ClusterRoleBinding, error) {
	return g.l.ClusterRoleBindings.List(labels.Everything())
}
