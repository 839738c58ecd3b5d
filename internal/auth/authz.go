package auth

import (
	"context"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GetName and the other getters make User a k8s.io/apiserver user.Info,
// which upstream's RBAC rule resolver takes.
func (u *User) GetName() string               { return u.Name }
func (u *User) GetUID() string                { return u.UID }
func (u *User) GetGroups() []string           { return u.Groups }
func (u *User) GetExtra() map[string][]string { return u.Extra }

// Attributes describe one request for authorization.
type Attributes struct {
	User            *User
	Verb            string
	ResourceRequest bool
	// Resource requests.
	APIGroup, APIVersion, Resource, Subresource, Namespace, Name string
	// Non-resource requests.
	Path string
}

// Decision is an authorizer's answer.
type Decision int

const (
	// NoOpinion lets the next authorizer decide.
	NoOpinion Decision = iota
	Allow
	Deny
)

// Authorizer decides whether a request may proceed.
type Authorizer interface {
	Authorize(ctx context.Context, a Attributes) (Decision, string, error)
}

// AuthorizerChain asks each authorizer in turn; the first Allow or Deny wins.
type AuthorizerChain []Authorizer

func (c AuthorizerChain) Authorize(ctx context.Context, a Attributes) (Decision, string, error) {
	var reasons []string
	var firstErr error
	for _, az := range c {
		d, reason, err := az.Authorize(ctx, a)
		if d != NoOpinion {
			return d, reason, nil
		}
		if reason != "" {
			reasons = append(reasons, reason)
		}
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return NoOpinion, strings.Join(reasons, "\n"), firstErr
}

// AlwaysAllow is --authorization-mode=AlwaysAllow.
type AlwaysAllow struct{}

func (AlwaysAllow) Authorize(context.Context, Attributes) (Decision, string, error) {
	return Allow, "", nil
}

// AlwaysDeny is --authorization-mode=AlwaysDeny.
type AlwaysDeny struct{}

func (AlwaysDeny) Authorize(context.Context, Attributes) (Decision, string, error) {
	return Deny, "", nil
}

// PrivilegedGroups allows members of system:masters everything, before any
// other authorizer, as kube-apiserver does.
type PrivilegedGroups struct{}

func (PrivilegedGroups) Authorize(_ context.Context, a Attributes) (Decision, string, error) {
	if a.User != nil {
		for _, g := range a.User.Groups {
			if g == "system:masters" {
				return Allow, "", nil
			}
		}
	}
	return NoOpinion, "", nil
}

// ForbiddenMessage words a denial as kube-apiserver does, e.g.
// `User "bob" cannot list resource "configmaps" in API group "" in the namespace "default"`.
func ForbiddenMessage(a Attributes) string {
	name := "<anonymous>"
	if a.User != nil {
		name = a.User.Name
	}
	who := fmt.Sprintf("User %q ", name)
	if !a.ResourceRequest {
		return fmt.Sprintf("%scannot %s path %q", who, a.Verb, a.Path)
	}
	res := a.Resource
	if a.Subresource != "" {
		res += "/" + a.Subresource
	}
	if a.Namespace == "" {
		return fmt.Sprintf("%scannot %s resource %q in API group %q at the cluster scope", who, a.Verb, res, a.APIGroup)
	}
	return fmt.Sprintf("%scannot %s resource %q in API group %q in the namespace %q", who, a.Verb, res, a.APIGroup, a.Namespace)
}

// GroupResource of a resource request, for the Forbidden status.
func (a Attributes) GroupResource() schema.GroupResource {
	return schema.GroupResource{Group: a.APIGroup, Resource: a.Resource}
}
