package builtin

import (
	"context"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/rest"
	"k8s.io/apiserver/pkg/storage/names"

	"github.com/trellis-project/trellis/internal/auth"
	"github.com/trellis-project/trellis/internal/request"
)

// rules are the strategies of one kind in upstream's form: main serves
// creates and writes to the main resource and to /scale (upstream's
// scale subresources write through the main strategy); subs serve the
// other subresources ("status", "finalize", "approval", ...).
//
// Most kinds use upstream's own strategy objects from
// k8s.io/kubernetes/pkg/registry/<group>/<resource>: their
// PrepareForCreate and PrepareForUpdate (status reset, status-only
// writes, generation, disabled fields) and their validation, run through
// rest.ValidateCreate and rest.ValidateUpdate exactly as kube-apiserver's
// generic store runs them: strategy validation, object metadata, and
// declarative validation with its migration checks. Only the
// strategies are borrowed; nothing of upstream's storage or request path.
type rules struct {
	main rest.RESTCreateUpdateStrategy
	subs map[string]rest.RESTUpdateStrategy
}

// forUpdate returns the strategy of writes to sub ("" for the main
// resource).
func (r rules) forUpdate(sub string) rest.RESTUpdateStrategy {
	if s, ok := r.subs[sub]; ok {
		return s
	}
	return r.main
}

// status is the common subresource table: a /status write goes through
// s.
func status(s rest.RESTUpdateStrategy) map[string]rest.RESTUpdateStrategy {
	return map[string]rest.RESTUpdateStrategy{"status": s}
}

// upstreamContext gives upstream's strategies what kube-apiserver's
// request path puts in a context: the request info (declarative
// validation picks the version and subresource from it; Event, Job and
// CronJob validation depend on the request's version), the namespace and
// the user (a CertificateSigningRequest records its requester).
func (t *typed) upstreamContext(ctx context.Context, sub string) context.Context {
	ri := &genericapirequest.RequestInfo{
		IsResourceRequest: true,
		APIGroup:          t.served.Group,
		APIVersion:        t.served.Version,
		Subresource:       sub,
	}
	if info := request.InfoFrom(ctx); info != nil {
		ri.APIPrefix, ri.Verb, ri.Namespace = info.APIPrefix, info.Verb, info.Namespace
		ri.Resource, ri.Name, ri.Parts = info.Resource, info.Name, info.Parts
	}
	ctx = genericapirequest.WithRequestInfo(ctx, ri)
	ctx = genericapirequest.WithNamespace(ctx, ri.Namespace)
	if u := auth.UserFrom(ctx); u != nil {
		ctx = genericapirequest.WithUser(ctx, &user.DefaultInfo{Name: u.Name, UID: u.UID, Groups: u.Groups, Extra: u.Extra})
	}
	return ctx
}

// allowAll stands in for the authorizer a few upstream strategies consult
// on top of request authorization (may this user sign for a signer
// name). Trellis authorizes the request itself before the strategy runs.
type allowAll struct{}

func (allowAll) Authorize(context.Context, authorizer.Attributes) (authorizer.Decision, string, error) {
	return authorizer.DecisionAllow, "", nil
}

// hooks are hand-written rules for the kinds whose upstream strategy
// package cannot be imported without controllers, token machinery or the
// apiserver's HTTP filters (Endpoints, ServiceAccounts, EndpointSlices,
// ResourceClaims and ResourceClaimTemplates), or that lives outside
// k8s.io/kubernetes (CRDs). Each set mirrors its upstream strategy and
// calls upstream's validation functions; rest.ValidateCreate and
// rest.ValidateUpdate add object metadata, and declarative validation
// for the kinds whose upstream strategy has it (declarativeHooks): not
// CRDs, whose conversion to v1 for it would cost a large CRD
// milliseconds for no rule. The functions receive internal objects; nil
// ones do nothing.
type hooks struct {
	names.NameGenerator

	// namespaced is set from the kind's scope when the descriptor is
	// built.
	namespaced     bool
	createOnUpdate bool

	prepareCreate  func(ctx context.Context, obj runtime.Object)
	prepareUpdate  func(ctx context.Context, obj, old runtime.Object)
	validate       func(ctx context.Context, obj runtime.Object) field.ErrorList
	validateUpdate func(ctx context.Context, obj, old runtime.Object) field.ErrorList
}

var (
	_ rest.RESTCreateUpdateStrategy      = (*hooks)(nil)
	_ rest.DeclarativeValidationStrategy = (*declarativeHooks)(nil)
)

func newHooks() *hooks {
	return &hooks{NameGenerator: names.SimpleNameGenerator}
}

// declarativeHooks are hooks whose kind's upstream strategy also runs
// declarative validation.
type declarativeHooks struct {
	*hooks
	rest.DeclarativeValidation
}

func withDeclarativeValidation(h *hooks) *declarativeHooks {
	return &declarativeHooks{hooks: h, DeclarativeValidation: rest.DeclarativeValidation{Scheme: Scheme}}
}

func (h *hooks) ObjectKinds(obj runtime.Object) ([]schema.GroupVersionKind, bool, error) {
	return Scheme.ObjectKinds(obj)
}

func (h *hooks) Recognizes(gvk schema.GroupVersionKind) bool { return Scheme.Recognizes(gvk) }

// hooksOf returns the hooks a strategy is made of, if it is.
func hooksOf(s any) *hooks {
	switch h := s.(type) {
	case *hooks:
		return h
	case *declarativeHooks:
		return h.hooks
	}
	return nil
}

func (h *hooks) NamespaceScoped() bool                         { return h.namespaced }
func (h *hooks) AllowCreateOnUpdate(context.Context) bool      { return h.createOnUpdate }
func (h *hooks) AllowUnconditionalUpdate(context.Context) bool { return true }
func (h *hooks) Canonicalize(runtime.Object)                   {}

func (h *hooks) WarningsOnCreate(context.Context, runtime.Object) []string { return nil }

func (h *hooks) WarningsOnUpdate(context.Context, runtime.Object, runtime.Object) []string {
	return nil
}

func (h *hooks) PrepareForCreate(ctx context.Context, obj runtime.Object) {
	if h.prepareCreate != nil {
		h.prepareCreate(ctx, obj)
	}
}

func (h *hooks) PrepareForUpdate(ctx context.Context, obj, old runtime.Object) {
	if h.prepareUpdate != nil {
		h.prepareUpdate(ctx, obj, old)
	}
}

func (h *hooks) Validate(ctx context.Context, obj runtime.Object) field.ErrorList {
	if h.validate == nil {
		return nil
	}
	return h.validate(ctx, obj)
}

func (h *hooks) ValidateUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList {
	if h.validateUpdate == nil {
		return nil
	}
	return h.validateUpdate(ctx, obj, old)
}

// validators adapts upstream's validation functions of one internal type
// to hooks; a nil function validates nothing.
func validators[T runtime.Object](create func(T) field.ErrorList, update func(obj, old T) field.ErrorList) (
	func(context.Context, runtime.Object) field.ErrorList, func(context.Context, runtime.Object, runtime.Object) field.ErrorList,
) {
	var c func(context.Context, runtime.Object) field.ErrorList
	if create != nil {
		c = func(_ context.Context, obj runtime.Object) field.ErrorList { return create(obj.(T)) }
	}
	return c, func(_ context.Context, obj, old runtime.Object) field.ErrorList { return update(obj.(T), old.(T)) }
}
