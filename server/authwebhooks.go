package server

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	tokencache "k8s.io/apiserver/pkg/authentication/token/cache"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	authorizationcel "k8s.io/apiserver/pkg/authorization/cel"
	webhookutil "k8s.io/apiserver/pkg/util/webhook"
	tokenwebhook "k8s.io/apiserver/plugin/pkg/authenticator/token/webhook"
	authzwebhook "k8s.io/apiserver/plugin/pkg/authorizer/webhook"
	authzmetrics "k8s.io/apiserver/plugin/pkg/authorizer/webhook/metrics"

	"github.com/trellis-project/trellis/internal/auth"
)

// ModeWebhook authorizes through SubjectAccessReviews sent to a remote
// service (--authorization-webhook-config-file).
const ModeWebhook = "Webhook"

// authWebhookBackoff retries a failed call to an authentication or
// authorization webhook as kube-apiserver does.
var authWebhookBackoff = wait.Backoff{Duration: 500 * time.Millisecond, Factor: 1.5, Jitter: 0.2, Steps: 5}

// webhookTokenAuthenticator sends bearer tokens no other authenticator
// recognised to a remote TokenReview service, described by a
// kubeconfig-format file, and caches its answers (upstream's webhook
// authenticator and token cache).
func (s *Server) webhookTokenAuthenticator() (auth.Authenticator, error) {
	cfg, err := webhookutil.LoadKubeconfig(s.cfg.AuthenticationTokenWebhookConfigFile, nil)
	if err != nil {
		return nil, fmt.Errorf("--authentication-token-webhook-config-file: %w", err)
	}
	version := s.cfg.AuthenticationTokenWebhookVersion
	if version == "" {
		version = "v1beta1"
	}
	hook, err := tokenwebhook.New(cfg, version, authenticator.Audiences(s.saTokens.APIAudiences), authWebhookBackoff)
	if err != nil {
		return nil, fmt.Errorf("authentication webhook: %w", err)
	}
	ttl := s.cfg.AuthenticationTokenWebhookCacheTTL
	if ttl == 0 {
		ttl = 2 * time.Minute
	}
	var token authenticator.Token = hook
	if ttl > 0 {
		token = tokencache.New(hook, false, ttl, ttl)
	}
	return auth.Bearer{Token: token}, nil
}

// webhookAuthorizer asks a remote SubjectAccessReview service, described
// by a kubeconfig-format file, with upstream's webhook authorizer (allow
// and deny caching; an unreachable webhook has no opinion).
func (s *Server) webhookAuthorizer() (auth.Authorizer, error) {
	if s.cfg.AuthorizationWebhookConfigFile == "" {
		return nil, fmt.Errorf("authorization mode %s needs --authorization-webhook-config-file", ModeWebhook)
	}
	cfg, err := webhookutil.LoadKubeconfig(s.cfg.AuthorizationWebhookConfigFile, nil)
	if err != nil {
		return nil, fmt.Errorf("--authorization-webhook-config-file: %w", err)
	}
	version := s.cfg.AuthorizationWebhookVersion
	if version == "" {
		version = "v1beta1"
	}
	allowTTL, denyTTL := s.cfg.AuthorizationWebhookCacheAuthorizedTTL, s.cfg.AuthorizationWebhookCacheUnauthorizedTTL
	if allowTTL == 0 {
		allowTTL = 5 * time.Minute
	}
	if denyTTL == 0 {
		denyTTL = 30 * time.Second
	}
	hook, err := authzwebhook.New(cfg, version, max(allowTTL, 0), max(denyTTL, 0), authWebhookBackoff,
		authorizer.DecisionNoOpinion, nil, "webhook", authzmetrics.NoopAuthorizerMetrics{}, authorizationcel.NewDefaultCompiler())
	if err != nil {
		return nil, fmt.Errorf("authorization webhook: %w", err)
	}
	return upstreamAuthorizer{hook}, nil
}

// upstreamAuthorizer runs a k8s.io/apiserver authorizer in the chain.
type upstreamAuthorizer struct{ a authorizer.Authorizer }

func (u upstreamAuthorizer) Authorize(ctx context.Context, a auth.Attributes) (auth.Decision, string, error) {
	d, reason, err := u.a.Authorize(ctx, auth.UpstreamAttributes(a))
	switch d {
	case authorizer.DecisionAllow:
		return auth.Allow, reason, err
	case authorizer.DecisionDeny:
		return auth.Deny, reason, err
	}
	return auth.NoOpinion, reason, err
}
