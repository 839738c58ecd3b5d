package webhook

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/client-go/tools/cache"

	"github.com/trellis-project/trellis/internal/admission"
	"github.com/trellis-project/trellis/internal/resource"
	"github.com/trellis-project/trellis/internal/webhook"
)

var errNoNamespaceLookup = errors.New("no namespace lookup configured")

// Options configure a Dispatcher.
type Options struct {
	// Resolver resolves clientConfig.service references.
	Resolver webhook.ServiceResolver
	// Namespaces finds namespace labels for namespaceSelectors.
	Namespaces NamespaceLabels
	// FailureThreshold consecutive failed calls put a webhook in back-off
	// for Backoff; during it the webhook is not called and its
	// failurePolicy answers at once. Backoff < 0 disables back-off.
	FailureThreshold int
	Backoff          time.Duration
	// Metrics receives per-webhook latency, rejection and failure counts.
	Metrics *Metrics
	// Authorizer answers the authorizer variable of match conditions.
	Authorizer authorizer.UnconditionalAuthorizer
}

// Default back-off: three failures in a row, then five seconds without
// calls.
const (
	DefaultFailureThreshold = 3
	DefaultBackoff          = 5 * time.Second
)

// Dispatcher is the webhook admission plugin: Admit calls the mutating
// webhooks one after another, Validate calls the validating webhooks in
// parallel.
type Dispatcher struct {
	source     *source
	namespaces NamespaceLabels
	resolver   webhook.ServiceResolver
	metrics    *Metrics
	authz      authorizer.UnconditionalAuthorizer
	threshold  int
	backoff    time.Duration
	now        func() time.Time

	mu       sync.Mutex
	breakers map[string]*breaker
}

var (
	_ admission.Mutator   = (*Dispatcher)(nil)
	_ admission.Validator = (*Dispatcher)(nil)
)

// New returns a dispatcher over the webhook configurations the two
// informers hold.
func New(mutating, validating cache.SharedIndexInformer, o Options) *Dispatcher {
	if o.FailureThreshold <= 0 {
		o.FailureThreshold = DefaultFailureThreshold
	}
	if o.Backoff == 0 {
		o.Backoff = DefaultBackoff
	}
	return &Dispatcher{
		source:     newSource(mutating, validating),
		namespaces: o.Namespaces,
		resolver:   o.Resolver,
		metrics:    o.Metrics,
		authz:      o.Authorizer,
		threshold:  o.FailureThreshold,
		backoff:    o.Backoff,
		now:        time.Now,
		breakers:   map[string]*breaker{},
	}
}

// Handles every operation.
func (d *Dispatcher) Handles(admission.Operation) bool { return true }

// Admit calls the matching mutating webhooks in order, applying each
// one's patch before the next is called. Webhooks with
// reinvocationPolicy IfNeeded are called once more if a later webhook
// changed the object.
func (d *Dispatcher) Admit(ctx context.Context, a *admission.Attributes) error {
	if exemptFromAllHooks(a.Resource.GroupResource()) || exemptFromAPIHooks(a) {
		return nil
	}
	hooks, _ := d.source.hooks()
	if len(hooks) == 0 {
		return nil
	}
	eq := d.equivalents(a)
	var reinvocable []*hook // called, and asked to be called again if needed
	changedSince := map[*hook]bool{}
	for i, h := range hooks {
		inv, err := d.invocationFor(ctx, h, a, eq)
		if err != nil {
			return err
		}
		if inv == nil {
			continue
		}
		changed, err := d.callMutating(ctx, inv, a, 0, i)
		if err != nil {
			return err
		}
		if changed {
			for _, r := range reinvocable {
				changedSince[r] = true
			}
		}
		if h.reinvokeIfNeeded {
			reinvocable = append(reinvocable, h)
			delete(changedSince, h)
		}
	}
	// The second round: only webhooks whose input changed after they ran.
	for i, h := range hooks {
		if !changedSince[h] {
			continue
		}
		inv, err := d.invocationFor(ctx, h, a, eq)
		if err != nil {
			return err
		}
		if inv == nil {
			continue
		}
		if _, err := d.callMutating(ctx, inv, a, 1, i); err != nil {
			return err
		}
	}
	return nil
}

