package server_test

import (
	"bytes"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/kubectl/pkg/cmd"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"

	"github.com/trellis-project/trellis/trellistest"
)

// kubectlMu serialises kubectl runs: BehaviorOnFatal is process-global.
var kubectlMu sync.Mutex

type kubectlResult struct {
	stdout, stderr string
	fatal          string
	code           int
}

// kubectl runs the kubectl command library in process against kubeconfig.
func kubectl(t *testing.T, kubeconfig string, stdin string, args ...string) kubectlResult {
	if t != nil {
		t.Helper()
	}
	kubectlMu.Lock()
	defer kubectlMu.Unlock()
	var out, errOut bytes.Buffer
	res := kubectlResult{}
	cmdutil.BehaviorOnFatal(func(msg string, code int) {
		res.fatal, res.code = msg, code
		panic(fatalPanic{})
	})
	defer cmdutil.DefaultBehaviorOnFatal()
	streams := genericiooptions.IOStreams{In: strings.NewReader(stdin), Out: &out, ErrOut: &errOut}
	root := cmd.NewDefaultKubectlCommandWithArgs(cmd.KubectlOptions{
		PluginHandler: nil,
		Arguments:     append([]string{"kubectl"}, args...),
		ConfigFlags:   genericclioptionsConfigFlags(kubeconfig),
		IOStreams:     streams,
	})
	root.SetArgs(args)
	func() {
		defer func() {
			if r := recover(); r != nil {
				if _, ok := r.(fatalPanic); !ok {
					panic(r)
				}
			}
		}()
		if err := root.Execute(); err != nil {
			res.fatal, res.code = err.Error(), 1
		}
	}()
	res.stdout, res.stderr = out.String(), errOut.String()
	return res
}

type fatalPanic struct{}

// mustKubectl fails the test if kubectl reported an error.
func mustKubectl(t *testing.T, kubeconfig, stdin string, args ...string) string {
	t.Helper()
	r := kubectl(t, kubeconfig, stdin, args...)
	if r.code != 0 {
		t.Fatalf("kubectl %s: exit %d: %s\nstderr: %s", strings.Join(args, " "), r.code, r.fatal, r.stderr)
	}
	return r.stdout
}

func startWithKubeconfig(t *testing.T) string {
	t.Helper()
	srv := trellistest.StartServer(t)
	return srv.KubeconfigPath()
}

func TestKubectlBasics(t *testing.T) {
	kc := startWithKubeconfig(t)

	out := mustKubectl(t, kc, "", "get", "namespaces")
	for _, ns := range []string{"default", "kube-system", "kube-public", "kube-node-lease"} {
		if !strings.Contains(out, ns) {
			t.Errorf("get namespaces lacks %s:\n%s", ns, out)
		}
	}
	if !strings.HasPrefix(out, "NAME") || !strings.Contains(out, "STATUS") || !strings.Contains(out, "Active") {
		t.Errorf("get namespaces is not a table:\n%s", out)
	}

	mustKubectl(t, kc, "", "create", "configmap", "settings", "--from-literal=color=blue", "--from-literal=size=L")
	out = mustKubectl(t, kc, "", "get", "configmap", "settings", "-o", "jsonpath={.data.color}")
	if out != "blue" {
		t.Errorf("jsonpath = %q", out)
	}
	out = mustKubectl(t, kc, "", "get", "cm", "settings", "-o", "yaml")
	if !strings.Contains(out, "size: L") || !strings.Contains(out, "kind: ConfigMap") {
		t.Errorf("-o yaml:\n%s", out)
	}
	out = mustKubectl(t, kc, "", "get", "configmaps", "-o", "wide")
	if !strings.Contains(out, "settings") || !strings.Contains(out, "DATA") {
		t.Errorf("-o wide:\n%s", out)
	}
	out = mustKubectl(t, kc, "", "get", "configmaps", "-o", "json")
	if !strings.Contains(out, `"kind": "List"`) && !strings.Contains(out, `"kind": "ConfigMapList"`) {
		t.Errorf("-o json:\n%s", out)
	}

	mustKubectl(t, kc, "", "label", "configmap", "settings", "team=blue")
	mustKubectl(t, kc, "", "annotate", "configmap", "settings", "note=hello")
	out = mustKubectl(t, kc, "", "get", "cm", "-l", "team=blue", "-o", "name")
	if strings.TrimSpace(out) != "configmap/settings" {
		t.Errorf("label selector: %q", out)
	}
	out = mustKubectl(t, kc, "", "get", "cm", "settings", "-o", "jsonpath={.metadata.annotations.note}")
	if out != "hello" {
		t.Errorf("annotation = %q", out)
	}
	mustKubectl(t, kc, "", "patch", "cm", "settings", "-p", `{"data":{"color":"red"}}`)
	if out := mustKubectl(t, kc, "", "get", "cm", "settings", "-o", "jsonpath={.data.color}"); out != "red" {
		t.Errorf("after patch color = %q", out)
	}

	r := kubectl(t, kc, "", "get", "configmap", "nope")
	if r.code == 0 || !strings.Contains(r.fatal, `configmaps "nope" not found`) {
		t.Errorf("missing object: %+v", r)
	}
}

func TestKubectlDiscovery(t *testing.T) {
	kc := startWithKubeconfig(t)
	out := mustKubectl(t, kc, "", "api-resources")
	for _, want := range []string{"configmaps", "cm", "namespaces", "leases", "coordination.k8s.io/v1", "events.k8s.io/v1"} {
		if !strings.Contains(out, want) {
			t.Errorf("api-resources lacks %q:\n%s", want, out)
		}
	}
	out = mustKubectl(t, kc, "", "api-versions")
	for _, want := range []string{"v1", "coordination.k8s.io/v1", "events.k8s.io/v1"} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("api-versions lacks %q:\n%s", want, out)
		}
	}
}

func genericclioptionsConfigFlags(kubeconfig string) *genericclioptions.ConfigFlags {
	f := genericclioptions.NewConfigFlags(true)
	f.KubeConfig = &kubeconfig
	// A discovery cache beside the kubeconfig, not ~/.kube/cache: test
	// servers reuse each other's ports, and a cache filled by an earlier
	// server would hide resources a later one serves.
	cacheDir := filepath.Join(filepath.Dir(kubeconfig), "kubectl-cache")
	f.CacheDir = &cacheDir
	return f
}

// kubectlRaw runs kubectl from another goroutine without a *testing.T.
func kubectlRaw(kubeconfig string, args ...string) {
	kubectl(nil, kubeconfig, "", args...)
}
