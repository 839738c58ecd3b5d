package server_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/trellis-project/trellis/server"
	"github.com/trellis-project/trellis/trellistest"
)

func TestRBACAuthorization(t *testing.T) {
	ctx := context.Background()
	tokens := filepath.Join(t.TempDir(), "tokens.csv")
	os.WriteFile(tokens, []byte("bob-token,bob,1001,\"devs\"\n"), 0o600)
	srv := trellistest.StartServer(t, trellistest.WithConfig(func(c *server.Config) {
		c.AuthorizationModes = []string{"RBAC"}
		c.TokenAuthFile = tokens
	}))
	admin := kubernetes.NewForConfigOrDie(srv.Config)
	bobCfg := rest.AnonymousClientConfig(srv.Config)
	bobCfg.BearerToken = "bob-token"
	bob := kubernetes.NewForConfigOrDie(bobCfg)

	_, err := bob.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{})
	want := `configmaps is forbidden: User "bob" cannot list resource "configmaps" in API group "" in the namespace "default"`
	if !apierrors.IsForbidden(err) || err.Error() != want {
		t.Fatalf("unbound user: %v\nwant %s", err, want)
	}

	// The bootstrap policy exists, and aggregation filled the view role.
	err = wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		view, err := admin.RbacV1().ClusterRoles().Get(ctx, "view", metav1.GetOptions{})
		return err == nil && len(view.Rules) > 0, nil
	})
	if err != nil {
		t.Fatal("the aggregated view ClusterRole has no rules")
	}
	if _, err := admin.RbacV1().ClusterRoleBindings().Get(ctx, "cluster-admin", metav1.GetOptions{}); err != nil {
		t.Fatalf("bootstrap cluster-admin binding: %v", err)
	}

	// Binding the group to view lets bob read, not write.
	_, err = admin.RbacV1().RoleBindings("default").Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "devs-view"},
		Subjects:   []rbacv1.Subject{{Kind: "Group", Name: "devs", APIGroup: "rbac.authorization.k8s.io"}},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "view"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := bob.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{})
		return err == nil, nil
	})
	if err != nil {
		t.Fatal("bob still cannot list after the binding")
	}
	_, err = bob.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) {
		t.Fatalf("view lets bob create: %v", err)
	}
	if _, err := bob.CoreV1().ConfigMaps("kube-system").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("a RoleBinding in default reaches kube-system: %v", err)
	}
}
