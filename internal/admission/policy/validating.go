package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	apiadmission "k8s.io/apiserver/pkg/admission"
	cachingauthorizer "k8s.io/apiserver/pkg/admission/plugin/authorizer"
	plugincel "k8s.io/apiserver/pkg/admission/plugin/cel"
	"k8s.io/apiserver/pkg/admission/plugin/policy/validating"
	"k8s.io/apiserver/pkg/admission/plugin/webhook/matchconditions"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/apiserver/pkg/cel/environment"
	"k8s.io/client-go/tools/cache"

	"github.com/trellis-project/trellis/internal/admission"
)

// Options configure the policy plugins.
type Options struct {
	// Namespaces finds namespaces for selectors and namespaceObject.
	Namespaces Namespaces
	// Params reads params; nil leaves every paramKind unresolved.
	Params *Params
	// Authorizer answers the authorizer variable; nil makes its checks
	// fail.
	Authorizer authorizer.UnconditionalAuthorizer
}

// Validating is the ValidatingAdmissionPolicy plugin.
type Validating struct {
	source *source[validating.Validator]
	opts   Options
}

var _ admission.Validator = (*Validating)(nil)

// NewValidating returns the plugin over the policies and bindings two
// informers hold.
func NewValidating(policies, bindings cache.SharedIndexInformer, o Options) *Validating {
	return &Validating{source: newSource(policies, bindings, kindFuncs[validating.Validator]{
		definition: func(obj any) (definition, bool) {
			p, ok := obj.(*admissionregistrationv1.ValidatingAdmissionPolicy)
			if !ok {
				return definition{}, false
			}
			return definition{name: p.Name, paramKind: p.Spec.ParamKind, matchConstraints: p.Spec.MatchConstraints,
				failurePolicy: p.Spec.FailurePolicy}, true
		},
		compile: func(obj any) validating.Validator {
			return compileValidating(obj.(*admissionregistrationv1.ValidatingAdmissionPolicy))
		},
		binding: func(obj any) (binding, bool) {
			b, ok := obj.(*admissionregistrationv1.ValidatingAdmissionPolicyBinding)
			if !ok {
				return binding{}, false
			}
			return binding{name: b.Name, policyName: b.Spec.PolicyName, paramRef: b.Spec.ParamRef,
				matchResources: b.Spec.MatchResources, actions: b.Spec.ValidationActions}, true
		},
	}), opts: o}
}

// HasSynced reports whether the policies and bindings have been listed.
func (v *Validating) HasSynced() bool { return v.source.HasSynced() }

// Handles every operation: policies may name any.
func (v *Validating) Handles(admission.Operation) bool { return true }

// compileEnv is the CEL environment every policy compiles in, built
// once: building it costs milliseconds.
var compileEnv = environment.MustBaseEnvSet(environment.DefaultCompatibilityVersion())

// compileValidating compiles a policy's expressions with upstream's
// compiler. Compilation errors are kept in the validator and reported
// (under the failurePolicy) when the policy is used.
func compileValidating(p *admissionregistrationv1.ValidatingAdmissionPolicy) validating.Validator {
	withAuthz := plugincel.OptionalVariableDeclarations{HasParams: p.Spec.ParamKind != nil, HasAuthorizer: true}
	withoutAuthz := plugincel.OptionalVariableDeclarations{HasParams: p.Spec.ParamKind != nil}
	compiler, err := plugincel.NewCompositedCompiler(compileEnv)
	if err != nil {
		return validating.NewValidator(nil, nil, nil, nil, p.Spec.FailurePolicy, err)
	}
	vars := make([]plugincel.NamedExpressionAccessor, len(p.Spec.Variables))
	for i, v := range p.Spec.Variables {
		vars[i] = &validating.Variable{Name: v.Name, Expression: v.Expression}
	}
	compiler.CompileAndStoreVariables(vars, withAuthz, environment.StoredExpressions)

	var matcher matchconditions.Matcher
	if n := len(p.Spec.MatchConditions); n > 0 {
		conds := make([]plugincel.ExpressionAccessor, n)
		for i := range p.Spec.MatchConditions {
			conds[i] = (*matchconditions.MatchCondition)(&p.Spec.MatchConditions[i])
		}
		matcher = matchconditions.NewMatcher(compiler.CompileCondition(conds, withAuthz, environment.StoredExpressions),
			p.Spec.FailurePolicy, "policy", "validate", p.Name)
	}
	validations := make([]plugincel.ExpressionAccessor, len(p.Spec.Validations))
	messages := make([]plugincel.ExpressionAccessor, len(p.Spec.Validations))
	for i, v := range p.Spec.Validations {
		validations[i] = &validating.ValidationCondition{Expression: v.Expression, Message: v.Message, Reason: v.Reason}
		if v.MessageExpression != "" {
			messages[i] = &validating.MessageExpressionCondition{MessageExpression: v.MessageExpression}
		}
	}
	audits := make([]plugincel.ExpressionAccessor, len(p.Spec.AuditAnnotations))
	for i, a := range p.Spec.AuditAnnotations {
		audits[i] = &validating.AuditAnnotationCondition{Key: a.Key, ValueExpression: a.ValueExpression}
	}
	return validating.NewValidator(
		compiler.CompileCondition(validations, withAuthz, environment.StoredExpressions),
		matcher,
		compiler.CompileCondition(audits, withAuthz, environment.StoredExpressions),
		compiler.CompileCondition(messages, withoutAuthz, environment.StoredExpressions),
		p.Spec.FailurePolicy, nil)
}

