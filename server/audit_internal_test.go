package server

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"

	"github.com/trellis-project/trellis/internal/audit"
	"github.com/trellis-project/trellis/internal/auth"
)

// A panic while serving is audited at stage Panic and then goes on up to
// the recovery filter; no ResponseComplete follows.
func TestAuditPanicStage(t *testing.T) {
	p, err := audit.LoadPolicy([]byte("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n"))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	s := &Server{audit: &auditing{policy: p, log: audit.NewLogBackend(&out, nil, 0)}}
	h := s.withAuditID(withRequestInfo(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r = r.WithContext(auth.WithUser(r.Context(), &auth.User{Name: "alice"}))
		s.withAudit(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") })).ServeHTTP(w, r)
	})))
	func() {
		defer func() {
			if p := recover(); p != "boom" {
				t.Errorf("recovered %v, want the handler's panic", p)
			}
		}()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/api/v1/namespaces/ns/pods/p", nil))
	}()
	s.audit.close()
	var got []auditv1.Event
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		var ev auditv1.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatal(err)
		}
		got = append(got, ev)
	}
	if len(got) != 2 || got[0].Stage != auditv1.StageRequestReceived || got[1].Stage != auditv1.StagePanic {
		t.Fatalf("events %+v", got)
	}
	ev := got[1]
	if ev.ResponseStatus == nil || ev.ResponseStatus.Code != http.StatusInternalServerError || ev.ResponseStatus.Message != "APIServer panic'd: boom" {
		t.Errorf("status %+v", ev.ResponseStatus)
	}
	if ev.User.Username != "alice" || ev.ObjectRef == nil || ev.ObjectRef.Name != "p" || ev.Verb != "get" {
		t.Errorf("event %+v", ev)
	}
}
