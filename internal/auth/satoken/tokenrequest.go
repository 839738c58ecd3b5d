package satoken

import (
	"context"
	"fmt"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation/field"
	genericfeatures "k8s.io/apiserver/pkg/features"
	"k8s.io/kubernetes/pkg/api/legacyscheme"
	authenticationapi "k8s.io/kubernetes/pkg/apis/authentication"
	_ "k8s.io/kubernetes/pkg/apis/authentication/install"
	authenticationvalidation "k8s.io/kubernetes/pkg/apis/authentication/validation"
	core "k8s.io/kubernetes/pkg/apis/core"
	upstream "k8s.io/kubernetes/pkg/serviceaccount"

	"github.com/trellis-project/trellis/internal/resource"
)

// TokenRequestKind is what serviceaccounts/token takes and answers.
var TokenRequestKind = authenticationv1.SchemeGroupVersion.WithKind("TokenRequest")

// tokenRequestResource names TokenRequest in the Conflict statuses
// kube-apiserver returns, which use the kind as the resource.
var tokenRequestResource = schema.GroupResource{Group: TokenRequestKind.Group, Resource: TokenRequestKind.Kind}

// Objects reads the objects tokens name, as they are stored now. Missing
// objects are NotFound API statuses.
type Objects = upstream.ServiceAccountTokenGetter

// TokenRequests issues tokens for serviceaccounts/token.
type TokenRequests struct {
	cfg       *Config
	objects   Objects
	generator upstream.TokenGenerator
	audiences sets.Set[string]
}

// NewTokenRequests signs with cfg's signing key as cfg.Issuers[0].
func NewTokenRequests(cfg *Config, objects Objects) (*TokenRequests, error) {
	gen, err := upstream.JWTTokenGenerator(cfg.Issuers[0], cfg.SigningKey)
	if err != nil {
		return nil, err
	}
	return &TokenRequests{cfg: cfg, objects: objects, generator: gen, audiences: sets.New(cfg.APIAudiences...)}, nil
}

// Creater is the serviceaccounts/token subresource.
func (t *TokenRequests) Creater() *resource.SubresourceCreater {
	return &resource.SubresourceCreater{
		Kind:   TokenRequestKind,
		New:    func() runtime.Object { return &authenticationv1.TokenRequest{} },
		Create: t.create,
	}
}

