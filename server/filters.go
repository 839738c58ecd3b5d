package server

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/version"

	"github.com/trellis-project/trellis/internal/audit"
	"github.com/trellis-project/trellis/internal/auth"
	"github.com/trellis-project/trellis/internal/auth/satoken"
	"github.com/trellis-project/trellis/internal/discovery"
	"github.com/trellis-project/trellis/internal/handler"
	"github.com/trellis-project/trellis/internal/request"
)

// Version is what /version reports: the Kubernetes version Trellis speaks.
var Version = version.Info{
	Major: "1", Minor: "37", GitVersion: "v1.37.2-trellis",
	GitCommit: "trellis", GitTreeState: "clean", BuildDate: "2026-11-26T00:00:00Z",
	GoVersion: "go1.26.8", Compiler: "gc", Platform: "linux/amd64",
}

// publicPaths answer without authentication, as the health endpoints do in
// kube-apiserver with anonymous access limited to them.
func publicPath(p string) bool {
	switch p {
	case "/healthz", "/livez", "/readyz":
		return true
	}
	return strings.HasPrefix(p, "/healthz/") || strings.HasPrefix(p, "/livez/") || strings.HasPrefix(p, "/readyz/")
}

// filters wraps the router with the request path's generic stages, outer
// first: panic recovery, request info, audit ID, deadline, metrics,
// authentication, audit, impersonation, concurrency limits (API Priority
// and Fairness, or the plain in-flight limits without it), authorization
// — kube-apiserver's order.
func (s *Server) filters(next http.Handler, authn auth.Authenticator, authz auth.Authorizer) http.Handler {
	h := withAuthorization(next, authz)
	if s.apf != nil {
		h = s.apf.filter(h)
	} else {
		h = s.withInFlightLimit(h)
	}
	h = withImpersonation(h, authz)
	h = s.withAudit(h)
	h = withAuthentication(h, authn, s.authnConfig, s.auditFailedAuthentication(unauthorized))
	h = s.metrics.instrument(h)
	h = withRequestDeadline(h, s.cfg.RequestTimeout)
	h = s.withAuditID(h)
	h = withRequestInfo(h)
	h = withPanicRecovery(h)
	return s.countInFlight(h)
}

// countInFlight tracks requests being served so shutdown knows when every
// acknowledged request has been answered.
func (s *Server) countInFlight(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.inFlight.Add(1)
		defer s.inFlight.Add(-1)
		next.ServeHTTP(w, r)
	})
}

func withPanicRecovery(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				log.Printf("panic serving %s %s: %v\n%s", r.Method, r.URL.Path, p, debug.Stack())
				handler.WriteError(w, r, apierrors.NewInternalError(fmt.Errorf("an internal error occurred while serving %s", r.URL.Path)))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

func withRequestInfo(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := request.Parse(r)
		next.ServeHTTP(w, r.WithContext(request.WithInfo(r.Context(), info)))
	})
}

// withRequestDeadline gives every request but watches a deadline: the
// server's request timeout, or the shorter `timeout` the client asked for.
// Storage and admission webhooks stop at it.
func withRequestDeadline(next http.Handler, max time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := request.InfoFrom(r.Context())
		if info != nil && info.Verb == "watch" {
			next.ServeHTTP(w, r)
			return
		}
		timeout := max
		if v := r.URL.Query().Get("timeout"); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				handler.WriteError(w, r, apierrors.NewBadRequest(fmt.Sprintf("invalid timeout specified in the request URL - %v", err)))
				return
			}
			if d > 0 && d < max {
				timeout = d
			}
		}
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// unauthorized answers a request that authenticated as no one.
var unauthorized = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	handler.WriteError(w, r, apierrors.NewUnauthorized("Unauthorized"))
})

// withAuthentication identifies the caller; a request without
// credentials is anonymous where anonymous access is allowed, else failed
// answers it. Credentials presented and refused (a bearer token nothing
// accepts, a certificate that does not verify) are failed also where
// anonymous access is allowed, as in kube-apiserver.
func withAuthentication(next http.Handler, authn auth.Authenticator, cfg authenticationConfig, failed http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, ok, err := authn.Authenticate(r)
		if !ok {
			if err == nil && !auth.HasBearerToken(r) && cfg.anonymousAllowed(r) {
				u = &auth.User{Name: "system:anonymous", Groups: []string{"system:unauthenticated"}}
			} else {
				failed.ServeHTTP(w, r)
				return
			}
		}
		r.Header.Del("Authorization")
		next.ServeHTTP(w, r.WithContext(auth.WithUser(r.Context(), u)))
	})
}

