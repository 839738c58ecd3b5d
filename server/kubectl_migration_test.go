package server_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/trellis-project/trellis/trellistest"
)

// migrationStep is what a kubectl apply left on a ConfigMap: its data,
// its last-applied-configuration annotation and its managed fields.
type migrationStep struct {
	Step        string
	Out         string // kubectl's output, or its error
	Warnings    string // what kubectl wrote to stderr
	Data        string // sorted k=v pairs
	LastApplied string
	Entries     []refEntry
}

// kubectlMigrationScenario moves a ConfigMap from client-side
// `kubectl apply` to `kubectl apply --server-side` and back, changing the
// manifest at each step, and a second ConfigMap the other way round. It
// returns what each step left; the same function ran against
// kube-apiserver v1.37.2 (with kubectl v0.37.2 in process) to get the
// expected values.
func kubectlMigrationScenario(kubeconfig, ns, dir string) []migrationStep {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return []migrationStep{{Step: "config", Out: err.Error()}}
	}
	cms := kubernetes.NewForConfigOrDie(cfg).CoreV1().ConfigMaps(ns)
	var steps []migrationStep
	run := func(step, name string, data map[string]string, args ...string) {
		var keys []string
		for k := range data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		manifest := fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\n  namespace: %s\ndata:\n", name, ns)
		for _, k := range keys {
			manifest += fmt.Sprintf("  %s: %q\n", k, data[k])
		}
		path := filepath.Join(dir, name+".yaml")
		if err := os.WriteFile(path, []byte(manifest), 0o600); err != nil {
			steps = append(steps, migrationStep{Step: step, Out: err.Error()})
			return
		}
		r := kubectl(nil, kubeconfig, "", append(append([]string{"apply"}, args...), "-f", path)...)
		s := migrationStep{Step: step, Out: strings.TrimSpace(r.stdout), Warnings: strings.TrimSpace(r.stderr)}
		if r.code != 0 {
			s.Out = fmt.Sprintf("exit %d: %s", r.code, r.fatal)
		}
		cm, err := cms.Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			s.Out += " get: " + err.Error()
			steps = append(steps, s)
			return
		}
		s.Data = sortedData(cm)
		s.LastApplied = cm.Annotations[corev1.LastAppliedConfigAnnotation]
		s.Entries = refEntries(cm.ManagedFields)
		steps = append(steps, s)
	}

	// Client-side first, then server-side: kubectl migrates the
	// kubectl-client-side-apply entry into its Apply entry, and fields
	// dropped from the manifest go.
	run("client-side create", "csa", map[string]string{"a": "1", "b": "2"})
	run("client-side update", "csa", map[string]string{"a": "1", "b": "3"})
	run("server-side after client-side", "csa", map[string]string{"a": "1", "c": "4"}, "--server-side")
	run("server-side again", "csa", map[string]string{"a": "2", "c": "4", "d": "5"}, "--server-side")
	// Back to client-side: the server kept last-applied-configuration
	// current, so a key dropped from the manifest is deleted.
	run("client-side after server-side", "csa", map[string]string{"a": "2", "d": "6"})

	// Server-side first, then client-side: no last-applied-configuration
	// yet, so kubectl warns and writes one.
	run("server-side create", "ssa", map[string]string{"p": "1", "q": "2"}, "--server-side")
	run("client-side after server-side create", "ssa", map[string]string{"p": "1"})
	run("client-side drops a key", "ssa", map[string]string{"r": "3"})
	return steps
}

func sortedData(cm *corev1.ConfigMap) string {
	var kv []string
	for k, v := range cm.Data {
		kv = append(kv, k+"="+v)
	}
	sort.Strings(kv)
	return strings.Join(kv, ",")
}

func checkMigrationSteps(t *testing.T, got, want []migrationStep) {
	t.Helper()
	for i := 0; i < max(len(got), len(want)); i++ {
		var g, w migrationStep
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if g.Step != w.Step || g.Out != w.Out || g.Warnings != w.Warnings || g.Data != w.Data || !sameJSONOrEmpty(t, g.LastApplied, w.LastApplied) || !sameEntries(t, g.Entries, w.Entries) {
			t.Errorf("step %d:\n got %+v\nwant %+v", i, g, w)
		}
	}
}

func sameJSONOrEmpty(t *testing.T, a, b string) bool {
	if a == "" || b == "" {
		return a == b
	}
	return sameJSON(t, a, b)
}

func TestKubectlApplyMigrationBetweenClientAndServerSide(t *testing.T) {
	srv := trellistest.StartServer(t)
	checkMigrationSteps(t, kubectlMigrationScenario(srv.KubeconfigPath(), "default", t.TempDir()), referenceKubectlMigration)
}

