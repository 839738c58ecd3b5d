package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/kubernetes/pkg/apis/core"
	upstream "k8s.io/kubernetes/pkg/serviceaccount"

	"github.com/trellis-project/trellis/server"
	"github.com/trellis-project/trellis/trellistest"
)

// poll waits for cond, failing the test with what after 10 seconds.
func poll(t *testing.T, what string, cond func(ctx context.Context) (bool, error)) {
	t.Helper()
	if err := wait.PollUntilContextTimeout(context.Background(), 10*time.Millisecond, 10*time.Second, true, cond); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func createSA(t *testing.T, c kubernetes.Interface, ns, name string) *corev1.ServiceAccount {
	t.Helper()
	sa, err := c.CoreV1().ServiceAccounts(ns).Create(context.Background(), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return sa
}

func requestToken(t *testing.T, c kubernetes.Interface, ns, name string, spec authenticationv1.TokenRequestSpec) *authenticationv1.TokenRequest {
	t.Helper()
	tr, err := c.CoreV1().ServiceAccounts(ns).CreateToken(context.Background(), name, &authenticationv1.TokenRequest{Spec: spec}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("TokenRequest for %s/%s: %v", ns, name, err)
	}
	if tr.Status.Token == "" {
		t.Fatalf("TokenRequest for %s/%s: no token", ns, name)
	}
	return tr
}

// bearer is a client that authenticates with token only.
func bearer(cfg *rest.Config, token string) kubernetes.Interface {
	c := rest.AnonymousClientConfig(cfg)
	c.BearerToken = token
	return kubernetes.NewForConfigOrDie(c)
}

// authenticates reports whether token is accepted: GET /api is allowed to
// every authenticated user (system:discovery), so only 401 fails it.
func authenticates(t *testing.T, cfg *rest.Config, token string) bool {
	t.Helper()
	_, err := bearer(cfg, token).CoreV1().RESTClient().Get().AbsPath("/api").DoRaw(context.Background())
	if err != nil && !apierrors.IsUnauthorized(err) {
		t.Fatalf("GET /api: %v", err)
	}
	return err == nil
}

// claims decodes a JWT's payload without verifying it.
func claims(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", token)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestServiceAccountTokenIdentityUnderRBAC(t *testing.T) {
	ctx := context.Background()
	srv := trellistest.StartServer(t, trellistest.WithConfig(func(c *server.Config) { c.AuthorizationModes = []string{"RBAC"} }))
	admin := kubernetes.NewForConfigOrDie(srv.Config)
	createSA(t, admin, "default", "robot")
	tr := requestToken(t, admin, "default", "robot", authenticationv1.TokenRequestSpec{})

	// Defaults: an hour, the API audience (the issuer).
	if tr.Spec.ExpirationSeconds == nil || *tr.Spec.ExpirationSeconds != 3600 {
		t.Errorf("expirationSeconds = %v, want 3600", tr.Spec.ExpirationSeconds)
	}
	if got := tr.Status.ExpirationTimestamp.Sub(tr.CreationTimestamp.Time); got != time.Hour {
		t.Errorf("expirationTimestamp - creationTimestamp = %v, want 1h", got)
	}
	c := claims(t, tr.Status.Token)
	if c["iss"] != "https://kubernetes.default.svc.cluster.local" || c["sub"] != "system:serviceaccount:default:robot" {
		t.Errorf("claims: %v", c)
	}
	if aud, _ := c["aud"].([]any); len(aud) != 1 || aud[0] != "https://kubernetes.default.svc.cluster.local" {
		t.Errorf("aud = %v", c["aud"])
	}

	robot := bearer(srv.Config, tr.Status.Token)
	_, err := robot.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{})
	want := `configmaps is forbidden: User "system:serviceaccount:default:robot" cannot list resource "configmaps" in API group "" in the namespace "default"`
	if !apierrors.IsForbidden(err) || err.Error() != want {
		t.Fatalf("unbound service account: %v\nwant %s", err, want)
	}

	// A binding to the ServiceAccount subject, and one to its namespace's
	// group, each grant what they say.
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "reader"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"list"}},
		{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"list"}},
	}}
	if _, err := admin.RbacV1().Roles("default").Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	role2 := role.DeepCopy()
	role2.Name, role2.Rules = "pod-reader", []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"list"}}}
	if _, err := admin.RbacV1().Roles("default").Create(ctx, role2, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, b := range []*rbacv1.RoleBinding{
		{ObjectMeta: metav1.ObjectMeta{Name: "robot-reader"},
			Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "robot", Namespace: "default"}},
			RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "reader"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "sas-pod-reader"},
			Subjects: []rbacv1.Subject{{Kind: "Group", Name: "system:serviceaccounts:default", APIGroup: "rbac.authorization.k8s.io"}},
			RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "pod-reader"}},
	} {
		if _, err := admin.RbacV1().RoleBindings("default").Create(ctx, b, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	poll(t, "the bound service account still cannot list configmaps and pods", func(ctx context.Context) (bool, error) {
		_, err1 := robot.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{})
		_, err2 := robot.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
		return err1 == nil && err2 == nil, nil
	})
	if _, err := robot.CoreV1().ConfigMaps("kube-system").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("a RoleBinding in default reaches kube-system: %v", err)
	}
	if _, err := robot.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("list grants create: %v", err)
	}

	// Another service account of the namespace shares the group binding
	// but not the ServiceAccount one.
	createSA(t, admin, "default", "other")
	other := bearer(srv.Config, requestToken(t, admin, "default", "other", authenticationv1.TokenRequestSpec{}).Status.Token)
	if _, err := other.CoreV1().Pods("default").List(ctx, metav1.ListOptions{}); err != nil {
		t.Fatalf("group binding: %v", err)
	}
	if _, err := other.CoreV1().Secrets("default").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("another service account gets robot's binding: %v", err)
	}

	// A service account may not request tokens for others unless RBAC
	// lets it create serviceaccounts/token.
	_, err = robot.CoreV1().ServiceAccounts("default").CreateToken(ctx, "other", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	want = `serviceaccounts "other" is forbidden: User "system:serviceaccount:default:robot" cannot create resource "serviceaccounts/token" in API group "" in the namespace "default"`
	if !apierrors.IsForbidden(err) || err.Error() != want {
		t.Fatalf("token for another service account: %v\nwant %s", err, want)
	}
}