// Validate calls the matching validating webhooks in parallel. The
// first refusal in configuration order is the answer.
func (d *Dispatcher) Validate(ctx context.Context, a *admission.Attributes) error {
	if exemptFromAllHooks(a.Resource.GroupResource()) || exemptFromAPIHooks(a) {
		return nil
	}
	_, hooks := d.source.hooks()
	if len(hooks) == 0 {
		return nil
	}
	eq := d.equivalents(a)
	var invs []*invocation
	for _, h := range hooks {
		inv, err := d.invocationFor(ctx, h, a, eq)
		if err != nil {
			return err
		}
		if inv != nil {
			invs = append(invs, inv)
		}
	}
	errs := make([]error, len(invs))
	if len(invs) == 1 {
		errs[0] = d.callValidating(ctx, invs[0], a, 0)
	} else {
		var wg sync.WaitGroup
		for i, inv := range invs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = d.callValidating(ctx, inv, a, i)
			}()
		}
		wg.Wait()
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// equivalents lists the request resource's other versions once per
// request, and only if a webhook asks.
func (d *Dispatcher) equivalents(a *admission.Attributes) func() []*resource.Descriptor {
	var once sync.Once
	var out []*resource.Descriptor
	return func() []*resource.Descriptor {
		once.Do(func() {
			if a.Versions != nil && a.Descriptor != nil {
				out = a.Versions.Equivalents(a.Descriptor)
			}
		})
		return out
	}
}

// invocationFor matches h and evaluates its match conditions against the
// object in the version h will see.
func (d *Dispatcher) invocationFor(ctx context.Context, h *hook, a *admission.Attributes, eq func() []*resource.Descriptor) (*invocation, error) {
	inv, err := d.match(ctx, h, a, eq)
	if err != nil || inv == nil {
		return nil, err
	}
	if len(h.matchConditions) == 0 {
		return inv, nil
	}
	obj, old, err := versioned(a, inv)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	matches, err := evalConditions(ctx, h, a, inv, obj, old, d.authz)
	if err != nil {
		return nil, apierrors.NewForbidden(a.Resource.GroupResource(), a.Name, err)
	}
	if !matches {
		return nil, nil
	}
	return inv, nil
}

// callMutating calls one mutating webhook and applies its patch to
// a.Object. changed reports whether the object changed.
func (d *Dispatcher) callMutating(ctx context.Context, inv *invocation, a *admission.Attributes, round, index int) (bool, error) {
	h := inv.hook
	start := d.now()
	obj, old, err := versioned(a, inv)
	if err != nil {
		return false, apierrors.NewInternalError(err)
	}
	res, err := d.call(ctx, inv, a, obj, old)
	if err != nil {
		return false, d.callFailed(ctx, h, a, err, start, round, index)
	}
	d.metrics.observe(h, a, start, d.now(), !res.Allowed, 200)
	d.record(h, a, res)
	if !res.Allowed {
		st := rejection(h.name, res.Result)
		d.metrics.rejected(h, a, rejectionNoError, int(st.ErrStatus.Code))
		return false, st
	}
	if len(res.Patch) == 0 {
		return false, nil
	}
	patched, err := applyPatch(h, a, inv, obj, res)
	if err != nil {
		var ce *callError
		if errors.As(err, &ce) {
			return false, d.callFailed(ctx, h, a, err, start, round, index)
		}
		return false, err
	}
	if patched == nil {
		return false, nil
	}
	back, err := fromVersion(a, inv, patched)
	if err != nil {
		return false, apierrors.NewInternalError(err)
	}
	changed := !apiequality.Semantic.DeepEqual(a.Object, back)
	a.Object = back
	a.AddAuditAnnotation(fmt.Sprintf("patch.webhook.admission.k8s.io/round_%d_index_%d", round, index),
		fmt.Sprintf(`{"configuration":%q,"webhook":%q,"patchType":"JSONPatch"}`, h.configuration, h.name))
	return changed, nil
}

