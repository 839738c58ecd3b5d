package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured/unstructuredscheme"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"
	apiadmission "k8s.io/apiserver/pkg/admission"
	cachingauthorizer "k8s.io/apiserver/pkg/admission/plugin/authorizer"
	plugincel "k8s.io/apiserver/pkg/admission/plugin/cel"
	"k8s.io/apiserver/pkg/admission/plugin/policy/mutating/patch"
	"k8s.io/apiserver/pkg/admission/plugin/policy/validating"
	"k8s.io/apiserver/pkg/admission/plugin/webhook/matchconditions"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/apiserver/pkg/cel/environment"
	"k8s.io/client-go/tools/cache"

	"github.com/trellis-project/trellis/internal/admission"
	"github.com/trellis-project/trellis/internal/resource"
)

// TypeConverters give the structured-merge-diff type of a resource's kind,
// which ApplyConfiguration mutations merge with.
type TypeConverters interface {
	TypeConverter(d *resource.Descriptor) (managedfields.TypeConverter, error)
}

// mutator is a compiled MutatingAdmissionPolicy.
type mutator struct {
	matcher  matchconditions.Matcher
	patchers []patch.Patcher
	compiler *plugincel.CompositedCompiler
	err      error
	reinvoke bool // reinvocationPolicy IfNeeded
}

// Mutating is the MutatingAdmissionPolicy plugin.
type Mutating struct {
	source *source[*mutator]
	opts   Options
	types  TypeConverters
}

var _ admission.Mutator = (*Mutating)(nil)

// NewMutating returns the plugin over the policies and bindings two
// informers hold.
func NewMutating(policies, bindings cache.SharedIndexInformer, types TypeConverters, o Options) *Mutating {
	return &Mutating{types: types, opts: o, source: newSource(policies, bindings, kindFuncs[*mutator]{
		definition: func(obj any) (definition, bool) {
			p, ok := obj.(*admissionregistrationv1.MutatingAdmissionPolicy)
			if !ok {
				return definition{}, false
			}
			return definition{name: p.Name, paramKind: p.Spec.ParamKind, matchConstraints: p.Spec.MatchConstraints,
				failurePolicy: p.Spec.FailurePolicy}, true
		},
		compile: func(obj any) *mutator { return compileMutating(obj.(*admissionregistrationv1.MutatingAdmissionPolicy)) },
		binding: func(obj any) (binding, bool) {
			b, ok := obj.(*admissionregistrationv1.MutatingAdmissionPolicyBinding)
			if !ok {
				return binding{}, false
			}
			return binding{name: b.Name, policyName: b.Spec.PolicyName, paramRef: b.Spec.ParamRef,
				matchResources: b.Spec.MatchResources}, true
		},
	})}
}

// HasSynced reports whether the policies and bindings have been listed.
func (m *Mutating) HasSynced() bool { return m.source.HasSynced() }

// Handles every operation.
func (m *Mutating) Handles(admission.Operation) bool { return true }

// compileMutating compiles a policy's mutations with upstream's compiler
// and patchers.
func compileMutating(p *admissionregistrationv1.MutatingAdmissionPolicy) *mutator {
	out := &mutator{reinvoke: p.Spec.ReinvocationPolicy == admissionregistrationv1.IfNeededReinvocationPolicy}
	opts := plugincel.OptionalVariableDeclarations{HasParams: p.Spec.ParamKind != nil, HasAuthorizer: true}
	compiler, err := plugincel.NewCompositedCompiler(compileEnv)
	if err != nil {
		out.err = fmt.Errorf("failed to initialize CEL compiler: %w", err)
		return out
	}
	out.compiler = compiler
	vars := make([]plugincel.NamedExpressionAccessor, len(p.Spec.Variables))
	for i, v := range p.Spec.Variables {
		vars[i] = &validating.Variable{Name: v.Name, Expression: v.Expression}
	}
	compiler.CompileAndStoreVariables(vars, opts, environment.StoredExpressions)
	if n := len(p.Spec.MatchConditions); n > 0 {
		conds := make([]plugincel.ExpressionAccessor, n)
		for i := range p.Spec.MatchConditions {
			conds[i] = (*matchconditions.MatchCondition)(&p.Spec.MatchConditions[i])
		}
		out.matcher = matchconditions.NewMatcher(compiler.CompileCondition(conds, opts, environment.StoredExpressions),
			p.Spec.FailurePolicy, "policy", "validate", p.Name)
	}
	patchOpts := opts
	patchOpts.HasPatchTypes = true
	for _, mu := range p.Spec.Mutations {
		switch {
		case mu.PatchType == admissionregistrationv1.PatchTypeJSONPatch && mu.JSONPatch != nil:
			out.patchers = append(out.patchers, patch.NewJSONPatcher(compiler.CompileMutatingEvaluator(
				&patch.JSONPatchCondition{Expression: mu.JSONPatch.Expression}, patchOpts, environment.StoredExpressions)))
		case mu.PatchType == admissionregistrationv1.PatchTypeApplyConfiguration && mu.ApplyConfiguration != nil:
			out.patchers = append(out.patchers, patch.NewApplyConfigurationPatcher(compiler.CompileMutatingEvaluator(
				&patch.ApplyConfigurationCondition{Expression: mu.ApplyConfiguration.Expression}, patchOpts, environment.StoredExpressions)))
		}
	}
	return out
}