// exempt: the policy APIs themselves are never subject to policies
// configured through the API (a broken policy could not be removed), nor
// are the review APIs of the authentication path.
func exempt(a *admission.Attributes) bool {
	gr := a.Resource.GroupResource()
	switch gr.Group {
	case "admissionregistration.k8s.io":
		switch gr.Resource {
		case "validatingadmissionpolicies", "validatingadmissionpolicybindings",
			"mutatingadmissionpolicies", "mutatingadmissionpolicybindings":
			return true
		}
	case "authentication.k8s.io":
		return gr.Resource == "tokenreviews" || gr.Resource == "selfsubjectreviews"
	case "authorization.k8s.io":
		switch gr.Resource {
		case "subjectaccessreviews", "localsubjectaccessreviews", "selfsubjectaccessreviews", "selfsubjectrulesreviews":
			return true
		}
	}
	return false
}

// denial is a decision to refuse the request, and whose it is.
type denial struct {
	policy  string
	binding string // "" for a policy-level configuration error
	message string
	reason  metav1.StatusReason
}

// Validate evaluates every matching policy under every matching binding
// and acts on the failed validations as the bindings' validationActions
// say: Deny refuses the request (the first denial in policy order is
// reported), Warn adds a Warning header, Audit an audit annotation.
func (v *Validating) Validate(ctx context.Context, a *admission.Attributes) error {
	if exempt(a) {
		return nil
	}
	hooks := v.source.current()
	if len(hooks) == 0 {
		return nil
	}
	req := &request{a: a, namespaces: v.opts.Namespaces}
	var authz authorizer.UnconditionalAuthorizer
	if v.opts.Authorizer != nil {
		authz = cachingauthorizer.NewCachingAuthorizer(v.opts.Authorizer)
	}
	var denials []denial
	var failures []validating.ValidationFailureValue
	configError := func(h *hook[validating.Validator], b *binding, err error) {
		if h.def.failOpen() {
			return
		}
		d := denial{policy: h.def.name, reason: metav1.StatusReasonInvalid}
		if b == nil {
			d.message = fmt.Errorf("failed to configure policy: %w", err).Error()
		} else {
			d.binding = b.name
			d.message = fmt.Errorf("failed to configure binding: %w", err).Error()
		}
		denials = append(denials, d)
	}
	versioned := map[schema.GroupVersionKind]*apiadmission.VersionedAttributes{}

	for _, h := range hooks {
		if h.def.matchConstraints == nil {
			configError(h, nil, errors.New("policy contained no match constraints, a required field"))
			continue
		}
		ok, t, err := req.matches(ctx, h.def.matchConstraints)
		if err != nil {
			configError(h, nil, err)
			continue
		}
		if !ok {
			continue
		}
		annotations := newAnnotationCollector()
		for i := range h.bindings {
			b := &h.bindings[i]
			params, ok, err := req.bindingParams(ctx, v.opts.Params, h.def.paramKind, b, a.Namespace)
			if err != nil {
				configError(h, b, err)
				continue
			}
			if !ok {
				continue
			}
			if len(params) == 0 {
				continue
			}
			va := versioned[t.kind]
			if va == nil {
				if va, err = versionedAttributes(a, t); err != nil {
					configError(h, b, fmt.Errorf("failed to convert object version: %w", err))
					continue
				}
				versioned[t.kind] = va
			}
			ns, err := req.namespace(ctx)
			if err != nil {
				return err
			}
			for _, param := range params {
				res := h.evaluator.Validate(ctx, t.resource, va, param, ns, celconfig.RuntimeCELCostBudget, authz)
				for i, d := range res.Decisions {
					if d.Action != validating.ActionDeny {
						continue
					}
					for _, action := range b.actions {
						switch action {
						case admissionregistrationv1.Deny:
							denials = append(denials, denial{policy: h.def.name, binding: b.name, message: d.Message, reason: d.Reason})
						case admissionregistrationv1.Warn:
							a.AddWarning(fmt.Sprintf("Validation failed for ValidatingAdmissionPolicy '%s' with binding '%s': %s", h.def.name, b.name, d.Message))
						case admissionregistrationv1.Audit:
							failures = append(failures, validating.ValidationFailureValue{
								ExpressionIndex: i, Message: d.Message, ValidationActions: b.actions,
								Binding: b.name, Policy: b.policyName,
							})
						}
					}
				}
				for _, an := range res.AuditAnnotations {
					switch an.Action {
					case validating.AuditAnnotationActionPublish:
						annotations.add(an.Key, truncate(an.Value, maxAuditAnnotationValueLength))
					case validating.AuditAnnotationActionError:
						denials = append(denials, denial{policy: h.def.name, binding: b.name, message: an.Error})
					}
				}
			}
		}
		annotations.publish(h.def.name, a)
	}
	if len(failures) > 0 {
		if len(failures) > maxValidationFailures {
			failures = failures[:maxValidationFailures]
		}
		if raw, err := json.Marshal(failures); err == nil {
			a.AddAuditAnnotation("validation.policy.admission.k8s.io/validation_failure", string(raw))
		}
	}
	if len(denials) == 0 {
		return nil
	}
	return denials[0].status(a)
}

