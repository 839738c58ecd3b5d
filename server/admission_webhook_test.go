package server_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/trellis-project/trellis/server"
	"github.com/trellis-project/trellis/trellistest"
)

// admissionHook is a webhook served by the test over TLS: it records the
// AdmissionRequests it gets and answers with respond.
type admissionHook struct {
	url    string
	addr   *net.TCPAddr
	caPEM  []byte
	mu     sync.Mutex
	seen   []admissionv1.AdmissionRequest
	answer func(r *http.Request, req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse
}

func startAdmissionHook(t testing.TB, answer func(r *http.Request, req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse) *admissionHook {
	t.Helper()
	return startAdmissionHookOn(t, nil, answer)
}

// startAdmissionHookOn serves the webhook on ln (nil: a loopback port),
// with a certificate for 127.0.0.1 and admission-hook.default.svc.
func startAdmissionHookOn(t testing.TB, ln net.Listener, answer func(r *http.Request, req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse) *admissionHook {
	t.Helper()
	h := &admissionHook{answer: answer}
	cert, caPEM := webhookCert(t, "admission-hook.default.svc")
	srv := httptest.NewUnstartedServer(h)
	if ln != nil {
		srv.Listener.Close()
		srv.Listener = ln
	}
	h.addr = srv.Listener.Addr().(*net.TCPAddr)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	h.url, h.caPEM = srv.URL+"/admit", caPEM
	return h
}

func (h *admissionHook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// As controller-runtime's webhook server, which refuses anything else.
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		http.Error(w, "contentType="+ct+", expected application/json", http.StatusBadRequest)
		return
	}
	var review admissionv1.AdmissionReview
	if err := json.NewDecoder(r.Body).Decode(&review); err != nil || review.Request == nil {
		http.Error(w, "bad review", http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	h.seen = append(h.seen, *review.Request)
	h.mu.Unlock()
	resp := h.answer(r, review.Request)
	if resp == nil {
		http.Error(w, "webhook is broken", http.StatusInternalServerError)
		return
	}
	resp.UID = review.Request.UID
	json.NewEncoder(w).Encode(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Response: resp,
	})
}

func (h *admissionHook) requests() []admissionv1.AdmissionRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]admissionv1.AdmissionRequest(nil), h.seen...)
}

// requestsFor returns the recorded requests for objects named name.
func (h *admissionHook) requestsFor(name string) []admissionv1.AdmissionRequest {
	var out []admissionv1.AdmissionRequest
	for _, r := range h.requests() {
		if r.Name == name || strings.Contains(string(r.Object.Raw), `"name":"`+name+`"`) {
			out = append(out, r)
		}
	}
	return out
}

func (h *admissionHook) clientConfig() admissionregistrationv1.WebhookClientConfig {
	return admissionregistrationv1.WebhookClientConfig{URL: ptr.To(h.url), CABundle: h.caPEM}
}

func allow(*http.Request, *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
	return &admissionv1.AdmissionResponse{Allowed: true}
}

func configMapRule(ops ...admissionregistrationv1.OperationType) []admissionregistrationv1.RuleWithOperations {
	return []admissionregistrationv1.RuleWithOperations{{
		Operations: ops,
		Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"configmaps"}},
	}}
}

var sideEffectsNone = ptr.To(admissionregistrationv1.SideEffectClassNone)

