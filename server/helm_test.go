package server_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/release"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/trellis-project/trellis/trellistest"
)

// helmChart is a small application chart as users write them: every
// object is named from the release, labelled with Helm's conventions and
// shaped by values. The Ingress can be switched off, so an upgrade can drop
// a resource.
var helmChart = map[string]string{
	"Chart.yaml": `apiVersion: v2
name: webapp
description: A web application for the Trellis Helm test
type: application
version: 0.1.0
appVersion: "1.0.0"
`,
	"values.yaml": `replicaCount: 1
image:
  repository: nginx
  tag: "1.27"
service:
  port: 80
ingress:
  enabled: true
  host: webapp.example.com
config:
  greeting: hello
  mode: blue
secret:
  password: s3cret
`,
	"templates/_helpers.tpl": `{{- define "webapp.fullname" -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- define "webapp.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}
{{- define "webapp.selector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
`,
	"templates/serviceaccount.yaml": `apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "webapp.fullname" . }}
  labels:
    {{- include "webapp.labels" . | nindent 4 }}
`,
	"templates/configmap.yaml": `apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "webapp.fullname" . }}
  labels:
    {{- include "webapp.labels" . | nindent 4 }}
data:
  {{- range $k, $v := .Values.config }}
  {{ $k }}: {{ $v | quote }}
  {{- end }}
`,
	"templates/secret.yaml": `apiVersion: v1
kind: Secret
metadata:
  name: {{ include "webapp.fullname" . }}
  labels:
    {{- include "webapp.labels" . | nindent 4 }}
type: Opaque
data:
  password: {{ .Values.secret.password | b64enc | quote }}
`,
	"templates/role.yaml": `apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: {{ include "webapp.fullname" . }}
  labels:
    {{- include "webapp.labels" . | nindent 4 }}
rules:
- apiGroups: [""]
  resources: ["configmaps"]
  resourceNames: [{{ include "webapp.fullname" . | quote }}]
  verbs: ["get", "watch"]
`,
	"templates/rolebinding.yaml": `apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: {{ include "webapp.fullname" . }}
  labels:
    {{- include "webapp.labels" . | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: {{ include "webapp.fullname" . }}
subjects:
- kind: ServiceAccount
  name: {{ include "webapp.fullname" . }}
  namespace: {{ .Release.Namespace }}
`,
	"templates/deployment.yaml": `apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "webapp.fullname" . }}
  labels:
    {{- include "webapp.labels" . | nindent 4 }}
spec:
  replicas: {{ .Values.replicaCount }}
  selector:
    matchLabels:
      {{- include "webapp.selector" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "webapp.selector" . | nindent 8 }}
      annotations:
        checksum/config: {{ include (print $.Template.BasePath "/configmap.yaml") . | sha256sum }}
    spec:
      serviceAccountName: {{ include "webapp.fullname" . }}
      containers:
      - name: web
        image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
        ports:
        - name: http
          containerPort: 80
        envFrom:
        - configMapRef:
            name: {{ include "webapp.fullname" . }}
        env:
        - name: PASSWORD
          valueFrom:
            secretKeyRef:
              name: {{ include "webapp.fullname" . }}
              key: password
`,
	"templates/service.yaml": `apiVersion: v1
kind: Service
metadata:
  name: {{ include "webapp.fullname" . }}
  labels:
    {{- include "webapp.labels" . | nindent 4 }}
spec:
  type: ClusterIP
  selector:
    {{- include "webapp.selector" . | nindent 4 }}
  ports:
  - name: http
    port: {{ .Values.service.port }}
    targetPort: http
`,
	"templates/ingress.yaml": `{{- if .Values.ingress.enabled -}}
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {{ include "webapp.fullname" . }}
  labels:
    {{- include "webapp.labels" . | nindent 4 }}
spec:
  rules:
  - host: {{ .Values.ingress.host }}
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service:
            name: {{ include "webapp.fullname" . }}
            port:
              number: {{ .Values.service.port }}
{{- end }}
`,
	"templates/NOTES.txt": `{{ include "webapp.fullname" . }} is installed.
`,
}

// writeHelmChart writes helmChart into a temporary directory and loads it
// the way `helm install ./webapp` does.
func writeHelmChart(t *testing.T) *chart.Chart {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "webapp")
	for name, content := range helmChart {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ch, err := loader.Load(dir)
	if err != nil {
		t.Fatalf("load chart: %v", err)
	}
	return ch
}

