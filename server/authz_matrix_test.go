package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/trellis-project/trellis/server"
	"github.com/trellis-project/trellis/trellistest"
)

// matrixCell is one request: a resource request (resource set) or a
// non-resource one (path set).
type matrixCell struct {
	verb                          string
	group, version, resource, sub string
	namespace, name               string
	byFieldSelector               bool // list limited by metadata.name=<name>
	path                          string
}

func (c matrixCell) String() string {
	if c.path != "" {
		return c.verb + " " + c.path
	}
	r := c.resource
	if c.group != "" {
		r += "." + c.group
	}
	if c.sub != "" {
		r += "/" + c.sub
	}
	s := fmt.Sprintf("%s %s ns=%q name=%q", c.verb, r, c.namespace, c.name)
	if c.byFieldSelector {
		s += " (fieldSelector)"
	}
	return s
}

// grantSpec is a hand-derived allowance: verbs on a resource (with its
// subresource) in a namespace, for any name ("*") or one name.
type grantSpec struct {
	verbs, resource, namespace, name string
}

func (g grantSpec) covers(c matrixCell) bool {
	res := c.resource
	if c.sub != "" {
		res += "/" + c.sub
	}
	if c.path != "" {
		res = c.path
	}
	return contains(strings.Split(g.verbs, ","), c.verb) && g.resource == res && g.namespace == c.namespace &&
		(g.name == "*" || g.name == c.name)
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// matrixCells are the requests every user makes.
func matrixCells() []matrixCell {
	var cells []matrixCell
	type target struct {
		group, version, resource string
		namespaces               []string // "" = cluster-scoped, or all namespaces for a list
		names                    []string
		subs                     []string
	}
	for _, t := range []target{
		{"", "v1", "configmaps", []string{"team-a", "team-b"}, []string{"cm1"}, nil},
		{"", "v1", "secrets", []string{"team-a"}, []string{"s1", "s2"}, nil},
		{"", "v1", "pods", []string{"team-b"}, []string{"p1"}, []string{"status"}},
		{"apps", "v1", "deployments", []string{"team-b"}, []string{"web"}, []string{"scale"}},
		{"", "v1", "nodes", []string{""}, []string{"n1", "n2"}, nil},
	} {
		for _, ns := range t.namespaces {
			base := matrixCell{group: t.group, version: t.version, resource: t.resource, namespace: ns}
			for _, v := range []string{"list", "watch", "create", "deletecollection"} {
				c := base
				c.verb = v
				cells = append(cells, c)
			}
			fs := base
			fs.verb, fs.name, fs.byFieldSelector = "list", t.names[0], true
			cells = append(cells, fs)
			for _, name := range t.names {
				for _, v := range []string{"get", "update", "patch", "delete"} {
					c := base
					c.verb, c.name = v, name
					cells = append(cells, c)
				}
				for _, sub := range t.subs {
					for _, v := range []string{"get", "update", "patch"} {
						c := base
						c.verb, c.name, c.sub = v, name, sub
						cells = append(cells, c)
					}
				}
			}
		}
	}
	// Namespaced resources listed across all namespaces.
	for _, r := range []string{"configmaps", "pods"} {
		for _, v := range []string{"list", "watch"} {
			cells = append(cells, matrixCell{verb: v, version: "v1", resource: r})
		}
	}
	// The namespace object: cluster-scoped, but its request's namespace
	// is its own name (so a RoleBinding in it can grant it).
	for _, ns := range []string{"team-a", "team-b"} {
		cells = append(cells, matrixCell{verb: "get", version: "v1", resource: "namespaces", namespace: ns, name: ns})
	}
	for _, p := range []string{"/metrics", "/logs/kube.log", "/healthz", "/version", "/apis"} {
		cells = append(cells, matrixCell{verb: "get", path: p})
	}
	cells = append(cells, matrixCell{verb: "post", path: "/healthz"}, matrixCell{verb: "put", path: "/metrics"})
	return cells
}

// TestAuthorizationMatrix makes every request of matrixCells as several
// users and groups, and checks each decision twice: by the real request
// (403 or not) and by a SelfSubjectAccessReview, against the decisions
// derived by hand from the RBAC objects below.
func TestAuthorizationMatrix(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens.csv")
	if err := os.WriteFile(tokens, []byte(
		"alice-token,alice,u-alice\n"+
			"bob-token,bob,u-bob,devs\n"+
			"carol-token,carol,u-carol,\"ops,auditors\"\n"+
			"eve-token,eve,u-eve\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := trellistest.StartServer(t, trellistest.WithConfig(func(c *server.Config) {
		c.AuthorizationModes = []string{"RBAC"}
		c.TokenAuthFile = tokens
	}))
	admin := kubernetes.NewForConfigOrDie(srv.Config)
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, ns := range []string{"team-a", "team-b"} {
		must(admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}))
		must(admin.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm1"}}, metav1.CreateOptions{}))
	}
	for _, s := range []string{"s1", "s2"} {
		must(admin.CoreV1().Secrets("team-a").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: s}}, metav1.CreateOptions{}))
	}
	for _, n := range []string{"n1", "n2"} {
		must(admin.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n}}, metav1.CreateOptions{}))
	}
	must(admin.CoreV1().Pods("team-b").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p1"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}, metav1.CreateOptions{}))
	labels := map[string]string{"app": "web"}
	must(admin.AppsV1().Deployments("team-b").Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "nginx"}}}}}},
		metav1.CreateOptions{}))
	createSA(t, admin, "team-b", "builder")

	// The policy.
	rbac := admin.RbacV1()
	pr := func(verbs, groups, resources []string, names ...string) rbacv1.PolicyRule {
		return rbacv1.PolicyRule{Verbs: verbs, APIGroups: groups, Resources: resources, ResourceNames: names}
	}
	role := func(ns, name string, rules ...rbacv1.PolicyRule) {
		must(rbac.Roles(ns).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules}, metav1.CreateOptions{}))
	}
	clusterRole := func(name string, rules ...rbacv1.PolicyRule) {
		must(rbac.ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules}, metav1.CreateOptions{}))
	}
	user := func(n string) rbacv1.Subject {
		return rbacv1.Subject{Kind: "User", APIGroup: rbacv1.GroupName, Name: n}
	}
	group := func(n string) rbacv1.Subject {
		return rbacv1.Subject{Kind: "Group", APIGroup: rbacv1.GroupName, Name: n}
	}
	bind := func(ns, name, kind, roleName string, subjects ...rbacv1.Subject) {
		ref := rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: kind, Name: roleName}
		if ns == "" {
			must(rbac.ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name}, Subjects: subjects, RoleRef: ref}, metav1.CreateOptions{}))
			return
		}
		must(rbac.RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name}, Subjects: subjects, RoleRef: ref}, metav1.CreateOptions{}))
	}
	// alice: configmaps in team-a; secret s1 only (get, list, watch by
	// name); her own namespace object; a ClusterRole for nodes bound in a
	// namespace, which grants nothing cluster-scoped.
	role("team-a", "cm-editor",
		pr(list("get", "list", "watch", "create", "update", "patch", "delete"), list(""), list("configmaps")),
		pr(list("get", "list", "watch"), list(""), list("secrets"), "s1"),
		pr(list("get"), list(""), list("namespaces")))
	bind("team-a", "alice-cm", "Role", "cm-editor", user("alice"))
	clusterRole("node-reader", pr(list("get", "list"), list(""), list("nodes")))
	bind("team-a", "alice-nodes", "ClusterRole", "node-reader", user("alice"))
	// bob, through group devs: read configmaps and pods everywhere; any
	// scale subresource of apps in team-b (not the deployments themselves).
	clusterRole("viewer", pr(list("get", "list", "watch"), list(""), list("configmaps", "pods")))
	bind("", "devs-view", "ClusterRole", "viewer", group("devs"))
	clusterRole("scaler", pr(list("get", "update", "patch"), list("apps"), list("*/scale")))
	bind("team-b", "devs-scale", "ClusterRole", "scaler", group("devs"))
	// carol, through group ops: nodes, namespace team-a by name, and
	// non-resource URLs (exact and prefix).
	clusterRole("ops",
		pr(list("get", "list"), list(""), list("nodes")),
		pr(list("get"), list(""), list("namespaces"), "team-a"),
		rbacv1.PolicyRule{Verbs: list("get"), NonResourceURLs: list("/metrics", "/logs/*")})
	bind("", "ops", "ClusterRole", "ops", group("ops"))
	// The service account team-b/builder (subject without namespace: the
	// binding's), and node n1 for every service account of team-b.
	role("team-b", "pod-maker",
		pr(list("create", "delete", "deletecollection"), list(""), list("pods")),
		pr(list("get", "patch"), list(""), list("pods/status")))
	bind("team-b", "builder", "Role", "pod-maker", rbacv1.Subject{Kind: "ServiceAccount", Name: "builder"})
	clusterRole("n1-reader", pr(list("get"), list(""), list("nodes"), "n1"))
	bind("", "team-b-sas", "ClusterRole", "n1-reader", group("system:serviceaccounts:team-b"))

	builderToken := requestToken(t, admin, "team-b", "builder", authenticationv1.TokenRequestSpec{}).Status.Token

	// Every authenticated user may get these (system:discovery and
	// system:public-info-viewer).
	everyone := []grantSpec{{"get", "/healthz", "", "*"}, {"get", "/version", "", "*"}, {"get", "/apis", "", "*"}}
	users := []struct {
		name, token string
		allowed     []grantSpec
	}{
		{"alice", "alice-token", []grantSpec{
			{"get,list,watch,create,update,patch,delete", "configmaps", "team-a", "*"},
			{"get,list", "secrets", "team-a", "s1"},
			{"get", "namespaces", "team-a", "team-a"},
		}},
		{"bob", "bob-token", []grantSpec{
			{"get,list,watch", "configmaps", "team-a", "*"},
			{"get,list,watch", "configmaps", "team-b", "*"},
			{"list,watch", "configmaps", "", ""},
			{"get,list,watch", "pods", "team-b", "*"},
			{"list,watch", "pods", "", ""},
			{"get,update,patch", "deployments/scale", "team-b", "web"},
		}},
		{"carol", "carol-token", []grantSpec{
			{"get,list", "nodes", "", "*"},
			{"get", "namespaces", "team-a", "team-a"},
			{"get", "/metrics", "", "*"},
			{"get", "/logs/kube.log", "", "*"},
		}},
		{"system:serviceaccount:team-b:builder", builderToken, []grantSpec{
			{"create,deletecollection", "pods", "team-b", ""},
			{"delete", "pods", "team-b", "p1"},
			{"get,patch", "pods/status", "team-b", "p1"},
			{"get", "nodes", "", "n1"},
		}},
		{"eve", "eve-token", nil},
	}

	cells := matrixCells()
	// RBAC is read through informers: wait until the last binding shows.
	eventually(t, "policy visible", func() error {
		return checkCell(ctx, tokenConfig(srv, builderToken), "system:serviceaccount:team-b:builder",
			matrixCell{verb: "get", version: "v1", resource: "nodes", name: "n1"}, true)
	})
	allowedCells := 0
	for _, u := range users {
		cfg := tokenConfig(srv, u.token)
		client := kubernetes.NewForConfigOrDie(cfg)
		for _, c := range cells {
			want := false
			for _, g := range append(u.allowed, everyone...) {
				if g.covers(c) {
					want = true
				}
			}
			if want {
				allowedCells++
			}
			if err := checkCell(ctx, cfg, u.name, c, want); err != nil {
				t.Errorf("%s: request: %v", u.name, err)
			}
			if got, err := selfReview(ctx, client, c); err != nil || got != want {
				t.Errorf("%s: %s: SelfSubjectAccessReview allowed=%v (%v), want %v", u.name, c, got, err, want)
			}
		}
	}
	if n := len(cells) * len(users); allowedCells == 0 || allowedCells == n {
		t.Fatalf("%d of %d cells allowed; the matrix needs both", allowedCells, n)
	}
	t.Logf("%d cells × %d users, %d allowed", len(cells), len(users), allowedCells)
}

