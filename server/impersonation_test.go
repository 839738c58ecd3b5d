package server_test

import (
	"context"
	"net/http"
	"slices"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/transport"

	"github.com/trellis-project/trellis/trellistest"
)

const impersonationTokens = "alice-token,alice,1\ncarol-token,carol,3\ndave-token,dave,4\n"

// impersonating returns a client authenticated with token that
// impersonates as.
func impersonating(srv *trellistest.Server, token string, as rest.ImpersonationConfig) kubernetes.Interface {
	cfg := tokenConfig(srv, token)
	cfg.Impersonate = as
	return kubernetes.NewForConfigOrDie(cfg)
}

func whoami(c kubernetes.Interface) (authenticationv1.UserInfo, error) {
	r, err := c.AuthenticationV1().SelfSubjectReviews().Create(context.Background(), &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		return authenticationv1.UserInfo{}, err
	}
	return r.Status.UserInfo, nil
}

func TestImpersonation(t *testing.T) {
	ctx := context.Background()
	srv := startWithTokens(t, impersonationTokens)
	admin := kubernetes.NewForConfigOrDie(srv.Config)

	// alice holds legacy grants: the impersonate verb on one user, one
	// group, one uid, one extra value and one service account.
	grant(t, admin, "alice-impersonates", "alice", "",
		rule(list("impersonate"), list(""), list("users"), "bob"),
		rule(list("impersonate"), list(""), list("groups"), "devs"),
		rule(list("impersonate"), list("authentication.k8s.io"), list("uids"), "42"),
		rule(list("impersonate"), list("authentication.k8s.io"), list("userextras/scopes"), "view"),
		rule(list("impersonate"), list(""), list("serviceaccounts"), "robot"),
	)
	// dave holds constrained grants: impersonate any user-info user while
	// listing configmaps, nothing else.
	grant(t, admin, "dave-impersonates", "dave", "",
		rule(list("impersonate:user-info"), list("authentication.k8s.io"), list("users")),
		rule(list("impersonate-on:user-info:list"), list(""), list("configmaps")),
	)
	grant(t, admin, "bob-reads", "bob", "", rule(list("list"), list(""), list("configmaps")))

	asBob := impersonating(srv, "alice-token", rest.ImpersonationConfig{UserName: "bob"})
	eventually(t, "alice acts as bob", func() error {
		_, err := whoami(asBob)
		return err
	})
	u, err := whoami(asBob)
	if err != nil || u.Username != "bob" || !slices.Equal(u.Groups, []string{"system:authenticated"}) || u.UID != "" {
		t.Errorf("as bob: %+v, %v", u, err)
	}
	// bob's grant was created after alice's; the RBAC informers may see
	// it a moment later.
	eventually(t, "bob's grant applies when impersonated", func() error {
		_, err := asBob.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{})
		return err
	})

	full := impersonating(srv, "alice-token", rest.ImpersonationConfig{
		UserName: "bob", UID: "42", Groups: []string{"devs"}, Extra: map[string][]string{"scopes": {"view"}},
	})
	u, err = whoami(full)
	if err != nil || u.Username != "bob" || u.UID != "42" || !slices.Equal(u.Groups, []string{"devs", "system:authenticated"}) ||
		!slices.Equal(u.Extra["scopes"], []string{"view"}) {
		t.Errorf("as bob with uid, group and extra: %+v, %v", u, err)
	}

	u, err = whoami(impersonating(srv, "alice-token", rest.ImpersonationConfig{UserName: "system:serviceaccount:default:robot"}))
	if err != nil || !slices.Equal(u.Groups, []string{"system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated"}) {
		t.Errorf("as a service account: %+v, %v", u, err)
	}

	// Refusals name the first mode tried, user-info, as kube-apiserver
	// v1.37 does; legacy grants do not show in the message.
	for _, tc := range []struct {
		name  string
		token string
		as    rest.ImpersonationConfig
		want  string
	}{
		{"user not granted", "alice-token", rest.ImpersonationConfig{UserName: "eve"},
			`selfsubjectreviews.authentication.k8s.io is forbidden: User "alice" cannot impersonate-on:user-info:create resource "selfsubjectreviews" in API group "authentication.k8s.io" at the cluster scope`},
		{"group not granted", "alice-token", rest.ImpersonationConfig{UserName: "bob", Groups: []string{"ops"}},
			`selfsubjectreviews.authentication.k8s.io is forbidden: User "alice" cannot impersonate-on:user-info:create resource "selfsubjectreviews" in API group "authentication.k8s.io" at the cluster scope`},
		{"no grants", "carol-token", rest.ImpersonationConfig{UserName: "bob"},
			`selfsubjectreviews.authentication.k8s.io is forbidden: User "carol" cannot impersonate-on:user-info:create resource "selfsubjectreviews" in API group "authentication.k8s.io" at the cluster scope`},
		{"service account not granted", "alice-token", rest.ImpersonationConfig{UserName: "system:serviceaccount:default:other"},
			`selfsubjectreviews.authentication.k8s.io is forbidden: User "alice" cannot impersonate-on:serviceaccount:create resource "selfsubjectreviews" in API group "authentication.k8s.io" at the cluster scope`},
		{"constrained grant for another verb", "dave-token", rest.ImpersonationConfig{UserName: "bob"},
			`selfsubjectreviews.authentication.k8s.io is forbidden: User "dave" cannot impersonate-on:user-info:create resource "selfsubjectreviews" in API group "authentication.k8s.io" at the cluster scope`},
		{"constrained grant without the group", "dave-token", rest.ImpersonationConfig{UserName: "bob", Groups: []string{"devs"}},
			`selfsubjectreviews.authentication.k8s.io is forbidden: User "dave" cannot impersonate-on:user-info:create resource "selfsubjectreviews" in API group "authentication.k8s.io" at the cluster scope`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := whoami(impersonating(srv, tc.token, tc.as))
			if !apierrors.IsForbidden(err) || err.Error() != tc.want {
				t.Errorf("got  %v\nwant %s", err, tc.want)
			}
		})
	}

	// dave's constrained grant covers listing configmaps as bob.
	asBobForDave := impersonating(srv, "dave-token", rest.ImpersonationConfig{UserName: "bob"})
	if _, err := asBobForDave.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("constrained impersonation: %v", err)
	}
	_, err = impersonating(srv, "dave-token", rest.ImpersonationConfig{UserName: "bob", Groups: []string{"devs"}}).
		CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{})
	want := `groups.authentication.k8s.io "devs" is forbidden: User "dave" cannot impersonate:user-info resource "groups" in API group "authentication.k8s.io" at the cluster scope`
	if !apierrors.IsForbidden(err) || err.Error() != want {
		t.Errorf("constrained, group not granted: %v\nwant %s", err, want)
	}
	// Constrained modes never hand out system:masters.
	_, err = impersonating(srv, "dave-token", rest.ImpersonationConfig{UserName: "bob", Groups: []string{"system:masters"}}).
		CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{})
	want = `groups.authentication.k8s.io "system:masters" is forbidden: User "dave" cannot impersonate:user-info resource "groups" in API group "authentication.k8s.io" at the cluster scope: impersonating the system:masters group is not allowed`
	if !apierrors.IsForbidden(err) || err.Error() != want {
		t.Errorf("constrained, system:masters: %v\nwant %s", err, want)
	}

	// The admin (system:masters) may impersonate anyone; impersonating
	// system:anonymous adds system:unauthenticated instead.
	u, err = whoami(impersonating(srv, "", rest.ImpersonationConfig{UserName: "system:anonymous"}))
	if err == nil {
		t.Errorf("a client without credentials impersonated: %+v", u)
	}
	adminAs := func(as rest.ImpersonationConfig) kubernetes.Interface {
		cfg := rest.CopyConfig(srv.Config)
		cfg.Impersonate = as
		return kubernetes.NewForConfigOrDie(cfg)
	}
	if _, err := whoami(adminAs(rest.ImpersonationConfig{UserName: "system:anonymous"})); !apierrors.IsForbidden(err) {
		t.Errorf("system:anonymous may create a SelfSubjectReview: %v", err)
	}
	u, err = whoami(adminAs(rest.ImpersonationConfig{UserName: "system:anonymous", Groups: []string{"system:authenticated"}}))
	if err != nil || !slices.Equal(u.Groups, []string{"system:authenticated", "system:unauthenticated"}) {
		t.Errorf("anonymous with a group: %+v, %v", u, err)
	}
}

// TestImpersonationHeaders pins the 400 for headers without a user.
func TestImpersonationHeaders(t *testing.T) {
	srv := startWithTokens(t, impersonationTokens)
	cfg := rest.CopyConfig(srv.Config)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return transport.NewImpersonatingRoundTripper(transport.ImpersonationConfig{Groups: []string{"devs"}}, rt)
	})
	_, err := kubernetes.NewForConfigOrDie(cfg).CoreV1().Namespaces().List(context.Background(), metav1.ListOptions{})
	want := `requested &user.DefaultInfo{Name:"", UID:"", Groups:[]string{"devs"}, Extra:map[string][]string(nil)} without impersonating a user name`
	if !apierrors.IsBadRequest(err) || err.Error() != want {
		t.Errorf("got  %v\nwant %s", err, want)
	}
}

// impersonatingAdmin is the admin client acting as user.
func impersonatingAdmin(srv *trellistest.Server, user string) kubernetes.Interface {
	cfg := rest.CopyConfig(srv.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
	return kubernetes.NewForConfigOrDie(cfg)
}
