package server_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

const reviewTokens = "bob-token,bob,1001,\"devs\"\nnobody-token,nobody,1002\n"

// TestReviewDiscovery pins the review resources as kube-apiserver lists
// them: create only, no storage version hash.
func TestReviewDiscovery(t *testing.T) {
	srv := startWithTokens(t, reviewTokens)
	dc := kubernetes.NewForConfigOrDie(srv.Config).Discovery()
	want := map[string][]string{
		"authorization.k8s.io/v1":  {"localsubjectaccessreviews:true", "selfsubjectaccessreviews:false", "selfsubjectrulesreviews:false", "subjectaccessreviews:false"},
		"authentication.k8s.io/v1": {"selfsubjectreviews:false", "tokenreviews:false"},
	}
	for gv, resources := range want {
		list, err := dc.ServerResourcesForGroupVersion(gv)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range list.APIResources {
			got = append(got, fmt.Sprintf("%s:%v", r.Name, r.Namespaced))
			if !slices.Equal(r.Verbs, []string{"create"}) || r.StorageVersionHash != "" || r.SingularName == "" {
				t.Errorf("%s %s: verbs %v, storageVersionHash %q, singular %q", gv, r.Name, r.Verbs, r.StorageVersionHash, r.SingularName)
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, resources) {
			t.Errorf("%s: resources %v, want %v", gv, got, resources)
		}
	}
}

func TestReviewAccess(t *testing.T) {
	ctx := context.Background()
	srv := startWithTokens(t, reviewTokens)
	admin := kubernetes.NewForConfigOrDie(srv.Config)
	bob := kubernetes.NewForConfigOrDie(tokenConfig(srv, "bob-token"))
	grant(t, admin, "cm-reader", "bob", "default", rule(list("get", "list"), list(""), list("configmaps")))

	ssar := func(verb, resource, ns string) (*authorizationv1.SelfSubjectAccessReview, error) {
		return bob.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
			Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{
				Verb: verb, Resource: resource, Namespace: ns}},
		}, metav1.CreateOptions{})
	}
	eventually(t, "bob may list configmaps", func() error {
		r, err := ssar("list", "configmaps", "default")
		if err != nil {
			return err
		}
		if !r.Status.Allowed {
			return fmt.Errorf("not allowed: %+v", r.Status)
		}
		return nil
	})
	r, err := ssar("list", "configmaps", "default")
	if err != nil {
		t.Fatal(err)
	}
	if want := `RBAC: allowed by RoleBinding "cm-reader/default" of ClusterRole "cm-reader" to User "bob"`; r.Status.Reason != want {
		t.Errorf("reason %q, want %q", r.Status.Reason, want)
	}
	if r, err := ssar("delete", "configmaps", "default"); err != nil || r.Status.Allowed || r.Status.Denied {
		t.Errorf("delete: %+v, %v; want neither allowed nor denied", r.Status, err)
	}
	if r, err := ssar("list", "configmaps", "kube-system"); err != nil || r.Status.Allowed {
		t.Errorf("other namespace: %+v, %v", r.Status, err)
	}

	// A SubjectAccessReview asks about someone else; bob may not make one.
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: "bob", Groups: []string{"devs"},
		ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: "get", Resource: "configmaps", Namespace: "default"},
	}}
	got, err := admin.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
	if err != nil || !got.Status.Allowed {
		t.Fatalf("SubjectAccessReview for bob: %+v, %v", got, err)
	}
	_, err = bob.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
	if want := `subjectaccessreviews.authorization.k8s.io is forbidden: User "bob" cannot create resource "subjectaccessreviews" in API group "authorization.k8s.io" at the cluster scope`; !apierrors.IsForbidden(err) || err.Error() != want {
		t.Errorf("bob's SubjectAccessReview: %v\nwant %s", err, want)
	}
	nonResource := sar.DeepCopy()
	nonResource.Spec.Groups = []string{"devs", "system:authenticated"} // a SAR adds no groups
	nonResource.Spec.ResourceAttributes = nil
	nonResource.Spec.NonResourceAttributes = &authorizationv1.NonResourceAttributes{Verb: "get", Path: "/version"}
	if got, err := admin.AuthorizationV1().SubjectAccessReviews().Create(ctx, nonResource, metav1.CreateOptions{}); err != nil || !got.Status.Allowed {
		t.Errorf("system:public-info-viewer lets bob get /version: %+v, %v", got, err)
	}

	// Validation is upstream's: 422 for a spec that asks nothing. The
	// kind is missing from the message as in kube-apiserver, whose
	// storage sees the decoded internal object without its TypeMeta.
	empty := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{User: "bob"}}
	_, err = admin.AuthorizationV1().SubjectAccessReviews().Create(ctx, empty, metav1.CreateOptions{})
	if want := `.authorization.k8s.io "" is invalid: spec: Invalid value: null: exactly one of nonResourceAttributes or resourceAttributes must be specified`; !apierrors.IsInvalid(err) || err.Error() != want {
		t.Errorf("empty spec: %v\nwant %s", err, want)
	}

	// LocalSubjectAccessReview: namespaced, and the spec's namespace must
	// be the object's.
	lsar := &authorizationv1.LocalSubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: "bob", ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: "list", Resource: "configmaps", Namespace: "default"},
	}}
	if got, err := admin.AuthorizationV1().LocalSubjectAccessReviews("default").Create(ctx, lsar, metav1.CreateOptions{}); err != nil || !got.Status.Allowed || got.Namespace != "default" {
		t.Errorf("LocalSubjectAccessReview: %+v, %v", got, err)
	}
	lsar.Spec.ResourceAttributes.Namespace = "kube-system"
	_, err = admin.AuthorizationV1().LocalSubjectAccessReviews("default").Create(ctx, lsar, metav1.CreateOptions{})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), `spec.resourceAttributes.namespace: Invalid value: "kube-system": must match metadata.namespace`) {
		t.Errorf("mismatched spec namespace: %v", err)
	}
	lsar.Namespace = "kube-system"
	_, err = admin.AuthorizationV1().LocalSubjectAccessReviews("default").Create(ctx, lsar, metav1.CreateOptions{})
	if !apierrors.IsBadRequest(err) || err.Error() != "the namespace of the provided object does not match the namespace sent on the request" {
		t.Errorf("mismatched metadata namespace: %v", err)
	}

	// SelfSubjectRulesReview lists what bob may do in default.
	rr, err := bob.AuthorizationV1().SelfSubjectRulesReviews().Create(ctx, &authorizationv1.SelfSubjectRulesReview{
		Spec: authorizationv1.SelfSubjectRulesReviewSpec{Namespace: "default"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rr.Status.Incomplete || !hasResourceRule(rr.Status.ResourceRules, "list", "configmaps") ||
		!hasResourceRule(rr.Status.ResourceRules, "create", "selfsubjectaccessreviews") || len(rr.Status.NonResourceRules) == 0 {
		t.Errorf("rules review: %+v", rr.Status)
	}
	_, err = bob.AuthorizationV1().SelfSubjectRulesReviews().Create(ctx, &authorizationv1.SelfSubjectRulesReview{}, metav1.CreateOptions{})
	if !apierrors.IsBadRequest(err) || err.Error() != "no namespace on request" {
		t.Errorf("rules review without namespace: %v", err)
	}

	// Only create is served.
	err = admin.AuthorizationV1().RESTClient().Get().AbsPath("/apis/authorization.k8s.io/v1/subjectaccessreviews").Do(ctx).Error()
	if !apierrors.IsMethodNotSupported(err) {
		t.Errorf("GET subjectaccessreviews: %v, want 405", err)
	}
	err = admin.AuthorizationV1().RESTClient().Get().AbsPath("/apis/authorization.k8s.io/v1/subjectaccessreviews/x").Do(ctx).Error()
	if !apierrors.IsNotFound(err) {
		t.Errorf("GET subjectaccessreviews/x: %v, want 404", err)
	}
}

func hasResourceRule(rules []authorizationv1.ResourceRule, verb, resource string) bool {
	for _, r := range rules {
		if slices.Contains(r.Verbs, verb) && slices.Contains(r.Resources, resource) {
			return true
		}
	}
	return false
}

func TestReviewAuthentication(t *testing.T) {
	ctx := context.Background()
	srv := startWithTokens(t, reviewTokens)
	admin := kubernetes.NewForConfigOrDie(srv.Config)
	bob := kubernetes.NewForConfigOrDie(tokenConfig(srv, "bob-token"))

	ssr, err := bob.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if u := ssr.Status.UserInfo; u.Username != "bob" || u.UID != "1001" || !slices.Equal(u.Groups, []string{"devs", "system:authenticated"}) {
		t.Errorf("SelfSubjectReview: %+v", u)
	}

	tr, err := admin.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: "bob-token"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !tr.Status.Authenticated || tr.Status.User.Username != "bob" || tr.Status.Error != "" {
		t.Errorf("TokenReview of bob's token: %+v", tr.Status)
	}
	tr, err = admin.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: "forged"},
	}, metav1.CreateOptions{})
	if err != nil || tr.Status.Authenticated || tr.Status.User.Username != "" || tr.Status.Error != "" {
		t.Errorf("TokenReview of an unknown token: %+v, %v", tr.Status, err)
	}
	_, err = admin.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{}, metav1.CreateOptions{})
	if !apierrors.IsBadRequest(err) || err.Error() != "token is required for TokenReview in authentication" {
		t.Errorf("TokenReview without token: %v", err)
	}
	_, err = bob.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: "bob-token"},
	}, metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) {
		t.Errorf("bob may review tokens: %v", err)
	}
}