// waitForHook creates probe ConfigMaps in namespace until hook sees one:
// webhook configurations take effect once the server's informer has them.
func waitForHook(t *testing.T, cs kubernetes.Interface, namespace string, hook *admissionHook) {
	t.Helper()
	for i := 0; ; i++ {
		name := fmt.Sprintf("probe-%d", i)
		_, err := cs.CoreV1().ConfigMaps(namespace).Create(context.Background(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"probe": "true"}}}, metav1.CreateOptions{})
		if i%100 == 0 {
			t.Logf("probe %s: %v", name, err)
		}
		if len(hook.requestsFor(name)) > 0 {
			return
		}
		if i > 500 {
			t.Fatal("webhook configuration never took effect")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func createNamespace(t *testing.T, cs kubernetes.Interface, name string, labels map[string]string) {
	t.Helper()
	if _, err := cs.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// warningRecorder collects Warning headers a client receives.
type warningRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warningRecorder) HandleWarningHeader(_ int, _ string, msg string) {
	w.mu.Lock()
	w.msgs = append(w.msgs, msg)
	w.mu.Unlock()
}

func TestAdmissionWebhookMutateAndValidate(t *testing.T) {
	cfg := trellistest.Start(t)
	warnings := &warningRecorder{}
	cfg.WarningHandler = warnings
	cs := kubernetes.NewForConfigOrDie(cfg)
	ctx := context.Background()
	createNamespace(t, cs, "hooks", nil)

	mutator := startAdmissionHook(t, func(_ *http.Request, req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
		if req.Operation == admissionv1.Delete {
			return &admissionv1.AdmissionResponse{Allowed: true}
		}
		var cm corev1.ConfigMap
		json.Unmarshal(req.Object.Raw, &cm)
		patch := `[{"op":"add","path":"/metadata/labels/mutated","value":"yes"},{"op":"add","path":"/data/added","value":"by-webhook"}]`
		if cm.Data == nil {
			patch = `[{"op":"add","path":"/metadata/labels/mutated","value":"yes"},{"op":"add","path":"/data","value":{"added":"by-webhook"}}]`
		}
		return &admissionv1.AdmissionResponse{Allowed: true, Patch: []byte(patch), PatchType: ptr.To(admissionv1.PatchTypeJSONPatch),
			Warnings: []string{"mutator saw " + req.Name}, AuditAnnotations: map[string]string{"seen": "yes"}}
	})
	validator := startAdmissionHook(t, func(_ *http.Request, req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
		var cm corev1.ConfigMap
		json.Unmarshal(req.Object.Raw, &cm)
		if cm.Data["forbidden"] != "" {
			return &admissionv1.AdmissionResponse{Allowed: false, Result: &metav1.Status{Code: http.StatusForbidden, Reason: metav1.StatusReasonForbidden, Message: "forbidden key present"}}
		}
		return &admissionv1.AdmissionResponse{Allowed: true}
	})
	_, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "mutate-configmaps"},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name: "mutate.example.com", ClientConfig: mutator.clientConfig(),
			Rules:       configMapRule(admissionregistrationv1.Create, admissionregistrationv1.Update, admissionregistrationv1.Delete),
			SideEffects: sideEffectsNone, AdmissionReviewVersions: []string{"v1"},
			NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpIn, Values: []string{"hooks"}}}},
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "validate-configmaps"},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name: "validate.example.com", ClientConfig: validator.clientConfig(),
			Rules:       configMapRule(admissionregistrationv1.OperationAll),
			SideEffects: sideEffectsNone, AdmissionReviewVersions: []string{"v1beta1", "v1"},
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitForHook(t, cs, "hooks", mutator)
	waitForHook(t, cs, "hooks", validator)

	// The mutation is stored; the validator sees the mutated object.
	cm, err := cs.CoreV1().ConfigMaps("hooks").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "plain", Labels: map[string]string{"a": "b"}}, Data: map[string]string{"k": "v"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cm.Labels["mutated"] != "yes" || cm.Data["added"] != "by-webhook" {
		t.Errorf("created object lacks the mutation: labels %v data %v", cm.Labels, cm.Data)
	}
	got, _ := cs.CoreV1().ConfigMaps("hooks").Get(ctx, "plain", metav1.GetOptions{})
	if got.Data["added"] != "by-webhook" {
		t.Errorf("stored object lacks the mutation: %v", got.Data)
	}
	vreqs := validator.requestsFor("plain")
	if len(vreqs) != 1 || !strings.Contains(string(vreqs[0].Object.Raw), "by-webhook") {
		t.Fatalf("validator requests for plain: %d, want 1 with the mutated object", len(vreqs))
	}
	req := vreqs[0]
	if req.Kind != (metav1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}) ||
		req.Resource != (metav1.GroupVersionResource{Version: "v1", Resource: "configmaps"}) ||
		req.RequestKind == nil || *req.RequestKind != req.Kind ||
		req.Operation != admissionv1.Create || req.Namespace != "hooks" || req.Name != "plain" ||
		req.DryRun == nil || *req.DryRun || req.UserInfo.Username == "" {
		t.Errorf("validator request: %+v", req)
	}
	var opts metav1.CreateOptions
	if err := json.Unmarshal(req.Options.Raw, &opts); err != nil || opts.Kind != "CreateOptions" {
		t.Errorf("options: %s (%v)", req.Options.Raw, err)
	}
	found := false
	for _, w := range warnings.msgs {
		found = found || w == "mutator saw plain"
	}
	if !found {
		t.Errorf("warnings %q lack the webhook's", warnings.msgs)
	}

	// A denial reaches the client with the webhook's code and message.
	_, err = cs.CoreV1().ConfigMaps("hooks").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "bad", Labels: map[string]string{"a": "b"}}, Data: map[string]string{"forbidden": "x"}}, metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) || err.Error() != `admission webhook "validate.example.com" denied the request: forbidden key present` {
		t.Errorf("denied create: %v", err)
	}
	if _, err := cs.CoreV1().ConfigMaps("hooks").Get(ctx, "bad", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("denied object was stored: %v", err)
	}

	// UPDATE carries oldObject; DELETE carries oldObject and no object.
	got.Data["k"] = "v2"
	if _, err := cs.CoreV1().ConfigMaps("hooks").Update(ctx, got, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cs.CoreV1().ConfigMaps("hooks").Delete(ctx, "plain", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	var update, del *admissionv1.AdmissionRequest
	for _, r := range validator.requestsFor("plain") {
		switch r.Operation {
		case admissionv1.Update:
			update = &r
		case admissionv1.Delete:
			del = &r
		}
	}
	if update == nil || !strings.Contains(string(update.OldObject.Raw), `"k":"v"`) || !strings.Contains(string(update.Object.Raw), `"k":"v2"`) {
		t.Errorf("update request: %+v", update)
	}
	if del == nil || len(del.Object.Raw) != 0 || !strings.Contains(string(del.OldObject.Raw), `"k":"v2"`) || !strings.Contains(string(del.Options.Raw), "DeleteOptions") {
		t.Errorf("delete request: %+v", del)
	}

	// The namespace selector keeps the mutator away from other namespaces.
	createNamespace(t, cs, "elsewhere", nil)
	other, err := cs.CoreV1().ConfigMaps("elsewhere").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "untouched", Labels: map[string]string{"a": "b"}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if other.Labels["mutated"] != "" || len(mutator.requestsFor("untouched")) != 0 {
		t.Errorf("mutator ran outside its namespace selector")
	}
}

func TestAdmissionWebhookFailurePolicyAndDryRun(t *testing.T) {
	cfg := trellistest.Start(t)
	cs := kubernetes.NewForConfigOrDie(cfg)
	ctx := context.Background()
	createNamespace(t, cs, "fp", nil)
	broken := startAdmissionHook(t, func(*http.Request, *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse { return nil })
	sideEffectful := startAdmissionHook(t, allow)
	failClosed := func(name string, labels map[string]string) admissionregistrationv1.ValidatingWebhook {
		return admissionregistrationv1.ValidatingWebhook{
			Name: name, ClientConfig: broken.clientConfig(), Rules: configMapRule(admissionregistrationv1.Create),
			FailurePolicy: ptr.To(admissionregistrationv1.Fail), SideEffects: sideEffectsNone, AdmissionReviewVersions: []string{"v1"},
			ObjectSelector: &metav1.LabelSelector{MatchLabels: labels},
		}
	}
	ignore := failClosed("ignore.example.com", map[string]string{"policy": "ignore"})
	ignore.FailurePolicy = ptr.To(admissionregistrationv1.Ignore)
	// Dead: nothing listens at its address.
	dead := failClosed("dead.example.com", map[string]string{"policy": "dead"})
	dead.ClientConfig.URL = ptr.To("https://127.0.0.1:1/admit")
	deadIgnored := failClosed("dead-ignored.example.com", map[string]string{"policy": "dead-ignored"})
	deadIgnored.ClientConfig.URL = ptr.To("https://127.0.0.1:1/admit")
	deadIgnored.FailurePolicy = ptr.To(admissionregistrationv1.Ignore)
	_, err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "failure-policies"},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{
			failClosed("fail.example.com", map[string]string{"policy": "fail"}),
			ignore, dead, deadIgnored,
			{
				Name: "side-effects.example.com", ClientConfig: sideEffectful.clientConfig(), Rules: configMapRule(admissionregistrationv1.Create),
				SideEffects: ptr.To(admissionregistrationv1.SideEffectClassNoneOnDryRun), AdmissionReviewVersions: []string{"v1"},
				ObjectSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"side": "effects"}},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	create := func(name string, labels map[string]string, dryRun bool) error {
		opts := metav1.CreateOptions{}
		if dryRun {
			opts.DryRun = []string{metav1.DryRunAll}
		}
		_, err := cs.CoreV1().ConfigMaps("fp").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}, opts)
		return err
	}
	// Wait until the configuration is in effect.
	for i := 0; ; i++ {
		if err := create(fmt.Sprintf("wait-%d", i), map[string]string{"policy": "fail"}, false); err != nil {
			break
		}
		if i > 500 {
			t.Fatal("webhook configuration never took effect")
		}
		time.Sleep(10 * time.Millisecond)
	}
	err = create("closed", map[string]string{"policy": "fail"}, false)
	if !apierrors.IsInternalError(err) || !strings.Contains(err.Error(), `failed calling webhook "fail.example.com"`) {
		t.Errorf("failurePolicy Fail: %v", err)
	}
	if err := create("open", map[string]string{"policy": "ignore"}, false); err != nil {
		t.Errorf("failurePolicy Ignore: %v", err)
	}
	err = create("dead", map[string]string{"policy": "dead"}, false)
	if !apierrors.IsInternalError(err) || !strings.Contains(err.Error(), `failed calling webhook "dead.example.com": failed to call webhook: Post "https://127.0.0.1:1/admit`) {
		t.Errorf("dead webhook, failurePolicy Fail: %v", err)
	}
	if err := create("dead-ignored", map[string]string{"policy": "dead-ignored"}, false); err != nil {
		t.Errorf("dead webhook, failurePolicy Ignore: %v", err)
	}
	// A dryRun request reaches a webhook without side effects on dry
	// run, flagged as such, and stores nothing. (v1 allows no other
	// sideEffects classes, so the refusal of dryRun to a webhook with
	// side effects cannot be set up through the v1 API.)
	if err := create("dry", map[string]string{"side": "effects"}, true); err != nil {
		t.Errorf("dryRun create: %v", err)
	}
	if reqs := sideEffectful.requestsFor("dry"); len(reqs) != 1 || reqs[0].DryRun == nil || !*reqs[0].DryRun {
		t.Errorf("dryRun requests to the NoneOnDryRun webhook: %+v", reqs)
	}
	if _, err := cs.CoreV1().ConfigMaps("fp").Get(ctx, "dry", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("dryRun create was stored: %v", err)
	}
}