// callValidating calls one validating webhook.
func (d *Dispatcher) callValidating(ctx context.Context, inv *invocation, a *admission.Attributes, index int) error {
	h := inv.hook
	start := d.now()
	obj, old, err := versioned(a, inv)
	if err != nil {
		return apierrors.NewInternalError(err)
	}
	res, err := d.call(ctx, inv, a, obj, old)
	if err != nil {
		return d.callFailed(ctx, h, a, err, start, 0, index)
	}
	d.metrics.observe(h, a, start, d.now(), !res.Allowed, 200)
	d.record(h, a, res)
	if !res.Allowed {
		st := rejection(h.name, res.Result)
		d.metrics.rejected(h, a, rejectionNoError, int(st.ErrStatus.Code))
		return st
	}
	return nil
}

// record passes a webhook's warnings and audit annotations on.
func (d *Dispatcher) record(h *hook, a *admission.Attributes, res *response) {
	for _, w := range res.Warnings {
		a.AddWarning(w)
	}
	for k, v := range res.AuditAnnotations {
		a.AddAuditAnnotation(h.name+"/"+k, v)
	}
}

// callFailed applies the failurePolicy to a webhook that could not be
// called or answered nonsense: Ignore goes on (unless the request's own
// deadline has passed), Fail refuses the request.
func (d *Dispatcher) callFailed(ctx context.Context, h *hook, a *admission.Attributes, err error, start time.Time, round, index int) error {
	var ce *callError
	if !errors.As(err, &ce) {
		return err
	}
	code := int(ce.status.ErrStatus.Code)
	if h.failOpen {
		d.metrics.observe(h, a, start, d.now(), false, code)
		d.metrics.failedOpen(h)
		prefix := "failed-open.validating.webhook.admission.k8s.io"
		if h.mutating {
			prefix = "failed-open.mutation.webhook.admission.k8s.io"
		}
		a.AddAuditAnnotation(fmt.Sprintf("%s/round_%d_index_%d", prefix, round, index), h.name)
		if ctx.Err() != nil {
			return apierrors.NewTimeoutError("request did not complete within requested timeout", 0)
		}
		return nil
	}
	d.metrics.observe(h, a, start, d.now(), true, code)
	d.metrics.rejected(h, a, rejectionCallingWebhook, code)
	if ce.dryRunUnsupported != nil {
		return ce.dryRunUnsupported
	}
	return apierrors.NewInternalError(ce)
}

// versioned returns the request's objects in the version inv calls with.
func versioned(a *admission.Attributes, inv *invocation) (obj, old runtime.Object, err error) {
	if inv.target == nil {
		return a.Object, a.OldObject, nil
	}
	if obj, err = admission.Convert(a.Object, a.Descriptor, inv.target); err != nil {
		return nil, nil, err
	}
	if old, err = admission.Convert(a.OldObject, a.Descriptor, inv.target); err != nil {
		return nil, nil, err
	}
	return obj, old, nil
}

// fromVersion turns a patched object of inv's version back into the
// request's version.
func fromVersion(a *admission.Attributes, inv *invocation, obj runtime.Object) (runtime.Object, error) {
	if inv.target == nil {
		return obj, nil
	}
	return admission.Convert(obj, inv.target, a.Descriptor)
}

// sideEffectsAllowDryRun: a dryRun request may only reach webhooks
// without side effects (or with none on dry run).
func sideEffectsAllowDryRun(s *admissionregistrationv1.SideEffectClass) bool {
	return s != nil && (*s == admissionregistrationv1.SideEffectClassNone || *s == admissionregistrationv1.SideEffectClassNoneOnDryRun)
}