// writeKey writes a new ECDSA key as SEC 1 PEM (what kube-apiserver's key
// flags read; openssl ecparam -genkey writes it) and returns it.
func writeKey(t *testing.T, path string) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return key
}

// mint signs a token with key for sa, expiring after exp seconds
// (negative: already expired).
func mint(t *testing.T, key *ecdsa.PrivateKey, issuer string, sa *corev1.ServiceAccount, exp int64, aud ...string) string {
	t.Helper()
	gen, err := upstream.JWTTokenGenerator(issuer, key)
	if err != nil {
		t.Fatal(err)
	}
	pub, priv, err := upstream.Claims(core.ServiceAccount{ObjectMeta: sa.ObjectMeta}, nil, nil, nil, nil, nil, exp, 0, aud, nil)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := gen.GenerateToken(context.Background(), pub, priv)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestServiceAccountTokenRefused(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "sa.key")
	key := writeKey(t, keyFile)
	const issuer = "https://issuer.test"
	srv := trellistest.StartServer(t, trellistest.WithConfig(func(c *server.Config) {
		c.ServiceAccountSigningKeyFile = keyFile
		c.ServiceAccountKeyFiles = []string{keyFile}
		c.ServiceAccountIssuers = []string{issuer, "https://old-issuer.test"}
		c.ServiceAccountMaxTokenExpiration = 2 * time.Hour
	}))
	admin := kubernetes.NewForConfigOrDie(srv.Config)
	sa := createSA(t, admin, "default", "robot")

	good := requestToken(t, admin, "default", "robot", authenticationv1.TokenRequestSpec{}).Status.Token
	if iss := claims(t, good)["iss"]; iss != issuer {
		t.Fatalf("iss = %v, want the first issuer", iss)
	}
	forger := writeKey(t, filepath.Join(dir, "other.key"))
	for _, tc := range []struct {
		name  string
		token string
		ok    bool
	}{
		{"requested", good, true},
		{"minted with the signing key", mint(t, key, issuer, sa, 600, issuer), true},
		{"from the second issuer", mint(t, key, "https://old-issuer.test", sa, 600, issuer), true},
		{"expired", mint(t, key, issuer, sa, -3600, issuer), false},
		{"for another audience", requestToken(t, admin, "default", "robot", authenticationv1.TokenRequestSpec{Audiences: []string{"https://vault.test"}}).Status.Token, false},
		{"signed by another key", mint(t, forger, issuer, sa, 600, issuer), false},
		{"from an unknown issuer", mint(t, key, "https://evil.test", sa, 600, issuer), false},
		{"not a JWT", "abc.def.ghi", false},
	} {
		if got := authenticates(t, srv.Config, tc.token); got != tc.ok {
			t.Errorf("%s: authenticated = %v, want %v", tc.name, got, tc.ok)
		}
	}

	// The refusal is a bare 401 that says nothing about why.
	body, err := bearer(srv.Config, mint(t, key, issuer, sa, -3600, issuer)).CoreV1().RESTClient().Get().AbsPath("/api").DoRaw(ctx)
	if !apierrors.IsUnauthorized(err) || strings.Contains(string(body), "expired") {
		t.Errorf("expired token: %v %s", err, body)
	}

	// Expiry bounds: shortened to the maximum with a warning; under ten
	// minutes is invalid.
	long := int64(3 * 3600)
	tr := requestToken(t, admin, "default", "robot", authenticationv1.TokenRequestSpec{ExpirationSeconds: &long})
	if *tr.Spec.ExpirationSeconds != 7200 || tr.Status.ExpirationTimestamp.Sub(tr.CreationTimestamp.Time) != 2*time.Hour {
		t.Errorf("3h request with a 2h maximum: spec %d, expires after %v", *tr.Spec.ExpirationSeconds, tr.Status.ExpirationTimestamp.Sub(tr.CreationTimestamp.Time))
	}
	short := int64(60)
	_, err = admin.CoreV1().ServiceAccounts("default").CreateToken(ctx, "robot", &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &short}}, metav1.CreateOptions{})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.expirationSeconds: Invalid value: 60: may not specify a duration less than 10 minutes") {
		t.Errorf("60s token: %v", err)
	}
	_, err = admin.CoreV1().ServiceAccounts("default").CreateToken(ctx, "nobody", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if !apierrors.IsNotFound(err) || err.Error() != `serviceaccounts "nobody" not found` {
		t.Errorf("token for a missing service account: %v", err)
	}
	_, err = admin.CoreV1().ServiceAccounts("default").CreateToken(ctx, "robot", &authenticationv1.TokenRequest{ObjectMeta: metav1.ObjectMeta{UID: "not-the-uid"}}, metav1.CreateOptions{})
	if !apierrors.IsConflict(err) {
		t.Errorf("token request with another UID: %v", err)
	}

	// Bound to a Secret: valid while the Secret lives.
	secret, err := admin.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "anchor"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bound := requestToken(t, admin, "default", "robot", authenticationv1.TokenRequestSpec{
		BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "Secret", APIVersion: "v1", Name: "anchor", UID: secret.UID},
	}).Status.Token
	if sec, _ := claims(t, bound)["kubernetes.io"].(map[string]any)["secret"].(map[string]any); sec["name"] != "anchor" || sec["uid"] != string(secret.UID) {
		t.Errorf("secret claim: %v", claims(t, bound))
	}
	if !authenticates(t, srv.Config, bound) {
		t.Fatal("secret-bound token refused")
	}
	if err := admin.CoreV1().Secrets("default").Delete(ctx, "anchor", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, "token bound to a deleted secret still works", func(context.Context) (bool, error) {
		return !authenticates(t, srv.Config, bound), nil
	})
	_, err = admin.CoreV1().ServiceAccounts("default").CreateToken(ctx, "robot", &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "Secret", APIVersion: "v1", Name: "anchor"},
	}}, metav1.CreateOptions{})
	if !apierrors.IsNotFound(err) || err.Error() != `secrets "anchor" not found` {
		t.Errorf("token bound to a missing secret: %v", err)
	}

	// Bound to a Pod: only one running as this service account, and the
	// UID in the reference must be the pod's.
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "worker"}, Spec: corev1.PodSpec{
		ServiceAccountName: "robot", Containers: []corev1.Container{{Name: "c", Image: "busybox"}},
	}}
	if pod, err = admin.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	podBound := requestToken(t, admin, "default", "robot", authenticationv1.TokenRequestSpec{
		BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: "worker"},
	}).Status.Token
	if !authenticates(t, srv.Config, podBound) {
		t.Fatal("pod-bound token refused")
	}
	_, err = admin.CoreV1().ServiceAccounts("default").CreateToken(ctx, "robot", &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: "worker", UID: "stale"},
	}}, metav1.CreateOptions{})
	if !apierrors.IsConflict(err) {
		t.Errorf("pod reference with a stale UID: %v", err)
	}
	createSA(t, admin, "default", "intruder")
	_, err = admin.CoreV1().ServiceAccounts("default").CreateToken(ctx, "intruder", &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: "worker"},
	}}, metav1.CreateOptions{})
	if !apierrors.IsBadRequest(err) || !strings.Contains(err.Error(), "different serviceaccount name") {
		t.Errorf("token bound to another service account's pod: %v", err)
	}
	_, err = admin.CoreV1().ServiceAccounts("default").CreateToken(ctx, "robot", &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "ConfigMap", APIVersion: "v1", Name: "x"},
	}}, metav1.CreateOptions{})
	if !apierrors.IsBadRequest(err) || err.Error() != "cannot bind token to object of type /v1, Kind=ConfigMap" {
		t.Errorf("token bound to a ConfigMap: %v", err)
	}

	// Deleting the service account revokes its tokens, also when one of
	// the same name is created again.
	if err := admin.CoreV1().ServiceAccounts("default").Delete(ctx, "robot", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, "token of a deleted service account still works", func(context.Context) (bool, error) {
		return !authenticates(t, srv.Config, good), nil
	})
	createSA(t, admin, "default", "robot")
	if authenticates(t, srv.Config, good) {
		t.Error("token of a deleted service account works for its namesake")
	}
}

func TestServiceAccountTokenSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	srv, stop := runServer(t, dir, "127.0.0.1:0")
	admin := kubernetes.NewForConfigOrDie(srv.AdminConfig())
	createSA(t, admin, "default", "robot")
	token := requestToken(t, admin, "default", "robot", authenticationv1.TokenRequestSpec{}).Status.Token
	if !authenticates(t, srv.AdminConfig(), token) {
		t.Fatal("token refused before restart")
	}
	stop()

	srv2, _ := runServer(t, dir, "127.0.0.1:0")
	if !authenticates(t, srv2.AdminConfig(), token) {
		t.Fatal("token refused after restart: the signing key did not persist")
	}
}

func TestServiceAccountTokenSubresourceDiscovery(t *testing.T) {
	cfg := trellistest.Start(t)
	admin := kubernetes.NewForConfigOrDie(cfg)
	want := metav1.APIResource{Name: "serviceaccounts/token", Namespaced: true, Group: "authentication.k8s.io", Version: "v1", Kind: "TokenRequest", Verbs: metav1.Verbs{"create"}}

	raw, err := admin.CoreV1().RESTClient().Get().AbsPath("/api/v1").DoRaw(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var list metav1.APIResourceList
	if err := json.Unmarshal(raw, &list); err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(list.APIResources, func(r metav1.APIResource) bool { return r.Name == want.Name })
	if i < 0 {
		t.Fatal("/api/v1 does not list serviceaccounts/token")
	}
	if got := list.APIResources[i]; got.Group != want.Group || got.Version != want.Version || got.Kind != want.Kind || !slices.Equal(got.Verbs, want.Verbs) || !got.Namespaced {
		t.Errorf("/api/v1 serviceaccounts/token = %+v, want %+v", got, want)
	}

	// client-go's discovery (aggregated) sees the same.
	res, err := admin.Discovery().ServerResourcesForGroupVersion("v1")
	if err != nil {
		t.Fatal(err)
	}
	i = slices.IndexFunc(res.APIResources, func(r metav1.APIResource) bool { return r.Name == want.Name })
	if i < 0 {
		t.Fatal("aggregated discovery does not list serviceaccounts/token")
	}
	if got := res.APIResources[i]; got.Group != want.Group || got.Version != want.Version || got.Kind != want.Kind || !slices.Equal(got.Verbs, want.Verbs) {
		t.Errorf("aggregated serviceaccounts/token = %+v, want %+v", got, want)
	}

	// Other verbs on it are not served.
	err = admin.CoreV1().RESTClient().Get().AbsPath("/api/v1/namespaces/default/serviceaccounts/default/token").Do(context.Background()).Error()
	if !apierrors.IsMethodNotSupported(err) {
		t.Errorf("GET serviceaccounts/token: %v, want 405", err)
	}
}

func TestServiceAccountKubectlCreateToken(t *testing.T) {
	srv := trellistest.StartServer(t)
	admin := kubernetes.NewForConfigOrDie(srv.Config)
	createSA(t, admin, "default", "robot")
	token := strings.TrimSpace(mustKubectl(t, srv.KubeconfigPath(), "", "create", "token", "robot", "--duration=20m"))
	c := claims(t, token)
	if c["sub"] != "system:serviceaccount:default:robot" {
		t.Fatalf("kubectl create token: claims %v", c)
	}
	if exp, iat := c["exp"].(float64), c["iat"].(float64); exp-iat != 1200 {
		t.Errorf("--duration=20m: token lives %vs", exp-iat)
	}
	if !authenticates(t, srv.Config, token) {
		t.Error("token from kubectl create token refused")
	}
	out := strings.TrimSpace(mustKubectl(t, srv.KubeconfigPath(), "", "create", "token", "robot", "--audience=https://vault.test"))
	if aud, _ := claims(t, out)["aud"].([]any); len(aud) != 1 || aud[0] != "https://vault.test" {
		t.Errorf("--audience: aud = %v", aud)
	}
	r := kubectl(t, srv.KubeconfigPath(), "", "create", "token", "nobody")
	if r.code == 0 || !strings.Contains(r.fatal, `serviceaccounts "nobody" not found`) {
		t.Errorf("kubectl create token nobody: exit %d %q", r.code, r.fatal)
	}
}

func TestServiceAccountIssuerDiscovery(t *testing.T) {
	ctx := context.Background()
	srv := trellistest.StartServer(t, trellistest.WithConfig(func(c *server.Config) { c.AuthorizationModes = []string{"RBAC"} }))
	admin := kubernetes.NewForConfigOrDie(srv.Config)
	createSA(t, admin, "default", "robot")
	token := requestToken(t, admin, "default", "robot", authenticationv1.TokenRequestSpec{}).Status.Token

	// Service accounts may read them (the bootstrap binding).
	sa := bearer(srv.Config, token)
	raw, err := sa.CoreV1().RESTClient().Get().AbsPath("/.well-known/openid-configuration").DoRaw(ctx)
	if err != nil {
		t.Fatalf("service account reads the discovery document: %v", err)
	}
	var doc struct {
		Issuer  string   `json:"issuer"`
		JWKSURI string   `json:"jwks_uri"`
		Algs    []string `json:"id_token_signing_alg_values_supported"`
		Types   []string `json:"response_types_supported"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Issuer != "https://kubernetes.default.svc.cluster.local" || doc.JWKSURI != srv.URL()+"/openid/v1/jwks" ||
		!slices.Equal(doc.Algs, []string{"ES256"}) || !slices.Equal(doc.Types, []string{"id_token"}) {
		t.Errorf("discovery document: %s", raw)
	}
	raw, err = sa.CoreV1().RESTClient().Get().AbsPath("/openid/v1/jwks").DoRaw(ctx)
	if err != nil {
		t.Fatalf("service account reads the key set: %v", err)
	}
	var jwks struct {
		Keys []struct {
			Kid, Alg, Kty, Use string
		} `json:"keys"`
	}
	if err := json.Unmarshal(raw, &jwks); err != nil {
		t.Fatal(err)
	}
	hdr, _ := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[0])
	var jose struct{ Kid string }
	json.Unmarshal(hdr, &jose)
	if len(jwks.Keys) != 1 || jwks.Keys[0].Kid != jose.Kid || jwks.Keys[0].Alg != "ES256" || jwks.Keys[0].Use != "sig" {
		t.Errorf("key set %s does not hold the token's key %q", raw, jose.Kid)
	}

	// kube-apiserver's media types and caching.
	hc, err := rest.HTTPClientFor(srv.Config)
	if err != nil {
		t.Fatal(err)
	}
	for path, ct := range map[string]string{"/openid/v1/jwks": "application/jwk-set+json", "/.well-known/openid-configuration": "application/json"} {
		resp, err := hc.Get(srv.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != ct || resp.Header.Get("Cache-Control") != "public, max-age=3600" {
			t.Errorf("%s: %d, Content-Type %q, Cache-Control %q", path, resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Cache-Control"))
		}
	}

	// Anonymous requests reach RBAC, which refuses them until an admin
	// binds the role to system:unauthenticated.
	anon := kubernetes.NewForConfigOrDie(rest.AnonymousClientConfig(srv.Config))
	_, err = anon.CoreV1().RESTClient().Get().AbsPath("/openid/v1/jwks").DoRaw(ctx)
	if !apierrors.IsForbidden(err) {
		t.Fatalf("anonymous key set read: %v, want 403", err)
	}
	_, err = admin.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "public-issuer"},
		Subjects:   []rbacv1.Subject{{Kind: "Group", Name: "system:unauthenticated", APIGroup: "rbac.authorization.k8s.io"}},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "system:service-account-issuer-discovery"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	poll(t, "anonymous still cannot read the discovery document", func(ctx context.Context) (bool, error) {
		_, err := anon.CoreV1().RESTClient().Get().AbsPath("/.well-known/openid-configuration").DoRaw(ctx)
		return err == nil, nil
	})
	// Anything else stays closed to anonymous requests.
	if _, err := anon.CoreV1().Namespaces().List(ctx, metav1.ListOptions{}); !apierrors.IsUnauthorized(err) {
		t.Errorf("anonymous list: %v, want 401", err)
	}
}

func TestServiceAccountControllerPopulatesNamespaces(t *testing.T) {
	ctx := context.Background()
	srv := trellistest.StartServer(t)
	admin := kubernetes.NewForConfigOrDie(srv.Config)
	if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var sa *corev1.ServiceAccount
	poll(t, "no default ServiceAccount in a new namespace", func(ctx context.Context) (bool, error) {
		var err error
		sa, err = admin.CoreV1().ServiceAccounts("team").Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
	wantCA := string(srv.AdminConfig().CAData)
	rootCA := func(ctx context.Context) (bool, error) {
		cm, err := admin.CoreV1().ConfigMaps("team").Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
		return err == nil && len(cm.Data) == 1 && cm.Data["ca.crt"] == wantCA && cm.Annotations["kubernetes.io/description"] != "", nil
	}
	poll(t, "no kube-root-ca.crt with the server's CA in a new namespace", rootCA)
	for _, ns := range []string{"default", "kube-system", "kube-public"} {
		if _, err := admin.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{}); err != nil {
			poll(t, "no default ServiceAccount in "+ns, func(ctx context.Context) (bool, error) {
				_, err := admin.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
				return err == nil, nil
			})
		}
	}

	// Deleted, they come back; changed, the ConfigMap is restored.
	if err := admin.CoreV1().ServiceAccounts("team").Delete(ctx, "default", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, "the deleted default ServiceAccount is not recreated", func(ctx context.Context) (bool, error) {
		again, err := admin.CoreV1().ServiceAccounts("team").Get(ctx, "default", metav1.GetOptions{})
		return err == nil && again.UID != sa.UID, nil
	})
	cm, err := admin.CoreV1().ConfigMaps("team").Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data = map[string]string{"ca.crt": "tampered", "extra": "x"}
	if _, err := admin.CoreV1().ConfigMaps("team").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, "the changed kube-root-ca.crt is not restored", rootCA)
	if err := admin.CoreV1().ConfigMaps("team").Delete(ctx, "kube-root-ca.crt", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, "the deleted kube-root-ca.crt is not recreated", rootCA)
}

func TestServiceAccountLegacySecretToken(t *testing.T) {
	ctx := context.Background()
	srv := trellistest.StartServer(t, trellistest.WithConfig(func(c *server.Config) { c.AuthorizationModes = []string{"RBAC"} }))
	admin := kubernetes.NewForConfigOrDie(srv.Config)
	sa := createSA(t, admin, "default", "legacy")
	_, err := admin.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "legacy-token", Annotations: map[string]string{corev1.ServiceAccountNameKey: "legacy"}},
		Type:       corev1.SecretTypeServiceAccountToken,
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var secret *corev1.Secret
	poll(t, "the token controller does not fill the secret", func(ctx context.Context) (bool, error) {
		secret, err = admin.CoreV1().Secrets("default").Get(ctx, "legacy-token", metav1.GetOptions{})
		return err == nil && len(secret.Data["token"]) > 0, nil
	})
	if string(secret.Data["namespace"]) != "default" || string(secret.Data["ca.crt"]) != string(srv.AdminConfig().CAData) ||
		secret.Annotations[corev1.ServiceAccountUIDKey] != string(sa.UID) {
		t.Errorf("secret: data keys %v, annotations %v", slices.Sorted(maps.Keys(secret.Data)), secret.Annotations)
	}
	token := string(secret.Data["token"])
	if c := claims(t, token); c["iss"] != "kubernetes/serviceaccount" || c["exp"] != nil {
		t.Errorf("legacy claims: %v", c)
	}
	_, err = bearer(srv.Config, token).CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{})
	want := `configmaps is forbidden: User "system:serviceaccount:default:legacy" cannot list resource "configmaps" in API group "" in the namespace "default"`
	if !apierrors.IsForbidden(err) || err.Error() != want {
		t.Fatalf("legacy token: %v\nwant %s", err, want)
	}
	// Its use is recorded on the secret, as upstream does.
	poll(t, "the use of a legacy token is not recorded", func(ctx context.Context) (bool, error) {
		s, err := admin.CoreV1().Secrets("default").Get(ctx, "legacy-token", metav1.GetOptions{})
		return err == nil && s.Labels["kubernetes.io/legacy-token-last-used"] != "", nil
	})

	// Deleting the service account deletes its token secret, and the
	// token stops working.
	if err := admin.CoreV1().ServiceAccounts("default").Delete(ctx, "legacy", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, "the token secret of a deleted service account remains", func(ctx context.Context) (bool, error) {
		_, err := admin.CoreV1().Secrets("default").Get(ctx, "legacy-token", metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if authenticates(t, srv.Config, token) {
		t.Error("legacy token of a deleted service account accepted")
	}
}
