package auth

import (
	"context"
	"errors"
	"net/http"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
)

// This file adapts the server's authenticators and authorizers to the
// interfaces of k8s.io/apiserver, so that upstream's review storages and
// RBAC escalation checks, which take those interfaces, evaluate against
// the server's own chain.

var (
	_ authorizer.RuleResolver = AuthorizerChain(nil)
	_ authorizer.RuleResolver = AlwaysAllow{}
	_ authorizer.RuleResolver = AlwaysDeny{}
	_ authorizer.RuleResolver = (*RBAC)(nil)
)

// Upstream returns a as a k8s.io/apiserver authorizer.
func Upstream(a Authorizer) authorizer.UnconditionalAuthorizer { return upstreamAuthorizer{a} }

type upstreamAuthorizer struct{ a Authorizer }

func (u upstreamAuthorizer) Authorize(ctx context.Context, attrs authorizer.Attributes) (authorizer.Decision, string, error) {
	d, reason, err := u.a.Authorize(ctx, AttributesFrom(attrs))
	switch d {
	case Allow:
		return authorizer.DecisionAllow, reason, err
	case Deny:
		return authorizer.DecisionDeny, reason, err
	}
	return authorizer.DecisionNoOpinion, reason, err
}

// AttributesFrom converts k8s.io/apiserver attributes.
func AttributesFrom(a authorizer.Attributes) Attributes {
	return Attributes{
		User:            UserFromInfo(a.GetUser()),
		Verb:            a.GetVerb(),
		ResourceRequest: a.IsResourceRequest(),
		APIGroup:        a.GetAPIGroup(),
		APIVersion:      a.GetAPIVersion(),
		Resource:        a.GetResource(),
		Subresource:     a.GetSubresource(),
		Namespace:       a.GetNamespace(),
		Name:            a.GetName(),
		Path:            a.GetPath(),
	}
}

// UserFromInfo converts a k8s.io/apiserver user.
func UserFromInfo(u user.Info) *User {
	if u == nil {
		return nil
	}
	if ours, ok := u.(*User); ok {
		return ours
	}
	return &User{Name: u.GetName(), UID: u.GetUID(), Groups: u.GetGroups(), Extra: u.GetExtra()}
}

// RulesFor lists the rules of every authorizer in the chain that can list
// them, as kube-apiserver's union rule resolver does. An authorizer that
// cannot makes the answer incomplete. The privileged-groups authorizer
// lists nothing, as upstream's: members of system:masters see the rules
// RBAC grants them.
func (c AuthorizerChain) RulesFor(ctx context.Context, u user.Info, namespace string) ([]authorizer.ResourceRuleInfo, []authorizer.NonResourceRuleInfo, bool, error) {
	var (
		resourceRules    []authorizer.ResourceRuleInfo
		nonResourceRules []authorizer.NonResourceRuleInfo
		incomplete       bool
		errs             []error
	)
	for _, a := range c {
		if _, ok := a.(PrivilegedGroups); ok {
			continue
		}
		rr, ok := a.(authorizer.RuleResolver)
		if !ok {
			incomplete = true
			continue
		}
		res, nonRes, inc, err := rr.RulesFor(ctx, u, namespace)
		incomplete = incomplete || inc
		if err != nil {
			errs = append(errs, err)
		}
		resourceRules = append(resourceRules, res...)
		nonResourceRules = append(nonResourceRules, nonRes...)
	}
	return resourceRules, nonResourceRules, incomplete, utilerrors.NewAggregate(errs)
}

// RulesFor of AlwaysAllow is everything.
func (AlwaysAllow) RulesFor(context.Context, user.Info, string) ([]authorizer.ResourceRuleInfo, []authorizer.NonResourceRuleInfo, bool, error) {
	return []authorizer.ResourceRuleInfo{&authorizer.DefaultResourceRuleInfo{
			Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"},
		}}, []authorizer.NonResourceRuleInfo{&authorizer.DefaultNonResourceRuleInfo{
			Verbs: []string{"*"}, NonResourceURLs: []string{"*"},
		}}, false, nil
}

// RulesFor of AlwaysDeny is nothing.
func (AlwaysDeny) RulesFor(context.Context, user.Info, string) ([]authorizer.ResourceRuleInfo, []authorizer.NonResourceRuleInfo, bool, error) {
	return []authorizer.ResourceRuleInfo{}, []authorizer.NonResourceRuleInfo{}, false, nil
}

// RulesFor lists the rules of the roles bound to u in namespace and
// cluster-wide, split as upstream's RBAC authorizer splits them.
func (r *RBAC) RulesFor(ctx context.Context, u user.Info, namespace string) ([]authorizer.ResourceRuleInfo, []authorizer.NonResourceRuleInfo, bool, error) {
	var res []authorizer.ResourceRuleInfo
	var nonRes []authorizer.NonResourceRuleInfo
	rules, err := r.resolverFor(u, namespace).RulesFor(ctx, u, namespace)
	for _, p := range rules {
		if len(p.Resources) > 0 {
			res = append(res, &authorizer.DefaultResourceRuleInfo{
				Verbs: p.Verbs, APIGroups: p.APIGroups, Resources: p.Resources, ResourceNames: p.ResourceNames,
			})
		}
		if len(p.NonResourceURLs) > 0 {
			nonRes = append(nonRes, &authorizer.DefaultNonResourceRuleInfo{Verbs: p.Verbs, NonResourceURLs: p.NonResourceURLs})
		}
	}
	return res, nonRes, false, err
}

// UpstreamAuthenticator returns a as a k8s.io/apiserver request
// authenticator (TokenReview authenticates a token with it).
func UpstreamAuthenticator(a Authenticator) authenticator.Request { return upstreamAuthenticator{a} }

type upstreamAuthenticator struct{ a Authenticator }

func (u upstreamAuthenticator) AuthenticateRequest(r *http.Request) (*authenticator.Response, bool, error) {
	usr, ok, err := u.a.Authenticate(r)
	if !ok {
		return nil, false, err
	}
	return &authenticator.Response{User: usr}, true, nil
}

// ForbiddenError is the 403 kube-apiserver answers when an authorizer
// does not allow a: the resource (or path) in kube-apiserver's words,
// then the reason, if any.
func ForbiddenError(a Attributes, reason string) *apierrors.StatusError {
	msg := forbiddenSanitizer.Replace(ForbiddenMessage(a))
	if reason != "" {
		msg += ": " + reason
	}
	gr := schema.GroupResource{Group: a.APIGroup, Resource: a.Resource}
	return apierrors.NewForbidden(gr, a.Name, errors.New(msg))
}

// forbiddenSanitizer escapes what kube-apiserver escapes in a forbidden
// message, so names cannot smuggle markup into it.
var forbiddenSanitizer = strings.NewReplacer(`&`, "&amp;", `<`, "&lt;", `>`, "&gt;")

// UpstreamAttributes converts to k8s.io/apiserver attributes, for
// upstream authorizers running in the chain (the webhook authorizer).
func UpstreamAttributes(a Attributes) authorizer.AttributesRecord {
	rec := authorizer.AttributesRecord{
		Verb: a.Verb, ResourceRequest: a.ResourceRequest,
		APIGroup: a.APIGroup, APIVersion: a.APIVersion, Resource: a.Resource, Subresource: a.Subresource,
		Namespace: a.Namespace, Name: a.Name, Path: a.Path,
	}
	if a.User != nil {
		rec.User = a.User
	}
	return rec
}