// helmConfig is the action configuration the helm CLI builds: a
// RESTClientGetter over the kubeconfig and release history in Secrets.
func helmConfig(t *testing.T, kubeconfig, namespace string) *action.Configuration {
	t.Helper()
	return helmConfigWarnings(t, kubeconfig, namespace, nil)
}

// helmConfigWarnings is helmConfig whose object requests report the
// server's warnings to warnings, when it is not nil.
func helmConfigWarnings(t *testing.T, kubeconfig, namespace string, warnings rest.WarningHandler) *action.Configuration {
	t.Helper()
	flags := genericclioptions.NewConfigFlags(true)
	flags.KubeConfig = &kubeconfig
	flags.Namespace = &namespace
	cacheDir := t.TempDir() // keep the discovery cache out of $HOME
	flags.CacheDir = &cacheDir
	var getter genericclioptions.RESTClientGetter = flags
	if warnings != nil {
		getter = warningGetter{flags, warnings}
	}
	cfg := new(action.Configuration)
	logf := func(format string, v ...interface{}) { t.Logf("helm: "+format, v...) }
	if err := cfg.Init(getter, namespace, "secret", logf); err != nil {
		t.Fatalf("helm init: %v", err)
	}
	return cfg
}

// warningGetter hands out client configs that send warnings to handler.
type warningGetter struct {
	*genericclioptions.ConfigFlags
	handler rest.WarningHandler
}

func (g warningGetter) ToRESTConfig() (*rest.Config, error) {
	c, err := g.ConfigFlags.ToRESTConfig()
	if err != nil {
		return nil, err
	}
	c = rest.CopyConfig(c)
	c.WarningHandler = g.handler
	return c, nil
}

// TestHelmUnknownFieldWarns pins what `helm install` does with a template
// carrying a field the API does not know, as against kube-apiserver
// (helm/helm#13053): the server advertises fieldValidation in its OpenAPI
// v3, so Helm skips client-side schema validation and creates the object
// without a directive; the server's default, Warn, drops the field and
// answers with a warning instead of failing the install.
func TestHelmUnknownFieldWarns(t *testing.T) {
	srv := trellistest.StartServer(t)
	client := kubernetes.NewForConfigOrDie(srv.Config)
	const ns, rel = "default", "typo"
	ch := writeHelmChart(t)
	for _, f := range ch.Templates {
		if f.Name == "templates/deployment.yaml" {
			f.Data = []byte(strings.Replace(string(f.Data), "spec:\n  replicas:", "spec:\n  replica: 5\n  replicas:", 1))
		}
	}
	rec := &warningRecorder{}
	install := action.NewInstall(helmConfigWarnings(t, srv.KubeconfigPath(), ns, rec))
	install.ReleaseName = rel
	install.Namespace = ns
	if _, err := install.Run(ch, nil); err != nil {
		t.Fatalf("helm install: %v, want success with a warning", err)
	}
	want := `unknown field "spec.replica"`
	if w := rec.msgs; !slices.Contains(w, want) {
		t.Errorf("warnings %q, want %q", w, want)
	}
	dep, err := client.AppsV1().Deployments(ns).Get(context.Background(), rel+"-webapp", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("deployment: %v", err)
	}
	if got := *dep.Spec.Replicas; got != 1 {
		t.Errorf("replicas %d, want the chart's 1 (the unknown field dropped)", got)
	}
}

