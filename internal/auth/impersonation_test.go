package auth_test

import (
	"context"
	"net/http"
	"slices"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apiserver/pkg/authentication/user"

	"github.com/trellis-project/trellis/internal/auth"
)

// grants allows exactly the listed checks, written as
// "verb group/resource[/sub] namespace/name" ("*" names match any).
type grants []string

func (g grants) Authorize(_ context.Context, a auth.Attributes) (auth.Decision, string, error) {
	res := a.APIGroup + "/" + a.Resource
	if a.Subresource != "" {
		res += "/" + a.Subresource
	}
	for _, want := range []string{
		a.Verb + " " + res + " " + a.Namespace + "/" + a.Name,
		a.Verb + " " + res + " " + a.Namespace + "/*",
	} {
		if slices.Contains(g, want) {
			return auth.Allow, "", nil
		}
	}
	return auth.NoOpinion, "", nil
}

func TestImpersonationModes(t *testing.T) {
	sa := &auth.User{Name: "system:serviceaccount:kube-system:agent", Groups: []string{"system:serviceaccounts"},
		Extra: map[string][]string{"authentication.kubernetes.io/node-name": {"n1"}, "authentication.kubernetes.io/pod-name": {"p"}}}
	alice := &auth.User{Name: "alice"}
	listPods := func(u *auth.User) auth.Attributes {
		return auth.Attributes{User: u, Verb: "list", ResourceRequest: true, APIVersion: "v1", Resource: "pods", Namespace: "ns"}
	}
	for _, tc := range []struct {
		name       string
		requestor  *auth.User
		wanted     user.DefaultInfo
		grants     grants
		wantGroups []string
		wantErr    string
	}{
		{
			name: "associated node: checks ask about any node", requestor: sa,
			wanted:     user.DefaultInfo{Name: "system:node:n1"},
			grants:     grants{"impersonate-on:associated-node:list /pods ns/", "impersonate:associated-node authentication.k8s.io/nodes /*"},
			wantGroups: []string{"system:nodes", "system:authenticated"},
		},
		{
			name: "associated node: another node is arbitrary", requestor: sa,
			wanted:  user.DefaultInfo{Name: "system:node:n2"},
			grants:  grants{"impersonate-on:associated-node:list /pods ns/", "impersonate:associated-node authentication.k8s.io/nodes /*"},
			wantErr: `pods is forbidden: User "system:serviceaccount:kube-system:agent" cannot impersonate-on:arbitrary-node:list resource "pods" in API group "" in the namespace "ns"`,
		},
		{
			name: "arbitrary node", requestor: alice,
			wanted:     user.DefaultInfo{Name: "system:node:n2"},
			grants:     grants{"impersonate-on:arbitrary-node:list /pods ns/", "impersonate:arbitrary-node authentication.k8s.io/nodes /n2"},
			wantGroups: []string{"system:nodes", "system:authenticated"},
		},
		{
			name: "legacy node keeps the given groups", requestor: alice,
			wanted:     user.DefaultInfo{Name: "system:node:n2", Groups: []string{"g"}},
			grants:     grants{"impersonate /users /system:node:n2", "impersonate /groups /g"},
			wantGroups: []string{"g", "system:authenticated"},
		},
		{
			name: "constrained service account", requestor: alice,
			wanted:     user.DefaultInfo{Name: "system:serviceaccount:ns:robot"},
			grants:     grants{"impersonate-on:serviceaccount:list /pods ns/", "impersonate:serviceaccount authentication.k8s.io/serviceaccounts ns/robot"},
			wantGroups: []string{"system:serviceaccounts", "system:serviceaccounts:ns", "system:authenticated"},
		},
		{
			name: "many groups: one wildcard check", requestor: alice,
			wanted: user.DefaultInfo{Name: "bob", Groups: []string{"a", "b", "c", "d"}},
			grants: grants{"impersonate-on:user-info:list /pods ns/", "impersonate:user-info authentication.k8s.io/users /bob",
				"impersonate:user-info authentication.k8s.io/groups /*"},
			wantGroups: []string{"a", "b", "c", "d", "system:authenticated"},
		},
		{
			name: "constrained extra must be lowercase and domain-prefixed", requestor: alice,
			wanted: user.DefaultInfo{Name: "bob", Extra: map[string][]string{"scopes": {"x"}}},
			grants: grants{"impersonate-on:user-info:list /pods ns/", "impersonate:user-info authentication.k8s.io/users /bob",
				"impersonate:user-info authentication.k8s.io/userextras/scopes /x"},
			wantErr: `userextras.authentication.k8s.io is forbidden: User "alice" cannot impersonate:user-info resource "userextras" in API group "authentication.k8s.io" at the cluster scope: impersonating an invalid key in extra is not allowed: extra.key: Invalid value: "scopes": must be a domain-prefixed path (such as "acme.io/foo")`,
		},
		{
			name: "legacy extra accepts any key", requestor: alice,
			wanted:     user.DefaultInfo{Name: "bob", Extra: map[string][]string{"scopes": {"x"}}},
			grants:     grants{"impersonate /users /bob", "impersonate authentication.k8s.io/userextras/scopes /x"},
			wantGroups: []string{"system:authenticated"},
		},
		{
			name: "unauthenticated group keeps authenticated out", requestor: alice,
			wanted:     user.DefaultInfo{Name: "bob", Groups: []string{"system:unauthenticated"}},
			grants:     grants{"impersonate /users /bob", "impersonate /groups /system:unauthenticated"},
			wantGroups: []string{"system:unauthenticated"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wanted := tc.wanted
			u, err := auth.Impersonate(context.Background(), tc.grants, listPods(tc.requestor), &wanted)
			if tc.wantErr != "" {
				if !apierrors.IsForbidden(err) || err.Error() != tc.wantErr {
					t.Fatalf("got  %v\nwant %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if u.Name != tc.wanted.Name || !slices.Equal(u.Groups, tc.wantGroups) {
				t.Fatalf("impersonated %s %v, want %s %v", u.Name, u.Groups, tc.wanted.Name, tc.wantGroups)
			}
		})
	}
}

func TestWantedUser(t *testing.T) {
	h := http.Header{}
	h.Add("Impersonate-User", "bob")
	h.Add("Impersonate-Extra-Example.com%2fScopes", "a")
	h.Add("Impersonate-Extra-Example.com%2fScopes", "b")
	h.Add("X-Other", "kept")
	u, err := auth.WantedUser(h)
	if err != nil || u.Name != "bob" || !slices.Equal(u.Extra["example.com/scopes"], []string{"a", "b"}) {
		t.Fatalf("WantedUser = %+v, %v", u, err)
	}
	if len(h) != 1 || h.Get("X-Other") != "kept" {
		t.Errorf("headers left: %v", h)
	}
	if u, err := auth.WantedUser(http.Header{}); u != nil || err != nil {
		t.Errorf("no headers: %+v, %v", u, err)
	}
	h = http.Header{}
	h.Add("Impersonate-Uid", "1")
	if _, err := auth.WantedUser(h); !apierrors.IsBadRequest(err) {
		t.Errorf("uid without user: %v", err)
	}
}

func TestChainRulesFor(t *testing.T) {
	chain := auth.AuthorizerChain{auth.PrivilegedGroups{}, auth.AlwaysDeny{}, grants{}}
	res, nonRes, incomplete, err := chain.RulesFor(context.Background(), &auth.User{Name: "u"}, "ns")
	if len(res) != 0 || len(nonRes) != 0 || !incomplete || err != nil {
		t.Errorf("an authorizer that cannot list its rules makes the answer incomplete: %v %v %v %v", res, nonRes, incomplete, err)
	}
	res, nonRes, incomplete, _ = auth.AuthorizerChain{auth.AlwaysAllow{}}.RulesFor(context.Background(), &auth.User{Name: "u"}, "ns")
	if len(res) != 1 || len(nonRes) != 1 || incomplete {
		t.Errorf("AlwaysAllow: %v %v %v", res, nonRes, incomplete)
	}
}
