package server_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/trellis-project/trellis/trellistest"
)

func configMapRules(ops ...admissionregistrationv1.OperationType) []admissionregistrationv1.NamedRuleWithOperations {
	return []admissionregistrationv1.NamedRuleWithOperations{{RuleWithOperations: admissionregistrationv1.RuleWithOperations{
		Operations: ops,
		Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"configmaps"}},
	}}}
}

func labelSelector(kv ...string) *metav1.LabelSelector {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return &metav1.LabelSelector{MatchLabels: m}
}

func createPolicy(t *testing.T, cs kubernetes.Interface, p *admissionregistrationv1.ValidatingAdmissionPolicy, bs ...*admissionregistrationv1.ValidatingAdmissionPolicyBinding) {
	t.Helper()
	ctx := context.Background()
	if _, err := cs.AdmissionregistrationV1().ValidatingAdmissionPolicies().Create(ctx, p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, b := range bs {
		if _, err := cs.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Create(ctx, b, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

func vapBinding(name, policy string, mr *admissionregistrationv1.MatchResources, actions ...admissionregistrationv1.ValidationAction) *admissionregistrationv1.ValidatingAdmissionPolicyBinding {
	return &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{PolicyName: policy, MatchResources: mr, ValidationActions: actions},
	}
}

func configMap(name string, labels map[string]string, data ...string) *corev1.ConfigMap {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}, Data: map[string]string{}}
	if name == "" {
		cm.GenerateName = "probe-"
	}
	for i := 0; i+1 < len(data); i += 2 {
		cm.Data[data[i]] = data[i+1]
	}
	return cm
}

// wantDenied checks a policy denial's code, reason and exact message.
func wantDenied(t *testing.T, err error, code int32, reason metav1.StatusReason, msg string) {
	t.Helper()
	var st *apierrors.StatusError
	if !errors.As(err, &st) {
		t.Fatalf("want a %d denial %q, got %v", code, msg, err)
	}
	if st.ErrStatus.Code != code || st.ErrStatus.Reason != reason || st.ErrStatus.Message != msg {
		t.Fatalf("got %d %s %q\nwant %d %s %q", st.ErrStatus.Code, st.ErrStatus.Reason, st.ErrStatus.Message, code, reason, msg)
	}
}

func TestAdmissionPolicyDenyWarnAndMessages(t *testing.T) {
	cfg := trellistest.Start(t)
	warnings := &warningRecorder{}
	cfg.WarningHandler = warnings
	cs := kubernetes.NewForConfigOrDie(cfg)
	ctx := context.Background()
	createNamespace(t, cs, "vap-deny", map[string]string{"policy": "deny"})
	createNamespace(t, cs, "vap-warn", map[string]string{"policy": "warn"})
	createNamespace(t, cs, "vap-none", nil)

	createPolicy(t, cs, &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "configmap-rules"},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: configMapRules(admissionregistrationv1.Create, admissionregistrationv1.Update)},
			MatchConditions:  []admissionregistrationv1.MatchCondition{{Name: "not-skipped", Expression: "object.metadata.name != 'skipped'"}},
			Variables:        []admissionregistrationv1.Variable{{Name: "data", Expression: "has(object.data) ? object.data : {}"}},
			Validations: []admissionregistrationv1.Validation{
				{Expression: "!('forbidden' in variables.data)", Reason: ptr.To(metav1.StatusReasonForbidden),
					MessageExpression: "'configmap ' + object.metadata.name + ' holds a forbidden key'"},
				{Expression: "size(variables.data) <= 2", Message: "too many keys"},
				{Expression: "object.metadata.name != 'plain'"},
				{Expression: "namespaceObject.metadata.name == object.metadata.namespace"},
				{Expression: "authorizer.group('').resource('secrets').namespace(object.metadata.namespace).check('list').allowed()",
					Message: "the authorizer said no"},
			},
		},
	},
		vapBinding("deny-binding", "configmap-rules", &admissionregistrationv1.MatchResources{NamespaceSelector: labelSelector("policy", "deny")}, admissionregistrationv1.Deny),
		vapBinding("warn-binding", "configmap-rules", &admissionregistrationv1.MatchResources{NamespaceSelector: labelSelector("policy", "warn")}, admissionregistrationv1.Warn, admissionregistrationv1.Audit),
	)

	eventually(t, "policy takes effect", func() error {
		_, err := cs.CoreV1().ConfigMaps("vap-deny").Create(ctx, configMap("", nil, "forbidden", "x"), metav1.CreateOptions{})
		if err == nil || !apierrors.IsForbidden(err) {
			return fmt.Errorf("not denied: %v", err)
		}
		return nil
	})
	create := func(ns string, cm *corev1.ConfigMap) error {
		_, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{})
		return err
	}
	wantDenied(t, create("vap-deny", configMap("bad", nil, "forbidden", "x")), 403, metav1.StatusReasonForbidden,
		`configmaps "bad" is forbidden: ValidatingAdmissionPolicy 'configmap-rules' with binding 'deny-binding' denied request: configmap bad holds a forbidden key`)
	wantDenied(t, create("vap-deny", configMap("big", nil, "a", "1", "b", "2", "c", "3")), 422, metav1.StatusReasonInvalid,
		`configmaps "big" is forbidden: ValidatingAdmissionPolicy 'configmap-rules' with binding 'deny-binding' denied request: too many keys`)
	wantDenied(t, create("vap-deny", configMap("plain", nil)), 422, metav1.StatusReasonInvalid,
		`configmaps "plain" is forbidden: ValidatingAdmissionPolicy 'configmap-rules' with binding 'deny-binding' denied request: failed expression: object.metadata.name != 'plain'`)
	if err := create("vap-deny", configMap("good", nil, "a", "1")); err != nil {
		t.Fatalf("a valid configmap: %v", err)
	}
	if err := create("vap-deny", configMap("skipped", nil, "forbidden", "x")); err != nil {
		t.Fatalf("matchConditions exclude 'skipped': %v", err)
	}
	if err := create("vap-none", configMap("elsewhere", nil, "forbidden", "x")); err != nil {
		t.Fatalf("no binding matches vap-none: %v", err)
	}
	// An update is validated too, and the policy sees the new object.
	good, _ := cs.CoreV1().ConfigMaps("vap-deny").Get(ctx, "good", metav1.GetOptions{})
	good.Data["forbidden"] = "now"
	_, err := cs.CoreV1().ConfigMaps("vap-deny").Update(ctx, good, metav1.UpdateOptions{})
	wantDenied(t, err, 403, metav1.StatusReasonForbidden,
		`configmaps "good" is forbidden: ValidatingAdmissionPolicy 'configmap-rules' with binding 'deny-binding' denied request: configmap good holds a forbidden key`)

	// Warn: the write succeeds with upstream's Warning.
	if err := create("vap-warn", configMap("warned", nil, "forbidden", "x")); err != nil {
		t.Fatalf("Warn must not deny: %v", err)
	}
	want := "Validation failed for ValidatingAdmissionPolicy 'configmap-rules' with binding 'warn-binding': configmap warned holds a forbidden key"
	warnings.mu.Lock()
	got := append([]string(nil), warnings.msgs...)
	warnings.mu.Unlock()
	found := false
	for _, w := range got {
		found = found || w == want
	}
	if !found {
		t.Fatalf("warnings %q lack %q", got, want)
	}
}