// A webhook that keeps failing is backed off: after three failed calls
// it is not called while the back-off lasts, and its failurePolicy
// answers at once.
func TestAdmissionWebhookBackoff(t *testing.T) {
	srv := trellistest.StartServer(t, trellistest.WithConfig(func(c *server.Config) { c.AdmissionWebhookBackoff = time.Hour }))
	cs := kubernetes.NewForConfigOrDie(srv.Config)
	ctx := context.Background()
	createNamespace(t, cs, "bo", nil)
	broken := startAdmissionHook(t, func(*http.Request, *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse { return nil })
	flaky := map[string]string{"flaky": "yes"}
	_, err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "flaky"},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name: "flaky.example.com", ClientConfig: broken.clientConfig(), Rules: configMapRule(admissionregistrationv1.Create),
			FailurePolicy: ptr.To(admissionregistrationv1.Ignore), SideEffects: sideEffectsNone, AdmissionReviewVersions: []string{"v1"},
			ObjectSelector: &metav1.LabelSelector{MatchLabels: flaky},
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; len(broken.requests()) < 3; i++ {
		if _, err := cs.CoreV1().ConfigMaps("bo").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("before-%d", i), Labels: flaky}}, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create with an ignored failing webhook: %v", err)
		}
		if i > 1000 {
			t.Fatal("webhook never called")
		}
		time.Sleep(5 * time.Millisecond)
	}
	calls := len(broken.requests())
	for i := range 10 {
		if _, err := cs.CoreV1().ConfigMaps("bo").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("after-%d", i), Labels: flaky}}, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create during back-off: %v", err)
		}
	}
	if n := len(broken.requests()); n != calls {
		t.Errorf("webhook called %d more times during its back-off", n-calls)
	}
	metrics := scrapeMetrics(t, cs)
	for _, want := range []string{
		`trellis_admission_webhook_backoff_skips_total{name="flaky.example.com",type="validating"} 10`,
		`apiserver_admission_webhook_fail_open_count{name="flaky.example.com",type="validating"}`,
		`apiserver_admission_webhook_admission_duration_seconds_count{code="500",name="flaky.example.com",operation="CREATE",rejected="false",type="validating"}`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// No webhook call outlives the request: with a request timeout shorter
// than the webhooks', the calls are cut at the request's deadline and the
// client gets a timeout, even with failurePolicy Ignore.
func TestAdmissionWebhookRequestDeadline(t *testing.T) {
	cfg := trellistest.Start(t)
	cs := kubernetes.NewForConfigOrDie(cfg)
	ctx := context.Background()
	createNamespace(t, cs, "slow", nil)
	var mu sync.Mutex
	cancelled := 0
	slow := startAdmissionHook(t, func(r *http.Request, req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
		if !strings.HasPrefix(req.Name, "slow") {
			return &admissionv1.AdmissionResponse{Allowed: true}
		}
		select {
		case <-time.After(20 * time.Second):
		case <-r.Context().Done():
			mu.Lock()
			cancelled++
			mu.Unlock()
		}
		return &admissionv1.AdmissionResponse{Allowed: true}
	})
	hook := func(name string) admissionregistrationv1.ValidatingWebhook {
		return admissionregistrationv1.ValidatingWebhook{
			Name: name, ClientConfig: slow.clientConfig(), Rules: configMapRule(admissionregistrationv1.Create),
			FailurePolicy: ptr.To(admissionregistrationv1.Ignore), SideEffects: sideEffectsNone,
			AdmissionReviewVersions: []string{"v1"}, TimeoutSeconds: ptr.To[int32](30),
		}
	}
	_, err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "slow"},
		Webhooks:   []admissionregistrationv1.ValidatingWebhook{hook("slow-a.example.com"), hook("slow-b.example.com")},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitForHook(t, cs, "slow", slow)
	err = cs.CoreV1().RESTClient().Post().Namespace("slow").Resource("configmaps").Param("timeout", "1s").
		Body(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "slow-1"}}).Do(ctx).Error()
	if !apierrors.IsTimeout(err) {
		t.Errorf("create past its deadline: %v, want a timeout", err)
	}
	if n := len(slow.requestsFor("slow-1")); n != 2 {
		t.Errorf("%d webhook calls, want both called (in parallel)", n)
	}
	waitFor(t, "both webhook calls to be cut off", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return cancelled == 2
	})
	if _, err := cs.CoreV1().ConfigMaps("slow").Get(ctx, "slow-1", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("timed-out create was stored: %v", err)
	}
	// An invalid timeout is a 400.
	err = cs.CoreV1().RESTClient().Get().Namespace("slow").Resource("configmaps").Param("timeout", "soon").Do(ctx).Error()
	if !apierrors.IsBadRequest(err) || !strings.Contains(err.Error(), "invalid timeout specified in the request URL") {
		t.Errorf("invalid timeout: %v", err)
	}
}