// TestHelmInstallUpgradeUninstall drives a chart through the Helm SDK's
// install, upgrade and uninstall actions and checks, after each, what the
// server stores: the chart's objects and Helm's release Secrets.
func TestHelmInstallUpgradeUninstall(t *testing.T) {
	srv := trellistest.StartServer(t)
	client := kubernetes.NewForConfigOrDie(srv.Config)
	ctx := context.Background()
	const ns, rel = "helm-apps", "shop"
	name := rel + "-webapp"
	ch := writeHelmChart(t)

	// install, creating the namespace as `helm install --create-namespace`.
	cfg := helmConfig(t, srv.KubeconfigPath(), ns)
	install := action.NewInstall(cfg)
	install.ReleaseName = rel
	install.Namespace = ns
	install.CreateNamespace = true
	r, err := install.Run(ch, map[string]interface{}{"replicaCount": 2})
	if err != nil {
		t.Fatalf("helm install: %v", err)
	}
	if r.Info.Status != release.StatusDeployed || r.Version != 1 {
		t.Fatalf("install: status %q version %d, want deployed 1", r.Info.Status, r.Version)
	}
	if _, err := client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err != nil {
		t.Fatalf("namespace %s: %v", ns, err)
	}

	dep, err := client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("deployment: %v", err)
	}
	if got := *dep.Spec.Replicas; got != 2 {
		t.Errorf("install: deployment replicas %d, want 2 (from --set)", got)
	}
	checkHelmOwned(t, dep.ObjectMeta, rel, ns)
	if got := dep.Spec.Template.Spec.Containers[0].Image; got != "nginx:1.27" {
		t.Errorf("install: image %q, want nginx:1.27", got)
	}
	installChecksum := dep.Spec.Template.Annotations["checksum/config"]

	cm, err := client.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("configmap: %v", err)
	}
	checkHelmOwned(t, cm.ObjectMeta, rel, ns)
	if want := map[string]string{"greeting": "hello", "mode": "blue"}; !equalStringMaps(cm.Data, want) {
		t.Errorf("install: configmap data %v, want %v", cm.Data, want)
	}
	sec, err := client.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("secret: %v", err)
	}
	if got := string(sec.Data["password"]); got != "s3cret" {
		t.Errorf("install: secret password %q, want s3cret", got)
	}
	svc, err := client.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("service: %v", err)
	}
	if svc.Spec.ClusterIP == "" || svc.Spec.Ports[0].Port != 80 {
		t.Errorf("install: service clusterIP %q port %d, want an allocated IP and 80", svc.Spec.ClusterIP, svc.Spec.Ports[0].Port)
	}
	ing, err := client.NetworkingV1().Ingresses(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("ingress: %v", err)
	}
	checkHelmOwned(t, ing.ObjectMeta, rel, ns)
	if _, err := client.CoreV1().ServiceAccounts(ns).Get(ctx, name, metav1.GetOptions{}); err != nil {
		t.Errorf("serviceaccount: %v", err)
	}
	if _, err := client.RbacV1().Roles(ns).Get(ctx, name, metav1.GetOptions{}); err != nil {
		t.Errorf("role: %v", err)
	}
	rb, err := client.RbacV1().RoleBindings(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("rolebinding: %v", err)
	}
	if s := rb.Subjects[0]; s.Kind != "ServiceAccount" || s.Name != name || s.Namespace != ns {
		t.Errorf("install: rolebinding subject %+v, want ServiceAccount %s/%s", s, ns, name)
	}
	checkReleaseSecrets(t, client, ns, rel, map[int]release.Status{1: release.StatusDeployed})

	// A change made outside Helm: Helm 3's three-way merge must keep it.
	patch := []byte(`{"metadata":{"labels":{"team":"payments"}}}`)
	if _, err := client.AppsV1().Deployments(ns).Patch(ctx, name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatalf("label deployment: %v", err)
	}

	// upgrade: more replicas, a ConfigMap key changed and one dropped, no
	// Ingress. A fresh configuration, as a second helm invocation.
	upgrade := action.NewUpgrade(helmConfig(t, srv.KubeconfigPath(), ns))
	upgrade.Namespace = ns
	r, err = upgrade.Run(rel, ch, map[string]interface{}{
		"replicaCount": 3,
		"image":        map[string]interface{}{"tag": "1.28"},
		"config":       map[string]interface{}{"greeting": "bonjour", "mode": nil},
		"ingress":      map[string]interface{}{"enabled": false},
	})
	if err != nil {
		t.Fatalf("helm upgrade: %v", err)
	}
	if r.Info.Status != release.StatusDeployed || r.Version != 2 {
		t.Fatalf("upgrade: status %q version %d, want deployed 2", r.Info.Status, r.Version)
	}
	dep, err = client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("deployment after upgrade: %v", err)
	}
	if got := *dep.Spec.Replicas; got != 3 {
		t.Errorf("upgrade: deployment replicas %d, want 3", got)
	}
	if got := dep.Spec.Template.Spec.Containers[0].Image; got != "nginx:1.28" {
		t.Errorf("upgrade: image %q, want nginx:1.28", got)
	}
	if got := dep.Spec.Template.Annotations["checksum/config"]; got == installChecksum {
		t.Errorf("upgrade: pod template config checksum unchanged (%s)", got)
	}
	if got := dep.Labels["team"]; got != "payments" {
		t.Errorf("upgrade: label set outside Helm is %q, want payments kept", got)
	}
	// Helm sends one patch per changed object; the metadata-only label
	// patch before it must not have bumped the generation.
	if dep.Generation != 2 {
		t.Errorf("upgrade: deployment generation %d, want 2", dep.Generation)
	}
	cm, err = client.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("configmap after upgrade: %v", err)
	}
	if want := map[string]string{"greeting": "bonjour"}; !equalStringMaps(cm.Data, want) {
		t.Errorf("upgrade: configmap data %v, want %v", cm.Data, want)
	}
	if _, err := client.NetworkingV1().Ingresses(ns).Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("upgrade: ingress dropped from the chart: get returned %v, want NotFound", err)
	}
	if _, err := client.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{}); err != nil {
		t.Errorf("upgrade: service: %v", err)
	}
	checkReleaseSecrets(t, client, ns, rel, map[int]release.Status{1: release.StatusSuperseded, 2: release.StatusDeployed})

	// helm history reads the release Secrets back.
	hist, err := action.NewHistory(helmConfig(t, srv.KubeconfigPath(), ns)).Run(rel)
	if err != nil {
		t.Fatalf("helm history: %v", err)
	}
	if len(hist) != 2 {
		t.Errorf("history: %d revisions, want 2", len(hist))
	}

	// uninstall: every object of the release and its history go.
	uninstall := action.NewUninstall(helmConfig(t, srv.KubeconfigPath(), ns))
	if _, err := uninstall.Run(rel); err != nil {
		t.Fatalf("helm uninstall: %v", err)
	}
	// Nothing in the chart has finalizers, so deletion is immediate.
	dyn := dynamic.NewForConfigOrDie(srv.Config)
	for _, gvr := range []schema.GroupVersionResource{
		{Group: "apps", Version: "v1", Resource: "deployments"},
		{Version: "v1", Resource: "services"},
		{Version: "v1", Resource: "configmaps"},
		{Version: "v1", Resource: "secrets"},
		{Version: "v1", Resource: "serviceaccounts"},
		{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "roles"},
		{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "rolebindings"},
	} {
		if _, err := dyn.Resource(gvr).Namespace(ns).Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("uninstall: %s: get returned %v, want NotFound", gvr.Resource, err)
		}
	}
	checkReleaseSecrets(t, client, ns, rel, nil)
	if _, err := action.NewHistory(helmConfig(t, srv.KubeconfigPath(), ns)).Run(rel); err == nil {
		t.Errorf("history after uninstall: no error, want release not found")
	}
}