// status words a denial as kube-apiserver does: a Forbidden error about
// the object whose reason and code are the validation's reason (Invalid,
// 422, when unset).
func (d denial) status(a *admission.Attributes) error {
	var msg string
	if d.binding != "" {
		msg = fmt.Sprintf("ValidatingAdmissionPolicy '%s' with binding '%s' denied request: %s", d.policy, d.binding, d.message)
	} else {
		msg = fmt.Sprintf("ValidatingAdmissionPolicy '%s' denied request: %s", d.policy, d.message)
	}
	err := apiadmission.NewForbidden(admission.Upstream(a, a.Kind, a.Object, a.OldObject), errors.New(msg))
	var st *apierrors.StatusError
	if !errors.As(err, &st) {
		return err
	}
	reason := d.reason
	if reason == "" {
		reason = metav1.StatusReasonInvalid
	}
	st.ErrStatus.Reason = reason
	st.ErrStatus.Code = reasonCode(reason)
	st.ErrStatus.Details.Causes = append(st.ErrStatus.Details.Causes, metav1.StatusCause{Message: msg})
	return st
}

// reasonCode is the HTTP code of a validation's reason; the API admits
// only these four.
func reasonCode(r metav1.StatusReason) int32 {
	switch r {
	case metav1.StatusReasonForbidden:
		return http.StatusForbidden
	case metav1.StatusReasonUnauthorized:
		return http.StatusUnauthorized
	case metav1.StatusReasonRequestEntityTooLarge:
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusUnprocessableEntity
}

// versionedAttributes presents the request to upstream's evaluators in the
// version t matched.
func versionedAttributes(a *admission.Attributes, t target) (*apiadmission.VersionedAttributes, error) {
	obj, old := a.Object, a.OldObject
	if t.descriptor != nil {
		var err error
		if obj, err = admission.Convert(a.Object, a.Descriptor, t.descriptor); err != nil {
			return nil, err
		}
		if old, err = admission.Convert(a.OldObject, a.Descriptor, t.descriptor); err != nil {
			return nil, err
		}
	}
	return admission.Upstream(a, t.kind, obj, old), nil
}

// Limits on what audit annotations carry, as kube-apiserver's.
const (
	maxAuditAnnotationValueLength = 10 * 1024
	maxValidationFailures         = 50
)

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// annotationCollector gathers one policy's audit annotations over its
// bindings: distinct values of one key are joined with ", ".
type annotationCollector struct {
	keys   []string
	values map[string][]string
}

func newAnnotationCollector() *annotationCollector {
	return &annotationCollector{values: map[string][]string{}}
}

func (c *annotationCollector) add(key, value string) {
	vs, seen := c.values[key]
	for _, v := range vs {
		if v == value {
			return
		}
	}
	if !seen {
		c.keys = append(c.keys, key)
	}
	c.values[key] = append(vs, value)
}

func (c *annotationCollector) publish(policy string, a *admission.Attributes) {
	for _, k := range c.keys {
		a.AddAuditAnnotation(policy+"/"+k, strings.Join(c.values[k], ", "))
	}
}
