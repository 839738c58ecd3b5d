package webhook

import (
	"context"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/authorization/authorizer"

	"github.com/trellis-project/trellis/internal/admission"
)

// evalConditions evaluates h's matchConditions (CEL) with upstream's
// evaluator. An evaluation error fails closed under failurePolicy Fail
// and skips the webhook under Ignore.
func evalConditions(ctx context.Context, h *hook, a *admission.Attributes, inv *invocation, obj, old runtime.Object, authz authorizer.UnconditionalAuthorizer) (bool, error) {
	res := h.conditionMatcher().Match(ctx, admission.Upstream(a, inv.kind, obj, old), nil, authz)
	if res.Error != nil {
		return false, res.Error
	}
	return res.Matches, nil
}
