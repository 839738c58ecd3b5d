package trellistest

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/trellis-project/trellis/server"
)

// BenchmarkStartToReady measures an embedded server from New to Ready, as
// trellistest.Start pays it (certificates shared in the process), and
// reports the stop time too.
func BenchmarkStartToReady(b *testing.B) {
	var stopTotal time.Duration
	for b.Loop() {
		dir := b.TempDir()
		if err := copySharedPKI(filepath.Join(dir, "pki")); err != nil {
			b.Fatal(err)
		}
		srv, err := server.New(server.Config{DataDir: dir, Listen: "127.0.0.1:0"})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- srv.Run(ctx) }()
		<-srv.Ready()
		b.StopTimer()
		t := time.Now()
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		stopTotal += time.Since(t)
		b.StartTimer()
	}
	b.ReportMetric(float64(stopTotal.Microseconds())/float64(b.N)/1000, "stop-ms/op")
}
