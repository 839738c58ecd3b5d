package openapi_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/kubectl/pkg/cmd"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"

	"github.com/trellis-project/trellis/trellistest"
)

// exitError is how runKubectl learns that kubectl gave up: its fatal
// handler, which would exit the process, panics with it instead.
type exitError struct {
	msg  string
	code int
}

func (e *exitError) Error() string { return fmt.Sprintf("exit %d: %s", e.code, e.msg) }

// runKubectl runs the kubectl command tree in process. Its fatal handler
// is process-wide, so these tests do not run in parallel.
func runKubectl(kubeconfig, cacheDir, stdin string, args ...string) (stdout string, err error) {
	var out, errOut bytes.Buffer
	cmdutil.BehaviorOnFatal(func(msg string, code int) { panic(&exitError{msg, code}) })
	defer cmdutil.DefaultBehaviorOnFatal()
	flags := genericclioptions.NewConfigFlags(true)
	flags.KubeConfig, flags.CacheDir = &kubeconfig, &cacheDir
	root := cmd.NewDefaultKubectlCommandWithArgs(cmd.KubectlOptions{
		Arguments:   append([]string{"kubectl"}, args...),
		ConfigFlags: flags,
		IOStreams:   genericiooptions.IOStreams{In: strings.NewReader(stdin), Out: &out, ErrOut: &errOut},
	})
	root.SetArgs(args)
	defer func() {
		if r := recover(); r != nil {
			e, ok := r.(*exitError)
			if !ok {
				panic(r)
			}
			stdout, err = out.String(), e
		}
	}()
	err = root.Execute()
	return out.String(), err
}

// TestKubectlAgainstServer runs kubectl explain and server-side field
// validation against a whole Trellis server.
func TestKubectlAgainstServer(t *testing.T) {
	srv := trellistest.StartServer(t)
	kc, cache := srv.KubeconfigPath(), t.TempDir()
	kubectl := func(stdin string, args ...string) (string, error) {
		t.Helper()
		return runKubectl(kc, cache, stdin, args...)
	}

	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"explain", "configmap.data"}, []string{"KIND:       ConfigMap", "FIELD: data <map[string]string>"}},
		{[]string{"explain", "namespaces.spec", "--recursive"}, []string{"FIELD: spec <NamespaceSpec>", "finalizers\t<[]string>"}},
		{[]string{"explain", "leases.spec.holderIdentity"}, []string{"GROUP:      coordination.k8s.io", "FIELD: holderIdentity <string>"}},
		{[]string{"explain", "configmap", "--output=plaintext-openapiv2"}, []string{"KIND:     ConfigMap", "immutable\t<boolean>"}},
	} {
		out, err := kubectl("", tc.args...)
		if err != nil {
			t.Errorf("kubectl %s: %v", strings.Join(tc.args, " "), err)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("kubectl %s lacks %q:\n%s", strings.Join(tc.args, " "), w, out)
			}
		}
	}

	// kubectl sends fieldValidation only when /openapi/v3 lists it on the
	// kind's PATCH operation; the server then rejects the unknown field.
	manifest := filepath.Join(t.TempDir(), "cm.yaml")
	if err := os.WriteFile(manifest, []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: strict\ndata:\n  a: b\nbogus: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := kubectl("", "apply", "--validate=strict", "-f", manifest)
	// Client-side validation, kubectl's fallback, would say
	// "ValidationError" instead of passing the server's answer on.
	if err == nil || !strings.Contains(err.Error(), `Error from server (BadRequest)`) || !strings.Contains(err.Error(), `strict decoding error: unknown field "bogus"`) {
		t.Errorf("apply --validate=strict with an unknown field: %v", err)
	}
}
