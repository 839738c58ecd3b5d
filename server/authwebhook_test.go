package server_test

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/trellis-project/trellis/server"
	"github.com/trellis-project/trellis/trellistest"
)

// webhookKubeconfig writes the kubeconfig-format file kube-apiserver reads
// for authentication and authorization webhooks.
func webhookKubeconfig(t *testing.T, url string, caPEM []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "webhook.kubeconfig")
	content := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: hook
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: apiserver
contexts:
- name: hook
  context: {cluster: hook, user: apiserver}
current-context: hook
`, url, base64.StdEncoding.EncodeToString(caPEM))
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestAuthenticationAndAuthorizationWebhooks(t *testing.T) {
	var tokenReviews, accessReviews atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("/authn", func(w http.ResponseWriter, r *http.Request) {
		tokenReviews.Add(1)
		var review authenticationv1.TokenReview
		json.NewDecoder(r.Body).Decode(&review)
		if review.Spec.Token == "webhook-token" {
			review.Status = authenticationv1.TokenReviewStatus{Authenticated: true, User: authenticationv1.UserInfo{Username: "alice", UID: "a-1", Groups: []string{"devs"}}}
		}
		json.NewEncoder(w).Encode(review)
	})
	mux.HandleFunc("/authz", func(w http.ResponseWriter, r *http.Request) {
		accessReviews.Add(1)
		var review authorizationv1.SubjectAccessReview
		json.NewDecoder(r.Body).Decode(&review)
		ra := review.Spec.ResourceAttributes
		if review.Spec.User == "alice" && ra != nil && ra.Resource == "configmaps" && ra.Namespace == "default" && ra.Verb == "list" {
			review.Status = authorizationv1.SubjectAccessReviewStatus{Allowed: true, Reason: "devs may list configmaps"}
		} else {
			review.Status = authorizationv1.SubjectAccessReviewStatus{Allowed: false, Reason: "not on the list"}
		}
		json.NewEncoder(w).Encode(review)
	})
	cert, caPEM := webhookCert(t, "auth-hook.example.com")
	hook := httptest.NewUnstartedServer(mux)
	hook.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	hook.StartTLS()
	defer hook.Close()

	srv := trellistest.StartServer(t, trellistest.WithConfig(func(c *server.Config) {
		c.AuthorizationModes = []string{"RBAC", "Webhook"}
		c.AuthenticationTokenWebhookConfigFile = webhookKubeconfig(t, hook.URL+"/authn", caPEM)
		c.AuthenticationTokenWebhookVersion = "v1"
		c.AuthorizationWebhookConfigFile = webhookKubeconfig(t, hook.URL+"/authz", caPEM)
		c.AuthorizationWebhookVersion = "v1"
	}))
	ctx := context.Background()
	asToken := func(token string) kubernetes.Interface {
		cfg := rest.AnonymousClientConfig(srv.Config)
		cfg.BearerToken = token
		return kubernetes.NewForConfigOrDie(cfg)
	}
	alice := asToken("webhook-token")

	// Authenticated by the webhook, allowed by the webhook (RBAC has no
	// opinion about alice).
	if _, err := alice.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{}); err != nil {
		t.Fatalf("list allowed by the webhook: %v", err)
	}
	// Denied, with the webhook's reason in upstream's wording.
	_, err := alice.CoreV1().Secrets("default").List(ctx, metav1.ListOptions{})
	want := `secrets is forbidden: User "alice" cannot list resource "secrets" in API group "" in the namespace "default": not on the list`
	if !apierrors.IsForbidden(err) || err.Error() != want {
		t.Errorf("denied list: %v\nwant %s", err, want)
	}
	// An unknown token is 401.
	if _, err := asToken("nobody").CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{}); !apierrors.IsUnauthorized(err) {
		t.Errorf("unknown token: %v, want 401", err)
	}
	// Answers are cached: repeating a request asks neither webhook again.
	tr, sar := tokenReviews.Load(), accessReviews.Load()
	for range 3 {
		if _, err := alice.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if tokenReviews.Load() != tr || accessReviews.Load() != sar {
		t.Errorf("webhooks called again for cached answers: %d token reviews, %d access reviews more", tokenReviews.Load()-tr, accessReviews.Load()-sar)
	}
	// The identity reached the server as the webhook gave it.
	review, err := alice.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err == nil {
		if u := review.Status.UserInfo; u.Username != "alice" || !strings.Contains(strings.Join(u.Groups, ","), "devs") {
			t.Errorf("whoami: %+v", u)
		}
	} else if !apierrors.IsForbidden(err) {
		t.Errorf("self subject review: %v", err)
	}
}
