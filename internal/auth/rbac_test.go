package auth_test

import (
	"context"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	rbaclisters "k8s.io/client-go/listers/rbac/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/trellis-project/trellis/internal/auth"
)

func rbacFixture(t *testing.T) *auth.RBAC {
	t.Helper()
	idx := func(objs ...any) cache.Indexer {
		i := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
		for _, o := range objs {
			if err := i.Add(o); err != nil {
				t.Fatal(err)
			}
		}
		return i
	}
	roles := idx(&rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "cm-reader", Namespace: "team"},
		Rules: []rbacv1.PolicyRule{
			{Verbs: []string{"get", "list"}, APIGroups: []string{""}, Resources: []string{"configmaps"}},
			{Verbs: []string{"update"}, APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{"only-this"}},
		},
	})
	bindings := idx(&rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "bob-reads", Namespace: "team"},
		Subjects:   []rbacv1.Subject{{Kind: "User", Name: "bob"}, {Kind: "ServiceAccount", Name: "robot", Namespace: "team"}},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "cm-reader"},
	})
	clusterRoles := idx(&rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "scaler"},
		Rules: []rbacv1.PolicyRule{
			{Verbs: []string{"*"}, APIGroups: []string{"apps"}, Resources: []string{"*/scale"}},
			{Verbs: []string{"get"}, NonResourceURLs: []string{"/healthz", "/logs/*"}},
		},
	})
	clusterBindings := idx(&rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "ops-scale"},
		Subjects:   []rbacv1.Subject{{Kind: "Group", Name: "ops"}},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "scaler"},
	})
	return auth.NewRBAC(auth.RBACListers{
		Roles:               rbaclisters.NewRoleLister(roles),
		RoleBindings:        rbaclisters.NewRoleBindingLister(bindings),
		ClusterRoles:        rbaclisters.NewClusterRoleLister(clusterRoles),
		ClusterRoleBindings: rbaclisters.NewClusterRoleBindingLister(clusterBindings),
	})
}

func TestRBACDecisions(t *testing.T) {
	rbac := rbacFixture(t)
	bob := &auth.User{Name: "bob", Groups: []string{"system:authenticated"}}
	robot := &auth.User{Name: "system:serviceaccount:team:robot", Groups: []string{"system:serviceaccounts"}}
	ops := &auth.User{Name: "carol", Groups: []string{"ops"}}
	res := func(u *auth.User, verb, group, resource, sub, ns, name string) auth.Attributes {
		return auth.Attributes{User: u, Verb: verb, ResourceRequest: true, APIGroup: group, Resource: resource, Subresource: sub, Namespace: ns, Name: name}
	}
	for _, tc := range []struct {
		name string
		a    auth.Attributes
		want auth.Decision
	}{
		{"role grants list in its namespace", res(bob, "list", "", "configmaps", "", "team", ""), auth.Allow},
		{"role does not reach other namespaces", res(bob, "list", "", "configmaps", "", "other", ""), auth.NoOpinion},
		{"verb not granted", res(bob, "delete", "", "configmaps", "", "team", "x"), auth.NoOpinion},
		{"resourceNames allow the named object", res(bob, "update", "", "configmaps", "", "team", "only-this"), auth.Allow},
		{"resourceNames refuse others", res(bob, "update", "", "configmaps", "", "team", "other"), auth.NoOpinion},
		{"service account subject", res(robot, "get", "", "configmaps", "", "team", "x"), auth.Allow},
		{"group via cluster binding, */scale", res(ops, "update", "apps", "deployments", "scale", "any", "d"), auth.Allow},
		{"*/scale does not grant the resource", res(ops, "update", "apps", "deployments", "", "any", "d"), auth.NoOpinion},
		{"non-resource URL exact", auth.Attributes{User: ops, Verb: "get", Path: "/healthz"}, auth.Allow},
		{"non-resource URL prefix", auth.Attributes{User: ops, Verb: "get", Path: "/logs/kube.log"}, auth.Allow},
		{"non-resource URL not granted", auth.Attributes{User: ops, Verb: "get", Path: "/metrics"}, auth.NoOpinion},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _, err := rbac.Authorize(context.Background(), tc.a)
			if err != nil || got != tc.want {
				t.Fatalf("Authorize = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestForbiddenMessage(t *testing.T) {
	u := &auth.User{Name: "bob"}
	for _, tc := range []struct {
		a    auth.Attributes
		want string
	}{
		{auth.Attributes{User: u, Verb: "list", ResourceRequest: true, Resource: "configmaps", Namespace: "default"},
			`User "bob" cannot list resource "configmaps" in API group "" in the namespace "default"`},
		{auth.Attributes{User: u, Verb: "get", ResourceRequest: true, APIGroup: "apps", Resource: "deployments", Subresource: "scale"},
			`User "bob" cannot get resource "deployments/scale" in API group "apps" at the cluster scope`},
		{auth.Attributes{User: u, Verb: "get", Path: "/metrics"}, `User "bob" cannot get path "/metrics"`},
	} {
		if got := auth.ForbiddenMessage(tc.a); got != tc.want {
			t.Errorf("got  %s\nwant %s", got, tc.want)
		}
	}
}