// Webhooks with reinvocationPolicy IfNeeded are called again when a later
// webhook changed the object; match conditions filter requests.
func TestAdmissionWebhookReinvocationAndMatchConditions(t *testing.T) {
	cfg := trellistest.Start(t)
	cs := kubernetes.NewForConfigOrDie(cfg)
	ctx := context.Background()
	createNamespace(t, cs, "re", nil)
	// first records whether it saw the label the second adds.
	first := startAdmissionHook(t, func(_ *http.Request, req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
		var cm corev1.ConfigMap
		json.Unmarshal(req.Object.Raw, &cm)
		saw := "no"
		if cm.Labels["second"] == "done" {
			saw = "yes"
		}
		patch := fmt.Sprintf(`[{"op":"add","path":"/metadata/annotations","value":{"first-saw-second":%q}}]`, saw)
		return &admissionv1.AdmissionResponse{Allowed: true, Patch: []byte(patch), PatchType: ptr.To(admissionv1.PatchTypeJSONPatch)}
	})
	second := startAdmissionHook(t, func(_ *http.Request, req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
		var cm corev1.ConfigMap
		json.Unmarshal(req.Object.Raw, &cm)
		if cm.Labels["second"] == "done" {
			return &admissionv1.AdmissionResponse{Allowed: true}
		}
		return &admissionv1.AdmissionResponse{Allowed: true, Patch: []byte(`[{"op":"add","path":"/metadata/labels/second","value":"done"}]`), PatchType: ptr.To(admissionv1.PatchTypeJSONPatch)}
	})
	mk := func(name string, h *admissionHook, reinvoke admissionregistrationv1.ReinvocationPolicyType) *admissionregistrationv1.MutatingWebhookConfiguration {
		return &admissionregistrationv1.MutatingWebhookConfiguration{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Webhooks: []admissionregistrationv1.MutatingWebhook{{
				Name: name + ".example.com", ClientConfig: h.clientConfig(), Rules: configMapRule(admissionregistrationv1.Create),
				SideEffects: sideEffectsNone, AdmissionReviewVersions: []string{"v1"}, ReinvocationPolicy: ptr.To(reinvoke),
				MatchConditions: []admissionregistrationv1.MatchCondition{
					{Name: "labelled", Expression: `has(object.metadata.labels) && object.metadata.labels["reinvoke"] == "please"`},
					{Name: "requester-may-create", Expression: `authorizer.group('').resource('configmaps').namespace(request.namespace).check('create').allowed()`},
				},
			}},
		}
	}
	for _, c := range []*admissionregistrationv1.MutatingWebhookConfiguration{mk("a-first", first, admissionregistrationv1.IfNeededReinvocationPolicy), mk("b-second", second, admissionregistrationv1.NeverReinvocationPolicy)} {
		if _, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, c, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	var cm *corev1.ConfigMap
	waitFor(t, "the mutating webhooks to take effect", func() bool {
		cs.CoreV1().ConfigMaps("re").Delete(ctx, "target", metav1.DeleteOptions{})
		var err error
		cm, err = cs.CoreV1().ConfigMaps("re").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "target", Labels: map[string]string{"reinvoke": "please"}}}, metav1.CreateOptions{})
		return err == nil && cm.Labels["second"] == "done" && cm.Annotations["first-saw-second"] != ""
	})
	if cm.Annotations["first-saw-second"] != "yes" {
		t.Errorf("first webhook was not reinvoked after the second changed the object: %v", cm.Annotations)
	}
	// Match conditions: without the label neither webhook is called.
	firstCalls := len(first.requests())
	plain, err := cs.CoreV1().ConfigMaps("re").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "plain"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(first.requests()) != firstCalls || plain.Labels["second"] != "" {
		t.Errorf("match conditions did not exclude an unlabelled object")
	}
}

