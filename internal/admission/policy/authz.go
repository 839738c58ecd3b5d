package policy

import (
	"context"

	"k8s.io/apiserver/pkg/authorization/authorizer"

	"github.com/trellis-project/trellis/internal/auth"
)

// Authorizer presents Trellis's authorizer to upstream's CEL authorizer
// library (the authorizer variable of policy expressions).
type Authorizer struct{ auth.Authorizer }

var _ authorizer.UnconditionalAuthorizer = Authorizer{}

func (z Authorizer) Authorize(ctx context.Context, a authorizer.Attributes) (authorizer.Decision, string, error) {
	var u *auth.User
	if info := a.GetUser(); info != nil {
		u = &auth.User{Name: info.GetName(), UID: info.GetUID(), Groups: info.GetGroups(), Extra: info.GetExtra()}
	}
	d, reason, err := z.Authorizer.Authorize(ctx, auth.Attributes{
		User: u, Verb: a.GetVerb(), ResourceRequest: a.IsResourceRequest(),
		APIGroup: a.GetAPIGroup(), APIVersion: a.GetAPIVersion(), Resource: a.GetResource(),
		Subresource: a.GetSubresource(), Namespace: a.GetNamespace(), Name: a.GetName(), Path: a.GetPath(),
	})
	switch d {
	case auth.Allow:
		return authorizer.DecisionAllow, reason, err
	case auth.Deny:
		return authorizer.DecisionDeny, reason, err
	}
	return authorizer.DecisionNoOpinion, reason, err
}
