package satoken

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	upstream "k8s.io/kubernetes/pkg/serviceaccount"
)

// LegacyTokens signs the long-lived tokens kept in Secrets of type
// kubernetes.io/service-account-token, as kube-controller-manager's token
// controller does with --service-account-private-key-file: issuer
// "kubernetes/serviceaccount", no audience, no expiry.
func (c *Config) LegacyTokens() (func(ctx context.Context, sa *corev1.ServiceAccount, secret *corev1.Secret) (string, error), error) {
	gen, err := upstream.JWTTokenGenerator(upstream.LegacyIssuer, c.SigningKey)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, sa *corev1.ServiceAccount, secret *corev1.Secret) (string, error) {
		public, private := upstream.LegacyClaims(*sa, *secret)
		return gen.GenerateToken(ctx, public, private)
	}, nil
}
