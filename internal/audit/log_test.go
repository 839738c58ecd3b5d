package audit_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"

	"github.com/trellis-project/trellis/internal/audit"
)

// gate is a writer that blocks until opened, standing for a stuck disk.
type gate struct {
	open chan struct{}
	mu   sync.Mutex
	buf  bytes.Buffer
}

func (g *gate) Write(p []byte) (int, error) {
	<-g.open
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.buf.Write(p)
}

func TestLogBackendDropsInsteadOfBlocking(t *testing.T) {
	g := &gate{open: make(chan struct{})}
	b := audit.NewLogBackend(g, nil, 2)
	// Events bigger than the writer's buffer, so the writer goroutine
	// blocks on the gate by the second.
	big := strings.Repeat("x", 128<<10)
	for i := 0; i < 10; i++ {
		b.Process(&auditv1.Event{AuditID: "id", Annotations: map[string]string{"big": big}})
	}
	// Process returned ten times with the writer stuck: at most two events
	// are in the writer's hands and two are queued.
	if got := b.Dropped(); got < 6 {
		t.Fatalf("dropped %d events, want at least 6", got)
	}
	close(g.open)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if got := b.Written() + b.Dropped(); got != 10 {
		t.Fatalf("written %d + dropped %d != 10", b.Written(), b.Dropped())
	}
}

func TestLogBackendWritesJSONLines(t *testing.T) {
	var out bytes.Buffer
	b := audit.NewLogBackend(&out, nil, 0)
	rec := audit.NewRecord("abc", time.Unix(1700000000, 0), audit.Config{Level: auditv1.LevelMetadata}, b)
	rec.Update(func(ev *auditv1.Event) {
		ev.Verb = "create"
		ev.ObjectRef = &auditv1.ObjectReference{Resource: "secrets", Namespace: "ns", APIVersion: "v1"}
	})
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s1", UID: "u1"}, Data: map[string][]byte{"k": []byte("secret")}}
	rec.LogRequestBody(mustJSON(t, secret))
	rec.LogRequestObject(secret)
	rec.ProcessStage(auditv1.StageRequestReceived)
	rec.AddAnnotation("a", "1")
	rec.AddAnnotation("a", "2") // the first value stays
	rec.SetResponseCode(201)
	rec.ProcessStage(auditv1.StageResponseComplete)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "c2VjcmV0") {
		t.Fatalf("secret data at Metadata level: %s", out.String())
	}
	var events []auditv1.Event
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		var ev auditv1.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		events = append(events, ev)
	}
	if len(events) != 2 {
		t.Fatalf("%d events, want 2", len(events))
	}
	first, last := events[0], events[1]
	if first.Kind != "Event" || first.APIVersion != "audit.k8s.io/v1" || first.Stage != auditv1.StageRequestReceived || first.AuditID != "abc" {
		t.Errorf("first event: %+v", first)
	}
	if first.ResponseStatus != nil || first.Annotations != nil {
		t.Errorf("RequestReceived carries later state: %+v", first)
	}
	if !first.StageTimestamp.Equal(&first.RequestReceivedTimestamp) {
		t.Errorf("RequestReceived stage timestamp %v, want the received time", first.StageTimestamp)
	}
	want := auditv1.ObjectReference{Resource: "secrets", Namespace: "ns", Name: "s1", UID: "u1", APIVersion: "v1"}
	if *last.ObjectRef != want {
		t.Errorf("objectRef %+v, want %+v", *last.ObjectRef, want)
	}
	if last.RequestObject != nil || last.ResponseObject != nil {
		t.Errorf("objects at Metadata level")
	}
	if last.ResponseStatus == nil || last.ResponseStatus.Code != 201 || last.Annotations["a"] != "1" {
		t.Errorf("last event: status %+v annotations %v", last.ResponseStatus, last.Annotations)
	}
}

func TestRecordObjectsByLevel(t *testing.T) {
	body := []byte(`{"metadata":{"name":"c","managedFields":[{"manager":"m"}]},"data":{"k":"v"}}`)
	for _, tt := range []struct {
		level             auditv1.Level
		omitManaged       bool
		wantReq, wantResp bool
	}{
		{auditv1.LevelMetadata, false, false, false},
		{auditv1.LevelRequest, false, true, false},
		{auditv1.LevelRequestResponse, false, true, true},
		{auditv1.LevelRequestResponse, true, true, true},
	} {
		var out bytes.Buffer
		b := audit.NewLogBackend(&out, nil, 0)
		rec := audit.NewRecord("id", time.Now(), audit.Config{Level: tt.level, OmitManagedFields: tt.omitManaged}, b)
		rec.LogRequestBody(body)
		rec.LogResponseBody(body)
		rec.LogResponseStatus(&metav1.Status{Code: 200})
		rec.ProcessStage(auditv1.StageResponseComplete)
		b.Close()
		var ev auditv1.Event
		if err := json.NewDecoder(io.Reader(&out)).Decode(&ev); err != nil {
			t.Fatal(err)
		}
		if (ev.RequestObject != nil) != tt.wantReq || (ev.ResponseObject != nil) != tt.wantResp {
			t.Errorf("%s: requestObject %v responseObject %v", tt.level, ev.RequestObject != nil, ev.ResponseObject != nil)
		}
		if ev.RequestObject != nil {
			hasManaged := bytes.Contains(ev.RequestObject.Raw, []byte("managedFields"))
			if hasManaged == tt.omitManaged {
				t.Errorf("%s omitManagedFields=%v: request object %s", tt.level, tt.omitManaged, ev.RequestObject.Raw)
			}
		}
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
