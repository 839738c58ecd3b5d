package auth_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	rbacregistryvalidation "k8s.io/kubernetes/pkg/registry/rbac/validation"

	"github.com/trellis-project/trellis/internal/auth"
)

// scanDecision is the decision of upstream's resolver scanning every
// binding, the route the index must agree with.
func scanDecision(l auth.RBACListers, a auth.Attributes) auth.Decision {
	g := scanGetters{l}
	d := auth.NoOpinion
	rbacregistryvalidation.NewDefaultRuleResolver(g, g, g, g).VisitRulesFor(context.Background(), a.User, a.Namespace,
		func(_ fmt.Stringer, rule *rbacv1.PolicyRule, _ error) bool {
			if rule != nil && auth.RuleAllows(a, rule) {
				d = auth.Allow
				return false
			}
			return true
		})
	return d
}

type scanGetters struct{ l auth.RBACListers }

func (g scanGetters) GetRole(_ context.Context, ns, name string) (*rbacv1.Role, error) {
	return g.l.Roles.Roles(ns).Get(name)
}
func (g scanGetters) ListRoleBindings(_ context.Context, ns string) ([]*rbacv1.RoleBinding, error) {
	return g.l.RoleBindings.RoleBindings(ns).List(labels.Everything())
}
func (g scanGetters) GetClusterRole(_ context.Context, name string) (*rbacv1.ClusterRole, error) {
	return g.l.ClusterRoles.Get(name)
}
func (g scanGetters) ListClusterRoleBindings(context.Context) ([]*rbacv1.ClusterRoleBinding, error) {
	return g.l.ClusterRoleBindings.List(labels.Everything())
}

// TestRBACIndexAgreesWithScan cross-checks every decision of the indexed
// authorizer against upstream's full scan, over the benchmark's policy.
func TestRBACIndexAgreesWithScan(t *testing.T) {
	l := newRBACPolicy(t, 1000).listers()
	rbac := auth.NewRBAC(l)
	allowed := 0
	for i, a := range policyRequests(4000) {
		got, _, _ := rbac.Authorize(context.Background(), a)
		if want := scanDecision(l, a); got != want {
			t.Fatalf("request %d (%s %s/%s in %q by %s %v): index says %v, scan says %v",
				i, a.Verb, a.APIGroup, a.Resource, a.Namespace, a.User.Name, a.User.Groups, got, want)
		}
		if got == auth.Allow {
			allowed++
		}
	}
	// Both outcomes must occur, or the comparison proves little.
	if allowed == 0 || allowed == 4000 {
		t.Fatalf("%d of 4000 allowed; want a mix", allowed)
	}
}

// TestRBACIndexSubjects pins the subject forms upstream's matching has:
// service accounts defaulting to the binding's namespace, service accounts
// without a namespace in a ClusterRoleBinding (never apply), unknown kinds,
// and a binding naming the same user twice (its rules listed once).
func TestRBACIndexSubjects(t *testing.T) {
	p := &rbacPolicy{roles: newIndexer(), bindings: newIndexer(), clusterRoles: newIndexer(), clusterBindings: newIndexer()}
	p.clusterRoles.Add(&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "read"},
		Rules: []rbacv1.PolicyRule{{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"pods"}}}})
	ref := rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "read"}
	p.bindings.Add(&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "sa-local", Namespace: "a"}, RoleRef: ref,
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "builder"}}})
	p.clusterBindings.Add(&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "sa-no-ns"}, RoleRef: ref,
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "deployer"}, {Kind: "Robot", Name: "r2"}}})
	p.clusterBindings.Add(&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "twice"}, RoleRef: ref,
		Subjects: []rbacv1.Subject{{Kind: "User", Name: "dup"}, {Kind: "Group", Name: "dups"}, {Kind: "User", Name: "dup"}}})
	l := p.listers()
	rbac := auth.NewRBAC(l)
	get := func(u *auth.User, ns string) auth.Attributes {
		return auth.Attributes{User: u, Verb: "get", ResourceRequest: true, Resource: "pods", Namespace: ns, Name: "p"}
	}
	for _, tc := range []struct {
		name string
		a    auth.Attributes
		want auth.Decision
	}{
		{"SA subject defaults to the binding's namespace", get(&auth.User{Name: "system:serviceaccount:a:builder"}, "a"), auth.Allow},
		{"SA of another namespace", get(&auth.User{Name: "system:serviceaccount:b:builder"}, "a"), auth.NoOpinion},
		{"SA without namespace in a cluster binding never applies", get(&auth.User{Name: "system:serviceaccount::deployer"}, ""), auth.NoOpinion},
		{"unknown subject kind never applies", get(&auth.User{Name: "r2"}, ""), auth.NoOpinion},
		{"user listed twice", get(&auth.User{Name: "dup", Groups: []string{"dups"}}, "x"), auth.Allow},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _, _ := rbac.Authorize(context.Background(), tc.a)
			if want := scanDecision(l, tc.a); got != tc.want || want != tc.want {
				t.Fatalf("index %v, scan %v; want %v", got, want, tc.want)
			}
		})
	}
	// A user matched by name and by group sees the binding's rules once.
	res, _, _, err := rbac.RulesFor(context.Background(), &auth.User{Name: "dup", Groups: []string{"dups"}}, "x")
	if err != nil || len(res) != 1 {
		t.Fatalf("RulesFor = %d rules, %v; want 1", len(res), err)
	}
}

