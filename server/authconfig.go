package server

import (
	"errors"
	"fmt"
	"net/http"
	"os"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/sets"
	apiserverconfig "k8s.io/apiserver/pkg/apis/apiserver"
	apiserverinstall "k8s.io/apiserver/pkg/apis/apiserver/install"
	authzconfigload "k8s.io/apiserver/pkg/apis/apiserver/load"
	apiservervalidation "k8s.io/apiserver/pkg/apis/apiserver/validation"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	authenticationcel "k8s.io/apiserver/pkg/authentication/cel"
	tokenunion "k8s.io/apiserver/pkg/authentication/token/union"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	authorizationcel "k8s.io/apiserver/pkg/authorization/cel"
	"k8s.io/apiserver/pkg/server/dynamiccertificates"
	webhookutil "k8s.io/apiserver/pkg/util/webhook"
	"k8s.io/apiserver/plugin/pkg/authenticator/token/oidc"
	authzwebhook "k8s.io/apiserver/plugin/pkg/authorizer/webhook"
	authzmetrics "k8s.io/apiserver/plugin/pkg/authorizer/webhook/metrics"
	"k8s.io/client-go/informers"

	"github.com/trellis-project/trellis/internal/auth"
)

// This file reads the structured configuration files of kube-apiserver:
// --authorization-config (an ordered chain of authorizers) and
// --authentication-config (JWT issuers and anonymous access), with
// upstream's types, loaders and validation, and builds the authorizers and
// authenticators upstream builds from them.

// authorizerTypes are the authorizer types a configuration may name;
// upstream also knows Node and ABAC, which Trellis does not serve.
var authorizerTypes = sets.New(ModeAlwaysAllow, ModeAlwaysDeny, ModeRBAC, ModeWebhook)

// configuredAuthorizers builds the chain of --authorization-config.
func (s *Server) configuredAuthorizers(factory informers.SharedInformerFactory) ([]auth.Authorizer, error) {
	if len(s.cfg.AuthorizationModes) > 0 || s.cfg.AuthorizationWebhookConfigFile != "" {
		return nil, errors.New("--authorization-config can not be specified when --authorization-mode or --authorization-webhook-* flags are defined")
	}
	cfg, err := authzconfigload.LoadFromFile(s.cfg.AuthorizationConfigFile)
	if err != nil {
		return nil, fmt.Errorf("--authorization-config: %w", err)
	}
	compiler := authorizationcel.NewDefaultCompiler()
	if errs := apiservervalidation.ValidateAuthorizationConfiguration(compiler, nil, cfg, authorizerTypes, sets.New(ModeWebhook)); len(errs) > 0 {
		return nil, fmt.Errorf("--authorization-config: %w", errs.ToAggregate())
	}
	var chain []auth.Authorizer
	for _, a := range cfg.Authorizers {
		switch string(a.Type) {
		case ModeAlwaysAllow:
			chain = append(chain, auth.AlwaysAllow{})
		case ModeAlwaysDeny:
			chain = append(chain, auth.AlwaysDeny{})
		case ModeRBAC:
			rbac, err := s.rbacAuthorizer(factory)
			if err != nil {
				return nil, err
			}
			chain = append(chain, rbac)
		case ModeWebhook:
			hook, err := configuredWebhookAuthorizer(a, compiler)
			if err != nil {
				return nil, fmt.Errorf("--authorization-config: authorizer %q: %w", a.Name, err)
			}
			chain = append(chain, hook)
		}
	}
	return chain, nil
}

// configuredWebhookAuthorizer is upstream's webhook authorizer with the
// connection, failure policy, caching and match conditions of one entry,
// as kube-apiserver builds it.
func configuredWebhookAuthorizer(a apiserverconfig.AuthorizerConfiguration, compiler authorizationcel.Compiler) (auth.Authorizer, error) {
	w := a.Webhook
	if w.ConnectionInfo.Type != apiserverconfig.AuthorizationWebhookConnectionInfoTypeKubeConfigFile || w.ConnectionInfo.KubeConfigFile == nil {
		return nil, fmt.Errorf("connectionInfo.type %q is not supported (only %s)", w.ConnectionInfo.Type, apiserverconfig.AuthorizationWebhookConnectionInfoTypeKubeConfigFile)
	}
	clientConfig, err := webhookutil.LoadKubeconfig(*w.ConnectionInfo.KubeConfigFile, nil)
	if err != nil {
		return nil, err
	}
	if w.Timeout.Duration != 0 {
		clientConfig.Timeout = w.Timeout.Duration
	}
	var onError authorizer.Decision
	switch w.FailurePolicy {
	case apiserverconfig.FailurePolicyNoOpinion:
		onError = authorizer.DecisionNoOpinion
	case apiserverconfig.FailurePolicyDeny:
		onError = authorizer.DecisionDeny
	default:
		return nil, fmt.Errorf("unknown failurePolicy %q", w.FailurePolicy)
	}
	allowTTL, denyTTL := w.AuthorizedTTL.Duration, w.UnauthorizedTTL.Duration
	if !w.CacheAuthorizedRequests {
		allowTTL = 0
	}
	if !w.CacheUnauthorizedRequests {
		denyTTL = 0
	}
	hook, err := authzwebhook.New(clientConfig, w.SubjectAccessReviewVersion, allowTTL, denyTTL, authWebhookBackoff,
		onError, w.MatchConditions, a.Name, authzmetrics.NoopAuthorizerMetrics{}, compiler)
	if err != nil {
		return nil, err
	}
	return upstreamAuthorizer{hook}, nil
}

