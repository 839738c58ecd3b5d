package server_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/trellis-project/trellis/server"
	"github.com/trellis-project/trellis/trellistest"
)

// The mandatory and suggested APF objects exist shortly after start.
func TestFlowControlDefaults(t *testing.T) {
	cs := kubernetes.NewForConfigOrDie(trellistest.Start(t))
	ctx := context.Background()
	waitFor(t, "the flow-control defaults", func() bool {
		fs, err1 := cs.FlowcontrolV1().FlowSchemas().List(ctx, metav1.ListOptions{})
		pl, err2 := cs.FlowcontrolV1().PriorityLevelConfigurations().List(ctx, metav1.ListOptions{})
		return err1 == nil && err2 == nil && len(fs.Items) == 11 && len(pl.Items) == 8
	})
	for _, name := range []string{"exempt", "catch-all", "system-leader-election", "probes", "global-default"} {
		fs, err := cs.FlowcontrolV1().FlowSchemas().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Errorf("FlowSchema %s: %v", name, err)
			continue
		}
		if fs.Annotations["apf.kubernetes.io/autoupdate-spec"] != "true" {
			t.Errorf("FlowSchema %s annotations %v", name, fs.Annotations)
		}
	}
	if _, err := cs.FlowcontrolV1().PriorityLevelConfigurations().Get(ctx, "workload-high", metav1.GetOptions{}); err != nil {
		t.Error(err)
	}
}

// startWithTokenFile starts a server (AlwaysAllow) with a static token
// file of lines token,user,uid[,"groups"].
func startWithTokenFile(t *testing.T, tokens string, more func(*server.Config)) *trellistest.Server {
	t.Helper()
	file := filepath.Join(t.TempDir(), "tokens.csv")
	if err := os.WriteFile(file, []byte(tokens), 0o600); err != nil {
		t.Fatal(err)
	}
	return trellistest.StartServer(t, trellistest.WithConfig(func(c *server.Config) {
		c.TokenAuthFile = file
		if more != nil {
			more(c)
		}
	}))
}

// pfResponse is what one raw request got back.
type pfResponse struct {
	code                       int
	flowSchemaUID, priorityUID string
	retryAfter, contentType    string
	body                       string
	hasFlowSchema, hasPriority bool
}

