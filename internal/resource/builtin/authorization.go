package builtin

import (
	authorizationv1 "k8s.io/api/authorization/v1"
	_ "k8s.io/kubernetes/pkg/apis/authorization/install"
	"k8s.io/kubernetes/pkg/registry/authorization/localsubjectaccessreview"
	"k8s.io/kubernetes/pkg/registry/authorization/selfsubjectaccessreview"
	"k8s.io/kubernetes/pkg/registry/authorization/selfsubjectrulesreview"
	"k8s.io/kubernetes/pkg/registry/authorization/subjectaccessreview"

	"github.com/trellis-project/trellis/internal/resource"
)

// authorizationReviews are the access reviews: may this user (or I) do
// this, and what may I do in a namespace.
func authorizationReviews(r Reviewers) []*resource.Descriptor {
	gv := authorizationv1.SchemeGroupVersion
	var out []*resource.Descriptor
	for _, def := range []reviewDef{
		{gv: gv, kind: "LocalSubjectAccessReview", resource: "localsubjectaccessreviews", namespaced: true,
			storage: localsubjectaccessreview.NewREST(r.Authorizer, Scheme)},
		{gv: gv, kind: "SelfSubjectAccessReview", resource: "selfsubjectaccessreviews",
			storage: selfsubjectaccessreview.NewREST(r.Authorizer, Scheme)},
		{gv: gv, kind: "SelfSubjectRulesReview", resource: "selfsubjectrulesreviews",
			storage: selfsubjectrulesreview.NewREST(r.RuleResolver)},
		{gv: gv, kind: "SubjectAccessReview", resource: "subjectaccessreviews",
			storage: subjectaccessreview.NewREST(r.Authorizer, Scheme)},
	} {
		out = append(out, def.describe())
	}
	return out
}