// policyError is a mutation or configuration failure of one policy.
type policyError struct {
	def     *definition
	binding string
	err     error
}

func (e policyError) Error() string {
	if e.binding != "" {
		return fmt.Sprintf("policy '%s' with binding '%s' denied request: %s", e.def.name, e.binding, e.err)
	}
	return fmt.Sprintf("policy %q denied request: %s", e.def.name, e.err)
}

// invocation is one policy under one binding with one param.
type invocation struct {
	hook    *hook[*mutator]
	binding *binding
	target  target
	param   runtime.Object
}

// Admit applies the mutations of every matching policy under every
// matching binding and param, in policy order, each policy seeing what the
// ones before it made. Policies with reinvocationPolicy IfNeeded run once
// more if a later policy changed the object. Failures refuse the request
// under failurePolicy Fail, as kube-apiserver words them.
func (m *Mutating) Admit(ctx context.Context, a *admission.Attributes) error {
	if exempt(a) || a.Object == nil {
		return nil
	}
	hooks := m.source.current()
	if len(hooks) == 0 {
		return nil
	}
	req := &request{a: a, namespaces: m.opts.Namespaces}
	var errs []policyError
	configError := func(h *hook[*mutator], b *binding, err error) {
		pe := policyError{def: &h.def}
		if b == nil {
			pe.err = fmt.Errorf("failed to configure policy: %w", err)
		} else {
			pe.binding = b.name
			pe.err = fmt.Errorf("failed to configure binding: %w", err)
		}
		errs = append(errs, pe)
	}
	var invs []invocation
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
		for i := range h.bindings {
			b := &h.bindings[i]
			params, ok, err := req.bindingParams(ctx, m.opts.Params, h.def.paramKind, b, a.Namespace)
			if err != nil {
				configError(h, b, err)
				continue
			}
			if !ok {
				continue
			}
			for _, p := range params {
				invs = append(invs, invocation{hook: h, binding: b, target: t, param: p})
			}
		}
	}
	if len(invs) > 0 {
		ns, err := req.namespace(ctx)
		if err != nil {
			return err
		}
		var authz authorizer.UnconditionalAuthorizer
		if m.opts.Authorizer != nil {
			authz = cachingauthorizer.NewCachingAuthorizer(m.opts.Authorizer)
		}
		changedSince := map[int]bool{} // reinvocable invocations whose input changed after they ran
		var ran []int
		for i := range invs {
			changed, err := m.invoke(ctx, a, &invs[i], ns, authz, &errs)
			if err != nil {
				return err
			}
			if changed {
				for _, j := range ran {
					changedSince[j] = true
				}
			}
			if invs[i].hook.evaluator.reinvoke {
				ran = append(ran, i)
				delete(changedSince, i)
			}
		}
		for i := range invs {
			if changedSince[i] {
				if _, err := m.invoke(ctx, a, &invs[i], ns, authz, &errs); err != nil {
					return err
				}
			}
		}
	}
	var failed []policyError
	for _, e := range errs {
		if !e.def.failOpen() {
			failed = append(failed, e)
		}
	}
	if len(failed) == 0 {
		return nil
	}
	forbidden := apiadmission.NewForbidden(admission.Upstream(a, a.Kind, a.Object, a.OldObject), errors.New("admission request denied by policy"))
	var st *apierrors.StatusError
	if !errors.As(forbidden, &st) {
		return forbidden
	}
	st.ErrStatus.Message = failed[0].Error()
	st.ErrStatus.Reason = metav1.StatusReasonInvalid
	for _, e := range failed {
		st.ErrStatus.Details.Causes = append(st.ErrStatus.Details.Causes, metav1.StatusCause{Message: e.Error()})
	}
	return st
}

