package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// buildAssets fills a KUBEBUILDER_ASSETS directory: this command, built and
// linked as kube-apiserver, and an etcd (TEST_ASSET_ETCD, or built from the
// etcd server module, which envtest insists on starting).
func buildAssets(t testing.TB) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go tool builds the binaries envtest starts: %v", err)
	}
	dir := t.TempDir()
	build := func(out, pkg string) {
		cmd := exec.Command(gobin, "build", "-o", out, pkg)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, b)
		}
	}
	build(filepath.Join(dir, "trellis"), ".")
	if err := os.Symlink(filepath.Join(dir, "trellis"), filepath.Join(dir, "kube-apiserver")); err != nil {
		t.Fatal(err)
	}
	if etcd := os.Getenv("TEST_ASSET_ETCD"); etcd != "" {
		if err := os.Symlink(etcd, filepath.Join(dir, "etcd")); err != nil {
			t.Fatal(err)
		}
	} else {
		build(filepath.Join(dir, "etcd"), "go.etcd.io/etcd/server/v3")
	}
	return dir
}

// TestEnvtestStartsTrellisAsKubeAPIServer runs controller-runtime's envtest
// with the trellis binary named kube-apiserver and checks what envtest
// relies on: its certificates, its admin user, RBAC for other users, the
// default namespace, and the flags it passes taking effect.
func TestEnvtestStartsTrellisAsKubeAPIServer(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds the trellis and etcd binaries and starts envtest (about a minute); CI runs it")
	}
	assets := buildAssets(t)
	t.Setenv("KUBEBUILDER_ASSETS", assets)
	// envtest hands these to the processes it starts; keep them for failures.
	env := &envtest.Environment{BinaryAssetsDirectory: assets, AttachControlPlaneOutput: testing.Verbose()}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("envtest start: %v", err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("envtest stop: %v", err)
		}
	})

	ctx := context.Background()
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var def corev1.Namespace
	if err := c.Get(ctx, client.ObjectKey{Name: "default"}, &def); err != nil {
		t.Fatalf("get default namespace as envtest's admin: %v", err)
	}

	// --allow-privileged=true: a privileged container is valid.
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "privileged", Namespace: "default"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "c", Image: "busybox",
			SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(true)},
		}}},
	}
	if err := c.Create(ctx, pod); err != nil {
		t.Fatalf("create privileged pod with --allow-privileged=true: %v", err)
	}

	// --authorization-mode=RBAC and --client-ca-file: a user envtest adds
	// authenticates with its certificate and is denied by RBAC.
	user, err := env.AddUser(envtest.User{Name: "alice", Groups: []string{"devs"}}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	uc, err := client.New(user.Config(), client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	err = uc.Get(ctx, client.ObjectKey{Name: "default"}, &corev1.Namespace{})
	if !apierrors.IsForbidden(err) {
		t.Fatalf("unprivileged user reading a namespace: got %v, want Forbidden", err)
	}
}

// BenchmarkEnvtestStart measures start-to-ready as envtest sees it:
// Environment.Start (etcd, then trellis as kube-apiserver until its
// /healthz answers, then the default namespace) and, separately, Stop.
//
//	go test -run '^$' -bench EnvtestStart -benchtime 5x ./cmd/trellis
func BenchmarkEnvtestStart(b *testing.B) {
	assets := buildAssets(b)
	b.Setenv("KUBEBUILDER_ASSETS", assets)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		env := &envtest.Environment{BinaryAssetsDirectory: assets}
		if _, err := env.Start(); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := env.Stop(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
