package server_test

import (
	"context"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

func TestEscalationPrevention(t *testing.T) {
	ctx := context.Background()
	srv := startWithTokens(t, "ed-token,ed,7\n")
	admin := kubernetes.NewForConfigOrDie(srv.Config)
	ed := kubernetes.NewForConfigOrDie(tokenConfig(srv, "ed-token"))

	// ed manages RBAC objects in default and may read configmaps there.
	grant(t, admin, "rbac-manager", "ed", "default",
		rule(list("create", "update", "get"), list("rbac.authorization.k8s.io"), list("roles", "rolebindings")),
		rule(list("get", "list"), list(""), list("configmaps")),
	)
	grant(t, admin, "clusterrole-writer", "ed", "",
		rule(list("create"), list("rbac.authorization.k8s.io"), list("clusterroles", "clusterrolebindings")))
	roleOf := func(name string, rules ...rbacv1.PolicyRule) *rbacv1.Role {
		return &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules}
	}
	bindingTo := func(name, kind, role string) *rbacv1.RoleBinding {
		return &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Subjects:   []rbacv1.Subject{{Kind: "User", APIGroup: rbacv1.GroupName, Name: "someone"}},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: kind, Name: role},
		}
	}
	cmReader := rule(list("get"), list(""), list("configmaps"))
	secretReader := rule(list("get"), list(""), list("secrets"))

	eventually(t, "ed may create a role he covers", func() error {
		_, err := ed.RbacV1().Roles("default").Create(ctx, roleOf("cm-reader", cmReader), metav1.CreateOptions{})
		return err
	})

	_, err := ed.RbacV1().Roles("default").Create(ctx, roleOf("secret-reader", secretReader), metav1.CreateOptions{})
	want := `roles.rbac.authorization.k8s.io "secret-reader" is forbidden: user "ed" (groups=["system:authenticated"]) is attempting to grant RBAC permissions not currently held:
{APIGroups:[""], Resources:["secrets"], Verbs:["get"]}`
	if !apierrors.IsForbidden(err) || err.Error() != want {
		t.Errorf("role with rules ed lacks:\n got %v\nwant %s", err, want)
	}

	// An update adding rules ed lacks is refused as well.
	role, err := ed.RbacV1().Roles("default").Get(ctx, "cm-reader", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	role.Rules = append(role.Rules, secretReader)
	_, err = ed.RbacV1().Roles("default").Update(ctx, role, metav1.UpdateOptions{})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "is attempting to grant RBAC permissions not currently held") {
		t.Errorf("escalating update: %v", err)
	}

	// Escalation prevention comes before validation, as upstream.
	_, err = ed.RbacV1().Roles("default").Create(ctx, roleOf("Invalid Name", secretReader), metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) {
		t.Errorf("invalid escalating role: %v, want 403", err)
	}

	// A role ed does not cover may still get GC-only changes from him.
	if _, err := admin.RbacV1().Roles("default").Create(ctx, roleOf("secrets", secretReader), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	secrets, err := ed.RbacV1().Roles("default").Get(ctx, "secrets", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	secrets.Finalizers = []string{"example.com/keep"}
	if _, err := ed.RbacV1().Roles("default").Update(ctx, secrets, metav1.UpdateOptions{}); err != nil {
		t.Errorf("finalizer-only update: %v", err)
	}

	// Bindings: to a role ed covers, yes; to one he does not, no; to a
	// missing one, 404.
	if _, err := ed.RbacV1().RoleBindings("default").Create(ctx, bindingTo("cm", "Role", "cm-reader"), metav1.CreateOptions{}); err != nil {
		t.Errorf("binding a covered role: %v", err)
	}
	_, err = ed.RbacV1().RoleBindings("default").Create(ctx, bindingTo("secrets", "Role", "secrets"), metav1.CreateOptions{})
	want = `rolebindings.rbac.authorization.k8s.io "secrets" is forbidden: user "ed" (groups=["system:authenticated"]) is attempting to grant RBAC permissions not currently held:
{APIGroups:[""], Resources:["secrets"], Verbs:["get"]}`
	if !apierrors.IsForbidden(err) || err.Error() != want {
		t.Errorf("binding an uncovered role:\n got %v\nwant %s", err, want)
	}
	_, err = ed.RbacV1().RoleBindings("default").Create(ctx, bindingTo("admin", "ClusterRole", "admin"), metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) || !strings.HasPrefix(err.Error(), `rolebindings.rbac.authorization.k8s.io "admin" is forbidden: user "ed"`) {
		t.Errorf("binding admin: %v", err)
	}
	_, err = ed.RbacV1().RoleBindings("default").Create(ctx, bindingTo("missing", "ClusterRole", "nope"), metav1.CreateOptions{})
	if !apierrors.IsNotFound(err) || err.Error() != `clusterroles.rbac.authorization.k8s.io "nope" not found` {
		t.Errorf("binding a missing role: %v", err)
	}
	_, err = ed.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "ed-cm"},
		Subjects:   []rbacv1.Subject{{Kind: "User", APIGroup: rbacv1.GroupName, Name: "someone"}},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "view"},
	}, metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) {
		t.Errorf("cluster-wide binding of view, held only in default: %v", err)
	}

	// The aggregationRule needs cluster-admin.
	_, err = ed.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
		ObjectMeta:      metav1.ObjectMeta{Name: "aggregate"},
		AggregationRule: &rbacv1.AggregationRule{ClusterRoleSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"x": "y"}}}},
	}, metav1.CreateOptions{})
	want = `clusterroles.rbac.authorization.k8s.io "aggregate" is forbidden: must have cluster-admin privileges to use the aggregationRule`
	if !apierrors.IsForbidden(err) || err.Error() != want {
		t.Errorf("aggregationRule: %v\nwant %s", err, want)
	}

	// bind and escalate lift the checks.
	grant(t, admin, "ed-binds-admin", "ed", "default",
		rule(list("bind"), list("rbac.authorization.k8s.io"), list("clusterroles"), "admin"))
	eventually(t, "bind on admin", func() error {
		_, err := ed.RbacV1().RoleBindings("default").Create(ctx, bindingTo("admin", "ClusterRole", "admin"), metav1.CreateOptions{})
		return err
	})
	grant(t, admin, "ed-escalates", "ed", "default",
		rule(list("escalate"), list("rbac.authorization.k8s.io"), list("roles")))
	eventually(t, "escalate on roles", func() error {
		_, err := ed.RbacV1().Roles("default").Create(ctx, roleOf("secret-reader", secretReader), metav1.CreateOptions{})
		return err
	})

	// system:masters is exempt.
	if _, err := admin.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
		ObjectMeta:      metav1.ObjectMeta{Name: "aggregate"},
		AggregationRule: &rbacv1.AggregationRule{ClusterRoleSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"x": "y"}}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Errorf("admin aggregationRule: %v", err)
	}
}

// TestEscalationImpersonated checks that escalation prevention judges the
// impersonated user, not the impersonator.
func TestEscalationImpersonated(t *testing.T) {
	ctx := context.Background()
	srv := startWithTokens(t, "ed-token,ed,7\n")
	admin := kubernetes.NewForConfigOrDie(srv.Config)
	grant(t, admin, "role-writer", "ed", "default",
		rule(list("create"), list("rbac.authorization.k8s.io"), list("roles")))
	asEd := impersonatingAdmin(srv, "ed")
	eventually(t, "ed's grant", func() error {
		_, err := asEd.RbacV1().Roles("default").Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "empty"}}, metav1.CreateOptions{})
		return err
	})
	_, err := asEd.RbacV1().Roles("default").Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "secrets"},
		Rules:      []rbacv1.PolicyRule{rule(list("get"), list(""), list("secrets"))},
	}, metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), `user "ed" (groups=["system:authenticated"])`) {
		t.Errorf("admin as ed: %v", err)
	}
}
