// Package server assembles a Trellis API server: storage, the resource
// registry, the request filters, discovery and the in-process controllers.
// It is what `trellis serve` runs, and it can be embedded in a Go program
// or test.
package server

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/trellis-project/trellis/internal/apiextensions"
	"github.com/trellis-project/trellis/internal/auth"
	"github.com/trellis-project/trellis/internal/auth/satoken"
	"github.com/trellis-project/trellis/internal/budget"
	"github.com/trellis-project/trellis/internal/controller"
	"github.com/trellis-project/trellis/internal/discovery"
	"github.com/trellis-project/trellis/internal/handler"
	"github.com/trellis-project/trellis/internal/pki"
	"github.com/trellis-project/trellis/internal/resource"
	"github.com/trellis-project/trellis/internal/resource/builtin"
	"github.com/trellis-project/trellis/internal/store"
)

// AdminKubeconfig is the admin kubeconfig's file name in the data directory.
const AdminKubeconfig = "admin.kubeconfig"

// Server is an assembled API server. Create it with New, start it with
// Run (or Start), and it stops when Run's context ends.
type Server struct {
	cfg      Config
	backend  store.Store
	caches   *caches
	registry *resource.Registry
	// schemaPool bounds the memory of CRDs' compiled schemas.
	schemaPool *budget.Pool
	// crdController, once running, is handed the CRDs the API stores.
	crdController atomic.Pointer[apiextensions.Controller]
	pki           *pki.Bundle
	listener      net.Listener
	http          *http.Server
	metrics       *metrics
	saTokens      *satoken.Config
	audit         *auditing
	// authnConfig is what --authentication-config says beyond tokens.
	authnConfig authenticationConfig
	// apf is API Priority and Fairness; nil when disabled.
	apf      *priorityAndFairness
	prefixes atomic.Pointer[prefixIndex] // for apf's work estimates

	inFlight      atomic.Int64 // requests being served, for shutdown
	loopbackToken string
	ready         chan struct{}
	crdsServed    <-chan struct{}
	authzSynced   []func() bool
	stopCtx       context.Context
	stop          context.CancelFunc
	controllers   sync.WaitGroup
}

// New opens storage and prepares the server; nothing is served until Run.
func New(cfg Config) (*Server, error) {
	cfg.defaults()
	if cfg.DataDir == "" {
		return nil, errors.New("server: DataDir is required")
	}
	bundle, err := pki.EnsureDevPKI(filepath.Join(cfg.DataDir, "pki"), pki.Options{
		Host: cfg.Listen, CertFile: cfg.CertFile, KeyFile: cfg.KeyFile, ClientCAFile: cfg.ClientCAFile,
	})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	backend, err := openBackend(ctx, &cfg)
	if err != nil {
		cancel()
		return nil, err
	}
	s := &Server{
		cfg: cfg, backend: backend, registry: resource.NewRegistry(), pki: bundle,
		ready: make(chan struct{}), stopCtx: ctx, stop: cancel,
		loopbackToken: randomToken(),
	}
	s.caches = newCaches(ctx, backend)
	if cfg.CRDSchemaCacheMB > 0 {
		s.schemaPool = budget.NewPool(int64(cfg.CRDSchemaCacheMB) << 20)
	}
	builtin.Register(s.registry)
	if err := registerTrellisKinds(s.registry); err != nil {
		s.closeStorage()
		return nil, err
	}
	s.metrics = newMetrics()
	if s.schemaPool != nil {
		s.metrics.registerSchemaPool(s.schemaPool)
	}
	if s.audit, err = openAudit(&cfg); err != nil {
		s.closeStorage()
		return nil, err
	}
	if s.audit != nil {
		s.metrics.registerAudit(s.audit.log)
	}
	if err := s.serviceAccountTokens(); err != nil {
		s.closeStorage()
		return nil, err
	}

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		s.closeStorage()
		return nil, fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	s.listener = ln
	// Its loopback client needs the listener's address.
	if err := s.podSubresources(); err != nil {
		ln.Close()
		s.closeStorage()
		return nil, err
	}
	return s, nil
}

func randomToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.listener.Addr().String() }

// URL is the server's base URL.
func (s *Server) URL() string { return "https://" + s.Addr() }

