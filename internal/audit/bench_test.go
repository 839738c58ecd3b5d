package audit_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"

	"github.com/trellis-project/trellis/internal/audit"
)

// discard is a sink that keeps the last event, so the copy is not
// optimised away.
type discard struct{ last *auditv1.Event }

func (d *discard) Process(ev *auditv1.Event) { d.last = ev }

// createBody is a ConfigMap create's JSON body with ~900 bytes of data.
var createBody = []byte(`{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"cm-0000001","namespace":"default"},"data":{"v":"` +
	strings.Repeat("x", 900) + `"}}`)

var createObject = &corev1.ConfigMap{
	TypeMeta:   metav1.TypeMeta{Kind: "ConfigMap", APIVersion: "v1"},
	ObjectMeta: metav1.ObjectMeta{Name: "cm-0000001", Namespace: "default"},
	Data:       map[string]string{"v": strings.Repeat("x", 900)},
}

// fill does what the audit filter and the handler do for one create.
func fill(sink audit.Sink, level auditv1.Level) {
	rec := audit.NewRecord("0b1e0c0c-7b7a-4e8c-9d61-1a2b3c4d5e6f", time.Now(), audit.Config{Level: level}, sink)
	rec.Update(func(ev *auditv1.Event) {
		ev.Verb = "create"
		ev.RequestURI = "/api/v1/namespaces/default/configmaps"
		ev.UserAgent = "audit.test/v0.0.0 (linux/amd64) kubernetes/$Format"
		ev.SourceIPs = []string{"127.0.0.1"}
		ev.ObjectRef = &auditv1.ObjectReference{Resource: "configmaps", Namespace: "default", APIVersion: "v1"}
	})
	rec.SetUser("kubernetes-admin", "", []string{"system:masters", "system:authenticated"}, nil)
	rec.ProcessStage(auditv1.StageRequestReceived)
	rec.AddAnnotation("authorization.k8s.io/decision", "allow")
	rec.AddAnnotation("authorization.k8s.io/reason", "")
	rec.LogRequestBody(createBody)
	rec.LogRequestObject(createObject)
	rec.SetResponseCode(201)
	rec.ProcessStage(auditv1.StageResponseComplete)
}

// BenchmarkRequestPathMetadata is the audit work on the request path for
// one create at level Metadata: building the event and handing two
// stages to the sink (the log writer's encoding is not included).
func BenchmarkRequestPathMetadata(b *testing.B) {
	sink := &discard{}
	b.ReportAllocs()
	for b.Loop() {
		fill(sink, auditv1.LevelMetadata)
	}
}

// BenchmarkEncodeMetadataEvent is the log writer's work per event: one
// ResponseComplete event of a create at level Metadata as a JSON line.
func BenchmarkEncodeMetadataEvent(b *testing.B) {
	sink := &discard{}
	fill(sink, auditv1.LevelMetadata)
	ev := sink.last
	ev.ResponseStatus = &metav1.Status{Code: 201}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(ev); err != nil {
			b.Fatal(err)
		}
	}
}
