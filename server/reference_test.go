package server_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Scenario tests: a scenario function makes a series of writes through a
// real client and returns what each left; the tests compare that with
// what the same function returned when run against kube-apiserver
// v1.37.2 (the reference values written into the tests).

// refEntry is a managedFields entry as a reference kube-apiserver
// returned it, but for its time, of which only the presence is kept.
type refEntry struct {
	Manager, Operation, APIVersion, Subresource, Fields string
	Timed                                               bool
}

// refStep is what one write left: the object's managedFields, or the
// error's message and causes.
type refStep struct {
	Step    string
	Entries []refEntry
	Err     string
}

func refEntries(mf []metav1.ManagedFieldsEntry) []refEntry {
	out := []refEntry{}
	for _, e := range mf {
		fields := ""
		if e.FieldsV1 != nil {
			fields = string(e.FieldsV1.Raw)
		}
		out = append(out, refEntry{e.Manager, string(e.Operation), e.APIVersion, e.Subresource, fields, e.Time != nil})
	}
	// kube-apiserver orders entries by time, at one-second resolution:
	// compare them in a fixed order instead.
	slices.SortFunc(out, func(a, b refEntry) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
	return out
}

// refError keeps what a client sees of a failed write.
func refError(err error) string {
	st, ok := err.(apierrors.APIStatus)
	if !ok {
		return err.Error()
	}
	s := st.Status()
	out := fmt.Sprintf("%d %s: %s", s.Code, s.Reason, s.Message)
	if s.Details != nil {
		for _, c := range s.Details.Causes {
			out += fmt.Sprintf("\n  cause %s %s: %s", c.Type, c.Field, c.Message)
		}
	}
	return out
}

// checkRefSteps compares a scenario's steps with the reference's.
func checkRefSteps(t *testing.T, got, want []refStep) {
	t.Helper()
	for i := 0; i < max(len(got), len(want)); i++ {
		var g, w refStep
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if g.Step != w.Step || g.Err != w.Err || !sameEntries(t, g.Entries, w.Entries) {
			gj, _ := json.MarshalIndent(g, "", "  ")
			wj, _ := json.MarshalIndent(w, "", "  ")
			t.Errorf("step %d:\n got %s\nwant %s", i, gj, wj)
		}
	}
}

func sameEntries(t *testing.T, a, b []refEntry) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if x.Manager != y.Manager || x.Operation != y.Operation || x.APIVersion != y.APIVersion ||
			x.Subresource != y.Subresource || x.Timed != y.Timed || !sameJSON(t, x.Fields, y.Fields) {
			return false
		}
	}
	return true
}