// TestReviewKubectl drives `kubectl auth can-i` and `kubectl auth whoami`.
func TestReviewKubectl(t *testing.T) {
	srv := startWithTokens(t, reviewTokens)
	admin := kubernetes.NewForConfigOrDie(srv.Config)
	grant(t, admin, "cm-reader", "bob", "default", rule(list("get", "list"), list(""), list("configmaps")))
	bobConfig := tokenKubeconfig(t, srv, "bob-token")

	eventually(t, "kubectl auth can-i list configmaps", func() error {
		r := kubectl(t, bobConfig, "", "auth", "can-i", "list", "configmaps")
		if r.code != 0 || r.stdout != "yes\n" {
			return fmt.Errorf("exit %d %s: %q", r.code, r.fatal, r.stdout)
		}
		return nil
	})
	if out := mustKubectl(t, srv.KubeconfigPath(), "", "auth", "can-i", "get", "configmaps", "-n", "default", "--as", "bob"); out != "yes\n" {
		t.Errorf("can-i --as bob: %q", out)
	}
	if out := mustKubectl(t, srv.KubeconfigPath(), "", "auth", "can-i", "get", "/version", "--as", "bob"); out != "yes\n" {
		t.Errorf("can-i non-resource URL: %q", out)
	}
	out := mustKubectl(t, bobConfig, "", "auth", "can-i", "--list")
	for _, want := range []string{"Resources", "configmaps", "[get list]", "selfsubjectaccessreviews.authorization.k8s.io", "[/version]"} {
		if !strings.Contains(out, want) {
			t.Errorf("can-i --list lacks %q:\n%s", want, out)
		}
	}
	out = mustKubectl(t, bobConfig, "", "auth", "whoami")
	fields := strings.Join(strings.Fields(out), " ")
	for _, want := range []string{"Username bob", "UID 1001", "Groups [devs system:authenticated]"} {
		if !strings.Contains(fields, want) {
			t.Errorf("whoami lacks %q:\n%s", want, out)
		}
	}
	out = mustKubectl(t, srv.KubeconfigPath(), "", "auth", "whoami", "--as", "bob", "--as-group", "devs", "-o", "jsonpath={.status.userInfo.groups}")
	if out != `["devs","system:authenticated"]` {
		t.Errorf("whoami --as: %s", out)
	}
	// "no" makes kubectl exit 1; ask the same question through client-go.
	nobody := kubernetes.NewForConfigOrDie(tokenConfig(srv, "nobody-token"))
	r, err := nobody.AuthorizationV1().SelfSubjectAccessReviews().Create(context.Background(), &authorizationv1.SelfSubjectAccessReview{
		Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: "list", Resource: "configmaps", Namespace: "default"}},
	}, metav1.CreateOptions{})
	if err != nil || r.Status.Allowed {
		t.Errorf("nobody: %+v, %v", r, err)
	}
}
