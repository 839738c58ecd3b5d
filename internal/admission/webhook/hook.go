// Package webhook is admission through MutatingWebhookConfigurations and
// ValidatingWebhookConfigurations (admissionregistration.k8s.io/v1): which
// webhooks a request matches, the AdmissionReview calls, and what their
// answers do to the request.
//
// Beyond kube-apiserver, every call shares the request's deadline (no
// webhook outlives it), validating webhooks run in parallel, and a
// webhook that keeps failing is backed off: for a short while it is not
// called, and its failurePolicy answers at once.
package webhook

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sync"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	plugincel "k8s.io/apiserver/pkg/admission/plugin/cel"
	"k8s.io/apiserver/pkg/admission/plugin/webhook/matchconditions"
	"k8s.io/apiserver/pkg/cel/environment"
	"k8s.io/client-go/rest"

	"github.com/trellis-project/trellis/internal/webhook"
)

// DefaultTimeout is a webhook's timeoutSeconds when unset.
const DefaultTimeout = 10 * time.Second

// hook is one webhook of one configuration, with what can be prepared
// once: its selectors, its compiled match conditions, its client.
type hook struct {
	configuration string
	name          string
	mutating      bool

	rules              []admissionregistrationv1.RuleWithOperations
	failOpen           bool // failurePolicy Ignore
	equivalent         bool // matchPolicy Equivalent
	sideEffects        *admissionregistrationv1.SideEffectClass
	reinvokeIfNeeded   bool
	timeout            time.Duration
	reviewVersion      string // "v1" or "v1beta1"; "" if none is spoken
	clientConfig       webhook.ClientConfig
	namespaceSelector  labels.Selector
	objectSelector     labels.Selector
	selectorErr        error
	matchConditions    []admissionregistrationv1.MatchCondition
	compileMatcherOnce sync.Once
	matcher            matchconditions.Matcher

	// key identifies the webhook across configuration updates that do not
	// change how it is called; its back-off state is kept under it.
	key string

	clientOnce sync.Once
	client     *rest.RESTClient
	clientErr  error
}

var conditionCompiler = plugincel.NewConditionCompiler(environment.MustBaseEnvSet(environment.DefaultCompatibilityVersion()))

func newHook(configuration string, mutating bool, w webhookFields) *hook {
	h := &hook{
		configuration:   configuration,
		name:            w.Name,
		mutating:        mutating,
		rules:           w.Rules,
		failOpen:        w.FailurePolicy != nil && *w.FailurePolicy == admissionregistrationv1.Ignore,
		equivalent:      w.MatchPolicy == nil || *w.MatchPolicy == admissionregistrationv1.Equivalent,
		sideEffects:     w.SideEffects,
		timeout:         DefaultTimeout,
		matchConditions: w.MatchConditions,
		reinvokeIfNeeded: w.ReinvocationPolicy != nil &&
			*w.ReinvocationPolicy == admissionregistrationv1.IfNeededReinvocationPolicy,
	}
	if w.TimeoutSeconds != nil {
		h.timeout = time.Duration(*w.TimeoutSeconds) * time.Second
	}
	for _, v := range w.AdmissionReviewVersions {
		if v == "v1" || v == "v1beta1" {
			h.reviewVersion = v
			break
		}
	}
	cc := webhook.ClientConfig{URL: w.ClientConfig.URL, CABundle: w.ClientConfig.CABundle}
	if s := w.ClientConfig.Service; s != nil {
		cc.Service = &webhook.ServiceReference{Namespace: s.Namespace, Name: s.Name, Path: s.Path, Port: s.Port}
	}
	h.clientConfig = cc
	h.namespaceSelector, h.selectorErr = selector(w.NamespaceSelector)
	if h.selectorErr == nil {
		h.objectSelector, h.selectorErr = selector(w.ObjectSelector)
	}
	// The back-off identity: which webhook, and where it is called.
	raw, _ := json.Marshal(w.ClientConfig)
	sum := sha256.Sum256(raw)
	kind := "validating"
	if mutating {
		kind = "mutating"
	}
	h.key = kind + "/" + configuration + "/" + w.Name + "/" + hex.EncodeToString(sum[:8])
	return h
}

// webhookFields are what MutatingWebhook and ValidatingWebhook share.
type webhookFields struct {
	Name                    string
	ClientConfig            admissionregistrationv1.WebhookClientConfig
	Rules                   []admissionregistrationv1.RuleWithOperations
	FailurePolicy           *admissionregistrationv1.FailurePolicyType
	MatchPolicy             *admissionregistrationv1.MatchPolicyType
	NamespaceSelector       *metav1.LabelSelector
	ObjectSelector          *metav1.LabelSelector
	SideEffects             *admissionregistrationv1.SideEffectClass
	TimeoutSeconds          *int32
	AdmissionReviewVersions []string
	MatchConditions         []admissionregistrationv1.MatchCondition
	ReinvocationPolicy      *admissionregistrationv1.ReinvocationPolicyType
}

func selector(s *metav1.LabelSelector) (labels.Selector, error) {
	if s == nil {
		return labels.Everything(), nil
	}
	return metav1.LabelSelectorAsSelector(s)
}

func (h *hook) kind() string {
	if h.mutating {
		return "admit"
	}
	return "validating"
}

// conditionMatcher compiles the match conditions on first use.
func (h *hook) conditionMatcher() matchconditions.Matcher {
	h.compileMatcherOnce.Do(func() {
		exprs := make([]plugincel.ExpressionAccessor, len(h.matchConditions))
		for i, c := range h.matchConditions {
			exprs[i] = &matchconditions.MatchCondition{Name: c.Name, Expression: c.Expression}
		}
		policy := admissionregistrationv1.Fail
		if h.failOpen {
			policy = admissionregistrationv1.Ignore
		}
		h.matcher = matchconditions.NewMatcher(conditionCompiler.CompileCondition(exprs,
			plugincel.OptionalVariableDeclarations{HasAuthorizer: true}, environment.StoredExpressions),
			&policy, "webhook", h.kind(), h.name)
	})
	return h.matcher
}