// withImpersonation serves a request carrying Impersonate-* headers as
// the impersonated user, if the authenticated user may impersonate it
// (see auth.Impersonate); otherwise it answers 403, or 400 for headers
// that name no user.
func withImpersonation(next http.Handler, az auth.Authorizer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		wanted, err := auth.WantedUser(r.Header)
		if err != nil {
			handler.WriteError(w, r, err)
			return
		}
		if wanted == nil {
			next.ServeHTTP(w, r)
			return
		}
		if auth.UserFrom(r.Context()) == nil {
			// kube-apiserver's plain-text answer; authentication always
			// sets a user, so this guards a broken chain.
			http.Error(w, fmt.Sprintf("Internal Server Error: %q: no User found in the context", r.RequestURI), http.StatusInternalServerError)
			return
		}
		u, err := auth.Impersonate(r.Context(), az, attributesFor(r), wanted)
		if err != nil {
			handler.WriteError(w, r, err)
			return
		}
		audit.From(r.Context()).SetImpersonatedUser(u.Name, u.UID, u.Groups, u.Extra)
		next.ServeHTTP(w, r.WithContext(auth.WithUser(r.Context(), u)))
	})
}

// withInFlightLimit answers 429 with Retry-After when too many
// short-running requests are being served; kube-apiserver limits this
// way with API Priority and Fairness off. Long-running requests are not
// counted.
func (s *Server) withInFlightLimit(next http.Handler) http.Handler {
	readOnly := make(chan struct{}, s.cfg.MaxRequestsInFlight)
	mutating := make(chan struct{}, s.cfg.MaxMutatingRequestsInFlight)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := request.InfoFrom(r.Context())
		if info != nil && info.LongRunning() || isPrivileged(auth.UserFrom(r.Context())) {
			// Watches are long-running; system:masters (the admin, the
			// server's own loopback) is exempt, as API Priority and
			// Fairness exempts it in kube-apiserver.
			next.ServeHTTP(w, r)
			return
		}
		sem := readOnly
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			sem = mutating
		}
		select {
		case sem <- struct{}{}:
			defer func() { <-sem }()
			next.ServeHTTP(w, r)
		default:
			tooManyRequests(w, "1")
		}
	})
}

// routes dispatches by path: resources to the generic handler, everything
// else to discovery, health, version and metrics.
func (s *Server) routes(resources http.Handler, disc *discovery.Handler) http.Handler {
	mux := http.NewServeMux()
	health := func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-s.ready:
		default:
			if strings.HasPrefix(r.URL.Path, "/readyz") {
				http.Error(w, "[-]trellis-bootstrap failed: not ready", http.StatusInternalServerError)
				return
			}
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if r.URL.Query().Has("verbose") {
			name := strings.TrimPrefix(r.URL.Path, "/")
			io.WriteString(w, "[+]ping ok\n[+]etcd ok\n[+]poststarthook/trellis-bootstrap ok\n"+name+" check passed\n")
			return
		}
		io.WriteString(w, "ok")
	}
	for _, p := range []string{"/healthz", "/livez", "/readyz"} {
		mux.HandleFunc(p, health)
		mux.HandleFunc(p+"/", health)
	}
	mux.HandleFunc("/version", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(mustJSON(Version))
	})
	mux.Handle("/metrics", s.metrics.handler())
	if s.apf != nil {
		mux.Handle("/debug/api_priority_and_fairness/", s.apf.debug)
	}
	mux.Handle("/openapi/", openAPIHandler(s.registry))
	if h := s.issuerDiscovery(); h != nil {
		for _, p := range []string{satoken.OpenIDConfigPath, satoken.JWKSPath} {
			mux.Handle(p, h)
			mux.Handle(p+"/", h)
		}
	}
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := request.InfoFrom(r.Context())
		if info != nil && info.IsResourceRequest {
			resources.ServeHTTP(w, r)
			return
		}
		if r.URL.Path == "/api" || r.URL.Path == "/apis" || strings.HasPrefix(r.URL.Path, "/api/") || strings.HasPrefix(r.URL.Path, "/apis/") {
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				handler.WriteError(w, r, apierrors.NewMethodNotSupported(schema.GroupResource{}, strings.ToLower(r.Method)))
				return
			}
			disc.ServeHTTP(w, r)
			return
		}
		handler.WriteError(w, r, handler.NotFoundPath())
	}))
	return mux
}

func discardLogger() *log.Logger { return log.New(io.Discard, "", 0) }

func isPrivileged(u *auth.User) bool {
	if u == nil {
		return false
	}
	for _, g := range u.Groups {
		if g == "system:masters" {
			return true
		}
	}
	return false
}
