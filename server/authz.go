package server

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/validation/path"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/client-go/informers"

	"github.com/trellis-project/trellis/internal/audit"
	"github.com/trellis-project/trellis/internal/auth"
	"github.com/trellis-project/trellis/internal/handler"
	"github.com/trellis-project/trellis/internal/request"
	"github.com/trellis-project/trellis/internal/resource/builtin"
)

// Authorization modes, as kube-apiserver's --authorization-mode.
const (
	ModeAlwaysAllow = "AlwaysAllow"
	ModeAlwaysDeny  = "AlwaysDeny"
	ModeRBAC        = "RBAC"
)

// authorizer builds the chain for the configured modes, or from
// --authorization-config. system:masters is always allowed first, as in
// kube-apiserver.
func (s *Server) authorizer(factory informers.SharedInformerFactory) (auth.Authorizer, error) {
	chain := auth.AuthorizerChain{auth.PrivilegedGroups{}}
	if s.cfg.AuthorizationConfigFile != "" {
		configured, err := s.configuredAuthorizers(factory)
		if err != nil {
			return nil, err
		}
		return append(chain, configured...), nil
	}
	modes := s.cfg.AuthorizationModes
	if len(modes) == 0 {
		modes = []string{ModeAlwaysAllow}
	}
	for _, m := range modes {
		switch m {
		case ModeAlwaysAllow:
			chain = append(chain, auth.AlwaysAllow{})
		case ModeAlwaysDeny:
			chain = append(chain, auth.AlwaysDeny{})
		case ModeRBAC:
			rbac, err := s.rbacAuthorizer(factory)
			if err != nil {
				return nil, err
			}
			chain = append(chain, rbac)
		case ModeWebhook:
			hook, err := s.webhookAuthorizer()
			if err != nil {
				return nil, err
			}
			chain = append(chain, hook)
		default:
			return nil, fmt.Errorf("unknown authorization mode %q (known: %s)", m, strings.Join([]string{ModeAlwaysAllow, ModeAlwaysDeny, ModeRBAC, ModeWebhook}, ", "))
		}
	}
	return chain, nil
}

// The audit annotations of the authorization decision, as kube-apiserver's.
const (
	decisionAnnotation = "authorization.k8s.io/decision"
	reasonAnnotation   = "authorization.k8s.io/reason"
)

// rbacAuthorizer reads RBAC objects through informers; its binding index
// is invalidated by the binding informers' events.
func (s *Server) rbacAuthorizer(factory informers.SharedInformerFactory) (*auth.RBAC, error) {
	rbac := factory.Rbac().V1()
	s.authzSynced = append(s.authzSynced,
		rbac.Roles().Informer().HasSynced, rbac.RoleBindings().Informer().HasSynced,
		rbac.ClusterRoles().Informer().HasSynced, rbac.ClusterRoleBindings().Informer().HasSynced)
	authz := auth.NewRBAC(auth.RBACListers{
		Roles: rbac.Roles().Lister(), RoleBindings: rbac.RoleBindings().Lister(),
		ClusterRoles: rbac.ClusterRoles().Lister(), ClusterRoleBindings: rbac.ClusterRoleBindings().Lister(),
	})
	if err := authz.InvalidateOn(rbac.RoleBindings().Informer(), rbac.ClusterRoleBindings().Informer()); err != nil {
		return nil, err
	}
	return authz, nil
}

// withAuthorization refuses what the authorizer does not allow, with
// kube-apiserver's 403 wording.
func withAuthorization(next http.Handler, az auth.Authorizer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := attributesFor(r)
		d, reason, err := az.Authorize(r.Context(), a)
		rec := audit.From(r.Context())
		if d == auth.Allow {
			rec.AddAnnotation(decisionAnnotation, "allow")
			rec.AddAnnotation(reasonAnnotation, reason)
			next.ServeHTTP(w, r)
			return
		}
		rec.AddAnnotation(decisionAnnotation, "forbid")
		rec.AddAnnotation(reasonAnnotation, reason)
		msg := auth.ForbiddenMessage(a)
		if reason != "" {
			msg += ": " + reason
		}
		if err != nil && d == auth.NoOpinion && reason == "" {
			msg += ": " + err.Error()
		}
		var status error
		if a.ResourceRequest {
			status = apierrors.NewForbidden(a.GroupResource(), a.Name, errors.New(msg))
		} else {
			status = apierrors.NewForbidden(schema.GroupResource{}, "", errors.New(msg))
		}
		handler.WriteError(w, r, status)
	})
}

func attributesFor(r *http.Request) auth.Attributes {
	a := auth.Attributes{User: auth.UserFrom(r.Context()), Path: r.URL.Path}
	info := request.InfoFrom(r.Context())
	if info == nil {
		a.Verb = strings.ToLower(r.Method)
		return a
	}
	a.Verb = info.Verb
	if info.IsResourceRequest {
		a.ResourceRequest = true
		a.APIGroup, a.APIVersion, a.Resource = info.APIGroup, info.APIVersion, info.Resource
		a.Subresource, a.Namespace, a.Name = info.Subresource, info.Namespace, info.Name
		if a.Name == "" && (a.Verb == "list" || a.Verb == "watch") {
			a.Name = fieldSelectorName(r)
		}
	}
	return a
}

// fieldSelectorName is the name a list or watch is limited to by a
// fieldSelector of metadata.name=<name>: kube-apiserver authorizes such a
// request with that name, so a rule with resourceNames allows it.
func fieldSelectorName(r *http.Request) string {
	fs := r.URL.Query().Get("fieldSelector")
	if fs == "" {
		return ""
	}
	sel, err := fields.ParseSelector(fs)
	if err != nil {
		return ""
	}
	if name, ok := sel.RequiresExactMatch("metadata.name"); ok && len(path.IsValidPathSegmentName(name)) == 0 {
		return name
	}
	return ""
}

// registerReviews serves the review APIs (SubjectAccessReview, TokenReview,
// ...) against the server's own authenticator and authorizer chain.
func (s *Server) registerReviews(authn auth.Authenticator, authz auth.Authorizer) {
	r := builtin.Reviewers{
		Authorizer:    auth.Upstream(authz),
		Authenticator: auth.UpstreamAuthenticator(authn),
	}
	if rr, ok := authz.(authorizer.RuleResolver); ok {
		r.RuleResolver = rr
	}
	for _, d := range builtin.Reviews(r) {
		s.registry.Add(d)
	}
}