// What kube-apiserver v1.37.2 answered to kubectlMigrationScenario.
var referenceKubectlMigration = []migrationStep{
	{Step: "client-side create", Out: "configmap/csa created", Warnings: "", Data: "a=1,b=2",
		LastApplied: `{"apiVersion":"v1","data":{"a":"1","b":"2"},"kind":"ConfigMap","metadata":{"annotations":{},"name":"csa","namespace":"default"}}`,
		Entries: []refEntry{
			{"kubectl-client-side-apply", "Update", "v1", "", `{"f:data":{".":{},"f:a":{},"f:b":{}},"f:metadata":{"f:annotations":{".":{},"f:kubectl.kubernetes.io/last-applied-configuration":{}}}}`, true},
		}},
	{Step: "client-side update", Out: "configmap/csa configured", Warnings: "", Data: "a=1,b=3",
		LastApplied: `{"apiVersion":"v1","data":{"a":"1","b":"3"},"kind":"ConfigMap","metadata":{"annotations":{},"name":"csa","namespace":"default"}}`,
		Entries: []refEntry{
			{"kubectl-client-side-apply", "Update", "v1", "", `{"f:data":{".":{},"f:a":{},"f:b":{}},"f:metadata":{"f:annotations":{".":{},"f:kubectl.kubernetes.io/last-applied-configuration":{}}}}`, true},
		}},
	{Step: "server-side after client-side", Out: "configmap/csa serverside-applied", Warnings: "", Data: "a=1,c=4",
		LastApplied: `{"apiVersion":"v1","data":{"a":"1","c":"4"},"kind":"ConfigMap","metadata":{"name":"csa","namespace":"default"}}`,
		Entries: []refEntry{
			{"kubectl", "Apply", "v1", "", `{"f:data":{"f:a":{},"f:c":{}}}`, true},
			{"kubectl-last-applied", "Apply", "v1", "", `{"f:metadata":{"f:annotations":{"f:kubectl.kubernetes.io/last-applied-configuration":{}}}}`, false},
		}},
	{Step: "server-side again", Out: "configmap/csa serverside-applied", Warnings: "", Data: "a=2,c=4,d=5",
		LastApplied: `{"apiVersion":"v1","data":{"a":"2","c":"4","d":"5"},"kind":"ConfigMap","metadata":{"name":"csa","namespace":"default"}}`,
		Entries: []refEntry{
			{"kubectl", "Apply", "v1", "", `{"f:data":{"f:a":{},"f:c":{},"f:d":{}}}`, true},
			{"kubectl-last-applied", "Apply", "v1", "", `{"f:metadata":{"f:annotations":{"f:kubectl.kubernetes.io/last-applied-configuration":{}}}}`, false},
		}},
	{Step: "client-side after server-side", Out: "configmap/csa configured", Warnings: "", Data: "a=2,d=6",
		LastApplied: `{"apiVersion":"v1","data":{"a":"2","d":"6"},"kind":"ConfigMap","metadata":{"annotations":{},"name":"csa","namespace":"default"}}`,
		Entries: []refEntry{
			{"kubectl", "Apply", "v1", "", `{"f:data":{"f:a":{}}}`, true},
			{"kubectl-client-side-apply", "Update", "v1", "", `{"f:data":{"f:d":{}},"f:metadata":{"f:annotations":{"f:kubectl.kubernetes.io/last-applied-configuration":{}}}}`, true},
		}},
	{Step: "server-side create", Out: "configmap/ssa serverside-applied", Warnings: "", Data: "p=1,q=2",
		LastApplied: ``,
		Entries: []refEntry{
			{"kubectl", "Apply", "v1", "", `{"f:data":{"f:p":{},"f:q":{}}}`, true},
		}},
	{Step: "client-side after server-side create", Out: "configmap/ssa configured", Warnings: "Warning: resource configmaps/ssa is missing the kubectl.kubernetes.io/last-applied-configuration annotation which is required by kubectl apply. kubectl apply should only be used on resources created declaratively by either kubectl create --save-config or kubectl apply. The missing annotation will be patched automatically.", Data: "p=1,q=2",
		LastApplied: `{"apiVersion":"v1","data":{"p":"1"},"kind":"ConfigMap","metadata":{"annotations":{},"name":"ssa","namespace":"default"}}`,
		Entries: []refEntry{
			{"kubectl", "Apply", "v1", "", `{"f:data":{"f:p":{},"f:q":{}}}`, true},
			{"kubectl-client-side-apply", "Update", "v1", "", `{"f:metadata":{"f:annotations":{".":{},"f:kubectl.kubernetes.io/last-applied-configuration":{}}}}`, true},
		}},
	{Step: "client-side drops a key", Out: "configmap/ssa configured", Warnings: "", Data: "q=2,r=3",
		LastApplied: `{"apiVersion":"v1","data":{"r":"3"},"kind":"ConfigMap","metadata":{"annotations":{},"name":"ssa","namespace":"default"}}`,
		Entries: []refEntry{
			{"kubectl", "Apply", "v1", "", `{"f:data":{"f:q":{}}}`, true},
			{"kubectl-client-side-apply", "Update", "v1", "", `{"f:data":{"f:r":{}},"f:metadata":{"f:annotations":{".":{},"f:kubectl.kubernetes.io/last-applied-configuration":{}}}}`, true},
		}},
}
