package server_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

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
	var next atomic.Int64
	cpu0 := processCPU(b)
	b.ResetTimer()
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%07d", i)}, Data: map[string]string{"v": value}}
				if _, err := cs.CoreV1().ConfigMaps("default").Create(ctx, cm, opts); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "creates/s")
	// CPU time per create (server and client share the process) is less
	// at the mercy of other processes on a shared machine than wall time.
	b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
}

// processCPU is the user and system CPU time the process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