// doRaw sends one request through client-go's transport for cfg (so
// 429s are not retried) and reports status and flow-control headers.
func doRaw(t *testing.T, cfg *rest.Config, method, path, body string) pfResponse {
	t.Helper()
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequestWithContext(context.Background(), method, cfg.Host+path, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	_, hasFS := resp.Header[http.CanonicalHeaderKey(flowcontrolv1.ResponseHeaderMatchedFlowSchemaUID)]
	_, hasPL := resp.Header[http.CanonicalHeaderKey(flowcontrolv1.ResponseHeaderMatchedPriorityLevelConfigurationUID)]
	return pfResponse{
		code:          resp.StatusCode,
		flowSchemaUID: resp.Header.Get(flowcontrolv1.ResponseHeaderMatchedFlowSchemaUID),
		priorityUID:   resp.Header.Get(flowcontrolv1.ResponseHeaderMatchedPriorityLevelConfigurationUID),
		retryAfter:    resp.Header.Get("Retry-After"),
		contentType:   resp.Header.Get("Content-Type"),
		body:          string(b),
		hasFlowSchema: hasFS, hasPriority: hasPL,
	}
}

// uids maps FlowSchema and PriorityLevelConfiguration names to UIDs.
func flowControlUIDs(t *testing.T, cs kubernetes.Interface) (fs, pl map[string]string) {
	t.Helper()
	ctx := context.Background()
	fsl, err := cs.FlowcontrolV1().FlowSchemas().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pll, err := cs.FlowcontrolV1().PriorityLevelConfigurations().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fs, pl = map[string]string{}, map[string]string{}
	for _, o := range fsl.Items {
		fs[o.Name] = string(o.UID)
	}
	for _, o := range pll.Items {
		pl[o.Name] = string(o.UID)
	}
	return fs, pl
}

// TestPriorityAndFairnessClassification sends requests as the identities
// kube-apiserver's bootstrap FlowSchemas tell apart and checks, through
// the response headers, which FlowSchema and priority level each one
// matched.
func TestPriorityAndFairnessClassification(t *testing.T) {
	srv := startWithTokenFile(t, strings.Join([]string{
		`alice-token,alice,1`,
		`sa-token,system:serviceaccount:team:builder,2,"system:serviceaccounts,system:serviceaccounts:team"`,
		`ksa-token,system:serviceaccount:kube-system:generic,3,"system:serviceaccounts,system:serviceaccounts:kube-system"`,
		`kcm-token,system:kube-controller-manager,4`,
		`sched-token,system:kube-scheduler,5`,
		`node-token,system:node:n1,6,"system:nodes"`,
	}, "\n")+"\n", func(c *server.Config) { c.AuthorizationModes = []string{"RBAC"} })
	admin := kubernetes.NewForConfigOrDie(srv.Config)
	alice := tokenConfig(srv, "alice-token")

	// Until the controller has read the objects, it classifies by the
	// mandatory ones it holds in memory, which have no UIDs. Mandatory
	// objects are created last: once the exempt FlowSchema's UID shows,
	// the controller has read them all.
	var fsUID, plUID map[string]string
	eventually(t, "the bootstrap configuration in effect", func() error {
		fsUID, plUID = flowControlUIDs(t, admin)
		got := doRaw(t, srv.Config, http.MethodGet, "/api/v1/namespaces", "")
		if fsUID["exempt"] == "" || got.flowSchemaUID != fsUID["exempt"] {
			return fmt.Errorf("flow schema UID %q", got.flowSchemaUID)
		}
		return nil
	})

	cases := []struct {
		name           string
		cfg            *rest.Config
		path           string
		flowSchema, pl string
	}{
		{"system:masters", srv.Config, "/api/v1/namespaces", "exempt", "exempt"},
		{"anonymous health probe", rest.AnonymousClientConfig(srv.Config), "/readyz", "probes", "exempt"},
		{"authenticated user, resource (forbidden by RBAC, still classified)", alice, "/api/v1/namespaces/default/configmaps", "global-default", "global-default"},
		{"authenticated user, non-resource", alice, "/version", "global-default", "global-default"},
		{"service account", tokenConfig(srv, "sa-token"), "/api/v1/namespaces/team/configmaps", "service-accounts", "workload-low"},
		{"kube-system service account", tokenConfig(srv, "ksa-token"), "/api/v1/namespaces/default/secrets", "kube-system-service-accounts", "workload-high"},
		{"kube-controller-manager", tokenConfig(srv, "kcm-token"), "/apis/apps/v1/deployments", "kube-controller-manager", "workload-high"},
		{"scheduler reading its lease", tokenConfig(srv, "sched-token"), "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kube-scheduler", "system-leader-election", "leader-election"},
		{"scheduler listing pods", tokenConfig(srv, "sched-token"), "/api/v1/pods", "kube-scheduler", "workload-high"},
		{"node reading its Node", tokenConfig(srv, "node-token"), "/api/v1/nodes/n1", "system-node-high", "node-high"},
		{"node reading a ConfigMap", tokenConfig(srv, "node-token"), "/api/v1/namespaces/default/configmaps/x", "system-nodes", "system"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := doRaw(t, tc.cfg, http.MethodGet, tc.path, "")
			if got.flowSchemaUID != fsUID[tc.flowSchema] || got.priorityUID != plUID[tc.pl] {
				t.Errorf("GET %s (%d): FlowSchema UID %q, priority level UID %q; want %s (%s), %s (%s)",
					tc.path, got.code, got.flowSchemaUID, got.priorityUID, tc.flowSchema, fsUID[tc.flowSchema], tc.pl, plUID[tc.pl])
			}
		})
	}
}