// TestRBACIndexInvalidate: a binding added, changed or removed in the
// listers is seen after Invalidate, and not before (the index is used).
func TestRBACIndexInvalidate(t *testing.T) {
	p := &rbacPolicy{roles: newIndexer(), bindings: newIndexer(), clusterRoles: newIndexer(), clusterBindings: newIndexer()}
	p.roles.Add(&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "cm", Namespace: "team"},
		Rules: []rbacv1.PolicyRule{{Verbs: []string{"list"}, APIGroups: []string{""}, Resources: []string{"configmaps"}}}})
	rbac := auth.NewRBAC(p.listers())
	eve := &auth.User{Name: "eve", Groups: []string{"readers"}}
	list := auth.Attributes{User: eve, Verb: "list", ResourceRequest: true, Resource: "configmaps", Namespace: "team"}
	decide := func() auth.Decision { d, _, _ := rbac.Authorize(context.Background(), list); return d }
	if d := decide(); d != auth.NoOpinion {
		t.Fatalf("no binding: %v", d)
	}
	b := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "eve", Namespace: "team"},
		Subjects: []rbacv1.Subject{{Kind: "User", Name: "eve"}},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "cm"}}
	p.bindings.Add(b)
	if d := decide(); d != auth.NoOpinion {
		t.Fatalf("binding added, index not invalidated: %v; the index is not in use", d)
	}
	rbac.Invalidate()
	if d := decide(); d != auth.Allow {
		t.Fatalf("binding added: %v, want Allow", d)
	}
	// Re-bound to a group eve is not in.
	changed := b.DeepCopy()
	changed.Subjects = []rbacv1.Subject{{Kind: "Group", Name: "writers"}}
	p.bindings.Update(changed)
	rbac.Invalidate()
	if d := decide(); d != auth.NoOpinion {
		t.Fatalf("binding moved to another group: %v", d)
	}
	changed = changed.DeepCopy()
	changed.Subjects = []rbacv1.Subject{{Kind: "Group", Name: "readers"}}
	p.bindings.Update(changed)
	rbac.Invalidate()
	if d := decide(); d != auth.Allow {
		t.Fatalf("binding moved to eve's group: %v", d)
	}
	p.bindings.Delete(changed)
	rbac.Invalidate()
	if d := decide(); d != auth.NoOpinion {
		t.Fatalf("binding deleted: %v", d)
	}
}

// TestRBACIndexInformerEvents wires the index to real informers: writes
// through the API are seen without calling Invalidate by hand.
func TestRBACIndexInformerEvents(t *testing.T) {
	client := fake.NewClientset(&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "node-reader"},
		Rules: []rbacv1.PolicyRule{{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"nodes"}}}})
	f := informers.NewSharedInformerFactory(client, 0)
	r := f.Rbac().V1()
	rbac := auth.NewRBAC(auth.RBACListers{Roles: r.Roles().Lister(), RoleBindings: r.RoleBindings().Lister(),
		ClusterRoles: r.ClusterRoles().Lister(), ClusterRoleBindings: r.ClusterRoleBindings().Lister()})
	if err := rbac.InvalidateOn(r.RoleBindings().Informer(), r.ClusterRoleBindings().Informer()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f.Start(ctx.Done())
	f.WaitForCacheSync(ctx.Done())

	get := auth.Attributes{User: &auth.User{Name: "ann"}, Verb: "get", ResourceRequest: true, Resource: "nodes", Name: "n1"}
	waitFor := func(what string, want auth.Decision) {
		t.Helper()
		err := wait.PollUntilContextTimeout(ctx, 5*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
			d, _, _ := rbac.Authorize(ctx, get)
			return d == want, nil
		})
		if err != nil {
			t.Fatalf("%s: decision never became %v", what, want)
		}
	}
	waitFor("no binding", auth.NoOpinion)
	crb := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "ann"},
		Subjects: []rbacv1.Subject{{Kind: "User", Name: "ann"}},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "node-reader"}}
	if _, err := client.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor("binding created", auth.Allow)
	crb.Subjects[0].Name = "bob"
	if _, err := client.RbacV1().ClusterRoleBindings().Update(ctx, crb, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor("binding re-pointed", auth.NoOpinion)
	crb.Subjects[0].Name = "ann"
	if _, err := client.RbacV1().ClusterRoleBindings().Update(ctx, crb, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor("binding restored", auth.Allow)
	if err := client.RbacV1().ClusterRoleBindings().Delete(ctx, "ann", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor("binding deleted", auth.NoOpinion)
}