func TestAdmissionPolicyParams(t *testing.T) {
	cfg := trellistest.Start(t)
	cs := kubernetes.NewForConfigOrDie(cfg)
	dyn := dynamic.NewForConfigOrDie(cfg)
	ctx := context.Background()
	createNamespace(t, cs, "vap-params", map[string]string{"params": "on"})
	createNamespace(t, cs, "vap-params-src", nil)

	// Params of a built-in kind: ConfigMaps in another namespace.
	createPolicy(t, cs, &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "max-keys"},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			ParamKind: &admissionregistrationv1.ParamKind{APIVersion: "v1", Kind: "ConfigMap"},
			MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: configMapRules(admissionregistrationv1.Create),
				NamespaceSelector: labelSelector("params", "on")},
			Validations: []admissionregistrationv1.Validation{{
				Expression:        "size(object.data) <= int(params.data.max)",
				MessageExpression: "'at most ' + params.data.max + ' keys (' + params.metadata.name + ')'",
			}},
		},
	},
		&admissionregistrationv1.ValidatingAdmissionPolicyBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "by-name"},
			Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
				PolicyName: "max-keys", ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
				ParamRef: &admissionregistrationv1.ParamRef{Name: "limits", Namespace: "vap-params-src",
					ParameterNotFoundAction: ptr.To(admissionregistrationv1.DenyAction)},
				MatchResources: &admissionregistrationv1.MatchResources{ObjectSelector: labelSelector("binding", "name")},
			},
		},
		&admissionregistrationv1.ValidatingAdmissionPolicyBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "by-selector"},
			Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
				PolicyName: "max-keys", ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
				ParamRef: &admissionregistrationv1.ParamRef{Selector: labelSelector("limit", "true"), Namespace: "vap-params-src",
					ParameterNotFoundAction: ptr.To(admissionregistrationv1.AllowAction)},
				MatchResources: &admissionregistrationv1.MatchResources{ObjectSelector: labelSelector("binding", "selector")},
			},
		},
	)
	create := func(cm *corev1.ConfigMap) error {
		_, err := cs.CoreV1().ConfigMaps("vap-params").Create(ctx, cm, metav1.CreateOptions{})
		return err
	}
	byName := map[string]string{"binding": "name"}
	bySelector := map[string]string{"binding": "selector"}

	// No param yet: Deny refuses, Allow lets through.
	eventually(t, "policy takes effect", func() error {
		if err := create(configMap("", byName)); err == nil {
			return errors.New("not denied")
		}
		return nil
	})
	wantDenied(t, create(configMap("p0", byName)), 422, metav1.StatusReasonInvalid,
		"configmaps \"p0\" is forbidden: ValidatingAdmissionPolicy 'max-keys' with binding 'by-name' denied request: failed to configure binding: no params found for policy binding with `Deny` parameterNotFoundAction")
	if err := create(configMap("s0", bySelector, "a", "1", "b", "2", "c", "3")); err != nil {
		t.Fatalf("parameterNotFoundAction Allow: %v", err)
	}
	if err := create(configMap("other", nil, "a", "1", "b", "2", "c", "3")); err != nil {
		t.Fatalf("no binding selects it: %v", err)
	}

	// With params: by name at once (read through the API if the informer
	// lags), by selector every selected param is applied.
	for _, p := range []*corev1.ConfigMap{
		configMap("limits", nil, "max", "1"),
		configMap("one", map[string]string{"limit": "true"}, "max", "1"),
		configMap("two", map[string]string{"limit": "true"}, "max", "2"),
	} {
		if _, err := cs.CoreV1().ConfigMaps("vap-params-src").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	wantDenied(t, create(configMap("p1", byName, "a", "1", "b", "2")), 422, metav1.StatusReasonInvalid,
		"configmaps \"p1\" is forbidden: ValidatingAdmissionPolicy 'max-keys' with binding 'by-name' denied request: at most 1 keys (limits)")
	if err := create(configMap("p2", byName, "a", "1")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "selected params", func() error {
		err := create(configMap("", bySelector, "a", "1", "b", "2"))
		if err == nil || !strings.HasSuffix(err.Error(), "denied request: at most 1 keys (one)") {
			return fmt.Errorf("got %v", err)
		}
		return nil
	})

	// Params of a custom resource, cluster-scoped.
	installCRD(t, cfg, &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "limits.policy.example.com"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: "policy.example.com",
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "limits", Singular: "limit", Kind: "Limit", ListKind: "LimitList"},
			Scope: apiextensionsv1.ClusterScoped,
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{Name: "v1", Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{
						"spec": {Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{"maxKeys": {Type: "integer"}}},
					}}}}},
		},
	})
	createPolicy(t, cs, &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "crd-max-keys"},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			ParamKind: &admissionregistrationv1.ParamKind{APIVersion: "policy.example.com/v1", Kind: "Limit"},
			MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: configMapRules(admissionregistrationv1.Create),
				NamespaceSelector: labelSelector("params", "on"), ObjectSelector: labelSelector("binding", "crd")},
			Validations: []admissionregistrationv1.Validation{{
				Expression:        "size(object.data) <= params.spec.maxKeys",
				MessageExpression: "'at most ' + string(params.spec.maxKeys) + ' keys'",
			}},
		},
	}, &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "crd-binding"},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName: "crd-max-keys", ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
			ParamRef: &admissionregistrationv1.ParamRef{Name: "small", ParameterNotFoundAction: ptr.To(admissionregistrationv1.DenyAction)},
		},
	})
	limits := schema.GroupVersionResource{Group: "policy.example.com", Version: "v1", Resource: "limits"}
	if _, err := dyn.Resource(limits).Create(ctx, &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "policy.example.com/v1", "kind": "Limit", "metadata": map[string]any{"name": "small"},
		"spec": map[string]any{"maxKeys": int64(1)},
	}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	byCRD := map[string]string{"binding": "crd"}
	eventually(t, "custom resource params", func() error {
		err := create(configMap("", byCRD, "a", "1", "b", "2"))
		if err == nil || !strings.HasSuffix(err.Error(), "with binding 'crd-binding' denied request: at most 1 keys") {
			return fmt.Errorf("got %v", err)
		}
		return nil
	})
	if err := create(configMap("c1", byCRD, "a", "1")); err != nil {
		t.Fatal(err)
	}
}

