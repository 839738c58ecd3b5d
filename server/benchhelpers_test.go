package server_test

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// What the benchmarks of this package share: running many creates from
// several goroutines, the CPU time they cost, and the memory a process
// holds.

// concurrently calls fn(i) for every i in [0, n) from c goroutines, each
// i once, and fails tb with the first error after all have stopped. A
// goroutine stops at its first error; the others finish their share.
func concurrently(tb testing.TB, n, c int, fn func(i int) error) {
	tb.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					once.Do(func() { first = fmt.Errorf("op %d: %w", i, err) })
					return
				}
			}
		}()
	}
	wg.Wait()
	if first != nil {
		tb.Fatal(first)
	}
}

// benchCreates is the timed part of a create benchmark: b.N calls of
// create from c goroutines (c = 1: one at a time, in order). It reports
// creates/s and cpu-µs/op, the CPU time (user and system) the whole
// process spent per create. The server and the client share the process,
// so cpu-µs/op covers both; on a shared machine it is less at the mercy of
// other processes than wall time is.
func benchCreates(b *testing.B, c int, create func(i int) error) {
	b.Helper()
	cpu0 := processCPU(b)
	b.ResetTimer()
	concurrently(b, b.N, c, create)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "creates/s")
	reportCPUPerOp(b, cpu0, b.N, "cpu-µs/op", time.Microsecond)
}

// reportCPUPerOp reports the process CPU time since cpu0 divided by ops,
// in units of unit, under the metric name.
func reportCPUPerOp(b *testing.B, cpu0 time.Duration, ops int, name string, unit time.Duration) {
	b.ReportMetric(float64(processCPU(b)-cpu0)/float64(unit)/float64(ops), name)
}

// benchSize is the size of a benchmark that ignores b.N: the environment
// variable env if set, else short under -short (a quick smoke run), else
// full.
func benchSize(b *testing.B, env string, full, short int) int {
	if s := os.Getenv(env); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			b.Fatalf("%s: %v", env, err)
		}
		return n
	}
	if testing.Short() {
		return short
	}
	return full
}

// processCPU is the user and system CPU time the process has used.
func processCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procStatusKB returns a field of /proc/<pid>/status in KiB; pid "self"
// is this process. Only the memory benchmarks use it: resident memory is
// read from Linux's /proc, so on a system without it they skip.
func procStatusKB(tb testing.TB, pid, field string) float64 {
	tb.Helper()
	f, err := os.Open("/proc/" + pid + "/status")
	if err != nil {
		tb.Skip("resident memory is read from /proc/<pid>/status, which this system lacks: ", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			v, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			if err != nil {
				tb.Fatal(err)
			}
			return v
		}
	}
	tb.Fatalf("no %s in /proc/%s/status", field, pid)
	return 0
}

type memSample struct{ rssMB, heapMB float64 }

// sampleMemory collects garbage, returns freed memory to the system, and
// reads this process's RSS and Go heap in use.
func sampleMemory(tb testing.TB) memSample {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memSample{rssMB: procStatusKB(tb, "self", "VmRSS") / 1024, heapMB: float64(ms.HeapInuse) / (1 << 20)}
}
