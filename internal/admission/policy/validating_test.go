package policy_test

import (
	"context"
	"encoding/json"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"

	"github.com/trellis-project/trellis/internal/admission"
	"github.com/trellis-project/trellis/internal/admission/policy"
	"github.com/trellis-project/trellis/internal/auth"
)

type namespaces map[string]*corev1.Namespace

func (n namespaces) Namespace(_ context.Context, name string) (*corev1.Namespace, error) {
	return n[name], nil
}

// TestAuditActionAndAnnotations pins down what an Audit binding and a
// policy's auditAnnotations leave on the request: upstream's
// validation_failure record and "<policy>/<key>" annotations.
func TestAuditActionAndAnnotations(t *testing.T) {
	p := &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "audited", UID: "1", ResourceVersion: "1"},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			MatchConstraints: &admissionregistrationv1.MatchResources{
				NamespaceSelector: &metav1.LabelSelector{}, ObjectSelector: &metav1.LabelSelector{},
				ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"configmaps"}},
				}}}},
			Validations: []admissionregistrationv1.Validation{
				{Expression: "true"},
				{Expression: "!has(object.data)", Message: "no data please"},
			},
			AuditAnnotations: []admissionregistrationv1.AuditAnnotation{
				{Key: "keys", ValueExpression: "string(size(object.data)) + ' keys by ' + request.userInfo.username"},
				{Key: "skipped", ValueExpression: "null"},
			},
		},
	}
	b := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "audit-only"},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{PolicyName: "audited",
			ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Audit}},
	}
	factory := informers.NewSharedInformerFactory(fake.NewClientset(p, b), 0)
	pi := factory.Admissionregistration().V1().ValidatingAdmissionPolicies().Informer()
	bi := factory.Admissionregistration().V1().ValidatingAdmissionPolicyBindings().Informer()
	v := policy.NewValidating(pi, bi, policy.Options{Namespaces: namespaces{"default": {ObjectMeta: metav1.ObjectMeta{Name: "default"}}}})
	stop := make(chan struct{})
	defer close(stop)
	factory.Start(stop)
	cache.WaitForCacheSync(stop, v.HasSynced)

	a := &admission.Attributes{
		Operation: admission.Create, Namespace: "default", Name: "cm",
		Kind:     schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"},
		Resource: schema.GroupVersionResource{Version: "v1", Resource: "configmaps"},
		Object: &corev1.ConfigMap{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
			ObjectMeta: metav1.ObjectMeta{Name: "cm", Namespace: "default"}, Data: map[string]string{"a": "1"}},
		User: &auth.User{Name: "alice"},
	}
	if err := v.Validate(context.Background(), a); err != nil {
		t.Fatalf("Audit must not deny: %v", err)
	}
	got := a.AuditAnnotations()
	if got["audited/keys"] != "1 keys by alice" {
		t.Errorf("audited/keys = %q", got["audited/keys"])
	}
	if _, ok := got["audited/skipped"]; ok {
		t.Errorf("a null value must publish nothing: %v", got)
	}
	var failures []map[string]any
	if err := json.Unmarshal([]byte(got["validation.policy.admission.k8s.io/validation_failure"]), &failures); err != nil {
		t.Fatalf("validation_failure: %v (%v)", err, got)
	}
	want := map[string]any{"message": "no data please", "policy": "audited", "binding": "audit-only",
		"expressionIndex": float64(1), "validationActions": []any{"Audit"}}
	if len(failures) != 1 || !equalJSON(failures[0], want) {
		t.Errorf("validation_failure = %v, want [%v]", failures, want)
	}
	if len(a.Warnings()) != 0 {
		t.Errorf("Audit must not warn: %v", a.Warnings())
	}
}

func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// BenchmarkValidateOnePolicy is the in-process cost one matching
// ValidatingAdmissionPolicy (one CEL validation, one Deny binding) adds
// to a ConfigMap create: matching, binding and evaluation, no I/O.
func BenchmarkValidateOnePolicy(b *testing.B) {
	p := &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "bench", UID: "1", ResourceVersion: "1"},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			MatchConstraints: &admissionregistrationv1.MatchResources{
				NamespaceSelector: &metav1.LabelSelector{}, ObjectSelector: &metav1.LabelSelector{},
				ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"configmaps"}},
				}}}},
			Validations: []admissionregistrationv1.Validation{{Expression: "!has(object.data) || !('forbidden' in object.data)"}},
		},
	}
	bd := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "bench"},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{PolicyName: "bench",
			ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny}},
	}
	factory := informers.NewSharedInformerFactory(fake.NewClientset(p, bd), 0)
	v := policy.NewValidating(factory.Admissionregistration().V1().ValidatingAdmissionPolicies().Informer(),
		factory.Admissionregistration().V1().ValidatingAdmissionPolicyBindings().Informer(),
		policy.Options{Namespaces: namespaces{"default": {ObjectMeta: metav1.ObjectMeta{Name: "default"}}}})
	stop := make(chan struct{})
	defer close(stop)
	factory.Start(stop)
	cache.WaitForCacheSync(stop, v.HasSynced)
	obj := &corev1.ConfigMap{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: "cm", Namespace: "default"}, Data: map[string]string{"a": "1"}}
	for b.Loop() {
		a := &admission.Attributes{
			Operation: admission.Create, Namespace: "default", Name: "cm",
			Kind:     schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"},
			Resource: schema.GroupVersionResource{Version: "v1", Resource: "configmaps"},
			Object:   obj, User: &auth.User{Name: "alice"},
		}
		if err := v.Validate(context.Background(), a); err != nil {
			b.Fatal(err)
		}
	}
}
