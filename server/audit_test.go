package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/trellis-project/trellis/server"
	"github.com/trellis-project/trellis/trellistest"
)

// auditLog is the audit log of a server started by startAudited.
type auditLog struct {
	path string
}

// startAudited starts a server auditing with policy into a log file;
// with tokens, it also has RBAC and a static token file.
func startAudited(t *testing.T, policy, tokens string, more ...func(*server.Config)) (*trellistest.Server, auditLog) {
	t.Helper()
	dir := t.TempDir()
	policyFile := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(policyFile, []byte(policy), 0o600); err != nil {
		t.Fatal(err)
	}
	log := auditLog{path: filepath.Join(dir, "audit", "audit.log")}
	srv := trellistest.StartServer(t, trellistest.WithConfig(func(c *server.Config) {
		c.AuditPolicyFile = policyFile
		c.AuditLogPath = log.path
		if tokens != "" {
			tokenFile := filepath.Join(dir, "tokens.csv")
			if err := os.WriteFile(tokenFile, []byte(tokens), 0o600); err != nil {
				t.Fatal(err)
			}
			c.TokenAuthFile = tokenFile
			c.AuthorizationModes = []string{"RBAC"}
		}
		for _, f := range more {
			f(c)
		}
	}))
	return srv, log
}

// events reads every event in the log, the rotated files first.
func (l auditLog) events(t *testing.T) []auditv1.Event {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(filepath.Dir(l.path), "audit-*.log"))
	slices.Sort(files)
	var out []auditv1.Event
	for _, name := range append(files, l.path) {
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 16<<20)
		for sc.Scan() {
			var ev auditv1.Event
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				t.Fatalf("%s: line %q: %v", name, sc.Text(), err)
			}
			out = append(out, ev)
		}
		f.Close()
	}
	return out
}

// waitFor returns the events match selects once one of them is at stage
// last: events reach the log a moment after the response.
func (l auditLog) waitFor(t *testing.T, last auditv1.Stage, match func(ev *auditv1.Event) bool) []auditv1.Event {
	t.Helper()
	var got []auditv1.Event
	eventually(t, "audit event at stage "+string(last), func() error {
		got = got[:0]
		done := false
		for _, ev := range l.events(t) {
			if match(&ev) {
				got = append(got, ev)
				done = done || ev.Stage == last
			}
		}
		if !done {
			return fmt.Errorf("%d matching events, none at %s", len(got), last)
		}
		return nil
	})
	return got
}

func named(verb, resource, namespace, name string) func(ev *auditv1.Event) bool {
	return func(ev *auditv1.Event) bool {
		r := ev.ObjectRef
		return ev.Verb == verb && r != nil && r.Resource == resource && r.Namespace == namespace && r.Name == name
	}
}

func stages(evs []auditv1.Event) []auditv1.Stage {
	var out []auditv1.Stage
	for _, ev := range evs {
		out = append(out, ev.Stage)
	}
	return out
}

const levelsPolicy = `
apiVersion: audit.k8s.io/v1
kind: Policy
rules:
- level: None
  resources: [{group: "", resources: ["configmaps"]}]
  namespaces: ["quiet"]
- level: RequestResponse
  omitStages: ["RequestReceived"]
  resources: [{group: "", resources: ["configmaps"]}]
  namespaces: ["loud"]
- level: Request
  resources: [{group: "", resources: ["configmaps"]}]
  namespaces: ["req"]
- level: RequestResponse
  omitManagedFields: true
  resources: [{group: "", resources: ["configmaps"]}]
  namespaces: ["trimmed"]
- level: Metadata
  resources: [{group: "", resources: ["secrets"]}]
- level: RequestResponse
  resources: [{group: "", resources: ["secrets"]}]
  namespaces: ["never-reached"]
- level: Metadata
`