// create follows kube-apiserver's TokenREST: the body may name the
// service account (and its UID) but must agree with the URL; audiences
// default to the API audiences; a bound object must exist, belong to the
// service account (pods) and match a given UID; the expiry is capped at
// the configured maximum with a warning.
func (t *TokenRequests) create(ctx context.Context, cr *resource.CreateRequest) (runtime.Object, error) {
	req := &authenticationapi.TokenRequest{}
	if err := legacyscheme.Scheme.Convert(cr.Object, req, nil); err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	name, namespace := cr.Name, cr.Namespace
	if req.Name != "" && req.Name != name {
		return nil, apierrors.NewInvalid(TokenRequestKind.GroupKind(), name, field.ErrorList{
			field.Invalid(field.NewPath("metadata", "name"), req.Name, "must match the service account name if specified")})
	}
	if req.Namespace != "" && req.Namespace != namespace {
		return nil, apierrors.NewInvalid(TokenRequestKind.GroupKind(), name, field.ErrorList{
			field.Invalid(field.NewPath("metadata", "namespace"), req.Namespace, "must match the service account namespace if specified")})
	}
	sa, err := t.objects.GetServiceAccount(ctx, namespace, name)
	if err != nil {
		return nil, err
	}
	if req.UID != "" && req.UID != sa.UID {
		return nil, apierrors.NewConflict(tokenRequestResource, name, fmt.Errorf("the UID in the token request (%s) does not match the UID of the service account (%s)", req.UID, sa.UID))
	}
	if len(req.Spec.Audiences) == 0 {
		req.Spec.Audiences = t.cfg.APIAudiences
	}
	req.Name, req.Namespace, req.UID = sa.Name, sa.Namespace, sa.UID
	// The expiry reported is taken before the token's, so it is never later.
	now := time.Now()
	req.CreationTimestamp = metav1.NewTime(now)
	req.Status = authenticationapi.TokenRequestStatus{}
	if errs := authenticationvalidation.ValidateTokenRequest(req); len(errs) != 0 {
		return nil, apierrors.NewInvalid(TokenRequestKind.GroupKind(), "", errs)
	}

	var pod *core.Pod
	var node *core.Node
	var secret *core.Secret
	if ref := req.Spec.BoundObjectRef; ref != nil {
		var uid types.UID
		gvk := schema.FromAPIVersionAndKind(ref.APIVersion, ref.Kind)
		switch {
		case gvk.Group == "" && gvk.Kind == "Pod":
			p, err := t.objects.GetPod(ctx, namespace, ref.Name)
			if err != nil {
				return nil, err
			}
			if p.Spec.ServiceAccountName != name {
				return nil, apierrors.NewBadRequest(fmt.Sprintf("cannot bind token for serviceaccount %q to pod running with different serviceaccount name.", name))
			}
			pod, uid = &core.Pod{ObjectMeta: p.ObjectMeta}, p.UID
			if nodeName := p.Spec.NodeName; nodeName != "" {
				n, err := t.objects.GetNode(ctx, nodeName)
				switch {
				case apierrors.IsNotFound(err):
					// The claims still say which node the pod was on.
					node = &core.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName}}
				case err != nil:
					return nil, apierrors.NewInternalError(err)
				default:
					node = &core.Node{ObjectMeta: n.ObjectMeta}
				}
			}
		case gvk.Group == "" && gvk.Kind == "Node":
			n, err := t.objects.GetNode(ctx, ref.Name)
			if err != nil {
				return nil, err
			}
			node, uid = &core.Node{ObjectMeta: n.ObjectMeta}, n.UID
		case gvk.Group == "" && gvk.Kind == "Secret":
			s, err := t.objects.GetSecret(ctx, namespace, ref.Name)
			if err != nil {
				return nil, err
			}
			secret, uid = &core.Secret{ObjectMeta: s.ObjectMeta}, s.UID
		case gvk.Group == "admissionregistration.k8s.io" && gvk.Version == "v1" &&
			(gvk.Kind == "ValidatingWebhookConfiguration" || gvk.Kind == "MutatingWebhookConfiguration"):
			return nil, apierrors.NewBadRequest(fmt.Sprintf("cannot bind token to object of type %s (feature gate %s is disabled)", gvk.String(), genericfeatures.APIServerWebhookAuthenticationToken))
		default:
			return nil, apierrors.NewBadRequest(fmt.Sprintf("cannot bind token to object of type %s", gvk.String()))
		}
		if ref.UID != "" && uid != ref.UID {
			return nil, apierrors.NewConflict(schema.GroupResource{Group: gvk.Group, Resource: gvk.Kind}, ref.Name, fmt.Errorf("the UID in the bound object reference (%s) does not match the UID in record. The object might have been deleted and then recreated", ref.UID))
		}
	}

	if maxSec := int64(t.cfg.MaxExpiration / time.Second); maxSec > 0 && req.Spec.ExpirationSeconds > maxSec {
		cr.Warn(fmt.Sprintf("requested expiration of %d seconds shortened to %d seconds", req.Spec.ExpirationSeconds, maxSec))
		req.Spec.ExpirationSeconds = maxSec
	}
	exp, warnAfter := req.Spec.ExpirationSeconds, int64(0)
	if t.cfg.ExtendExpiration && pod != nil && exp == upstream.WarnOnlyBoundTokenExpirationSeconds && t.audiences.HasAll(req.Spec.Audiences...) {
		warnAfter, exp = exp, upstream.ExpirationExtensionSeconds
	}

	coreSA := core.ServiceAccount{ObjectMeta: sa.ObjectMeta}
	public, private, err := upstream.Claims(coreSA, pod, secret, node, nil, nil, exp, warnAfter, req.Spec.Audiences, nil)
	if err != nil {
		return nil, err
	}
	token, err := t.generator.GenerateToken(ctx, public, private)
	if err != nil {
		return nil, apierrors.NewInternalError(fmt.Errorf("failed to generate token: %v", err))
	}
	req.Status = authenticationapi.TokenRequestStatus{
		Token:               token,
		ExpirationTimestamp: metav1.NewTime(now.Add(time.Duration(req.Spec.ExpirationSeconds) * time.Second)),
	}
	out := &authenticationv1.TokenRequest{}
	if err := legacyscheme.Scheme.Convert(req, out, nil); err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	return out, nil
}
