package storetest_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/trellis-project/trellis/internal/store"
	"github.com/trellis-project/trellis/internal/store/storetest"
)

// TestReferenceStore checks the suite against a plain model of the contract:
// a suite that fails a correct store is itself wrong.
func TestReferenceStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s := newMemStore("")
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// faultEnv names the fault a child test process injects.
const faultEnv = "STORETEST_FAULT"

// faults pairs each mistake memStore can make with a subtest that must catch
// it; the pairing keeps the suite honest: a subtest that cannot fail is a
// defect.
var faults = []struct {
	fault   string
	subtest string
	mistake string
}{
	{"create-overwrites", "CreateExisting", "Create replaces an existing key"},
	{"ignore-precondition", "Update", "Update ignores a stale precondition"},
	{"delete-keeps-revision", "Delete", "Delete returns the last version's own ModRevision"},
	{"shared-values", "ReturnedValuesBelongToCaller", "Get hands out the stored slice"},
	{"ignore-limit", "ListLimit", "List ignores Limit"},
	{"never-more", "ListLimit", "List never sets More"},
	{"start-key-exclusive", "ListStartKey", "List skips StartKey itself"},
	{"exact-reads-latest", "ListExactRevision", "Exact reads the newest data"},
	{"exact-reads-latest", "ListPaginationSnapshot", "later pages see writes made after the first"},
	{"read-compacted", "Compact", "compacted revisions stay readable"},
	{"watch-skips-first", "WatchReplaysThenFollows", "a watch drops its first event"},
	{"delete-event-without-prev", "WatchReplaysThenFollows", "Delete events lack Prev"},
	{"from-now-replays-last", "WatchFromNow", "a watch from now replays the newest write"},
	{"watch-sees-siblings", "WatchPrefixIsolation", "a watch on /a/ sees /ab"},
	{"no-progress", "WatchProgress", "no Progress events"},
	{"open-after-close", "Close", "calls after Close succeed"},
}

// TestSuiteCatchesFaults runs one subtest of the suite against a memStore
// with one fault injected, in a child process (a failing subtest must not
// fail this test), and requires that subtest to fail.
func TestSuiteCatchesFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process per fault")
	}
	for _, f := range faults {
		t.Run(f.fault+"/"+f.subtest, func(t *testing.T) {
			t.Parallel()
			cmd := exec.CommandContext(t.Context(), os.Args[0],
				"-test.run=^TestFaultyStore$/^"+f.subtest+"$", "-test.count=1")
			cmd.Env = append(os.Environ(), faultEnv+"="+f.fault)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("suite passed a store where %s:\n%s", f.mistake, out)
			}
			if want := "--- FAIL: TestFaultyStore/" + f.subtest; !strings.Contains(string(out), want) {
				t.Fatalf("child failed, but not in %s:\n%s", f.subtest, out)
			}
		})
	}
}

// TestFaultyStore is the child half of TestSuiteCatchesFaults.
func TestFaultyStore(t *testing.T) {
	fault := os.Getenv(faultEnv)
	if fault == "" {
		t.Skip("run by TestSuiteCatchesFaults")
	}
	storetest.Run(t, func(t *testing.T) store.Store {
		s := newMemStore(fault)
		t.Cleanup(func() { s.Close() })
		return s
	})
}