func TestAuditLevelsPerRule(t *testing.T) {
	srv, log := startAudited(t, levelsPolicy, "")
	cs := kubernetes.NewForConfigOrDie(srv.Config)
	ctx := context.Background()
	for _, ns := range []string{"quiet", "loud", "req", "trimmed", "vault"} {
		createNamespace(t, cs, ns, nil)
	}
	cm := func(name string) *corev1.ConfigMap {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string]string{"payload": "visible-" + name}}
	}
	for _, ns := range []string{"quiet", "loud", "req", "trimmed"} {
		if _, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, cm("c"), metav1.CreateOptions{FieldManager: "audit-test"}); err != nil {
			t.Fatal(err)
		}
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s"},
		Data: map[string][]byte{"password": []byte("hunter2-data")}, StringData: map[string]string{"token": "hunter2-string"}}
	if _, err := cs.CoreV1().Secrets("vault").Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := cs.CoreV1().Secrets("vault").Get(ctx, "s", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got.Data["password"] = []byte("hunter3-data")
	if _, err := cs.CoreV1().Secrets("vault").Update(ctx, got, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	t.Run("RequestResponse", func(t *testing.T) {
		evs := log.waitFor(t, auditv1.StageResponseComplete, named("create", "configmaps", "loud", "c"))
		// The rule omits RequestReceived.
		if !slices.Equal(stages(evs), []auditv1.Stage{auditv1.StageResponseComplete}) {
			t.Fatalf("stages %v, want only ResponseComplete", stages(evs))
		}
		ev := evs[0]
		if ev.Level != auditv1.LevelRequestResponse || ev.RequestObject == nil || ev.ResponseObject == nil {
			t.Fatalf("level %s, request object %v, response object %v", ev.Level, ev.RequestObject != nil, ev.ResponseObject != nil)
		}
		if !strings.Contains(string(ev.RequestObject.Raw), "visible-c") {
			t.Errorf("request object %s", ev.RequestObject.Raw)
		}
		var resp corev1.ConfigMap
		if err := json.Unmarshal(ev.ResponseObject.Raw, &resp); err != nil || resp.UID == "" || resp.Data["payload"] != "visible-c" || len(resp.ManagedFields) == 0 {
			t.Errorf("response object %s (%v)", ev.ResponseObject.Raw, err)
		}
		if ev.ResponseStatus == nil || ev.ResponseStatus.Code != http.StatusCreated {
			t.Errorf("response status %+v", ev.ResponseStatus)
		}
	})
	t.Run("omitManagedFields", func(t *testing.T) {
		ev := log.waitFor(t, auditv1.StageResponseComplete, named("create", "configmaps", "trimmed", "c"))
		last := ev[len(ev)-1]
		if last.ResponseObject == nil || strings.Contains(string(last.ResponseObject.Raw), "managedFields") {
			t.Errorf("response object with managed fields: %v", last.ResponseObject)
		}
	})
	t.Run("Request", func(t *testing.T) {
		done := log.waitFor(t, auditv1.StageResponseComplete, named("create", "configmaps", "req", "c"))
		// A create's name is known from its body: RequestReceived has none.
		evs := log.waitFor(t, auditv1.StageResponseComplete, func(ev *auditv1.Event) bool { return ev.AuditID == done[0].AuditID })
		if !slices.Equal(stages(evs), []auditv1.Stage{auditv1.StageRequestReceived, auditv1.StageResponseComplete}) {
			t.Fatalf("stages %v", stages(evs))
		}
		ev := evs[1]
		if ev.RequestObject == nil || !strings.Contains(string(ev.RequestObject.Raw), "visible-c") || ev.ResponseObject != nil {
			t.Errorf("request object %v, response object %v", ev.RequestObject, ev.ResponseObject)
		}
		if evs[0].AuditID != ev.AuditID || evs[0].RequestObject != nil || evs[0].ResponseStatus != nil {
			t.Errorf("RequestReceived event %+v", evs[0])
		}
	})
	t.Run("Metadata", func(t *testing.T) {
		evs := log.waitFor(t, auditv1.StageResponseComplete, named("update", "secrets", "vault", "s"))
		ev := evs[len(evs)-1]
		if ev.Level != auditv1.LevelMetadata || ev.RequestObject != nil || ev.ResponseObject != nil {
			t.Errorf("level %s with objects", ev.Level)
		}
		ref := ev.ObjectRef
		if ref.APIVersion != "v1" || ref.APIGroup != "" || ref.UID != got.UID || ref.ResourceVersion != got.ResourceVersion {
			t.Errorf("objectRef %+v, want uid %s resourceVersion %s", ref, got.UID, got.ResourceVersion)
		}
		if ev.User.Username == "" || !slices.Contains(ev.User.Groups, "system:masters") {
			t.Errorf("user %+v", ev.User)
		}
		if len(ev.SourceIPs) == 0 || ev.SourceIPs[0] != "127.0.0.1" || ev.UserAgent == "" {
			t.Errorf("sourceIPs %v userAgent %q", ev.SourceIPs, ev.UserAgent)
		}
		if ev.RequestURI != "/api/v1/namespaces/vault/secrets/s" {
			t.Errorf("requestURI %q", ev.RequestURI)
		}
		if ev.Annotations["authorization.k8s.io/decision"] != "allow" {
			t.Errorf("annotations %v", ev.Annotations)
		}
		if ev.StageTimestamp.Before(&ev.RequestReceivedTimestamp) {
			t.Errorf("stage timestamp %v before received %v", ev.StageTimestamp, ev.RequestReceivedTimestamp)
		}
		raw, _ := os.ReadFile(log.path)
		for _, secret := range []string{"hunter2", "aHVudGVyMi", "hunter3", "aHVudGVyMy"} {
			if strings.Contains(string(raw), secret) {
				t.Errorf("the log holds secret data %q", secret)
			}
		}
	})
	t.Run("None", func(t *testing.T) {
		for _, ev := range log.events(t) {
			if ev.ObjectRef != nil && ev.ObjectRef.Namespace == "quiet" && ev.ObjectRef.Resource == "configmaps" {
				t.Errorf("audited at level None: %+v", ev)
			}
		}
	})
}

func TestAuditIDHeader(t *testing.T) {
	srv, log := startAudited(t, "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n", "")
	client, err := rest.HTTPClientFor(srv.Config)
	if err != nil {
		t.Fatal(err)
	}
	get := func(id string) string {
		req, _ := http.NewRequest("GET", srv.Config.Host+"/api/v1/namespaces/default/configmaps", nil)
		if id != "" {
			req.Header.Set("Audit-ID", id)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Header.Get("Audit-Id")
	}
	generated := get("")
	if generated == "" {
		t.Fatal("no Audit-Id header")
	}
	if chosen := get("client-chosen-id"); chosen != "client-chosen-id" {
		t.Errorf("Audit-Id %q, want the client's", chosen)
	}
	metrics := scrapeMetrics(t, kubernetes.NewForConfigOrDie(srv.Config))
	if !strings.Contains(metrics, "apiserver_audit_event_total ") || strings.Contains(metrics, "apiserver_audit_event_total 0\n") || !strings.Contains(metrics, `apiserver_audit_error_total{plugin="log"} 0`) {
		t.Errorf("audit metrics missing:\n%s", metrics)
	}
	for _, id := range []string{generated, "client-chosen-id"} {
		evs := log.waitFor(t, auditv1.StageResponseComplete, func(ev *auditv1.Event) bool { return ev.AuditID == types.UID(id) })
		if !slices.Equal(stages(evs), []auditv1.Stage{auditv1.StageRequestReceived, auditv1.StageResponseComplete}) {
			t.Errorf("%s: stages %v", id, stages(evs))
		}
		if ev := evs[len(evs)-1]; ev.Verb != "list" || ev.ResponseStatus.Code != 200 {
			t.Errorf("%s: verb %s status %+v", id, ev.Verb, ev.ResponseStatus)
		}
	}
}

func TestAuditWatchStages(t *testing.T) {
	srv, log := startAudited(t, "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n", "")
	cs := kubernetes.NewForConfigOrDie(srv.Config)
	ctx := context.Background()
	createNamespace(t, cs, "watched", nil)
	w, err := cs.CoreV1().ConfigMaps("watched").Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	watchEvent := func(ev *auditv1.Event) bool {
		return ev.Verb == "watch" && ev.ObjectRef != nil && ev.ObjectRef.Namespace == "watched"
	}
	started := log.waitFor(t, auditv1.StageResponseStarted, watchEvent)
	if !slices.Equal(stages(started), []auditv1.Stage{auditv1.StageRequestReceived, auditv1.StageResponseStarted}) {
		t.Fatalf("stages while watching %v", stages(started))
	}
	if _, err := cs.CoreV1().ConfigMaps("watched").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	<-w.ResultChan()
	w.Stop()
	evs := log.waitFor(t, auditv1.StageResponseComplete, watchEvent)
	if !slices.Equal(stages(evs), []auditv1.Stage{auditv1.StageRequestReceived, auditv1.StageResponseStarted, auditv1.StageResponseComplete}) {
		t.Fatalf("stages %v", stages(evs))
	}
	for _, ev := range evs[1:] {
		if ev.AuditID != evs[0].AuditID || ev.ResponseStatus == nil || ev.ResponseStatus.Code != 200 {
			t.Errorf("%s: id %s status %+v", ev.Stage, ev.AuditID, ev.ResponseStatus)
		}
	}
}

func TestAuditDeniedUnauthenticatedAndImpersonated(t *testing.T) {
	srv, log := startAudited(t, "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n",
		"eve-token,eve,eve-uid,\"snoops\"\n")
	ctx := context.Background()

	eve := kubernetes.NewForConfigOrDie(tokenConfig(srv, "eve-token"))
	if _, err := eve.CoreV1().Secrets("kube-system").List(ctx, metav1.ListOptions{}); err == nil {
		t.Fatal("eve listed secrets")
	}
	evs := log.waitFor(t, auditv1.StageResponseComplete, func(ev *auditv1.Event) bool {
		return ev.User.Username == "eve" && ev.Verb == "list" && ev.ObjectRef != nil && ev.ObjectRef.Resource == "secrets"
	})
	denied := evs[len(evs)-1]
	st := denied.ResponseStatus
	if st == nil || st.Code != http.StatusForbidden || st.Reason != metav1.StatusReasonForbidden || !strings.Contains(st.Message, `User "eve" cannot list resource "secrets"`) {
		t.Errorf("response status %+v", st)
	}
	if denied.Annotations["authorization.k8s.io/decision"] != "forbid" {
		t.Errorf("annotations %v", denied.Annotations)
	}
	if denied.User.UID != "eve-uid" || !slices.Contains(denied.User.Groups, "snoops") {
		t.Errorf("user %+v", denied.User)
	}

	bad := kubernetes.NewForConfigOrDie(tokenConfig(srv, "forged-token"))
	if _, err := bad.CoreV1().ConfigMaps("unauthenticated-ns").List(ctx, metav1.ListOptions{}); err == nil {
		t.Fatal("a forged token listed configmaps")
	}
	evs = log.waitFor(t, auditv1.StageResponseStarted, func(ev *auditv1.Event) bool {
		return ev.ObjectRef != nil && ev.ObjectRef.Namespace == "unauthenticated-ns"
	})
	// kube-apiserver writes one event for a failed authentication.
	if !slices.Equal(stages(evs), []auditv1.Stage{auditv1.StageResponseStarted}) {
		t.Fatalf("stages %v", stages(evs))
	}
	if ev := evs[0]; ev.ResponseStatus == nil || ev.ResponseStatus.Code != http.StatusUnauthorized || ev.User.Username != "" || strings.Contains(string(mustMarshal(t, ev)), "forged-token") {
		t.Errorf("401 event %+v", ev)
	}

	as := rest.CopyConfig(srv.Config)
	as.Impersonate = rest.ImpersonationConfig{UserName: "alice", Groups: []string{"devs"}}
	if _, err := kubernetes.NewForConfigOrDie(as).CoreV1().ConfigMaps("impersonated-ns").List(ctx, metav1.ListOptions{}); err == nil {
		t.Fatal("alice, without grants, listed configmaps")
	}
	evs = log.waitFor(t, auditv1.StageResponseComplete, func(ev *auditv1.Event) bool {
		return ev.ObjectRef != nil && ev.ObjectRef.Namespace == "impersonated-ns"
	})
	ev := evs[len(evs)-1]
	if ev.ImpersonatedUser == nil || ev.ImpersonatedUser.Username != "alice" || !slices.Contains(ev.ImpersonatedUser.Groups, "devs") {
		t.Errorf("impersonated user %+v", ev.ImpersonatedUser)
	}
	if !slices.Contains(ev.User.Groups, "system:masters") || ev.ResponseStatus.Code != http.StatusForbidden {
		t.Errorf("user %+v status %+v", ev.User, ev.ResponseStatus)
	}
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAuditAdmissionAnnotations(t *testing.T) {
	srv, log := startAudited(t, "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n", "")
	cs := kubernetes.NewForConfigOrDie(srv.Config)
	ctx := context.Background()
	createNamespace(t, cs, "admitted", nil)
	hook := startAdmissionHook(t, func(_ *http.Request, req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
		return &admissionv1.AdmissionResponse{Allowed: true, AuditAnnotations: map[string]string{"checked": req.Name}}
	})
	_, err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "audit-annotations"},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name: "checker.example.com", ClientConfig: hook.clientConfig(),
			Rules:       configMapRule(admissionregistrationv1.Create),
			SideEffects: sideEffectsNone, AdmissionReviewVersions: []string{"v1"},
			FailurePolicy: ptr.To(admissionregistrationv1.Fail),
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitForHook(t, cs, "admitted", hook)
	if _, err := cs.CoreV1().ConfigMaps("admitted").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "annotated"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	evs := log.waitFor(t, auditv1.StageResponseComplete, named("create", "configmaps", "admitted", "annotated"))
	if got := evs[len(evs)-1].Annotations["checker.example.com/checked"]; got != "annotated" {
		t.Errorf("annotations %v", evs[len(evs)-1].Annotations)
	}
}

func TestAuditLogRotation(t *testing.T) {
	srv, log := startAudited(t, "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: RequestResponse\n  resources: [{group: \"\", resources: [configmaps]}]\n", "",
		func(c *server.Config) { c.AuditLogMaxSize, c.AuditLogMaxBackups = 1, 2 })
	cs := kubernetes.NewForConfigOrDie(srv.Config)
	ctx := context.Background()
	payload := strings.Repeat("r", 200<<10)
	// Each create logs its body twice (request and response): ~400 KB.
	const creates = 12
	for i := 0; i < creates; i++ {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("big-%d", i)}, Data: map[string]string{"p": payload}}
		if _, err := cs.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	log.waitFor(t, auditv1.StageResponseComplete, named("create", "configmaps", "default", fmt.Sprintf("big-%d", creates-1)))
	eventually(t, "rotated files pruned to maxbackup", func() error {
		files, _ := filepath.Glob(filepath.Join(filepath.Dir(log.path), "audit-*.log"))
		if len(files) != 2 {
			return fmt.Errorf("%d rotated files, want 2: %v", len(files), files)
		}
		for _, f := range append(files, log.path) {
			fi, err := os.Stat(f)
			if err != nil {
				return err
			}
			if fi.Size() > 1<<20 {
				return fmt.Errorf("%s has %d bytes, more than maxsize", f, fi.Size())
			}
		}
		return nil
	})
	// Every event in the files kept is whole.
	if evs := log.events(t); len(evs) == 0 {
		t.Fatal("no events after rotation")
	}
}