// KubeconfigPath is where the admin kubeconfig is written.
func (s *Server) KubeconfigPath() string { return filepath.Join(s.cfg.DataDir, AdminKubeconfig) }

// AdminConfig returns a client config with the admin identity.
func (s *Server) AdminConfig() *rest.Config {
	certPEM, keyPEM, err := s.pki.AdminPEM()
	if err != nil {
		panic(err) // EnsureDevPKI always loads the admin key
	}
	return &rest.Config{
		Host: s.URL(),
		TLSClientConfig: rest.TLSClientConfig{
			CAData:   s.pki.ServerCAPEM(),
			CertData: certPEM, KeyData: keyPEM,
		},
		QPS: -1,
	}
}

// LoopbackConfig returns the client config the in-process controllers use.
// It asks for the loopback certificate by name, so it trusts the server
// whatever serving certificate the user gave.
func (s *Server) LoopbackConfig() *rest.Config {
	return &rest.Config{
		Host:        s.URL(),
		BearerToken: s.loopbackToken,
		TLSClientConfig: rest.TLSClientConfig{
			CAData: s.pki.LoopbackCAPEM(), ServerName: pki.LoopbackServerName,
		},
		QPS: -1,
	}
}

// Ready is closed once the server answers requests and the built-in
// namespaces exist.
func (s *Server) Ready() <-chan struct{} { return s.ready }

func (s *Server) authenticator() (auth.Authenticator, error) {
	chain := auth.Chain{auth.ClientCert{Roots: s.pki.ClientCAs}, auth.Tokens{s.loopbackToken: {
		Name: "system:apiserver", UID: "trellis-loopback", Groups: []string{"system:masters", "system:authenticated"},
	}}}
	if s.cfg.TokenAuthFile != "" {
		tokens, err := auth.LoadTokenFile(s.cfg.TokenAuthFile)
		if err != nil {
			return nil, err
		}
		chain = append(chain, tokens)
	}
	sa, err := s.serviceAccountAuthenticator()
	if err != nil {
		return nil, err
	}
	chain = append(chain, sa)
	if s.cfg.AuthenticationConfigFile != "" {
		cfg, err := loadAuthenticationConfig(s.cfg.AuthenticationConfigFile, s.saTokens.Issuers)
		if err != nil {
			return nil, err
		}
		s.authnConfig.anonymous = cfg.Anonymous
		if len(cfg.JWT) > 0 {
			jwt, err := s.jwtAuthenticators(cfg)
			if err != nil {
				return nil, err
			}
			chain = append(chain, jwt)
		}
	}
	if s.cfg.AuthenticationTokenWebhookConfigFile != "" {
		hook, err := s.webhookTokenAuthenticator()
		if err != nil {
			return nil, err
		}
		chain = append(chain, hook)
	}
	return chain, nil
}

