package webhook

import (
	"context"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	apiadmission "k8s.io/apiserver/pkg/admission"
	"k8s.io/apiserver/pkg/authentication/user"

	"github.com/trellis-project/trellis/internal/admission"
)

// evalConditions evaluates h's matchConditions (CEL) with upstream's
// evaluator. An evaluation error fails closed under failurePolicy Fail
// and skips the webhook under Ignore.
func evalConditions(ctx context.Context, h *hook, a *admission.Attributes, inv *invocation, obj, old runtime.Object) (bool, error) {
	res := h.conditionMatcher().Match(ctx, UpstreamAttributes(a, inv.kind, obj, old), nil, nil)
	if res.Error != nil {
		return false, res.Error
	}
	return res.Matches, nil
}

// UpstreamAttributes presents a request to upstream's CEL libraries in
// the version kind names.
func UpstreamAttributes(a *admission.Attributes, kind schema.GroupVersionKind, obj, old runtime.Object) *apiadmission.VersionedAttributes {
	var info user.Info
	if u := a.User; u != nil {
		info = &user.DefaultInfo{Name: u.Name, UID: u.UID, Groups: u.Groups, Extra: u.Extra}
	}
	rec := apiadmission.NewAttributesRecord(obj, old, kind, a.Namespace, a.Name, a.Resource, a.Subresource,
		apiadmission.Operation(a.Operation), a.Options, a.DryRun, info)
	return &apiadmission.VersionedAttributes{Attributes: rec, VersionedKind: kind, VersionedObject: apiadmission.NewLazyObject(obj), VersionedOldObject: apiadmission.NewLazyObject(old)}
}