func TestAdmissionPolicyCustomResourceAndFailurePolicy(t *testing.T) {
	cfg := trellistest.Start(t)
	cs := kubernetes.NewForConfigOrDie(cfg)
	dyn := dynamic.NewForConfigOrDie(cfg)
	ctx := context.Background()
	installCRD(t, cfg, widgetCRD())
	widgets := dyn.Resource(schema.GroupVersionResource{Group: "example.com", Version: "v1", Resource: "widgets"}).Namespace("default")

	createPolicy(t, cs, &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "small-blue-widgets"},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{"example.com"}, APIVersions: []string{"*"}, Resources: []string{"widgets"}},
				}}}},
			Validations: []admissionregistrationv1.Validation{{
				// size is defaulted to 3 before admission.
				Expression: "object.spec.color != 'blue' || object.spec.size <= 2",
				Message:    "blue widgets are small",
			}},
		},
	}, vapBinding("widgets", "small-blue-widgets", nil, admissionregistrationv1.Deny))
	eventually(t, "policy on a custom resource", func() error {
		w := widget("", map[string]any{"color": "blue"})
		w.SetGenerateName("probe-")
		_, err := widgets.Create(ctx, w, metav1.CreateOptions{})
		if err == nil {
			return errors.New("not denied")
		}
		return nil
	})
	_, err := widgets.Create(ctx, widget("big-blue", map[string]any{"color": "blue"}), metav1.CreateOptions{})
	wantDenied(t, err, 422, metav1.StatusReasonInvalid,
		`widgets.example.com "big-blue" is forbidden: ValidatingAdmissionPolicy 'small-blue-widgets' with binding 'widgets' denied request: blue widgets are small`)
	if _, err := widgets.Create(ctx, widget("small-blue", map[string]any{"color": "blue", "size": int64(2)}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// An expression that fails at run time (no such key): Fail refuses,
	// Ignore lets the request through.
	broken := func(name string, fp admissionregistrationv1.FailurePolicyType, ns string) {
		createPolicy(t, cs, &admissionregistrationv1.ValidatingAdmissionPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
				FailurePolicy: ptr.To(fp),
				MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: configMapRules(admissionregistrationv1.Create),
					NamespaceSelector: labelSelector("kubernetes.io/metadata.name", ns)},
				Validations: []admissionregistrationv1.Validation{{Expression: "object.data.x == 'y'"}},
			},
		}, vapBinding(name, name, nil, admissionregistrationv1.Deny))
	}
	createNamespace(t, cs, "vap-fail", nil)
	createNamespace(t, cs, "vap-ignore", nil)
	broken("broken-fail", admissionregistrationv1.Fail, "vap-fail")
	broken("broken-ignore", admissionregistrationv1.Ignore, "vap-ignore")
	eventually(t, "failurePolicy Fail", func() error {
		_, err := cs.CoreV1().ConfigMaps("vap-fail").Create(ctx, configMap("", nil), metav1.CreateOptions{})
		if err == nil || !strings.Contains(err.Error(), "ValidatingAdmissionPolicy 'broken-fail' with binding 'broken-fail' denied request: expression 'object.data.x == 'y'' resulted in error: no such key: data") {
			return fmt.Errorf("got %v", err)
		}
		return nil
	})
	if _, err := cs.CoreV1().ConfigMaps("vap-ignore").Create(ctx, configMap("ignored", nil), metav1.CreateOptions{}); err != nil {
		t.Fatalf("failurePolicy Ignore: %v", err)
	}
}

