package server_test

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"

	"k8s.io/client-go/kubernetes"

	"github.com/trellis-project/trellis/internal/store"
)

func storePrecondition() store.Precondition { return store.Precondition{} }

func scrapeMetrics(t testing.TB, cs kubernetes.Interface) string {
	t.Helper()
	raw, err := cs.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// metricValue reads one sample of the server's /metrics: name with
// exactly the given labels (name=value pairs, in any order; none for
// an unlabelled metric); -1 if absent.
func metricValue(t testing.TB, admin kubernetes.Interface, name string, labels ...string) float64 {
	t.Helper()
	slices.Sort(labels)
	quoted := make([]string, len(labels))
	for i, l := range labels {
		k, v, _ := strings.Cut(l, "=")
		quoted[i] = k + `="` + v + `"`
	}
	prefix := name + " "
	if len(labels) > 0 {
		prefix = name + "{" + strings.Join(quoted, ",") + "} "
	}
	for _, line := range strings.Split(scrapeMetrics(t, admin), "\n") {
		if rest, ok := strings.CutPrefix(line, prefix); ok {
			v, err := strconv.ParseFloat(rest, 64)
			if err != nil {
				t.Fatalf("metric line %q: %v", line, err)
			}
			return v
		}
	}
	return -1
}