// With matchPolicy Equivalent a webhook registered for one version of a
// resource sees requests to its other versions, converted to the version
// it asked for; its patch comes back converted to the request's version.
func TestAdmissionWebhookEquivalentVersions(t *testing.T) {
	cfg := trellistest.Start(t)
	cs := kubernetes.NewForConfigOrDie(cfg)
	dyn := dynamic.NewForConfigOrDie(cfg)
	ctx := context.Background()
	createNamespace(t, cs, "eq", nil)
	installCRD(t, cfg, gadgetCRD())
	hook := startAdmissionHook(t, func(_ *http.Request, req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
		return &admissionv1.AdmissionResponse{Allowed: true, Patch: []byte(`[{"op":"add","path":"/metadata/labels","value":{"seen-as":"` + req.Kind.Version + `"}}]`), PatchType: ptr.To(admissionv1.PatchTypeJSONPatch)}
	})
	for _, policy := range []admissionregistrationv1.MatchPolicyType{admissionregistrationv1.Equivalent, admissionregistrationv1.Exact} {
		name := strings.ToLower(string(policy))
		_, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, &admissionregistrationv1.MutatingWebhookConfiguration{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Webhooks: []admissionregistrationv1.MutatingWebhook{{
				Name: name + ".example.com", ClientConfig: hook.clientConfig(), MatchPolicy: ptr.To(policy),
				Rules: []admissionregistrationv1.RuleWithOperations{{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{"example.com"}, APIVersions: []string{"v1"}, Resources: []string{"gadgets"}},
				}},
				ObjectSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"policy": name}},
				SideEffects:    sideEffectsNone, AdmissionReviewVersions: []string{"v1"},
			}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}
	v2 := dyn.Resource(schema.GroupVersionResource{Group: "example.com", Version: "v2", Resource: "gadgets"}).Namespace("eq")
	var out *unstructured.Unstructured
	waitFor(t, "the equivalent-version webhook", func() bool {
		obj := gadget("v2", "eqv", map[string]any{})
		obj.SetLabels(map[string]string{"policy": "equivalent"})
		v2.Delete(ctx, "eqv", metav1.DeleteOptions{})
		var err error
		out, err = v2.Create(ctx, obj, metav1.CreateOptions{})
		return err == nil && out.GetLabels()["seen-as"] != ""
	})
	if out.GetAPIVersion() != "example.com/v2" || out.GetLabels()["seen-as"] != "v1" {
		t.Errorf("created %s with labels %v, want example.com/v2 seen as v1", out.GetAPIVersion(), out.GetLabels())
	}
	reqs := hook.requestsFor("eqv")
	last := reqs[len(reqs)-1]
	if last.Kind.Version != "v1" || last.Resource.Version != "v1" || last.RequestKind == nil || last.RequestKind.Version != "v2" ||
		last.RequestResource == nil || last.RequestResource.Version != "v2" || !strings.Contains(string(last.Object.Raw), `"apiVersion":"example.com/v1"`) {
		t.Errorf("equivalent request: kind %v resource %v requestKind %v object %s", last.Kind, last.Resource, last.RequestKind, last.Object.Raw)
	}
	exact := gadget("v2", "exact", map[string]any{})
	exact.SetLabels(map[string]string{"policy": "exact"})
	if out, err := v2.Create(ctx, exact, metav1.CreateOptions{}); err != nil || out.GetLabels()["seen-as"] != "" {
		t.Errorf("matchPolicy Exact called for another version: %v %v", err, out)
	}
}