func TestAdmissionPolicyTypeCheckingStatus(t *testing.T) {
	cfg := trellistest.Start(t)
	cs := kubernetes.NewForConfigOrDie(cfg)
	ctx := context.Background()
	p, err := cs.AdmissionregistrationV1().ValidatingAdmissionPolicies().Create(ctx, &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "replicas"},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{"apps"}, APIVersions: []string{"v1"}, Resources: []string{"deployments"}},
				}}}},
			Validations: []admissionregistrationv1.Validation{
				{Expression: "object.spec.replicas <= 5"},
				{Expression: "object.spec.replicaz <= 5", MessageExpression: "'too many: ' + object.spec.replicas"},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var got *admissionregistrationv1.ValidatingAdmissionPolicy
	eventually(t, "status.typeChecking", func() error {
		got, err = cs.AdmissionregistrationV1().ValidatingAdmissionPolicies().Get(ctx, p.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if got.Status.ObservedGeneration != got.Generation || got.Status.TypeChecking == nil {
			return fmt.Errorf("status not written: %+v", got.Status)
		}
		return nil
	})
	ws := got.Status.TypeChecking.ExpressionWarnings
	if len(ws) != 2 {
		t.Fatalf("want 2 warnings, got %+v", ws)
	}
	if ws[0].FieldRef != "spec.validations[1].expression" || !strings.HasPrefix(ws[0].Warning, "apps/v1, Kind=Deployment: ERROR:") ||
		!strings.Contains(ws[0].Warning, "undefined field 'replicaz'") {
		t.Errorf("expression warning: %+v", ws[0])
	}
	if ws[1].FieldRef != "spec.validations[1].messageExpression" || !strings.Contains(ws[1].Warning, "no matching overload for '_+_'") {
		t.Errorf("messageExpression warning: %+v", ws[1])
	}
	found := false
	for _, m := range got.ManagedFields {
		found = found || (m.Manager == "validatingadmissionpolicy-status" && m.Subresource == "status")
	}
	if !found {
		t.Errorf("status not applied by validatingadmissionpolicy-status: %+v", got.ManagedFields)
	}
}

func TestAdmissionPolicyMutating(t *testing.T) {
	cfg := trellistest.Start(t)
	cs := kubernetes.NewForConfigOrDie(cfg)
	dyn := dynamic.NewForConfigOrDie(cfg)
	ctx := context.Background()
	createNamespace(t, cs, "map", map[string]string{"mutate": "yes"})

	// ApplyConfiguration then JSONPatch, on ConfigMaps; a validating
	// policy that sees the mutated object shows the order.
	mutations := []admissionregistrationv1.Mutation{
		{PatchType: admissionregistrationv1.PatchTypeApplyConfiguration, ApplyConfiguration: &admissionregistrationv1.ApplyConfiguration{
			Expression: `Object{metadata: Object.metadata{labels: {"mutated": "yes"}}}`}},
		{PatchType: admissionregistrationv1.PatchTypeJSONPatch, JSONPatch: &admissionregistrationv1.JSONPatch{
			Expression: `[JSONPatch{op: "add", path: "/data/added", value: "by-" + object.metadata.labels["mutated"]}]`}},
	}
	if _, err := cs.AdmissionregistrationV1().MutatingAdmissionPolicies().Create(ctx, &admissionregistrationv1.MutatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "label-and-data"},
		Spec: admissionregistrationv1.MutatingAdmissionPolicySpec{
			MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: configMapRules(admissionregistrationv1.Create),
				NamespaceSelector: labelSelector("mutate", "yes")},
			MatchConditions:    []admissionregistrationv1.MatchCondition{{Name: "has-data", Expression: "has(object.data)"}},
			Mutations:          mutations,
			ReinvocationPolicy: admissionregistrationv1.NeverReinvocationPolicy,
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.AdmissionregistrationV1().MutatingAdmissionPolicyBindings().Create(ctx, &admissionregistrationv1.MutatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "label-and-data"},
		Spec:       admissionregistrationv1.MutatingAdmissionPolicyBindingSpec{PolicyName: "label-and-data"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	createPolicy(t, cs, &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "must-be-mutated"},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: configMapRules(admissionregistrationv1.Create),
				NamespaceSelector: labelSelector("mutate", "yes")},
			Validations: []admissionregistrationv1.Validation{{
				Expression: "!has(object.data) || (object.metadata.labels['mutated'] == 'yes' && object.data['added'] == 'by-yes')",
				Message:    "mutating policies run first"}},
		},
	}, vapBinding("must-be-mutated", "must-be-mutated", nil, admissionregistrationv1.Deny))

	var got *corev1.ConfigMap
	eventually(t, "mutating policy takes effect", func() error {
		var err error
		got, err = cs.CoreV1().ConfigMaps("map").Create(ctx, configMap("", nil, "a", "1"), metav1.CreateOptions{})
		if err != nil {
			return err
		}
		if got.Labels["mutated"] != "yes" || got.Data["added"] != "by-yes" || got.Data["a"] != "1" {
			return fmt.Errorf("not mutated: labels %v data %v", got.Labels, got.Data)
		}
		return nil
	})
	stored, err := cs.CoreV1().ConfigMaps("map").Get(ctx, got.Name, metav1.GetOptions{})
	if err != nil || stored.Data["added"] != "by-yes" {
		t.Fatalf("stored %v: %v", stored, err)
	}
	// matchConditions: no data, no mutation (the JSONPatch would fail).
	if cm, err := cs.CoreV1().ConfigMaps("map").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "empty"}}, metav1.CreateOptions{}); err != nil || cm.Labels["mutated"] != "" {
		t.Fatalf("matchConditions: %v %v", cm, err)
	}

	// A mutation that fails refuses the request with upstream's wording.
	if _, err := cs.AdmissionregistrationV1().MutatingAdmissionPolicies().Create(ctx, &admissionregistrationv1.MutatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "broken"},
		Spec: admissionregistrationv1.MutatingAdmissionPolicySpec{
			MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: configMapRules(admissionregistrationv1.Create),
				ObjectSelector: labelSelector("broken", "yes")},
			Mutations: []admissionregistrationv1.Mutation{{PatchType: admissionregistrationv1.PatchTypeJSONPatch, JSONPatch: &admissionregistrationv1.JSONPatch{
				Expression: `[JSONPatch{op: "remove", path: "/data/missing"}]`}}},
			ReinvocationPolicy: admissionregistrationv1.NeverReinvocationPolicy,
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.AdmissionregistrationV1().MutatingAdmissionPolicyBindings().Create(ctx, &admissionregistrationv1.MutatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "broken-binding"},
		Spec:       admissionregistrationv1.MutatingAdmissionPolicyBindingSpec{PolicyName: "broken"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "failing mutation", func() error {
		_, err := cs.CoreV1().ConfigMaps("default").Create(ctx, configMap("", map[string]string{"broken": "yes"}, "a", "1"), metav1.CreateOptions{})
		var st *apierrors.StatusError
		if !errors.As(err, &st) {
			return fmt.Errorf("not refused: %v", err)
		}
		if st.ErrStatus.Code != 403 || !strings.HasPrefix(st.ErrStatus.Message, "policy 'broken' with binding 'broken-binding' denied request: ") {
			return fmt.Errorf("got %d %q", st.ErrStatus.Code, st.ErrStatus.Message)
		}
		return nil
	})

	// ApplyConfiguration on a custom resource: merged with its schema,
	// then defaulted and pruned as the handler does.
	installCRD(t, cfg, widgetCRD())
	if _, err := cs.AdmissionregistrationV1().MutatingAdmissionPolicies().Create(ctx, &admissionregistrationv1.MutatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "blue-widgets"},
		Spec: admissionregistrationv1.MutatingAdmissionPolicySpec{
			MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{"example.com"}, APIVersions: []string{"v1"}, Resources: []string{"widgets"}},
				}}}},
			Mutations: []admissionregistrationv1.Mutation{{PatchType: admissionregistrationv1.PatchTypeApplyConfiguration, ApplyConfiguration: &admissionregistrationv1.ApplyConfiguration{
				Expression: `Object{spec: Object.spec{color: "blue", max: 7}}`}}},
			ReinvocationPolicy: admissionregistrationv1.NeverReinvocationPolicy,
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.AdmissionregistrationV1().MutatingAdmissionPolicyBindings().Create(ctx, &admissionregistrationv1.MutatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "blue-widgets"},
		Spec:       admissionregistrationv1.MutatingAdmissionPolicyBindingSpec{PolicyName: "blue-widgets"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	widgets := dyn.Resource(schema.GroupVersionResource{Group: "example.com", Version: "v1", Resource: "widgets"}).Namespace("default")
	eventually(t, "mutating a custom resource", func() error {
		w := widget("", map[string]any{"color": "red"})
		w.SetGenerateName("w-")
		got, err := widgets.Create(ctx, w, metav1.CreateOptions{})
		if err != nil {
			return err
		}
		spec, _, _ := unstructured.NestedMap(got.Object, "spec")
		if spec["color"] != "blue" || spec["max"] != int64(7) || spec["size"] != int64(3) {
			return fmt.Errorf("spec %v", spec)
		}
		return nil
	})
}