// busyFlow creates a PriorityLevelConfiguration and a FlowSchema, both
// named name, that give the user name one seat (no borrowing) and limit
// as limit says; the server's concurrency limit must be small enough for
// one share to be one seat.
func busyFlow(t *testing.T, admin kubernetes.Interface, name string, limit flowcontrolv1.LimitResponse) (*flowcontrolv1.FlowSchema, *flowcontrolv1.PriorityLevelConfiguration) {
	t.Helper()
	ctx := context.Background()
	pl, err := admin.FlowcontrolV1().PriorityLevelConfigurations().Create(ctx, &flowcontrolv1.PriorityLevelConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: flowcontrolv1.PriorityLevelConfigurationSpec{
			Type: flowcontrolv1.PriorityLevelEnablementLimited,
			Limited: &flowcontrolv1.LimitedPriorityLevelConfiguration{
				NominalConcurrencyShares: ptr.To[int32](1),
				LendablePercent:          ptr.To[int32](0),
				BorrowingLimitPercent:    ptr.To[int32](0),
				LimitResponse:            limit,
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fs, err := admin.FlowcontrolV1().FlowSchemas().Create(ctx, &flowcontrolv1.FlowSchema{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: flowcontrolv1.FlowSchemaSpec{
			PriorityLevelConfiguration: flowcontrolv1.PriorityLevelConfigurationReference{Name: name},
			MatchingPrecedence:         50,
			DistinguisherMethod:        &flowcontrolv1.FlowDistinguisherMethod{Type: flowcontrolv1.FlowDistinguisherMethodByUserType},
			Rules: []flowcontrolv1.PolicyRulesWithSubjects{{
				Subjects: []flowcontrolv1.Subject{{Kind: flowcontrolv1.SubjectKindUser, User: &flowcontrolv1.UserSubject{Name: name}}},
				ResourceRules: []flowcontrolv1.ResourcePolicyRule{{
					Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}, Namespaces: []string{"*"}, ClusterScope: true,
				}},
				NonResourceRules: []flowcontrolv1.NonResourcePolicyRule{{Verbs: []string{"*"}, NonResourceURLs: []string{"*"}}},
			}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return fs, pl
}

// waitClassified waits until cfg's requests match the priority level uid.
func waitClassified(t *testing.T, cfg *rest.Config, path string, uid types.UID) {
	t.Helper()
	eventually(t, "requests classified into the new priority level", func() error {
		if got := doRaw(t, cfg, http.MethodGet, path, ""); got.priorityUID != string(uid) {
			return fmt.Errorf("priority level UID %q, want %q", got.priorityUID, uid)
		}
		return nil
	})
}

// holdingHook is a validating webhook that keeps ConfigMap creates named
// hold-* waiting until the test releases them: each such create holds
// its seat in the server meanwhile.
type holdingHook struct {
	entered chan string
	mu      sync.Mutex
	gate    chan struct{}
}

func (h *holdingHook) release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	close(h.gate)
	h.gate = make(chan struct{})
}

// startHoldingHook registers the webhook for ConfigMaps in namespace
// (created here) and waits until it is in effect.
func startHoldingHook(t *testing.T, admin kubernetes.Interface, namespace string) *holdingHook {
	t.Helper()
	h := &holdingHook{entered: make(chan string, 16), gate: make(chan struct{})}
	hook := startAdmissionHook(t, func(_ *http.Request, req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
		if strings.HasPrefix(req.Name, "hold-") {
			h.mu.Lock()
			gate := h.gate
			h.mu.Unlock()
			h.entered <- req.Name
			<-gate
		}
		return &admissionv1.AdmissionResponse{Allowed: true}
	})
	// Runs before the webhook server's own clean-up, which waits for
	// its handlers.
	t.Cleanup(func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		close(h.gate)
		h.gate = make(chan struct{})
	})
	createNamespace(t, admin, namespace, map[string]string{"apf-test": namespace})
	_, err := admin.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(context.Background(), &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "hold-" + namespace},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name: "hold.trellis.test", ClientConfig: hook.clientConfig(), Rules: configMapRule(admissionregistrationv1.Create),
			NamespaceSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"apf-test": namespace}},
			SideEffects:             sideEffectsNone,
			AdmissionReviewVersions: []string{"v1"},
			TimeoutSeconds:          ptr.To[int32](30),
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitForHook(t, admin, namespace, hook)
	return h
}

// createConfigMap creates a ConfigMap through client-go without retrying
// a 429, as the tests count every answer.
func createConfigMap(cfg *rest.Config, namespace, name string, timeout time.Duration) error {
	cs := kubernetes.NewForConfigOrDie(cfg)
	req := cs.CoreV1().RESTClient().Post().Namespace(namespace).Resource("configmaps").
		Body(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}).MaxRetries(0)
	if timeout > 0 {
		req = req.Timeout(timeout)
	}
	return req.Do(context.Background()).Error()
}

// TestPriorityAndFairnessRejectsWhenSaturated gives a user one seat and
// no queue: while one of its creates is held in an admission webhook, the
// next is answered 429 at once, with Retry-After and the classification
// headers, and client-go reports it as TooManyRequests.
func TestPriorityAndFairnessRejectsWhenSaturated(t *testing.T) {
	srv := startWithTokenFile(t, "busy-token,busy,2001\n", func(c *server.Config) {
		// One share of the server's two seats is one seat.
		c.MaxRequestsInFlight, c.MaxMutatingRequestsInFlight = 1, 1
	})
	admin := kubernetes.NewForConfigOrDie(srv.Config)
	busy := tokenConfig(srv, "busy-token")
	fs, pl := busyFlow(t, admin, "busy", flowcontrolv1.LimitResponse{Type: flowcontrolv1.LimitResponseTypeReject})
	const ns = "apf-reject"
	hold := startHoldingHook(t, admin, ns)
	waitClassified(t, busy, "/api/v1/namespaces/"+ns+"/configmaps", pl.UID)

	held := make(chan error, 1)
	go func() { held <- createConfigMap(busy, ns, "hold-a", 0) }()
	<-hold.entered

	got := doRaw(t, busy, http.MethodPost, "/api/v1/namespaces/"+ns+"/configmaps", `{"metadata":{"name":"b"}}`)
	if got.code != http.StatusTooManyRequests {
		t.Fatalf("second create: %d %s, want 429", got.code, got.body)
	}
	if n, err := strconv.Atoi(got.retryAfter); err != nil || n < 1 {
		t.Errorf("Retry-After %q, want a positive number of seconds", got.retryAfter)
	}
	if got.priorityUID != string(pl.UID) || got.flowSchemaUID != string(fs.UID) {
		t.Errorf("429 headers name %q/%q, want %s/%s", got.flowSchemaUID, got.priorityUID, fs.UID, pl.UID)
	}
	// kube-apiserver's words, as plain text.
	if got.body != "Too many requests, please try again later.\n" || !strings.HasPrefix(got.contentType, "text/plain") {
		t.Errorf("429 body %q (%s)", got.body, got.contentType)
	}
	err := createConfigMap(busy, ns, "c", 0)
	if !apierrors.IsTooManyRequests(err) {
		t.Errorf("client-go create: %v, want TooManyRequests", err)
	} else if s, ok := apierrors.SuggestsClientDelay(err); !ok || s < 1 {
		t.Errorf("client-go create: no Retry-After delay suggested (%d, %v)", s, ok)
	}
	// system:masters is exempt meanwhile.
	if got := doRaw(t, srv.Config, http.MethodGet, "/api/v1/namespaces/"+ns+"/configmaps", ""); got.code != http.StatusOK {
		t.Errorf("admin list while saturated: %d", got.code)
	}

	hold.release()
	if err := <-held; err != nil {
		t.Fatalf("held create: %v", err)
	}
	if v := metricValue(t, admin, "apiserver_flowcontrol_rejected_requests_total", "flow_schema=busy", "priority_level=busy", "reason=concurrency-limit"); v != 2 {
		t.Errorf("rejected_requests_total{reason=concurrency-limit} = %v, want 2", v)
	}
	if v := metricValue(t, admin, "apiserver_flowcontrol_dispatched_requests_total", "flow_schema=busy", "priority_level=busy"); v < 2 {
		t.Errorf("dispatched_requests_total = %v, want the probe GETs and the held create", v)
	}
	if v := metricValue(t, admin, "apiserver_flowcontrol_current_executing_requests", "flow_schema=busy", "priority_level=busy"); v != 0 {
		t.Errorf("current_executing_requests = %v after everything finished", v)
	}
}

// TestPriorityAndFairnessQueues gives a user one seat and one queue of
// one: while a create is held, the next waits in the queue and runs once
// the seat is free; one more finds the queue full (429); a request whose
// deadline allows less waiting than the held create takes times out of
// the queue (429).
func TestPriorityAndFairnessQueues(t *testing.T) {
	srv := startWithTokenFile(t, "queued-token,queued,2002\n", func(c *server.Config) {
		c.MaxRequestsInFlight, c.MaxMutatingRequestsInFlight = 1, 1
	})
	admin := kubernetes.NewForConfigOrDie(srv.Config)
	user := tokenConfig(srv, "queued-token")
	_, pl := busyFlow(t, admin, "queued", flowcontrolv1.LimitResponse{
		Type:    flowcontrolv1.LimitResponseTypeQueue,
		Queuing: &flowcontrolv1.QueuingConfiguration{Queues: 1, HandSize: 1, QueueLengthLimit: 1},
	})
	const ns = "apf-queue"
	hold := startHoldingHook(t, admin, ns)
	waitClassified(t, user, "/api/v1/namespaces/"+ns+"/configmaps", pl.UID)
	labels := []string{"flow_schema=queued", "priority_level=queued"}

	heldA, queuedB := make(chan error, 1), make(chan error, 1)
	go func() { heldA <- createConfigMap(user, ns, "hold-a", 0) }()
	<-hold.entered
	go func() { queuedB <- createConfigMap(user, ns, "b", 0) }()
	waitFor(t, "the second create in the queue", func() bool {
		return metricValue(t, admin, "apiserver_flowcontrol_current_inqueue_requests", labels...) == 1
	})
	if err := createConfigMap(user, ns, "c", 0); !apierrors.IsTooManyRequests(err) {
		t.Errorf("create with the queue full: %v, want TooManyRequests", err)
	}
	hold.release()
	if err := <-heldA; err != nil {
		t.Errorf("held create: %v", err)
	}
	if err := <-queuedB; err != nil {
		t.Errorf("queued create: %v", err)
	}

	// A 4s request may wait a quarter of it; the held one outlasts that.
	heldD := make(chan error, 1)
	go func() { heldD <- createConfigMap(user, ns, "hold-d", 0) }()
	<-hold.entered
	if err := createConfigMap(user, ns, "e", 4*time.Second); !apierrors.IsTooManyRequests(err) {
		t.Errorf("create that waited past its share of the deadline: %v, want TooManyRequests", err)
	}
	hold.release()
	if err := <-heldD; err != nil {
		t.Errorf("held create: %v", err)
	}
	for reason, want := range map[string]float64{"queue-full": 1, "time-out": 1, "concurrency-limit": -1} {
		if v := metricValue(t, admin, "apiserver_flowcontrol_rejected_requests_total", append(labels, "reason="+reason)...); v != want {
			t.Errorf("rejected_requests_total{reason=%s} = %v, want %v", reason, v, want)
		}
	}
	if v := metricValue(t, admin, "apiserver_flowcontrol_current_inqueue_requests", labels...); v != 0 {
		t.Errorf("current_inqueue_requests = %v after everything finished", v)
	}
}

// TestPriorityAndFairnessWatchFreesSeatOnceStarted: a watch holds its
// seat only while it starts, so a user with one seat and no queue can
// watch and still write.
func TestPriorityAndFairnessWatchFreesSeatOnceStarted(t *testing.T) {
	srv := startWithTokenFile(t, "watcher-token,watcher,2003\n", func(c *server.Config) {
		c.MaxRequestsInFlight, c.MaxMutatingRequestsInFlight = 1, 1
	})
	admin := kubernetes.NewForConfigOrDie(srv.Config)
	user := tokenConfig(srv, "watcher-token")
	_, pl := busyFlow(t, admin, "watcher", flowcontrolv1.LimitResponse{Type: flowcontrolv1.LimitResponseTypeReject})
	waitClassified(t, user, "/api/v1/namespaces/default/configmaps", pl.UID)
	labels := []string{"flow_schema=watcher", "priority_level=watcher"}
	before := metricValue(t, admin, "apiserver_flowcontrol_dispatched_requests_total", labels...)

	w, err := kubernetes.NewForConfigOrDie(user).CoreV1().ConfigMaps("default").Watch(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	waitFor(t, "the watch started and gave its seat back", func() bool {
		return metricValue(t, admin, "apiserver_flowcontrol_dispatched_requests_total", labels...) == before+1 &&
			metricValue(t, admin, "apiserver_flowcontrol_current_executing_requests", labels...) == 0
	})
	if err := createConfigMap(user, "default", "while-watching", 0); err != nil {
		t.Fatalf("create while the watch is open: %v", err)
	}
	for ev := range w.ResultChan() {
		if cm, ok := ev.Object.(*corev1.ConfigMap); ok && ev.Type == watch.Added && cm.Name == "while-watching" {
			return
		}
	}
	t.Fatal("watch ended without the ConfigMap")
}

// TestFlowControlBootstrapReconciled: the mandatory objects come back when
// deleted and their spec when changed; suggested ones come back when
// deleted and follow the bootstrap spec only while their autoupdate-spec
// annotation says "true"; retired ones (annotated "true", not bootstrap
// objects) are removed.
func TestFlowControlBootstrapReconciled(t *testing.T) {
	admin := kubernetes.NewForConfigOrDie(trellistest.Start(t))
	ctx := context.Background()
	fsc := admin.FlowcontrolV1().FlowSchemas()
	plc := admin.FlowcontrolV1().PriorityLevelConfigurations()
	waitFor(t, "the bootstrap objects", func() bool {
		l, err := fsc.List(ctx, metav1.ListOptions{})
		return err == nil && len(l.Items) == 11
	})

	recreated := func(name string) {
		t.Helper()
		old, err := fsc.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := fsc.Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "FlowSchema "+name+" recreated", func() error {
			got, err := fsc.Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if got.UID == old.UID {
				return fmt.Errorf("still the old object")
			}
			return nil
		})
	}
	recreated("exempt")         // mandatory
	recreated("global-default") // suggested

	// Validation keeps mandatory specs fixed (but for the exempt level's
	// shares); a mandatory object always auto-updates.
	catchAll, err := plc.Get(ctx, "catch-all", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	catchAll.Annotations["apf.kubernetes.io/autoupdate-spec"] = "false"
	if _, err := plc.Update(ctx, catchAll, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "catch-all's annotation restored", func() error {
		got, err := plc.Get(ctx, "catch-all", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if got.Annotations["apf.kubernetes.io/autoupdate-spec"] != "true" {
			return fmt.Errorf("annotations %v", got.Annotations)
		}
		return nil
	})

	// A suggested object that still auto-updates is restored too.
	sa, err := fsc.Get(ctx, "service-accounts", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sa.Spec.MatchingPrecedence = 8000
	if _, err := fsc.Update(ctx, sa, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "service-accounts' spec restored", func() error {
		got, err := fsc.Get(ctx, "service-accounts", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if got.Spec.MatchingPrecedence != 9000 {
			return fmt.Errorf("matchingPrecedence %d", got.Spec.MatchingPrecedence)
		}
		return nil
	})

	// One that says "false" keeps the operator's spec, and the exempt
	// level keeps the shares an operator gave it. Each pass of the
	// reconciler checks priority levels, then suggested FlowSchemas, then
	// mandatory ones: once catch-all, deleted after these changes, is back
	// twice, a whole pass that saw them has run (the first recreation
	// proves the changes were seen, the second is a later pass).
	exempt, err := plc.Get(ctx, "exempt", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	exempt.Spec.Exempt.NominalConcurrencyShares = ptr.To[int32](3)
	if _, err := plc.Update(ctx, exempt, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	gd, err := fsc.Get(ctx, "global-default", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	gd.Annotations["apf.kubernetes.io/autoupdate-spec"] = "false"
	gd.Spec.MatchingPrecedence = 9500
	if _, err := fsc.Update(ctx, gd, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Retired: annotated "true" but no longer a bootstrap object.
	retired := &flowcontrolv1.FlowSchema{
		ObjectMeta: metav1.ObjectMeta{Name: "retired", Annotations: map[string]string{"apf.kubernetes.io/autoupdate-spec": "true"}},
		Spec: flowcontrolv1.FlowSchemaSpec{
			PriorityLevelConfiguration: flowcontrolv1.PriorityLevelConfigurationReference{Name: "global-default"},
			MatchingPrecedence:         9800,
		},
	}
	if _, err := fsc.Create(ctx, retired, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	recreated("catch-all")
	recreated("catch-all")
	got, err := fsc.Get(ctx, "global-default", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Spec.MatchingPrecedence != 9500 || got.Annotations["apf.kubernetes.io/autoupdate-spec"] != "false" {
		t.Errorf("global-default with autoupdate-spec false: matchingPrecedence %d, annotations %v; want the operator's", got.Spec.MatchingPrecedence, got.Annotations)
	}
	if got, err := plc.Get(ctx, "exempt", metav1.GetOptions{}); err != nil || *got.Spec.Exempt.NominalConcurrencyShares != 3 {
		t.Errorf("exempt level: %v, want the operator's shares kept", err)
	}
	if _, err := fsc.Get(ctx, "retired", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("retired FlowSchema: %v, want it deleted", err)
	}
}

// TestFlowSchemaDanglingCondition: a FlowSchema naming a priority level
// that does not exist is marked Dangling, and unmarked once it does;
// kubectl shows it in the MISSINGPL column.
func TestFlowSchemaDanglingCondition(t *testing.T) {
	srv := trellistest.StartServer(t)
	admin := kubernetes.NewForConfigOrDie(srv.Config)
	ctx := context.Background()
	_, err := admin.FlowcontrolV1().FlowSchemas().Create(ctx, &flowcontrolv1.FlowSchema{
		ObjectMeta: metav1.ObjectMeta{Name: "orphan"},
		Spec: flowcontrolv1.FlowSchemaSpec{
			PriorityLevelConfiguration: flowcontrolv1.PriorityLevelConfigurationReference{Name: "later"},
			MatchingPrecedence:         1234,
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dangling := func(want corev1.ConditionStatus, reason string) {
		t.Helper()
		eventually(t, "Dangling "+string(want), func() error {
			fs, err := admin.FlowcontrolV1().FlowSchemas().Get(ctx, "orphan", metav1.GetOptions{})
			if err != nil {
				return err
			}
			for _, c := range fs.Status.Conditions {
				if c.Type == flowcontrolv1.FlowSchemaConditionDangling {
					if string(c.Status) != string(want) || c.Reason != reason {
						return fmt.Errorf("condition %+v", c)
					}
					return nil
				}
			}
			return fmt.Errorf("no Dangling condition: %+v", fs.Status)
		})
	}
	dangling(corev1.ConditionTrue, "NotFound")
	// The bootstrap objects are created a moment after start, suggested
	// ones first: wait until probes' level (exempt) is there.
	var out string
	eventually(t, "kubectl get flowschemas", func() error {
		out = mustKubectl(t, srv.KubeconfigPath(), "", "get", "flowschemas")
		if !hasRow(out, "NAME", "PRIORITYLEVEL", "MATCHINGPRECEDENCE", "DISTINGUISHERMETHOD", "AGE", "MISSINGPL") ||
			!hasRow(out, "orphan", "later", "1234", "<none>") || !strings.HasSuffix(rowOf(out, "orphan"), " True") ||
			!hasRow(out, "exempt", "exempt", "1", "<none>") || !strings.HasSuffix(rowOf(out, "probes"), " False") ||
			!hasRow(out, "global-default", "global-default", "9900", "ByUser") {
			return fmt.Errorf("output:\n%s", out)
		}
		return nil
	})

	if _, err := admin.FlowcontrolV1().PriorityLevelConfigurations().Create(ctx, &flowcontrolv1.PriorityLevelConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "later"},
		Spec: flowcontrolv1.PriorityLevelConfigurationSpec{
			Type: flowcontrolv1.PriorityLevelEnablementLimited,
			Limited: &flowcontrolv1.LimitedPriorityLevelConfiguration{
				LimitResponse: flowcontrolv1.LimitResponse{Type: flowcontrolv1.LimitResponseTypeReject},
			},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dangling(corev1.ConditionFalse, "Found")
	out = mustKubectl(t, srv.KubeconfigPath(), "", "get", "prioritylevelconfigurations")
	if !hasRow(out, "NAME", "TYPE", "NOMINALCONCURRENCYSHARES", "QUEUES", "HANDSIZE", "QUEUELENGTHLIMIT", "AGE") ||
		!hasRow(out, "later", "Limited", "30", "<none>", "<none>", "<none>") ||
		!hasRow(out, "global-default", "Limited", "20", "128", "6", "50") {
		t.Errorf("kubectl get prioritylevelconfigurations:\n%s", out)
	}
}

// rowOf returns the line of kubectl's table that starts with name.
func rowOf(out, name string) string {
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, name+" ") {
			return line
		}
	}
	return ""
}

// With API Priority and Fairness off, responses carry no classification
// and its debug endpoints are not served.
func TestPriorityAndFairnessDisabled(t *testing.T) {
	srv := trellistest.StartServer(t, trellistest.WithConfig(func(c *server.Config) { c.DisablePriorityAndFairness = true }))
	got := doRaw(t, srv.Config, http.MethodGet, "/api/v1/namespaces", "")
	if got.code != http.StatusOK || got.hasFlowSchema || got.hasPriority {
		t.Errorf("GET: %d, flow-control headers present: %v %v", got.code, got.hasFlowSchema, got.hasPriority)
	}
	if got := doRaw(t, srv.Config, http.MethodGet, "/debug/api_priority_and_fairness/dump_priority_levels", ""); got.code != http.StatusNotFound {
		t.Errorf("debug endpoint: %d", got.code)
	}
}

// The debug endpoints kube-apiserver serves list the priority levels.
func TestPriorityAndFairnessDebugDump(t *testing.T) {
	srv := trellistest.StartServer(t)
	eventually(t, "the suggested levels in the dump", func() error {
		got := doRaw(t, srv.Config, http.MethodGet, "/debug/api_priority_and_fairness/dump_priority_levels", "")
		if got.code != http.StatusOK || !strings.Contains(got.body, "workload-low") || !strings.Contains(got.body, "exempt") {
			return fmt.Errorf("%d %s", got.code, got.body)
		}
		return nil
	})
}

// BenchmarkGetWithPriorityAndFairness is one GET of a ConfigMap through
// the whole request path (TLS, HTTP/2, authentication, the watch cache)
// by an ordinary user, with API Priority and Fairness on (global-default)
// and off, to put the filter's cost next to a request's.
//
//	go test -run '^$' -bench GetWithPriorityAndFairness -benchmem ./server/
func BenchmarkGetWithPriorityAndFairness(b *testing.B) {
	for _, apf := range []bool{true, false} {
		b.Run(fmt.Sprintf("apf=%v", apf), func(b *testing.B) {
			file := filepath.Join(b.TempDir(), "tokens.csv")
			if err := os.WriteFile(file, []byte("bench-token,bench,3001\n"), 0o600); err != nil {
				b.Fatal(err)
			}
			srv := trellistest.StartServer(b, trellistest.WithConfig(func(c *server.Config) {
				c.TokenAuthFile = file
				c.DisablePriorityAndFairness = !apf
			}))
			admin := kubernetes.NewForConfigOrDie(srv.Config)
			ctx := context.Background()
			if _, err := admin.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm"}}, metav1.CreateOptions{}); err != nil {
				b.Fatal(err)
			}
			cfg := rest.AnonymousClientConfig(srv.Config)
			cfg.BearerToken = "bench-token"
			cfg.ContentType = "application/json"
			user := kubernetes.NewForConfigOrDie(cfg).CoreV1().ConfigMaps("default")
			if apf {
				// Measure requests classified by the bootstrap objects, not
				// by the mandatory ones held until they are read.
				hc, err := rest.HTTPClientFor(cfg)
				if err != nil {
					b.Fatal(err)
				}
				for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
					fs, err := admin.FlowcontrolV1().FlowSchemas().Get(ctx, "global-default", metav1.GetOptions{})
					if err == nil {
						resp, err := hc.Get(cfg.Host + "/api/v1/namespaces/default/configmaps/cm")
						if err != nil {
							b.Fatal(err)
						}
						resp.Body.Close()
						if resp.Header.Get(flowcontrolv1.ResponseHeaderMatchedFlowSchemaUID) == string(fs.UID) {
							break
						}
					}
					if time.Now().After(deadline) {
						b.Fatal("never classified as global-default")
					}
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := user.Get(ctx, "cm", metav1.GetOptions{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
