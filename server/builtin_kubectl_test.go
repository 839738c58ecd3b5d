package server_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const shopManifest = `
apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.27
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  selector: {app: web}
  ports:
  - port: 80
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
  namespace: shop
spec:
  rules:
  - host: web.example.com
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service:
            name: web
            port: {number: 80}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: web
  namespace: shop
spec:
  minAvailable: 1
  selector:
    matchLabels: {app: web}
---
apiVersion: batch/v1
kind: CronJob
metadata:
  name: nightly
  namespace: shop
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers:
          - name: report
            image: busybox
`

// rows splits kubectl's table output into lines of fields.
func rows(out string) [][]string {
	var rs [][]string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			rs = append(rs, f)
		}
	}
	return rs
}

// hasRow reports whether out has a line starting with the given fields.
func hasRow(out string, prefix ...string) bool {
	for _, r := range rows(out) {
		if len(r) >= len(prefix) && strings.Join(r[:len(prefix)], " ") == strings.Join(prefix, " ") {
			return true
		}
	}
	return false
}

// TestKubectlGetWorkloads applies a typical application and checks what
// `kubectl get deploy,svc,ing,pdb,cj -A` prints: one table per kind with
// kube-apiserver's columns.
func TestKubectlGetWorkloads(t *testing.T) {
	kc := startWithKubeconfig(t)
	path := filepath.Join(t.TempDir(), "shop.yaml")
	if err := os.WriteFile(path, []byte(shopManifest), 0o600); err != nil {
		t.Fatal(err)
	}
	mustKubectl(t, kc, "", "apply", "-f", path)

	out := mustKubectl(t, kc, "", "get", "deploy,svc,ing,pdb,cj", "-A")
	for _, want := range [][]string{
		{"NAMESPACE", "NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"},
		{"shop", "deployment.apps/web", "0/2", "0", "0"},
		{"NAMESPACE", "NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"},
		{"NAMESPACE", "NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"},
		{"shop", "ingress.networking.k8s.io/web", "<none>", "web.example.com", "80"},
		{"NAMESPACE", "NAME", "MIN", "AVAILABLE", "MAX", "UNAVAILABLE", "ALLOWED", "DISRUPTIONS", "AGE"},
		{"shop", "poddisruptionbudget.policy/web", "1", "N/A", "0"},
		{"NAMESPACE", "NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST", "SCHEDULE", "AGE"},
		{"shop", "cronjob.batch/nightly", "0", "3", "*", "*", "*", "<none>", "False", "0", "<none>"},
	} {
		if !hasRow(out, want...) {
			t.Errorf("no row %q in:\n%s", strings.Join(want, " "), out)
		}
	}
	svc := rows(mustKubectl(t, kc, "", "get", "svc", "web", "-n", "shop", "--no-headers"))
	if len(svc) != 1 || svc[0][1] != "ClusterIP" || !strings.HasPrefix(svc[0][2], "10.96.") || svc[0][4] != "80/TCP" {
		t.Errorf("service row %v", svc)
	}

	// The "all" category and /scale through kubectl.
	out = mustKubectl(t, kc, "", "get", "all", "-n", "shop", "-o", "name")
	for _, want := range []string{"service/web", "deployment.apps/web", "cronjob.batch/nightly"} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("get all lacks %s:\n%s", want, out)
		}
	}
	mustKubectl(t, kc, "", "scale", "deployment", "web", "-n", "shop", "--replicas=5")
	if got := mustKubectl(t, kc, "", "get", "deploy", "web", "-n", "shop", "-o", "jsonpath={.spec.replicas}/{.metadata.generation}"); got != "5/2" {
		t.Errorf("after kubectl scale: replicas/generation %s, want 5/2", got)
	}
}

// TestKubectlAPIResources checks that `kubectl api-resources` lists the
// built-in resources with kube-apiserver's short names, versions, scope
// and kinds.
func TestKubectlAPIResources(t *testing.T) {
	kc := startWithKubeconfig(t)
	out := mustKubectl(t, kc, "", "api-resources")
	for _, want := range [][]string{
		{"pods", "po", "v1", "true", "Pod"},
		{"nodes", "no", "v1", "false", "Node"},
		{"replicationcontrollers", "rc", "v1", "true", "ReplicationController"},
		{"persistentvolumeclaims", "pvc", "v1", "true", "PersistentVolumeClaim"},
		{"limitranges", "limits", "v1", "true", "LimitRange"},
		{"resourcequotas", "quota", "v1", "true", "ResourceQuota"},
		{"podtemplates", "v1", "true", "PodTemplate"},
		{"deployments", "deploy", "apps/v1", "true", "Deployment"},
		{"statefulsets", "sts", "apps/v1", "true", "StatefulSet"},
		{"daemonsets", "ds", "apps/v1", "true", "DaemonSet"},
		{"replicasets", "rs", "apps/v1", "true", "ReplicaSet"},
		{"horizontalpodautoscalers", "hpa", "autoscaling/v2", "true", "HorizontalPodAutoscaler"},
		{"cronjobs", "cj", "batch/v1", "true", "CronJob"},
		{"jobs", "batch/v1", "true", "Job"},
		{"certificatesigningrequests", "csr", "certificates.k8s.io/v1", "false", "CertificateSigningRequest"},
		{"endpointslices", "discovery.k8s.io/v1", "true", "EndpointSlice"},
		{"flowschemas", "flowcontrol.apiserver.k8s.io/v1", "false", "FlowSchema"},
		{"ingresses", "ing", "networking.k8s.io/v1", "true", "Ingress"},
		{"networkpolicies", "netpol", "networking.k8s.io/v1", "true", "NetworkPolicy"},
		{"runtimeclasses", "node.k8s.io/v1", "false", "RuntimeClass"},
		{"poddisruptionbudgets", "pdb", "policy/v1", "true", "PodDisruptionBudget"},
		{"clusterroles", "rbac.authorization.k8s.io/v1", "false", "ClusterRole"},
		{"rolebindings", "rbac.authorization.k8s.io/v1", "true", "RoleBinding"},
		{"resourceclaims", "resource.k8s.io/v1", "true", "ResourceClaim"},
		{"priorityclasses", "pc", "scheduling.k8s.io/v1", "false", "PriorityClass"},
		{"storageclasses", "sc", "storage.k8s.io/v1", "false", "StorageClass"},
		{"volumeattributesclasses", "vac", "storage.k8s.io/v1", "false", "VolumeAttributesClass"},
		{"storageversionmigrations", "storagemigration.k8s.io/v1", "false", "StorageVersionMigration"},
		{"validatingadmissionpolicies", "admissionregistration.k8s.io/v1", "false", "ValidatingAdmissionPolicy"},
	} {
		if !hasRow(out, want...) {
			t.Errorf("api-resources lacks %q:\n%s", strings.Join(want, " "), out)
		}
	}
	// Their schemas are published: kubectl explain reads /openapi/v3.
	for field, want := range map[string]string{
		"deployment.spec.replicas":            "FIELD: replicas <integer>",
		"cj.spec.schedule":                    "FIELD: schedule <string>",
		"hpa.spec.metrics":                    "VERSION:    v2",
		"resourceclaims.spec":                 "GROUP:      resource.k8s.io",
		"pdb.spec.unhealthyPodEvictionPolicy": "FIELD: unhealthyPodEvictionPolicy <string>",
	} {
		if out := mustKubectl(t, kc, "", "explain", field); !strings.Contains(out, want) {
			t.Errorf("explain %s lacks %q:\n%s", field, want, out)
		}
	}
}
