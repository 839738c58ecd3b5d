package satoken

import (
	"k8s.io/apiserver/pkg/authentication/authenticator"
	tokenunion "k8s.io/apiserver/pkg/authentication/token/union"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	upstream "k8s.io/kubernetes/pkg/serviceaccount"
)

// Authenticator verifies service-account tokens as kube-apiserver does
// with --service-account-lookup (the default): the signature against the
// verification keys, the issuer, the audiences against the API audiences,
// the expiry, and that the service account and any bound object still
// exist with the UIDs in the claims. Legacy tokens (issuer
// "kubernetes/serviceaccount", from Secrets of type
// kubernetes.io/service-account-token) must still match their Secret;
// secrets records their use on the Secret, as upstream does.
//
// A token that is not a JWT of a known issuer is "not mine" (ok=false, no
// error), so other authenticators can try it.
func (c *Config) Authenticator(objects Objects, secrets typedcorev1.SecretsGetter) (authenticator.Token, error) {
	keys, err := c.keysGetter()
	if err != nil {
		return nil, err
	}
	auds := authenticator.Audiences(c.APIAudiences)
	legacy, err := upstream.NewLegacyValidator(true, objects, secrets)
	if err != nil {
		return nil, err
	}
	return tokenunion.New(
		upstream.JWTTokenAuthenticator([]string{upstream.LegacyIssuer}, keys, auds, legacy),
		upstream.JWTTokenAuthenticator(c.Issuers, keys, auds, upstream.NewValidator(objects)),
	), nil
}