// checkHelmOwned checks the metadata Helm puts on every object it creates,
// which a later upgrade needs to adopt the object.
func checkHelmOwned(t *testing.T, m metav1.ObjectMeta, rel, ns string) {
	t.Helper()
	if got := m.Labels["app.kubernetes.io/managed-by"]; got != "Helm" {
		t.Errorf("%s: managed-by label %q, want Helm", m.Name, got)
	}
	if got := m.Annotations["meta.helm.sh/release-name"]; got != rel {
		t.Errorf("%s: release-name annotation %q, want %s", m.Name, got, rel)
	}
	if got := m.Annotations["meta.helm.sh/release-namespace"]; got != ns {
		t.Errorf("%s: release-namespace annotation %q, want %s", m.Name, got, ns)
	}
}

// checkReleaseSecrets checks Helm's release history as the Secrets driver
// stores it: one Secret per revision, found by the labels Helm lists by,
// with the revision's status in a label.
func checkReleaseSecrets(t *testing.T, client kubernetes.Interface, ns, rel string, want map[int]release.Status) {
	t.Helper()
	list, err := client.CoreV1().Secrets(ns).List(context.Background(), metav1.ListOptions{
		LabelSelector: "owner=helm,name=" + rel,
	})
	if err != nil {
		t.Fatalf("list release secrets: %v", err)
	}
	got := map[string]string{}
	for _, s := range list.Items {
		if s.Type != corev1.SecretType("helm.sh/release.v1") {
			t.Errorf("release secret %s: type %q, want helm.sh/release.v1", s.Name, s.Type)
		}
		if len(s.Data["release"]) == 0 {
			t.Errorf("release secret %s: no release data", s.Name)
		}
		got[s.Name] = s.Labels["status"] + " v" + s.Labels["version"]
	}
	wantNames := map[string]string{}
	for v, st := range want {
		wantNames[fmt.Sprintf("sh.helm.release.v1.%s.v%d", rel, v)] = fmt.Sprintf("%s v%d", st, v)
	}
	if !equalStringMaps(got, wantNames) {
		t.Errorf("release secrets:\n got %s\nwant %s", describeMap(got), describeMap(wantNames))
	}
}

func equalStringMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func describeMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%s; ", k, m[k])
	}
	return b.String()
}
