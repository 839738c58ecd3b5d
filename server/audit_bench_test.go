package server_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/trellis-project/trellis/server"
	"github.com/trellis-project/trellis/trellistest"
)

// BenchmarkCreateAudited creates ~1 KB ConfigMaps from 16 goroutines
// through the whole request path with the audit log off or on at a level
// for every request. durable creates are committed to the store (fsync);
// dryRun creates stop before the store, so the request path's own cost,
// audit included, is not hidden behind the disk.
func BenchmarkCreateAudited(b *testing.B) {
	for _, mode := range []string{"durable", "dryRun"} {
		for _, level := range []string{"off", "Metadata", "RequestResponse"} {
			if mode == "durable" && level == "RequestResponse" {
				continue
			}
			b.Run(fmt.Sprintf("%s/audit=%s", mode, level), func(b *testing.B) {
				benchmarkCreateAudited(b, level, mode == "dryRun")
			})
		}
	}
}

func benchmarkCreateAudited(b *testing.B, level string, dryRun bool) {
	dir := b.TempDir()
	srv := trellistest.StartServer(b, trellistest.WithConfig(func(c *server.Config) {
		if level == "off" {
			return
		}
		c.AuditPolicyFile = filepath.Join(dir, "policy.yaml")
		c.AuditLogPath = filepath.Join(dir, "audit.log")
		policy := "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: " + level + "\n"
		if err := os.WriteFile(c.AuditPolicyFile, []byte(policy), 0o600); err != nil {
			b.Fatal(err)
		}
	}))
	cs := kubernetes.NewForConfigOrDie(srv.Config)
	ctx := context.Background()
	value := strings.Repeat("x", 900)
	opts := metav1.CreateOptions{}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	benchCreates(b, 16, func(i int) error {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%07d", i)}, Data: map[string]string{"v": value}}
		_, err := cs.CoreV1().ConfigMaps("default").Create(ctx, cm, opts)
		return err
	})
}