// invoke runs one invocation's mutations on a.Object. Mutation failures
// are appended to errs; a returned error ends admission at once.
func (m *Mutating) invoke(ctx context.Context, a *admission.Attributes, inv *invocation, ns *corev1.Namespace, authz authorizer.UnconditionalAuthorizer, errs *[]policyError) (bool, error) {
	ev := inv.hook.evaluator
	fail := func(err error) {
		*errs = append(*errs, policyError{def: &inv.hook.def, binding: inv.binding.name, err: err})
	}
	if ev.err != nil {
		fail(ev.err)
		return false, nil
	}
	d := a.Descriptor
	if inv.target.descriptor != nil {
		d = inv.target.descriptor
	}
	if d == nil || a.Decode == nil {
		return false, apierrors.NewInternalError(errors.New("mutating admission without a descriptor"))
	}
	obj, err := admission.Convert(a.Object, a.Descriptor, d)
	if err != nil {
		return false, apierrors.NewInternalError(err)
	}
	old, err := admission.Convert(a.OldObject, a.Descriptor, d)
	if err != nil {
		return false, apierrors.NewInternalError(err)
	}
	u, err := toUnstructured(obj, inv.target.kind)
	if err != nil {
		return false, apierrors.NewInternalError(err)
	}
	va := admission.Upstream(a, inv.target.kind, u, old)
	if ev.compiler != nil {
		ctx = ev.compiler.CreateContext(ctx)
	}
	if ev.matcher != nil {
		res := ev.matcher.Match(ctx, va, inv.param, authz)
		if res.Error != nil {
			fail(res.Error)
			return false, nil
		}
		if !res.Matches {
			return false, nil
		}
	}
	tc, err := m.typeConverter(d)
	if err != nil {
		return false, apierrors.NewServiceUnavailable(fmt.Sprintf("Resource kind %s not found. There can be a delay between when CustomResourceDefinitions are created and when they are available.", inv.target.kind))
	}
	current := obj
	for _, p := range ev.patchers {
		patched, err := p.Patch(ctx, patch.Request{
			MatchedResource: inv.target.resource, VersionedAttributes: va, Namespace: ns, TypeConverter: tc,
			ObjectInterfaces:  unstructuredInterfaces{},
			OptionalVariables: plugincel.OptionalVariableBindings{VersionedParams: inv.param, Authorizer: authz},
		}, celconfig.RuntimeCELCostBudget)
		if err != nil {
			var st *apierrors.StatusError
			if errors.As(err, &st) {
				return false, st
			}
			fail(err)
			continue
		}
		// Decoded as the handler decodes: defaulted, custom resources
		// pruned; the next mutation sees the result.
		raw, err := json.Marshal(patched)
		if err != nil {
			return false, apierrors.NewInternalError(err)
		}
		if current, err = a.Decode(d, raw); err != nil {
			return false, apierrors.NewInternalError(fmt.Errorf("failed to decode the mutated object: %w", err))
		}
		if u, err = toUnstructured(current, inv.target.kind); err != nil {
			return false, apierrors.NewInternalError(err)
		}
		va.UpdateObject(u)
	}
	if current == obj || apiequality.Semantic.DeepEqual(current, obj) {
		return false, nil
	}
	back, err := admission.Convert(current, d, a.Descriptor)
	if err != nil {
		return false, apierrors.NewInternalError(err)
	}
	a.Object = back
	return true, nil
}

func (m *Mutating) typeConverter(d *resource.Descriptor) (managedfields.TypeConverter, error) {
	if m.types == nil {
		return nil, errors.New("no type information")
	}
	return m.types.TypeConverter(d)
}

// toUnstructured presents obj to the patchers as JSON-like data, which
// both patch types take without a scheme.
// Typed objects may lack apiVersion and kind; they are set to kind.
func toUnstructured(obj runtime.Object, kind schema.GroupVersionKind) (*unstructured.Unstructured, error) {
	var u *unstructured.Unstructured
	if in, ok := obj.(*unstructured.Unstructured); ok {
		u = in.DeepCopy()
	} else {
		content, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
		if err != nil {
			return nil, err
		}
		u = &unstructured.Unstructured{Object: content}
	}
	if u.GetKind() == "" {
		u.SetGroupVersionKind(kind)
	}
	return u, nil
}

// unstructuredInterfaces serve the patchers, which only see unstructured
// objects here: JSON in, JSON out, no scheme.
type unstructuredInterfaces struct{}

func (unstructuredInterfaces) GetObjectCreater() runtime.ObjectCreater {
	return unstructuredscheme.NewUnstructuredCreator()
}
func (unstructuredInterfaces) GetObjectTyper() runtime.ObjectTyper {
	return unstructuredscheme.NewUnstructuredObjectTyper()
}
func (unstructuredInterfaces) GetObjectDefaulter() runtime.ObjectDefaulter { return nil }
func (unstructuredInterfaces) GetObjectConvertor() runtime.ObjectConvertor { return nil }
func (unstructuredInterfaces) GetEquivalentResourceMapper() runtime.EquivalentResourceMapper {
	return nil
}