// checkCell makes c's request and checks that it is refused with 403
// (worded as kube-apiserver words it) exactly when want is false.
func checkCell(ctx context.Context, cfg *rest.Config, userName string, c matrixCell, want bool) error {
	cfg = rest.CopyConfig(cfg)
	cfg.GroupVersion = nil
	cfg.NegotiatedSerializer = nil
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	rc := client.CoreV1().RESTClient()
	if c.path != "" {
		req := rc.Verb(strings.ToUpper(c.verb)).AbsPath(c.path)
		if c.verb != "get" {
			req = req.Body([]byte("{}"))
		}
		return judge(c, userName, req.Do(ctx).Error(), want, fmt.Sprintf("cannot %s path %q", c.verb, c.path))
	}
	p := "/api/" + c.version
	if c.group != "" {
		p = "/apis/" + c.group + "/" + c.version
	}
	if c.namespace != "" && c.resource != "namespaces" {
		p += "/namespaces/" + c.namespace
	}
	p += "/" + c.resource
	if c.name != "" && !c.byFieldSelector {
		p += "/" + c.name
	}
	if c.sub != "" {
		p += "/" + c.sub
	}
	obj := []byte(fmt.Sprintf(`{"metadata":{"name":%q}}`, c.name))
	var req *rest.Request
	switch c.verb {
	case "get", "list":
		req = rc.Get().AbsPath(p)
	case "watch":
		req = rc.Get().AbsPath(p).Param("watch", "true")
	case "create":
		req = rc.Post().AbsPath(p).Body([]byte(`{"metadata":{"generateName":"m-"}}`))
	case "update":
		req = rc.Put().AbsPath(p).Body(obj)
	case "patch":
		req = rc.Patch(types.MergePatchType).AbsPath(p).Body([]byte("{}"))
	case "delete", "deletecollection":
		req = rc.Delete().AbsPath(p)
	}
	if c.byFieldSelector {
		req = req.Param("fieldSelector", "metadata.name="+c.name)
	}
	if c.verb != "get" && c.verb != "list" && c.verb != "watch" {
		req = req.Param("dryRun", "All")
	}
	req.SetHeader("Content-Type", "application/json")
	if c.verb == "watch" {
		w, err := req.Param("timeoutSeconds", "5").Watch(ctx)
		if err == nil {
			w.Stop()
		}
		return judge(c, userName, err, want, "")
	}
	res := c.resource
	if c.sub != "" {
		res += "/" + c.sub
	}
	return judge(c, userName, req.Do(ctx).Error(), want, fmt.Sprintf("User %q cannot %s resource %q in API group %q", userName, c.verb, res, c.group))
}

