package server

import (
	"time"
)

// Config configures a Trellis API server. The zero value plus a DataDir
// is a working embedded server on 127.0.0.1:6443.
type Config struct {
	// DataDir holds the embedded store, the generated certificates and the
	// admin kubeconfig.
	DataDir string
	// Listen is the HTTPS address ("127.0.0.1:6443"; port 0 picks a free one).
	Listen string

	// CertFile and KeyFile serve TLS with a user certificate instead of a
	// generated one; ClientCAFile verifies client certificates.
	CertFile, KeyFile, ClientCAFile string
	// TokenAuthFile is a static bearer-token file (token,user,uid,"groups").
	TokenAuthFile string
	// Service-account tokens, as kube-apiserver's flags of the same
	// names: ServiceAccountKeyFiles verify (--service-account-key-file),
	// ServiceAccountSigningKeyFile signs, the first of
	// ServiceAccountIssuers is written into new tokens and all are
	// accepted, APIAudiences default to the issuers, and
	// ServiceAccountMaxTokenExpiration caps TokenRequests (0: no cap).
	// Unset, a key generated into the data directory signs and verifies
	// and the issuer is https://kubernetes.default.svc.cluster.local.
	ServiceAccountKeyFiles           []string
	ServiceAccountSigningKeyFile     string
	ServiceAccountIssuers            []string
	APIAudiences                     []string
	ServiceAccountMaxTokenExpiration time.Duration
	// ServiceAccountJWKSURI overrides the jwks_uri of the issuer's
	// discovery document (default https://<listen address>/openid/v1/jwks).
	ServiceAccountJWKSURI string
	// AuthorizationModes is the ordered authorizer chain (RBAC,
	// AlwaysAllow, AlwaysDeny); members of system:masters are always
	// allowed. Empty means AlwaysAllow.
	AuthorizationModes []string
	// AuthorizationConfigFile is an AuthorizationConfiguration
	// (apiserver.config.k8s.io/v1): an ordered chain of authorizers
	// (RBAC, Webhook with its own connection, failure policy, caching and
	// CEL matchConditions, AlwaysAllow, AlwaysDeny). Mutually exclusive
	// with AuthorizationModes and the AuthorizationWebhook* fields.
	AuthorizationConfigFile string
	// AuthenticationConfigFile is an AuthenticationConfiguration
	// (apiserver.config.k8s.io/v1): JWT issuers with claim mappings and
	// validation rules, and anonymous access (by default only the health
	// endpoints and issuer discovery are served anonymously).
	AuthenticationConfigFile string

	// EtcdServers switches storage from the embedded store to etcd.
	EtcdServers                             []string
	EtcdCAFile, EtcdCertFile, EtcdKeyFile   string
	EtcdDialTimeout                         time.Duration
	CompactionInterval, CompactionRetainAge time.Duration
	CompactionRetainRevisions               int64

	// MaxRequestsInFlight and MaxMutatingRequestsInFlight bound concurrent
	// non-long-running requests; beyond them requests get 429.
	MaxRequestsInFlight         int
	MaxMutatingRequestsInFlight int
	// DisablePriorityAndFairness turns API Priority and Fairness off
	// (kube-apiserver's --enable-priority-and-fairness=false): the two
	// in-flight limits above then apply as they are. With it on (the
	// default) requests are classified by FlowSchemas and limited per
	// priority level, which share the sum of both limits.
	DisablePriorityAndFairness bool
	// MinRequestTimeout is the shortest server-chosen watch duration.
	MinRequestTimeout time.Duration
	// ShutdownTimeout bounds how long Run waits for in-flight requests
	// after its context ends.
	ShutdownTimeout time.Duration
	// ConversionWebhookTimeout bounds each call to a CRD's conversion
	// webhook (default 30s, as kube-apiserver).
	ConversionWebhookTimeout time.Duration
	// AuthenticationTokenWebhookConfigFile (kubeconfig format) names a
	// TokenReview service asked about bearer tokens nothing else
	// recognises; answers are cached for AuthenticationTokenWebhookCacheTTL
	// (default 2m; negative: no cache). Version is the TokenReview
	// version sent (v1beta1 by default, as kube-apiserver).
	AuthenticationTokenWebhookConfigFile string
	AuthenticationTokenWebhookVersion    string
	AuthenticationTokenWebhookCacheTTL   time.Duration
	// AuthorizationWebhookConfigFile (kubeconfig format) names the
	// SubjectAccessReview service of authorization mode Webhook; allowed
	// answers are cached for ...AuthorizedTTL (5m), denials for
	// ...UnauthorizedTTL (30s).
	AuthorizationWebhookConfigFile           string
	AuthorizationWebhookVersion              string
	AuthorizationWebhookCacheAuthorizedTTL   time.Duration
	AuthorizationWebhookCacheUnauthorizedTTL time.Duration
	// AdmissionWebhookBackoff is how long an admission webhook that failed
	// three calls in a row is not called (its failurePolicy answers at
	// once); 0 means 5s, negative disables the back-off.
	AdmissionWebhookBackoff time.Duration
	// CRDSchemaCacheMB bounds, in (estimated) megabytes, the compiled
	// schemas of CustomResourceDefinitions kept in memory: validators,
	// CEL programs, structural schemas and managed-fields type
	// information. The least recently used are evicted beyond it and
	// compiled again on their next use. 0 means 64; negative, no bound.
	CRDSchemaCacheMB int
	// RequestTimeout bounds every request but watches (the `timeout`
	// parameter may shorten it); default 60s, as kube-apiserver.
	RequestTimeout time.Duration
	// AuditPolicyFile is an audit.k8s.io Policy (--audit-policy-file);
	// with AuditLogPath ("-": standard output) every request is audited
	// as it says, in kube-apiserver's JSON-lines event format. The log is
	// rotated at AuditLogMaxSize megabytes (0: 100), keeping at most
	// AuditLogMaxBackups old files (0: all) for AuditLogMaxAge days (0:
	// no limit). Events wait for the writer in a queue of
	// AuditLogBufferSize (0: 10000); when it is full they are dropped, as
	// kube-apiserver's batch mode, rather than holding requests up.
	AuditPolicyFile    string
	AuditLogPath       string
	AuditLogMaxSize    int
	AuditLogMaxBackups int
	AuditLogMaxAge     int
	AuditLogBufferSize int
	// DisableControllers skips the in-process controllers (namespace
	// lifecycle); tests of raw API behaviour use it.
	DisableControllers bool
	// DisabledControllers names in-process controllers not to run:
	// "serviceaccount" (a default ServiceAccount per namespace),
	// "serviceaccount-token" (legacy token Secrets), "root-ca-cert-publisher"
	// (kube-root-ca.crt ConfigMaps), "namespace", "clusterrole-aggregation".
	// They are kube-controller-manager's in Kubernetes.
	DisabledControllers []string
	// ServiceClusterIPRange is the CIDR whose first address the
	// "kubernetes" Service in the default namespace gets (default
	// 10.96.0.0/12, so 10.96.0.1).
	ServiceClusterIPRange string
}

func (c *Config) defaults() {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:6443"
	}
	if c.MaxRequestsInFlight == 0 {
		c.MaxRequestsInFlight = 800
	}
	if c.MaxMutatingRequestsInFlight == 0 {
		c.MaxMutatingRequestsInFlight = 400
	}
	if c.MinRequestTimeout == 0 {
		c.MinRequestTimeout = 30 * time.Minute
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = time.Minute
	}
	if c.CRDSchemaCacheMB == 0 {
		c.CRDSchemaCacheMB = 64
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 30 * time.Second
	}
	if c.ServiceClusterIPRange == "" {
		c.ServiceClusterIPRange = "10.96.0.0/12"
	}
	if c.EtcdDialTimeout == 0 {
		c.EtcdDialTimeout = 5 * time.Second
	}
}
