package builtin

import (
	"context"
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/rest"

	"github.com/trellis-project/trellis/internal/auth"
	"github.com/trellis-project/trellis/internal/request"
	"github.com/trellis-project/trellis/internal/resource"
)

// Reviewers are what the review APIs evaluate against: the server's own
// authorizer chain and authenticator.
type Reviewers struct {
	Authorizer    authorizer.UnconditionalAuthorizer
	RuleResolver  authorizer.RuleResolver
	Authenticator authenticator.Request
	// APIAudiences are the audiences a TokenReview without audiences
	// asks for (kube-apiserver's --api-audiences).
	APIAudiences []string
}

// Reviews returns the descriptors of the review APIs kube-apiserver v1.37
// serves — authorization.k8s.io/v1 SubjectAccessReview,
// LocalSubjectAccessReview, SelfSubjectAccessReview and
// SelfSubjectRulesReview, authentication.k8s.io/v1 TokenReview and
// SelfSubjectReview — evaluating against r. They are not stored; create
// is their only verb. With a zero Reviewers the descriptors still
// describe the kinds (for type information), but must not be served.
func Reviews(r Reviewers) []*resource.Descriptor {
	return append(authorizationReviews(r), authenticationReviews(r)...)
}

// creater is the Create of upstream's review storages, which take and
// return internal objects.
type creater interface {
	Create(ctx context.Context, obj runtime.Object, createValidation rest.ValidateObjectFunc, options *metav1.CreateOptions) (runtime.Object, error)
}

// reviewDef is one review resource: its kind and upstream's storage that
// evaluates it.
type reviewDef struct {
	gv         schema.GroupVersion
	kind       string
	resource   string
	namespaced bool
	storage    creater
}

func (def reviewDef) describe() *resource.Descriptor {
	return &resource.Descriptor{
		Group: def.gv.Group, Version: def.gv.Version,
		Kind: def.kind, Resource: def.resource, Singular: strings.ToLower(def.kind),
		Namespaced: def.namespaced, Verbs: []string{"create"},
		Strategy: &review{
			served:   def.gv.WithKind(def.kind),
			internal: schema.GroupVersion{Group: def.gv.Group, Version: runtime.APIVersionInternal},
			storage:  def.storage,
		},
	}
}

// review is the Strategy of a review resource: the handler decodes and
// defaults the posted object and hands it to CreateVirtual, which runs
// upstream's storage on it (validation, then the evaluation).
type review struct {
	served   schema.GroupVersionKind
	internal schema.GroupVersion
	storage  creater
}

// review is also a handler.VirtualCreator (not asserted here: the
// handler's tests import this package).
var _ resource.Strategy = (*review)(nil)

// CreateVirtual evaluates obj with the user and namespace of the request.
func (v *review) CreateVirtual(ctx context.Context, obj runtime.Object) (runtime.Object, error) {
	in, err := Scheme.ConvertToVersion(obj, v.internal)
	if err != nil {
		return nil, err
	}
	if u := auth.UserFrom(ctx); u != nil {
		ctx = genericapirequest.WithUser(ctx, u)
	}
	if info := request.InfoFrom(ctx); info != nil {
		// Upstream's declarative validation reads the request info.
		ctx = genericapirequest.WithRequestInfo(ctx, &genericapirequest.RequestInfo{
			IsResourceRequest: true, Path: info.Path, Verb: info.Verb, APIPrefix: info.APIPrefix,
			APIGroup: info.APIGroup, APIVersion: info.APIVersion, Namespace: info.Namespace,
			Resource: info.Resource, Parts: info.Parts,
		})
		ctx = genericapirequest.WithNamespace(ctx, info.Namespace)
	}
	out, err := v.storage.Create(ctx, in, nil, &metav1.CreateOptions{})
	if err != nil {
		return nil, err
	}
	served, err := Scheme.ConvertToVersion(out, v.served.GroupVersion())
	if err != nil {
		return nil, err
	}
	served.GetObjectKind().SetGroupVersionKind(v.served)
	return served, nil
}

func (v *review) New() runtime.Object {
	obj, err := Scheme.New(v.served)
	if err != nil {
		panic(fmt.Sprintf("review kind %v not in scheme: %v", v.served, err))
	}
	return obj
}

// NewList is nil: review kinds have no lists.
func (v *review) NewList() runtime.Object { return nil }

func (v *review) Default(obj runtime.Object)                                               { Scheme.Default(obj) }
func (v *review) PrepareForCreate(context.Context, runtime.Object)                         {}
func (v *review) PrepareForUpdate(context.Context, runtime.Object, runtime.Object, string) {}
func (v *review) Validate(context.Context, runtime.Object) field.ErrorList                 { return nil }
func (v *review) ValidateUpdate(context.Context, runtime.Object, runtime.Object, string) field.ErrorList {
	return nil
}
func (v *review) SpecChanged(runtime.Object, runtime.Object) bool        { return false }
func (v *review) ToStorage(obj runtime.Object) (runtime.Object, error)   { return obj, nil }
func (v *review) FromStorage(obj runtime.Object) (runtime.Object, error) { return obj, nil }
func (v *review) Fields(runtime.Object) fields.Set                       { return nil }

func (v *review) Table(context.Context, runtime.Object, *metav1.TableOptions) (*metav1.Table, error) {
	return nil, fmt.Errorf("%s is not stored and has no table", v.served.Kind)
}