// authenticationConfig is the part of --authentication-config the request
// path needs besides the token authenticators.
type authenticationConfig struct {
	// anonymous is nil when the file does not configure it: then only the
	// health endpoints and issuer discovery answer anonymous requests.
	anonymous *apiserverconfig.AnonymousAuthConfig
}

var authnConfigCodecs = func() serializer.CodecFactory {
	scheme := runtime.NewScheme()
	apiserverinstall.Install(scheme)
	return serializer.NewCodecFactory(scheme, serializer.EnableStrict)
}()

// loadAuthenticationConfig decodes (strictly) and validates the file as
// kube-apiserver does; the service-account issuers may not be JWT issuers.
func loadAuthenticationConfig(path string, saIssuers []string) (*apiserverconfig.AuthenticationConfiguration, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--authentication-config: %w", err)
	}
	if len(data) == 0 {
		return nil, errors.New("--authentication-config: empty config data")
	}
	obj, err := runtime.Decode(authnConfigCodecs.UniversalDecoder(), data)
	if err != nil {
		return nil, fmt.Errorf("--authentication-config: %w", err)
	}
	cfg, ok := obj.(*apiserverconfig.AuthenticationConfiguration)
	if !ok {
		return nil, fmt.Errorf("--authentication-config: expected AuthenticationConfiguration, got %T", obj)
	}
	if errs := apiservervalidation.ValidateAuthenticationConfiguration(authenticationcel.NewDefaultCompiler(), cfg, saIssuers); len(errs) > 0 {
		return nil, fmt.Errorf("--authentication-config: %w", errs.ToAggregate())
	}
	return cfg, nil
}

// jwtAuthenticators are upstream's JWT (OIDC) authenticators, one per
// issuer, tried as kube-apiserver tries them: a token from a configured
// issuer that fails verification fails authentication.
func (s *Server) jwtAuthenticators(cfg *apiserverconfig.AuthenticationConfiguration) (auth.Authenticator, error) {
	var tokens []authenticator.Token
	for _, j := range cfg.JWT {
		var ca oidc.CAContentProvider
		if j.Issuer.CertificateAuthority != "" {
			content, err := dynamiccertificates.NewStaticCAContent("oidc-authenticator", []byte(j.Issuer.CertificateAuthority))
			if err != nil {
				return nil, fmt.Errorf("--authentication-config: issuer %s: %w", j.Issuer.URL, err)
			}
			ca = content
		}
		a, err := oidc.New(s.stopCtx, oidc.Options{
			JWTAuthenticator:     j,
			CAContentProvider:    ca,
			SupportedSigningAlgs: oidc.AllValidSigningAlgorithms(),
			DisallowedIssuers:    s.saTokens.Issuers,
		})
		if err != nil {
			return nil, fmt.Errorf("--authentication-config: issuer %s: %w", j.Issuer.URL, err)
		}
		tokens = append(tokens, a)
	}
	token := authenticator.WrapAudienceAgnosticToken(authenticator.Audiences(s.saTokens.APIAudiences), tokenunion.NewFailOnError(tokens...))
	return auth.Bearer{Token: token}, nil
}

// anonymousAllowed reports whether a request without credentials is
// served as system:anonymous.
func (c authenticationConfig) anonymousAllowed(r *http.Request) bool {
	if c.anonymous == nil {
		return publicPath(r.URL.Path) || isIssuerDiscoveryPath(r.URL.Path)
	}
	if !c.anonymous.Enabled {
		return false
	}
	if len(c.anonymous.Conditions) == 0 {
		return true
	}
	for _, cond := range c.anonymous.Conditions {
		if cond.Path == r.URL.Path {
			return true
		}
	}
	return false
}
