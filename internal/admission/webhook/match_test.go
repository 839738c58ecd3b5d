package webhook

import (
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/trellis-project/trellis/internal/admission"
)

func TestRuleMatches(t *testing.T) {
	rule := func(resources []string, scope admissionregistrationv1.ScopeType, ops ...admissionregistrationv1.OperationType) admissionregistrationv1.RuleWithOperations {
		return admissionregistrationv1.RuleWithOperations{Operations: ops, Rule: admissionregistrationv1.Rule{
			APIGroups: []string{"", "apps"}, APIVersions: []string{"v1"}, Resources: resources, Scope: &scope,
		}}
	}
	pods := schema.GroupVersionResource{Version: "v1", Resource: "pods"}
	namespaces := schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
	deployments := schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	const all, cluster, namespaced = admissionregistrationv1.AllScopes, admissionregistrationv1.ClusterScope, admissionregistrationv1.NamespacedScope
	create, update := admissionregistrationv1.Create, admissionregistrationv1.Update
	for _, tc := range []struct {
		name string
		rule admissionregistrationv1.RuleWithOperations
		gvr  schema.GroupVersionResource
		sub  string
		ns   string
		op   admission.Operation
		want bool
	}{
		{"exact", rule([]string{"pods"}, all, create), pods, "", "default", admission.Create, true},
		{"other operation", rule([]string{"pods"}, all, create), pods, "", "default", admission.Update, false},
		{"all operations", rule([]string{"pods"}, all, admissionregistrationv1.OperationAll), pods, "", "default", admission.Delete, true},
		{"star skips subresources", rule([]string{"*"}, all, update), pods, "status", "default", admission.Update, false},
		{"star matches main resource", rule([]string{"*"}, all, update), deployments, "", "default", admission.Update, true},
		{"named subresource", rule([]string{"pods/status"}, all, update), pods, "status", "default", admission.Update, true},
		{"resource star covers main", rule([]string{"pods/*"}, all, update), pods, "", "default", admission.Update, true},
		{"resource star covers subresources", rule([]string{"pods/*"}, all, update), pods, "exec", "default", admission.Update, true},
		{"any subresource of anything", rule([]string{"*/scale"}, all, update), deployments, "scale", "default", admission.Update, true},
		{"other group", rule([]string{"*"}, all, create), schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "jobs"}, "", "default", admission.Create, false},
		{"other version", rule([]string{"*"}, all, create), schema.GroupVersionResource{Version: "v2", Resource: "pods"}, "", "default", admission.Create, false},
		{"namespaced scope", rule([]string{"*"}, namespaced, create), pods, "", "default", admission.Create, true},
		{"namespaced scope skips namespaces", rule([]string{"*"}, namespaced, create), namespaces, "", "", admission.Create, false},
		{"cluster scope takes namespaces", rule([]string{"*"}, cluster, create), namespaces, "", "", admission.Create, true},
		{"cluster scope skips namespaced", rule([]string{"*"}, cluster, create), pods, "", "default", admission.Create, false},
	} {
		a := &admission.Attributes{Operation: tc.op, Resource: tc.gvr, Subresource: tc.sub, Namespace: tc.ns}
		if got := admission.RuleMatches(tc.rule, a, tc.gvr); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestRejectionWording(t *testing.T) {
	if got := rejection("v.example.com", nil).Error(); got != `admission webhook "v.example.com" denied the request without explanation` {
		t.Errorf("no result: %q", got)
	}
	st := rejection("v.example.com", nil).ErrStatus
	if st.Code != 400 || st.Status != "Failure" {
		t.Errorf("no result: code %d status %q, want 400 Failure", st.Code, st.Status)
	}
}
