package server_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "gopkg.in/go-jose/go-jose.v2"
	"gopkg.in/go-jose/go-jose.v2/jwt"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/trellis-project/trellis/server"
	"github.com/trellis-project/trellis/trellistest"
)

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestAuthorizationConfigChain: an AuthorizationConfiguration chains a
// webhook limited by CEL matchConditions, RBAC, and a webhook that cannot
// be reached with failurePolicy Deny, in that order.
func TestAuthorizationConfigChain(t *testing.T) {
	var calls atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("/authz", func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		var review authorizationv1.SubjectAccessReview
		json.NewDecoder(r.Body).Decode(&review)
		ra := review.Spec.ResourceAttributes
		switch {
		case review.Spec.User == "wendy" && ra.Resource == "configmaps" && ra.Verb == "list":
			review.Status = authorizationv1.SubjectAccessReviewStatus{Allowed: true, Reason: "wendy may"}
		case ra.Resource == "secrets":
			review.Status = authorizationv1.SubjectAccessReviewStatus{Denied: true, Reason: "no secrets in hooked"}
		}
		json.NewEncoder(w).Encode(review)
	})
	cert, caPEM := webhookCert(t, "authz-hook.example.com")
	hook := httptest.NewUnstartedServer(mux)
	hook.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	hook.StartTLS()
	defer hook.Close()
	down := httptest.NewUnstartedServer(http.NotFoundHandler())
	down.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	down.StartTLS()
	downURL := down.URL
	down.Close() // connections are refused from now on

	config := writeFile(t, "authz.yaml", fmt.Sprintf(`apiVersion: apiserver.config.k8s.io/v1
kind: AuthorizationConfiguration
authorizers:
- type: Webhook
  name: hooked-namespace
  webhook:
    timeout: 3s
    subjectAccessReviewVersion: v1
    matchConditionSubjectAccessReviewVersion: v1
    failurePolicy: NoOpinion
    authorizedTTL: 5m
    unauthorizedTTL: 30s
    cacheAuthorizedRequests: false
    cacheUnauthorizedRequests: false
    connectionInfo:
      type: KubeConfigFile
      kubeConfigFile: %s
    matchConditions:
    - expression: has(request.resourceAttributes) && request.resourceAttributes.namespace == 'hooked'
- type: RBAC
  name: rbac
- type: Webhook
  name: unreachable
  webhook:
    timeout: 1s
    subjectAccessReviewVersion: v1
    matchConditionSubjectAccessReviewVersion: v1
    failurePolicy: Deny
    authorizedTTL: 1m
    unauthorizedTTL: 1m
    cacheAuthorizedRequests: false
    cacheUnauthorizedRequests: false
    connectionInfo:
      type: KubeConfigFile
      kubeConfigFile: %s
    matchConditions:
    - expression: request.user == 'frank'
`, webhookKubeconfig(t, hook.URL+"/authz", caPEM), webhookKubeconfig(t, downURL+"/authz", caPEM)))
	tokens := writeFile(t, "tokens.csv", "wendy-token,wendy,u1\nbob-token,bob,u2\nfrank-token,frank,u3\n")
	srv := trellistest.StartServer(t, trellistest.WithConfig(func(c *server.Config) {
		c.AuthorizationConfigFile = config
		c.TokenAuthFile = tokens
	}))
	ctx := context.Background()
	admin := kubernetes.NewForConfigOrDie(srv.Config)
	grant(t, admin, "bob-secrets", "bob", "", rule(list("list"), list(""), list("secrets")))
	grant(t, admin, "frank-cms", "frank", "", rule(list("list"), list(""), list("configmaps")))
	as := func(token string) kubernetes.Interface { return kubernetes.NewForConfigOrDie(tokenConfig(srv, token)) }
	wendy, bob, frank := as("wendy-token"), as("bob-token"), as("frank-token")

	// The webhook is asked only when its match condition holds.
	if _, err := wendy.CoreV1().ConfigMaps("hooked").List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("wendy in hooked (webhook allows): %v", err)
	}
	before := calls.Load()
	if before == 0 {
		t.Fatal("the webhook was not asked")
	}
	if _, err := wendy.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("wendy in default (no match, RBAC silent): %v, want 403", err)
	}
	if calls.Load() != before {
		t.Errorf("webhook asked about a request its matchConditions exclude")
	}
	// Order: the webhook's denial comes before RBAC's grant.
	eventually(t, "bob's RBAC grant", func() error {
		_, err := bob.CoreV1().Secrets("default").List(ctx, metav1.ListOptions{})
		return err
	})
	_, err := bob.CoreV1().Secrets("hooked").List(ctx, metav1.ListOptions{})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "no secrets in hooked") {
		t.Errorf("bob in hooked: %v, want the webhook's denial", err)
	}
	// The unreachable webhook with failurePolicy Deny denies what it
	// matches and RBAC did not allow; RBAC's grant is not affected.
	eventually(t, "frank's RBAC grant", func() error {
		_, err := frank.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{})
		return err
	})
	if _, err := frank.CoreV1().Secrets("default").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("frank's secrets via the unreachable webhook: %v, want 403", err)
	}
	// The review APIs ask the same chain.
	ssar, err := wendy.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
		Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{
			Namespace: "hooked", Verb: "list", Resource: "configmaps"}}}, metav1.CreateOptions{})
	if err != nil || !ssar.Status.Allowed {
		t.Errorf("SelfSubjectAccessReview for wendy in hooked: %v %+v", err, ssar)
	}
}

