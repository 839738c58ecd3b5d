package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/trellis-project/trellis/internal/auth/satoken"
	"github.com/trellis-project/trellis/server"
)

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "trellis",
		Short:         "A lightweight, extensible Kubernetes-compatible control plane",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newServeCommand())
	root.AddCommand(&cobra.Command{
		Use:                KubeAPIServerName + " [kube-apiserver flags]",
		Short:              "Run as kube-apiserver (what a binary named kube-apiserver does); see docs/ENVTEST.md",
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runKubeAPIServer(args, os.Stderr)
		},
	})
	return root
}

func newServeCommand() *cobra.Command {
	var cfg server.Config
	enableAPF := true
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the API server (embedded store by default, etcd with --etcd-servers)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			// --authorization-mode defaults to RBAC only when no
			// --authorization-config replaces it.
			if cfg.AuthorizationConfigFile != "" && !cmd.Flags().Changed("authorization-mode") {
				cfg.AuthorizationModes = nil
			}
			cfg.DisablePriorityAndFairness = !enableAPF
			return runServe(cmd.Context(), cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data-dir", ".data", "directory for the embedded store, certificates and the admin kubeconfig")
	f.StringVar(&cfg.Listen, "listen", "127.0.0.1:6443", "HTTPS listen address")
	f.StringVar(&cfg.CertFile, "tls-cert-file", "", "serving certificate (default: generated into the data directory)")
	f.StringVar(&cfg.KeyFile, "tls-private-key-file", "", "serving certificate key")
	f.StringVar(&cfg.ClientCAFile, "client-ca-file", "", "CA bundle that verifies client certificates (default: the generated CA)")
	f.StringVar(&cfg.TokenAuthFile, "token-auth-file", "", "static bearer tokens, CSV: token,user,uid,\"group1,group2\"")
	f.StringArrayVar(&cfg.ServiceAccountKeyFiles, "service-account-key-file", nil, "PEM file of RSA or ECDSA public or private keys that verify ServiceAccount tokens; repeatable (default: the public key of the signing key)")
	f.StringVar(&cfg.ServiceAccountSigningKeyFile, "service-account-signing-key-file", "", "PEM private key that signs ServiceAccount tokens (default: a key generated into the data directory)")
	f.StringArrayVar(&cfg.ServiceAccountIssuers, "service-account-issuer", nil, "issuer of ServiceAccount tokens; repeatable: the first signs, all are accepted (default: "+satoken.DefaultIssuer+")")
	f.StringSliceVar(&cfg.APIAudiences, "api-audiences", nil, "audiences ServiceAccount tokens must have one of (default: the issuers)")
	f.DurationVar(&cfg.ServiceAccountMaxTokenExpiration, "service-account-max-token-expiration", 0, "longest validity of a requested ServiceAccount token; longer requests are shortened (0: no cap)")
	f.StringVar(&cfg.ServiceAccountJWKSURI, "service-account-jwks-uri", "", "jwks_uri in the issuer discovery document (default: https://<listen address>/openid/v1/jwks)")
	f.StringSliceVar(&cfg.AuthorizationModes, "authorization-mode", []string{"RBAC"}, "ordered authorizers: RBAC, Webhook, AlwaysAllow, AlwaysDeny (system:masters is always allowed)")
	f.StringVar(&cfg.AuthorizationConfigFile, "authorization-config", "", "AuthorizationConfiguration file (apiserver.config.k8s.io/v1): an ordered chain of authorizers; excludes --authorization-mode and --authorization-webhook-*")
	f.StringVar(&cfg.AuthenticationConfigFile, "authentication-config", "", "AuthenticationConfiguration file (apiserver.config.k8s.io/v1): JWT issuers and anonymous access")
	f.StringVar(&cfg.AuthenticationTokenWebhookConfigFile, "authentication-token-webhook-config-file", "", "kubeconfig-format file naming a TokenReview service for bearer tokens nothing else recognises")
	f.StringVar(&cfg.AuthenticationTokenWebhookVersion, "authentication-token-webhook-version", "v1beta1", "TokenReview version sent to the authentication webhook (v1 or v1beta1)")
	f.DurationVar(&cfg.AuthenticationTokenWebhookCacheTTL, "authentication-token-webhook-cache-ttl", 2*time.Minute, "how long authentication webhook answers are cached")
	f.StringVar(&cfg.AuthorizationWebhookConfigFile, "authorization-webhook-config-file", "", "kubeconfig-format file naming the SubjectAccessReview service of --authorization-mode=Webhook")
	f.StringVar(&cfg.AuthorizationWebhookVersion, "authorization-webhook-version", "v1beta1", "SubjectAccessReview version sent to the authorization webhook (v1 or v1beta1)")
	f.DurationVar(&cfg.AuthorizationWebhookCacheAuthorizedTTL, "authorization-webhook-cache-authorized-ttl", 5*time.Minute, "how long an allowed answer of the authorization webhook is cached")
	f.DurationVar(&cfg.AuthorizationWebhookCacheUnauthorizedTTL, "authorization-webhook-cache-unauthorized-ttl", 30*time.Second, "how long a denial of the authorization webhook is cached")
	f.StringSliceVar(&cfg.EtcdServers, "etcd-servers", nil, "etcd client URLs; when set, data is stored in etcd instead of the embedded store")
	f.StringVar(&cfg.EtcdCAFile, "etcd-cafile", "", "CA that verifies the etcd servers")
	f.StringVar(&cfg.EtcdCertFile, "etcd-certfile", "", "client certificate for etcd")
	f.StringVar(&cfg.EtcdKeyFile, "etcd-keyfile", "", "client key for etcd")
	f.StringVar(&cfg.AuditPolicyFile, "audit-policy-file", "", "audit.k8s.io/v1 Policy deciding how each request is audited; auditing is off without it")
	f.StringVar(&cfg.AuditLogPath, "audit-log-path", "", "file the audit events are written to, one JSON object per line; \"-\" means standard output")
	f.IntVar(&cfg.AuditLogMaxSize, "audit-log-maxsize", 0, "megabytes at which the audit log is rotated (0: 100)")
	f.IntVar(&cfg.AuditLogMaxBackups, "audit-log-maxbackup", 0, "rotated audit log files kept (0: no limit)")
	f.IntVar(&cfg.AuditLogMaxAge, "audit-log-maxage", 0, "days rotated audit log files are kept (0: no limit)")
	f.IntVar(&cfg.AuditLogBufferSize, "audit-log-batch-buffer-size", 10000, "audit events queued for the log writer; beyond it events are dropped rather than delaying requests")
	f.IntVar(&cfg.MaxRequestsInFlight, "max-requests-inflight", 800, "concurrent read-only requests before 429")
	f.IntVar(&cfg.MaxMutatingRequestsInFlight, "max-mutating-requests-inflight", 400, "concurrent mutating requests before 429")
	f.BoolVar(&enableAPF, "enable-priority-and-fairness", true, "classify requests by FlowSchemas and limit them per priority level (API Priority and Fairness), which share both max-in-flight limits; false: the two limits alone")
	f.DurationVar(&cfg.MinRequestTimeout, "min-request-timeout", 30*time.Minute, "shortest server-chosen watch duration")
	f.DurationVar(&cfg.ConversionWebhookTimeout, "conversion-webhook-timeout", 30*time.Second, "timeout of each call to a CustomResourceDefinition's conversion webhook")
	f.IntVar(&cfg.CRDSchemaCacheMB, "crd-schema-cache-size", 64, "megabytes (estimated) of compiled CustomResourceDefinition schemas kept in memory; the least recently used beyond it are compiled again when next used (negative: no bound)")
	f.DurationVar(&cfg.RequestTimeout, "request-timeout", time.Minute, "deadline of every request but watches; the timeout parameter may shorten it")
	f.DurationVar(&cfg.AdmissionWebhookBackoff, "admission-webhook-backoff", 5*time.Second, "how long an admission webhook that failed three calls in a row is not called (its failurePolicy answers at once); negative disables")
	f.DurationVar(&cfg.CompactionInterval, "compaction-interval", time.Minute, "how often the embedded store compacts its history")
	f.DurationVar(&cfg.CompactionRetainAge, "compaction-retain-age", 5*time.Minute, "history younger than this is kept")
	f.Int64Var(&cfg.CompactionRetainRevisions, "compaction-retain-revisions", 10000, "at least this many recent revisions are kept")
	return cmd
}

func runServe(ctx context.Context, cfg server.Config) error {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	srv, err := server.New(cfg)
	if err != nil {
		return err
	}
	go func() {
		select {
		case <-srv.Ready():
			fmt.Fprintf(os.Stderr, "trellis ready on %s in %v\nkubeconfig: %s\n", srv.URL(), time.Since(start).Round(time.Millisecond), srv.KubeconfigPath())
		case <-ctx.Done():
		}
	}()
	return srv.Run(ctx)
}