func judge(c matrixCell, userName string, err error, want bool, wording string) error {
	switch {
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("%s: 401: %v", c, err)
	case want && apierrors.IsForbidden(err):
		return fmt.Errorf("%s: refused, want allowed: %v", c, err)
	case !want && !apierrors.IsForbidden(err):
		return fmt.Errorf("%s: not refused (%v), want 403", c, err)
	case !want && !strings.Contains(err.Error(), wording):
		return fmt.Errorf("%s: 403 %q does not say %q", c, err, wording)
	}
	return nil
}

func selfReview(ctx context.Context, client kubernetes.Interface, c matrixCell) (bool, error) {
	review := &authorizationv1.SelfSubjectAccessReview{}
	if c.path != "" {
		review.Spec.NonResourceAttributes = &authorizationv1.NonResourceAttributes{Path: c.path, Verb: c.verb}
	} else {
		review.Spec.ResourceAttributes = &authorizationv1.ResourceAttributes{
			Namespace: c.namespace, Verb: c.verb, Group: c.group, Version: c.version,
			Resource: c.resource, Subresource: c.sub, Name: c.name,
		}
	}
	got, err := client.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, review, metav1.CreateOptions{})
	if err != nil {
		return false, err
	}
	return got.Status.Allowed, nil
}

// TestAuthenticationRefusals: credentials that are bad, expired, forged,
// for another audience, or certificates from another CA are a bare 401
// whose body says only "Unauthorized".
func TestAuthenticationRefusals(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "sa.key")
	key := writeKey(t, keyFile)
	const issuer = "https://issuer.test"
	tokens := filepath.Join(dir, "tokens.csv")
	if err := os.WriteFile(tokens, []byte("good-token,gina,u-gina\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := trellistest.StartServer(t, trellistest.WithConfig(func(c *server.Config) {
		c.AuthorizationModes = []string{"RBAC"}
		c.TokenAuthFile = tokens
		c.ServiceAccountSigningKeyFile = keyFile
		c.ServiceAccountKeyFiles = []string{keyFile}
		c.ServiceAccountIssuers = []string{issuer}
	}))
	admin := kubernetes.NewForConfigOrDie(srv.Config)
	sa := createSA(t, admin, "default", "robot")
	forger := writeKey(t, filepath.Join(dir, "other.key"))
	otherAudience := requestToken(t, admin, "default", "robot", authenticationv1.TokenRequestSpec{Audiences: []string{"https://vault.test"}}).Status.Token

	withCert := func(certPEM, keyPEM []byte) *rest.Config {
		cfg := rest.AnonymousClientConfig(srv.Config)
		cfg.CertData, cfg.KeyData = certPEM, keyPEM
		return cfg
	}
	withToken := func(tok string) *rest.Config { return tokenConfig(srv, tok) }
	foreignAdmin, foreignAdminKey := foreignClientCert(t, "system:admin", "system:masters")
	for _, tc := range []struct {
		name   string
		cfg    *rest.Config
		secret string // must not appear in the answer
	}{
		{"unknown static token", withToken("nope-token"), "nope-token"},
		{"expired service-account token", withToken(mint(t, key, issuer, sa, -3600, issuer)), ""},
		{"service-account token signed by another key", withToken(mint(t, forger, issuer, sa, 600, issuer)), ""},
		{"service-account token from another issuer", withToken(mint(t, key, "https://evil.test", sa, 600, issuer)), ""},
		{"service-account token for another audience", withToken(otherAudience), ""},
		{"malformed JWT", withToken("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."), ""},
		{"client certificate from another CA claiming system:masters", withCert(foreignAdmin, foreignAdminKey), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := rest.CopyConfig(tc.cfg)
			cfg.GroupVersion, cfg.NegotiatedSerializer = nil, nil
			body, err := kubernetes.NewForConfigOrDie(cfg).CoreV1().RESTClient().Get().AbsPath("/api/v1/namespaces").DoRaw(ctx)
			if !apierrors.IsUnauthorized(err) {
				t.Fatalf("got %v, want 401", err)
			}
			want := `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}`
			if strings.TrimSpace(string(body)) != want {
				t.Errorf("body %s\nwant %s", body, want)
			}
			for _, leak := range []string{"x509", "expired", "signature", "issuer", "audience", "verif", "token"} {
				if strings.Contains(strings.ToLower(string(body)), leak) {
					t.Errorf("answer mentions %q: %s", leak, body)
				}
			}
			if tc.secret != "" && strings.Contains(string(body), tc.secret) {
				t.Errorf("answer echoes the credential")
			}
		})
	}
	// Refused credentials are not downgraded to anonymous on the paths
	// anonymous requests may reach; without credentials /healthz answers.
	for name, cfg := range map[string]*rest.Config{
		"unknown token":    withToken("nope-token"),
		"foreign cert":     withCert(foreignAdmin, foreignAdminKey),
		"expired SA token": withToken(mint(t, key, issuer, sa, -3600, issuer)),
	} {
		cfg = rest.CopyConfig(cfg)
		cfg.GroupVersion, cfg.NegotiatedSerializer = nil, nil
		if _, err := kubernetes.NewForConfigOrDie(cfg).CoreV1().RESTClient().Get().AbsPath("/healthz").DoRaw(ctx); !apierrors.IsUnauthorized(err) {
			t.Errorf("%s on /healthz: %v, want 401", name, err)
		}
	}
	anon := rest.AnonymousClientConfig(srv.Config)
	anon.GroupVersion, anon.NegotiatedSerializer = nil, nil
	if _, err := kubernetes.NewForConfigOrDie(anon).CoreV1().RESTClient().Get().AbsPath("/healthz").DoRaw(ctx); err != nil {
		t.Errorf("anonymous /healthz: %v", err)
	}
	// A foreign certificate does not spoil a valid token, as in
	// kube-apiserver: the token authenticates.
	cfg := withCert(foreignAdmin, foreignAdminKey)
	cfg.BearerToken = "good-token"
	_, err := kubernetes.NewForConfigOrDie(cfg).CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), `User "gina"`) {
		t.Errorf("valid token with a foreign certificate: %v, want gina's 403", err)
	}
	// A certificate signed by the server's client CA still authenticates.
	if _, err := admin.CoreV1().Namespaces().List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("admin certificate: %v", err)
	}
}

// foreignClientCert is a client certificate for cn in orgs, signed by a
// CA the server does not know.
func foreignClientCert(t *testing.T, cn string, orgs ...string) (certPEM, keyPEM []byte) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "other-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: cn, Organization: orgs},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}