// TestAuthorizationConfigRefused: the file is validated as kube-apiserver
// validates it, and it excludes --authorization-mode.
func TestAuthorizationConfigRefused(t *testing.T) {
	rbacOnly := writeFile(t, "rbac.yaml", "apiVersion: apiserver.config.k8s.io/v1\nkind: AuthorizationConfiguration\nauthorizers:\n- {type: RBAC, name: rbac}\n")
	for _, tc := range []struct {
		name string
		cfg  func(*server.Config)
		want string
	}{
		{"with --authorization-mode", func(c *server.Config) {
			c.AuthorizationConfigFile, c.AuthorizationModes = rbacOnly, []string{"RBAC"}
		}, "--authorization-config can not be specified when --authorization-mode or --authorization-webhook-* flags are defined"},
		{"duplicate RBAC", func(c *server.Config) {
			c.AuthorizationConfigFile = writeFile(t, "dup.yaml", "apiVersion: apiserver.config.k8s.io/v1\nkind: AuthorizationConfiguration\nauthorizers:\n- {type: RBAC, name: a}\n- {type: RBAC, name: b}\n")
		}, `authorizers[1].type: Duplicate value: "RBAC"`},
		{"bad CEL", func(c *server.Config) {
			c.AuthorizationConfigFile = writeFile(t, "cel.yaml", `apiVersion: apiserver.config.k8s.io/v1
kind: AuthorizationConfiguration
authorizers:
- type: Webhook
  name: w
  webhook:
    timeout: 3s
    subjectAccessReviewVersion: v1
    matchConditionSubjectAccessReviewVersion: v1
    failurePolicy: Deny
    connectionInfo: {type: InClusterConfig}
    matchConditions:
    - expression: request.nope ==
`)
		}, `authorizers[0].matchConditions[0].expression: Invalid value: "request.nope ==": compilation failed`},
		{"unknown field", func(c *server.Config) {
			c.AuthorizationConfigFile = writeFile(t, "strict.yaml", "apiVersion: apiserver.config.k8s.io/v1\nkind: AuthorizationConfiguration\nauthorizers:\n- {type: RBAC, name: rbac, color: red}\n")
		}, `unknown field "authorizers[0].color"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := runWithConfig(t, tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run: %v\nwant an error with %s", err, tc.want)
			}
		})
	}
}

// runWithConfig runs a server that is expected to refuse its
// configuration, and returns Run's error.
func runWithConfig(t *testing.T, edit func(*server.Config)) error {
	t.Helper()
	cfg := server.Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0"}
	edit(&cfg)
	srv, err := server.New(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	select {
	case err := <-done:
		return err
	case <-srv.Ready():
		cancel()
		<-done
		return nil
	}
}

// testIssuer is an OIDC issuer served over TLS: discovery and JWKS, and
// a key to sign tokens with.
type testIssuer struct {
	url   string
	caPEM []byte
	key   *rsa.PrivateKey
}

func startIssuer(t *testing.T) *testIssuer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	iss := &testIssuer{key: key}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"issuer": iss.url, "jwks_uri": iss.url + "/jwks",
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	})
	cert, caPEM := webhookCert(t, "issuer.example.com")
	ts := httptest.NewUnstartedServer(mux)
	ts.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	ts.StartTLS()
	t.Cleanup(ts.Close)
	iss.url, iss.caPEM = ts.URL, caPEM
	return iss
}

// sign makes a token with the given claims; key nil signs with the
// issuer's key.
func (iss *testIssuer) sign(t *testing.T, key *rsa.PrivateKey, claims map[string]any) string {
	t.Helper()
	if key == nil {
		key = iss.key
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(signer).Claims(claims).CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestAuthenticationConfigJWT: a JWT issuer from an
// AuthenticationConfiguration, with claim mappings (claims, prefixes and
// CEL), claim and user validation rules, and anonymous access limited to
// one path.
func TestAuthenticationConfigJWT(t *testing.T) {
	iss := startIssuer(t)
	indent := func(s string) string { return strings.ReplaceAll(strings.TrimSpace(s), "\n", "\n      ") }
	config := writeFile(t, "authn.yaml", fmt.Sprintf(`apiVersion: apiserver.config.k8s.io/v1
kind: AuthenticationConfiguration
jwt:
- issuer:
    url: %s
    audiences: [trellis, other]
    audienceMatchPolicy: MatchAny
    certificateAuthority: |
      %s
  claimValidationRules:
  - claim: hd
    requiredValue: example.com
  - expression: 'claims.exp - claims.nbf <= 86400'
    message: tokens may live a day at most
  claimMappings:
    username:
      claim: sub
      prefix: "oidc:"
    groups:
      claim: groups
      prefix: "team:"
    uid:
      expression: 'claims.sid' 
    extra:
    - key: example.com/tenant
      valueExpression: claims.tenant
  userValidationRules:
  - expression: "!user.username.startsWith('oidc:system:')"
    message: username cannot use the reserved system prefix
anonymous:
  enabled: true
  conditions:
  - path: /livez
`, iss.url, indent(string(iss.caPEM))))
	srv := trellistest.StartServer(t, trellistest.WithConfig(func(c *server.Config) {
		c.AuthorizationModes = []string{"RBAC"}
		c.AuthenticationConfigFile = config
	}))
	ctx := context.Background()
	now := time.Now()
	claims := func(edit func(map[string]any)) map[string]any {
		c := map[string]any{
			"iss": iss.url, "aud": "trellis", "sub": "alice", "sid": "s-42", "hd": "example.com",
			"groups": []string{"dev", "ops"}, "tenant": "acme",
			"iat": now.Unix(), "nbf": now.Add(-time.Minute).Unix(), "exp": now.Add(time.Hour).Unix(),
		}
		if edit != nil {
			edit(c)
		}
		return c
	}
	whoami := func(token string) (authenticationv1.UserInfo, error) {
		r, err := kubernetes.NewForConfigOrDie(tokenConfig(srv, token)).AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
		if err != nil {
			return authenticationv1.UserInfo{}, err
		}
		return r.Status.UserInfo, nil
	}

	good := iss.sign(t, nil, claims(nil))
	var u authenticationv1.UserInfo
	// The authenticator fetches discovery and keys in the background.
	eventually(t, "issuer ready", func() (err error) { u, err = whoami(good); return err })
	if u.Username != "oidc:alice" || u.UID != "s-42" ||
		strings.Join(u.Groups, ",") != "team:dev,team:ops,system:authenticated" ||
		fmt.Sprint(u.Extra["example.com/tenant"]) != "[acme]" {
		t.Errorf("mapped user: %+v", u)
	}
	// The second audience is accepted too (MatchAny).
	if _, err := whoami(iss.sign(t, nil, claims(func(c map[string]any) { c["aud"] = []string{"other"} }))); err != nil {
		t.Errorf("token for the second audience: %v", err)
	}
	// RBAC sees the mapped identity.
	admin := kubernetes.NewForConfigOrDie(srv.Config)
	if _, err := admin.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "team-dev-view"},
		Subjects:   []rbacv1.Subject{{Kind: "Group", APIGroup: rbacv1.GroupName, Name: "team:dev"}},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "view"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	alice := kubernetes.NewForConfigOrDie(tokenConfig(srv, good))
	eventually(t, "group binding", func() error {
		_, err := alice.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{})
		return err
	})

	otherKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		token string
	}{
		{"wrong audience", iss.sign(t, nil, claims(func(c map[string]any) { c["aud"] = "someone-else" }))},
		{"expired", iss.sign(t, nil, claims(func(c map[string]any) {
			c["nbf"], c["exp"] = now.Add(-2*time.Hour).Unix(), now.Add(-time.Hour).Unix()
		}))},
		{"signed by another key", iss.sign(t, otherKey, claims(nil))},
		{"claim validation: required value", iss.sign(t, nil, claims(func(c map[string]any) { c["hd"] = "evil.com" }))},
		{"claim validation: CEL", iss.sign(t, nil, claims(func(c map[string]any) { c["exp"] = now.Add(48 * time.Hour).Unix() }))},
		{"user validation", iss.sign(t, nil, claims(func(c map[string]any) { c["sub"] = "system:admin" }))},
		{"another issuer", iss.sign(t, nil, claims(func(c map[string]any) { c["iss"] = "https://evil.example.com" }))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := rest.CopyConfig(tokenConfig(srv, tc.token))
			cfg.GroupVersion, cfg.NegotiatedSerializer = nil, nil
			body, err := kubernetes.NewForConfigOrDie(cfg).CoreV1().RESTClient().Get().AbsPath("/api/v1/namespaces").DoRaw(ctx)
			if !apierrors.IsUnauthorized(err) {
				t.Fatalf("got %v, want 401", err)
			}
			if !strings.Contains(string(body), `"message":"Unauthorized"`) || strings.Contains(string(body), "claim") ||
				strings.Contains(string(body), "system prefix") || strings.Contains(string(body), "audience") {
				t.Errorf("401 body says too much: %s", body)
			}
		})
	}

	// Anonymous requests: only /livez, as configured (not /healthz, which
	// is anonymous without a configuration).
	anon := rest.AnonymousClientConfig(srv.Config)
	anon.GroupVersion, anon.NegotiatedSerializer = nil, nil
	rc := kubernetes.NewForConfigOrDie(anon).CoreV1().RESTClient()
	if _, err := rc.Get().AbsPath("/livez").DoRaw(ctx); err != nil {
		t.Errorf("anonymous /livez: %v", err)
	}
	for _, p := range []string{"/healthz", "/api"} {
		if _, err := rc.Get().AbsPath(p).DoRaw(ctx); !apierrors.IsUnauthorized(err) {
			t.Errorf("anonymous %s: %v, want 401", p, err)
		}
	}
	// A refused token is not downgraded to anonymous, even where anonymous
	// access is allowed.
	bad := rest.CopyConfig(tokenConfig(srv, iss.sign(t, otherKey, claims(nil))))
	bad.GroupVersion, bad.NegotiatedSerializer = nil, nil
	if _, err := kubernetes.NewForConfigOrDie(bad).CoreV1().RESTClient().Get().AbsPath("/livez").DoRaw(ctx); !apierrors.IsUnauthorized(err) {
		t.Errorf("forged token on /livez: %v, want 401", err)
	}
}

// TestAuthenticationConfigRefused: validation as kube-apiserver's.
func TestAuthenticationConfigRefused(t *testing.T) {
	for _, tc := range []struct{ name, file, want string }{
		{"http issuer", "jwt:\n- issuer: {url: 'http://issuer.test', audiences: [a]}\n  claimMappings: {username: {claim: sub, prefix: ''}}\n",
			`jwt[0].issuer.url: Invalid value: "http://issuer.test": URL scheme must be https`},
		{"service-account issuer", "jwt:\n- issuer: {url: 'https://kubernetes.default.svc.cluster.local', audiences: [a]}\n  claimMappings: {username: {claim: sub, prefix: ''}}\n",
			`jwt[0].issuer.url: Invalid value: "https://kubernetes.default.svc.cluster.local": URL must not overlap with disallowed issuers`},
		{"username without prefix", "jwt:\n- issuer: {url: 'https://issuer.test', audiences: [a]}\n  claimMappings: {username: {claim: sub}}\n",
			`jwt[0].claimMappings.username.prefix: Required value: prefix is required when claim is set`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := writeFile(t, "authn.yaml", "apiVersion: apiserver.config.k8s.io/v1\nkind: AuthenticationConfiguration\n"+tc.file)
			err := runWithConfig(t, func(c *server.Config) { c.AuthenticationConfigFile = file })
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run: %v\nwant an error with %s", err, tc.want)
			}
		})
	}
}
