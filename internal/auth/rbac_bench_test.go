package auth_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	rbaclisters "k8s.io/client-go/listers/rbac/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/trellis-project/trellis/internal/auth"
)

// rbacPolicy is a synthetic policy of the size the issue asks about:
// 500 ClusterRoles and 500 Roles (over 50 namespaces), each bound once,
// to 200 users, 40 groups and 100 service accounts.
type rbacPolicy struct {
	roles, bindings, clusterRoles, clusterBindings cache.Indexer
}

const (
	policyNamespaces = 50
	policyUsers      = 200
	policyGroups     = 40
	policySAs        = 100
)

var policyResources = []struct{ group, resource string }{
	{"", "pods"}, {"", "configmaps"}, {"", "secrets"}, {"", "services"}, {"apps", "deployments"},
	{"apps", "statefulsets"}, {"batch", "jobs"}, {"networking.k8s.io", "ingresses"}, {"", "nodes"}, {"storage.k8s.io", "storageclasses"},
}

func newIndexer() cache.Indexer {
	return cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
}

func newRBACPolicy(tb testing.TB, roles int) *rbacPolicy {
	tb.Helper()
	p := &rbacPolicy{roles: newIndexer(), bindings: newIndexer(), clusterRoles: newIndexer(), clusterBindings: newIndexer()}
	rnd := rand.New(rand.NewPCG(1, 2))
	rules := func() []rbacv1.PolicyRule {
		var out []rbacv1.PolicyRule
		for range 3 {
			r := policyResources[rnd.IntN(len(policyResources))]
			verbs := [][]string{{"get", "list", "watch"}, {"create", "update", "patch", "delete"}, {"get"}}[rnd.IntN(3)]
			out = append(out, rbacv1.PolicyRule{Verbs: verbs, APIGroups: []string{r.group}, Resources: []string{r.resource}})
		}
		return out
	}
	subjects := func() []rbacv1.Subject {
		var out []rbacv1.Subject
		for range 1 + rnd.IntN(3) {
			switch rnd.IntN(3) {
			case 0:
				out = append(out, rbacv1.Subject{Kind: "User", APIGroup: rbacv1.GroupName, Name: fmt.Sprintf("user-%d", rnd.IntN(policyUsers))})
			case 1:
				out = append(out, rbacv1.Subject{Kind: "Group", APIGroup: rbacv1.GroupName, Name: fmt.Sprintf("group-%d", rnd.IntN(policyGroups))})
			default:
				out = append(out, rbacv1.Subject{Kind: "ServiceAccount", Namespace: fmt.Sprintf("ns-%d", rnd.IntN(policyNamespaces)), Name: fmt.Sprintf("sa-%d", rnd.IntN(policySAs))})
			}
		}
		return out
	}
	add := func(i cache.Indexer, o any) {
		if err := i.Add(o); err != nil {
			tb.Fatal(err)
		}
	}
	for n := range roles / 2 {
		name := fmt.Sprintf("cr-%d", n)
		add(p.clusterRoles, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules()})
		// Most cluster roles are bound in a namespace, as admin/edit/view are.
		if n%4 == 0 {
			add(p.clusterBindings, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name}, Subjects: subjects(),
				RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name}})
		} else {
			add(p.bindings, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: fmt.Sprintf("ns-%d", n%policyNamespaces)}, Subjects: subjects(),
				RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name}})
		}
	}
	for n := range roles / 2 {
		ns := fmt.Sprintf("ns-%d", n%policyNamespaces)
		name := fmt.Sprintf("role-%d", n)
		add(p.roles, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Rules: rules()})
		add(p.bindings, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Subjects: subjects(),
			RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name}})
	}
	return p
}

func (p *rbacPolicy) listers() auth.RBACListers {
	return auth.RBACListers{
		Roles:               rbaclisters.NewRoleLister(p.roles),
		RoleBindings:        rbaclisters.NewRoleBindingLister(p.bindings),
		ClusterRoles:        rbaclisters.NewClusterRoleLister(p.clusterRoles),
		ClusterRoleBindings: rbaclisters.NewClusterRoleBindingLister(p.clusterBindings),
	}
}

// requests is a fixed mix of users (with 0–3 groups), service accounts,
// verbs and resources, namespaced and cluster-wide.
func policyRequests(n int) []auth.Attributes {
	rnd := rand.New(rand.NewPCG(3, 4))
	verbs := []string{"get", "list", "watch", "create", "update", "delete", "patch"}
	out := make([]auth.Attributes, n)
	for i := range out {
		var u *auth.User
		if rnd.IntN(4) == 0 {
			u = &auth.User{Name: fmt.Sprintf("system:serviceaccount:ns-%d:sa-%d", rnd.IntN(policyNamespaces), rnd.IntN(policySAs)),
				Groups: []string{"system:serviceaccounts", "system:authenticated"}}
		} else {
			u = &auth.User{Name: fmt.Sprintf("user-%d", rnd.IntN(policyUsers)), Groups: []string{"system:authenticated"}}
			for range rnd.IntN(4) {
				u.Groups = append(u.Groups, fmt.Sprintf("group-%d", rnd.IntN(policyGroups)))
			}
		}
		r := policyResources[rnd.IntN(len(policyResources))]
		a := auth.Attributes{User: u, Verb: verbs[rnd.IntN(len(verbs))], ResourceRequest: true, APIGroup: r.group, Resource: r.resource}
		if rnd.IntN(5) != 0 {
			a.Namespace = fmt.Sprintf("ns-%d", rnd.IntN(policyNamespaces))
		}
		out[i] = a
	}
	return out
}

// BenchmarkRBACAuthorize measures one RBAC decision with 1,000 roles and
// 1,000 bindings, and reports the 50th and 99th percentile per decision
// and the share of requests allowed.
func BenchmarkRBACAuthorize(b *testing.B) {
	rbac := auth.NewRBAC(newRBACPolicy(b, 1000).listers())
	reqs := policyRequests(4096)
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	allowed := 0
	i := 0
	for b.Loop() {
		a := reqs[i%len(reqs)]
		i++
		start := time.Now()
		d, _, _ := rbac.Authorize(ctx, a)
		lat = append(lat, time.Since(start))
		if d == auth.Allow {
			allowed++
		}
	}
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(float64(len(lat)-1)*p)].Nanoseconds()) / 1000 }
	b.ReportMetric(pct(0.5), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
	b.ReportMetric(float64(allowed)*100/float64(len(lat)), "allowed-%")
}