// A /scale write is admitted as an autoscaling/v1 Scale, and a mutation
// of its replicas is written to the parent.
func TestAdmissionWebhookScale(t *testing.T) {
	cfg := trellistest.Start(t)
	cs := kubernetes.NewForConfigOrDie(cfg)
	ctx := context.Background()
	createNamespace(t, cs, "sc", nil)
	hook := startAdmissionHook(t, func(_ *http.Request, req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
		return &admissionv1.AdmissionResponse{Allowed: true, Patch: []byte(`[{"op":"replace","path":"/spec/replicas","value":7}]`), PatchType: ptr.To(admissionv1.PatchTypeJSONPatch)}
	})
	_, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "scale"},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name: "scale.example.com", ClientConfig: hook.clientConfig(),
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Update},
				Rule:       admissionregistrationv1.Rule{APIGroups: []string{"apps"}, APIVersions: []string{"v1"}, Resources: []string{"deployments/scale"}},
			}},
			SideEffects: sideEffectsNone, AdmissionReviewVersions: []string{"v1"},
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"app": "web"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](1), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "nginx"}}}}},
	}
	if _, err := cs.AppsV1().Deployments("sc").Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the scale webhook", func() bool {
		sc, err := cs.AppsV1().Deployments("sc").GetScale(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false
		}
		sc.Spec.Replicas = 3
		out, err := cs.AppsV1().Deployments("sc").UpdateScale(ctx, "web", sc, metav1.UpdateOptions{})
		return err == nil && out.Spec.Replicas == 7
	})
	got, _ := cs.AppsV1().Deployments("sc").Get(ctx, "web", metav1.GetOptions{})
	if *got.Spec.Replicas != 7 {
		t.Errorf("deployment replicas %d, want 7 from the webhook", *got.Spec.Replicas)
	}
	reqs := hook.requests()
	last := reqs[len(reqs)-1]
	if last.Kind != (metav1.GroupVersionKind{Group: "autoscaling", Version: "v1", Kind: "Scale"}) || last.SubResource != "scale" ||
		!strings.Contains(string(last.OldObject.Raw), `"kind":"Scale"`) {
		t.Errorf("scale request: kind %v subresource %q old %s", last.Kind, last.SubResource, last.OldObject.Raw)
	}
}

