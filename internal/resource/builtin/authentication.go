package builtin

import (
	authenticationv1 "k8s.io/api/authentication/v1"
	_ "k8s.io/kubernetes/pkg/apis/authentication/install"
	"k8s.io/kubernetes/pkg/registry/authentication/selfsubjectreview"
	"k8s.io/kubernetes/pkg/registry/authentication/tokenreview"

	"github.com/trellis-project/trellis/internal/resource"
)

// authenticationReviews are who am I, and whose is this token.
func authenticationReviews(r Reviewers) []*resource.Descriptor {
	gv := authenticationv1.SchemeGroupVersion
	var out []*resource.Descriptor
	for _, def := range []reviewDef{
		{gv: gv, kind: "SelfSubjectReview", resource: "selfsubjectreviews", storage: selfsubjectreview.NewREST()},
		{gv: gv, kind: "TokenReview", resource: "tokenreviews", storage: tokenreview.NewREST(r.Authenticator, r.APIAudiences)},
	} {
		out = append(out, def.describe())
	}
	return out
}