// Run serves until ctx ends, then drains in-flight requests, ends watches,
// and closes storage; every acknowledged write is already durable.
func (s *Server) Run(ctx context.Context) error {
	// Ending ctx stops everything, also while start-up is still waiting.
	defer context.AfterFunc(ctx, s.stop)()
	authn, err := s.authenticator()
	if err != nil {
		return err
	}
	// Authorizers read RBAC objects through informers on the loopback
	// client (system:masters, allowed before any authorizer runs).
	loopback := kubernetes.NewForConfigOrDie(s.LoopbackConfig())
	authzInformers := informers.NewSharedInformerFactory(loopback, 0)
	authz, err := s.authorizer(authzInformers)
	if err != nil {
		return err
	}
	loopbackDynamic := dynamic.NewForConfigOrDie(s.LoopbackConfig())
	dynamicInformers := dynamicinformer.NewDynamicSharedInformerFactory(loopbackDynamic, 0)
	fieldManagers := s.fieldManagers()
	admit, admissionSynced := s.admissionChain(authzInformers, dynamicInformers, loopback, loopbackDynamic, authz, fieldManagers)
	s.guardRBACWrites(authz)
	s.handOverCRDs()
	s.registerReviews(authn, authz)
	h := &handler.Handler{
		Registry: s.registry, Storage: s.caches, Scheme: builtin.Scheme,
		Namespaces: namespaceLookup{caches: s.caches}, MinWatchTimeout: s.cfg.MinRequestTimeout,
		FieldManagers: fieldManagers, Admission: admit,
	}
	if !s.cfg.DisablePriorityAndFairness {
		// Its informers share the authorizers' factory, started below.
		s.apf = s.newPriorityAndFairness(authzInformers, loopback.FlowcontrolV1())
	}
	disc := &discovery.Handler{Registry: s.registry}
	root := s.routes(h, disc)
	chain := s.filters(root, authn, authz)

	tlsCfg := s.pki.ServingTLSConfig()
	// Request, do not verify, client certificates: the authenticator
	// verifies them, so that one from an unknown CA is a 401, as in
	// kube-apiserver, not a failed handshake.
	tlsCfg.ClientAuth = tls.RequestClientCert
	s.http = &http.Server{
		Handler:           chain,
		TLSConfig:         tlsCfg,
		ReadHeaderTimeout: 30 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return s.stopCtx },
		ConnContext:       func(ctx context.Context, _ net.Conn) context.Context { return auth.WithConnVerification(ctx) },
		ErrorLog:          discardLogger(),
	}
	if err := pki.WriteKubeconfig(s.KubeconfigPath(), s.URL(), s.pki); err != nil {
		return err
	}
	if err := s.bootstrap(chain); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	if err := s.ensureKubernetesService(chain); err != nil {
		return fmt.Errorf("bootstrap default/kubernetes: %w", err)
	}
	if err := s.reconcileBootstrapPolicy(chain); err != nil {
		return fmt.Errorf("bootstrap RBAC policy: %w", err)
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- s.http.Serve(tls.NewListener(s.listener, tlsCfg)) }()
	authzInformers.Start(s.stopCtx.Done())
	dynamicInformers.Start(s.stopCtx.Done())
	if s.apf != nil {
		// Not waited for: until its informers sync, the controller
		// classifies by the mandatory objects alone, as upstream.
		s.controllers.Add(1)
		go func() {
			defer s.controllers.Done()
			s.apf.run(s.stopCtx.Done())
		}()
	}
	for _, synced := range append(s.authzSynced, admissionSynced...) {
		if !controller.WaitForSync(s.stopCtx, synced) {
			s.shutdown()
			return errors.New("authorization and admission caches did not sync")
		}
	}
	if !s.cfg.DisableControllers {
		s.startControllers()
		if s.crdsServed != nil {
			select {
			case <-s.crdsServed:
			case err := <-serveErr:
				s.shutdown()
				return err
			case <-ctx.Done():
				return s.shutdown()
			}
		}
	}
	close(s.ready)
	// The first write would otherwise pay for loading the field managers'
	// type information (tens of milliseconds).
	go builtinFieldTypes().Load()

	select {
	case err := <-serveErr:
		s.shutdown()
		return err
	case <-ctx.Done():
	}
	return s.shutdown()
}

// shutdown stops accepting, waits for in-flight requests (watches end
// when the base context is cancelled), stops controllers and storage.
func (s *Server) shutdown() error {
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	s.stop() // ends watches and controllers
	s.controllers.Wait()
	// Shutdown stops accepting at once but, for HTTP/2, lingers a second
	// after GOAWAY waiting for clients to hang up. What matters is that no
	// request is still being served; then the connections can be closed.
	shutdownDone := make(chan error, 1)
	go func() { shutdownDone <- s.http.Shutdown(sctx) }()
	var err error
	for s.inFlight.Load() > 0 && sctx.Err() == nil {
		time.Sleep(time.Millisecond)
	}
	if sctx.Err() != nil {
		err = fmt.Errorf("shutdown: %d requests still in flight after %v", s.inFlight.Load(), s.cfg.ShutdownTimeout)
	}
	s.http.Close()
	if serr := <-shutdownDone; err == nil && serr != nil && !errors.Is(serr, http.ErrServerClosed) && !errors.Is(serr, context.Canceled) {
		err = serr
	}
	s.closeStorage()
	return err
}

func (s *Server) closeStorage() {
	s.stop()
	if s.caches != nil {
		s.caches.close()
	}
	s.backend.Close()
	s.audit.close() // last: events of the requests just served are written
}