// A CRD with a schema and a validating webhook together: the schema's
// defaults reach the webhook, schema errors are answered before any
// webhook is called, and the webhook's denial comes after validation.
func TestAdmissionWebhookOnCustomResource(t *testing.T) {
	cfg := trellistest.Start(t)
	cs := kubernetes.NewForConfigOrDie(cfg)
	ctx := context.Background()
	installCRD(t, cfg, widgetCRD())
	hook := startAdmissionHook(t, func(_ *http.Request, req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
		var w unstructured.Unstructured
		if err := w.UnmarshalJSON(req.Object.Raw); err != nil {
			return &admissionv1.AdmissionResponse{Allowed: false, Result: &metav1.Status{Message: err.Error()}}
		}
		if color, _, _ := unstructured.NestedString(w.Object, "spec", "color"); color == "blue" {
			return &admissionv1.AdmissionResponse{Allowed: false, Result: &metav1.Status{Code: http.StatusForbidden, Message: "no blue widgets"}}
		}
		return &admissionv1.AdmissionResponse{Allowed: true}
	})
	_, err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "widgets"},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name: "widgets.example.com", ClientConfig: hook.clientConfig(),
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule:       admissionregistrationv1.Rule{APIGroups: []string{"example.com"}, APIVersions: []string{"v1"}, Resources: []string{"widgets"}},
			}},
			SideEffects: sideEffectsNone, AdmissionReviewVersions: []string{"v1"},
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	widgets := dynamic.NewForConfigOrDie(cfg).Resource(widgetGVR).Namespace("default")
	waitFor(t, "the widget webhook", func() bool {
		widgets.Delete(ctx, "probe", metav1.DeleteOptions{})
		widgets.Create(ctx, widget("probe", map[string]any{"color": "red"}), metav1.CreateOptions{})
		return len(hook.requestsFor("probe")) > 0
	})
	if _, err := widgets.Create(ctx, widget("red", map[string]any{"color": "red"}), metav1.CreateOptions{}); err != nil {
		t.Fatalf("valid widget: %v", err)
	}
	reqs := hook.requestsFor("red")
	if len(reqs) != 1 || !strings.Contains(string(reqs[0].Object.Raw), `"size":3`) {
		t.Errorf("the webhook did not see the schema's default: %v", reqs)
	}
	_, err = widgets.Create(ctx, widget("blue", map[string]any{"color": "blue"}), metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), `admission webhook "widgets.example.com" denied the request: no blue widgets`) {
		t.Errorf("denied widget: %v", err)
	}
	_, err = widgets.Create(ctx, widget("green", map[string]any{"color": "green"}), metav1.CreateOptions{})
	if !apierrors.IsInvalid(err) || len(hook.requestsFor("green")) != 0 {
		t.Errorf("schema-invalid widget: %v (webhook calls %d), want 422 before any webhook", err, len(hook.requestsFor("green")))
	}
}

