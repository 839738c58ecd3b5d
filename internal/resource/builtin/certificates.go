package builtin

import (
	certificatesv1 "k8s.io/api/certificates/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/registry/rest"
	"k8s.io/kubernetes/pkg/apis/certificates"
	_ "k8s.io/kubernetes/pkg/apis/certificates/install"
	csr "k8s.io/kubernetes/pkg/registry/certificates/certificates"
	"k8s.io/kubernetes/pkg/registry/certificates/clustertrustbundle"
	"k8s.io/kubernetes/pkg/registry/certificates/podcertificaterequest"
	"k8s.io/utils/clock"
)

// certificatesKinds are stored and served; no signer issues certificates
// yet, so requests stay pending until a client approves and fills their
// status. The check that a status writer may sign for the signer name
// is left to request authorization (allowAll).
func certificatesKinds() []kindDef {
	pcr := podcertificaterequest.NewStrategy()
	return inGroup(certificatesv1.SchemeGroupVersion,
		kindDef{kind: "CertificateSigningRequest", resource: "certificatesigningrequests", short: []string{"csr"},
			rules: csr.Strategy, fields: attrs(csr.GetAttrs),
			subs: map[string]rest.RESTUpdateStrategy{"status": csr.StatusStrategy, "approval": csr.ApprovalStrategy}},
		kindDef{kind: "ClusterTrustBundle", resource: "clustertrustbundles",
			rules: clustertrustbundle.Strategy, fields: func(obj runtime.Object) fields.Set {
				return fields.Set{"spec.signerName": obj.(*certificates.ClusterTrustBundle).Spec.SignerName}
			}},
		kindDef{kind: "PodCertificateRequest", resource: "podcertificaterequests", namespaced: true,
			rules: pcr, subs: status(podcertificaterequest.NewStatusStrategy(pcr, allowAll{}, clock.RealClock{})),
			fields: func(obj runtime.Object) fields.Set {
				r := obj.(*certificates.PodCertificateRequest)
				return fields.Set{"spec.signerName": r.Spec.SignerName, "spec.podName": r.Spec.PodName, "spec.nodeName": string(r.Spec.NodeName)}
			}},
	)
}
