package bolt_test

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trellis-project/trellis/internal/store"
	"github.com/trellis-project/trellis/internal/store/bolt"
)

// crashChildEnv makes the test binary act as the writer process that the
// crash test kills.
const crashChildEnv = "TRELLIS_CRASH_CHILD_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(dir, os.Getenv("TRELLIS_CRASH_CHILD_ROUND"))
		return
	}
	os.Exit(m.Run())
}

// crashChild writes from 8 goroutines forever and prints "ack <key> <rev>"
// after each acknowledged create, and "upd <key> <rev>" after updates.
func crashChild(dir, round string) {
	s, err := bolt.Open(bolt.Options{Dir: dir, CompactionInterval: -1})
	if err != nil {
		fmt.Println("open-error", err)
		os.Exit(2)
	}
	out := bufio.NewWriter(os.Stdout)
	var mu sync.Mutex
	report := func(format string, args ...any) {
		mu.Lock()
		fmt.Fprintf(out, format, args...)
		out.Flush()
		mu.Unlock()
	}
	report("ready\n")
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				key := fmt.Sprintf("/crash/r%s-g%d-%06d", round, g, i)
				rev, err := s.Create(context.Background(), key, []byte(key))
				if err != nil {
					report("error %v\n", err)
					return
				}
				report("ack %s %d\n", key, rev)
			}
		}()
	}
	wg.Wait()
}

func TestCrashLosesNoAcknowledgedWrite(t *testing.T) {
	dir := t.TempDir()
	acked := map[string]int64{}
	var lastRev int64
	for round := range 20 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir, "TRELLIS_CRASH_CHILD_ROUND="+strconv.Itoa(round))
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 1024)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		if l := <-lines; l != "ready" {
			t.Fatalf("round %d: child said %q", round, l)
		}
		kill := time.After(time.Duration(20+rand.IntN(200)) * time.Millisecond)
	read:
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					break read
				}
				f := strings.Fields(l)
				if len(f) != 3 || f[0] != "ack" {
					t.Fatalf("round %d: child said %q", round, l)
				}
				rev, _ := strconv.ParseInt(f[2], 10, 64)
				acked[f[1]] = rev
			case <-kill:
				cmd.Process.Kill()
				kill = nil
			}
		}
		cmd.Wait()

		s, err := bolt.Open(bolt.Options{Dir: dir, CompactionInterval: -1})
		if err != nil {
			t.Fatalf("round %d: reopen after SIGKILL: %v", round, err)
		}
		rev, _ := s.CurrentRevision(context.Background())
		if rev < lastRev {
			t.Fatalf("round %d: revision went back from %d to %d", round, lastRev, rev)
		}
		lastRev = rev
		res, err := s.List(context.Background(), "/crash/", store.ListOptions{})
		if err != nil {
			t.Fatalf("round %d: list: %v", round, err)
		}
		have := map[string]int64{}
		for _, kv := range res.KVs {
			have[kv.Key] = kv.ModRevision
		}
		for key, rev := range acked {
			if got, ok := have[key]; !ok || got != rev {
				t.Fatalf("round %d: acknowledged %s at revision %d, store has %d (present %v)", round, key, rev, got, ok)
			}
		}
		s.Close()
	}
	t.Logf("%d acknowledged writes survived 20 SIGKILLs", len(acked))
}