// A webhook behind a Service reference is reached through the Service's
// Endpoints, verified against <name>.<namespace>.svc, and its denial is
// what kubectl prints.
func TestAdmissionWebhookServiceReference(t *testing.T) {
	hook := startAdmissionHookOn(t, listenOutsideLoopback(t), func(r *http.Request, req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
		if r.TLS == nil || r.TLS.ServerName != "admission-hook.default.svc" || r.URL.Path != "/validate" {
			return &admissionv1.AdmissionResponse{Allowed: false, Result: &metav1.Status{Message: "reached the wrong way: " + r.URL.Path}}
		}
		var cm corev1.ConfigMap
		json.Unmarshal(req.Object.Raw, &cm)
		if cm.Labels["deny"] == "yes" {
			return &admissionv1.AdmissionResponse{Allowed: false, Result: &metav1.Status{Code: http.StatusForbidden, Reason: metav1.StatusReasonForbidden, Message: "labelled deny"}}
		}
		return &admissionv1.AdmissionResponse{Allowed: true}
	})
	srv := trellistest.StartServer(t)
	cs := kubernetes.NewForConfigOrDie(srv.Config)
	ctx := context.Background()
	createNamespace(t, cs, "svc", nil)
	_, err := cs.CoreV1().Services("default").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "admission-hook"},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "https", Port: 443}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = cs.CoreV1().Endpoints("default").Create(ctx, &corev1.Endpoints{
		ObjectMeta: metav1.ObjectMeta{Name: "admission-hook"},
		Subsets: []corev1.EndpointSubset{{
			Addresses: []corev1.EndpointAddress{{IP: hook.addr.IP.String()}},
			Ports:     []corev1.EndpointPort{{Name: "https", Port: int32(hook.addr.Port)}},
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "by-service"},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name: "svc.example.com",
			ClientConfig: admissionregistrationv1.WebhookClientConfig{
				Service:  &admissionregistrationv1.ServiceReference{Namespace: "default", Name: "admission-hook", Path: ptr.To("/validate"), Port: ptr.To[int32](443)},
				CABundle: hook.caPEM,
			},
			Rules:       configMapRule(admissionregistrationv1.Create),
			SideEffects: sideEffectsNone, AdmissionReviewVersions: []string{"v1"},
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "svc"}},
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitForHook(t, cs, "svc", hook)
	if _, err := cs.CoreV1().ConfigMaps("svc").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "fine"}}, metav1.CreateOptions{}); err != nil {
		t.Errorf("allowed create through the service: %v", err)
	}
	manifest := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: denied\n  namespace: svc\n  labels: {deny: \"yes\"}\n"
	path := filepath.Join(t.TempDir(), "denied.yaml")
	if err := os.WriteFile(path, []byte(manifest), 0o600); err != nil {
		t.Fatal(err)
	}
	res := kubectl(t, srv.KubeconfigPath(), "", "create", "-f", path)
	want := `admission webhook "svc.example.com" denied the request: labelled deny`
	if res.code == 0 || !strings.Contains(res.fatal+res.stderr, want) {
		t.Errorf("kubectl create: exit %d, %q %q; want it to print %q", res.code, res.fatal, res.stderr, want)
	}
}
