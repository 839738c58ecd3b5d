package server

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apimachinery/pkg/util/uuid"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"

	"github.com/trellis-project/trellis/internal/audit"
	"github.com/trellis-project/trellis/internal/auth"
	"github.com/trellis-project/trellis/internal/request"
)

// auditIDHeader carries the request's audit ID, in the request (a client
// may choose it) and in every response, as kube-apiserver.
const auditIDHeader = "Audit-ID"

// Upstream truncates user agents in events at this length.
const (
	maxUserAgentLength      = 1024
	userAgentTruncateSuffix = "...TRUNCATED"
)

// maxAuditedResponseBytes bounds the response body kept for an event at
// level RequestResponse; a larger body is audited without it.
const maxAuditedResponseBytes = 3 << 20

// auditing is the server's audit policy and log; nil when auditing is
// off (no policy file or no log path, as kube-apiserver).
type auditing struct {
	policy *audit.Policy
	log    *audit.LogBackend
}

func openAudit(cfg *Config) (*auditing, error) {
	if cfg.AuditPolicyFile == "" {
		return nil, nil
	}
	p, err := audit.LoadPolicyFile(cfg.AuditPolicyFile)
	if err != nil {
		return nil, fmt.Errorf("audit policy: %w", err)
	}
	if cfg.AuditLogPath == "" {
		return nil, nil
	}
	l, err := audit.OpenLog(audit.LogOptions{
		Path: cfg.AuditLogPath, MaxSizeMB: cfg.AuditLogMaxSize,
		MaxBackups: cfg.AuditLogMaxBackups, MaxAgeDays: cfg.AuditLogMaxAge,
		BufferSize: cfg.AuditLogBufferSize,
	})
	if err != nil {
		return nil, err
	}
	return &auditing{policy: p, log: l}, nil
}

func (a *auditing) close() {
	if a != nil {
		a.log.Close()
	}
}

type auditIDKey struct{}

type auditStart struct {
	id       types.UID
	received time.Time
}

// withAuditID gives every request its audit ID (the client's Audit-ID
// header, or a new UUID) and answers it in the Audit-ID header, whether
// or not the request is audited.
func (s *Server) withAuditID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := auditStart{id: types.UID(r.Header.Get(auditIDHeader)), received: time.Now()}
		if start.id == "" {
			start.id = uuid.NewUUID()
		}
		w.Header().Set(auditIDHeader, string(start.id))
		if s.audit != nil {
			r = r.WithContext(context.WithValue(r.Context(), auditIDKey{}, start))
		}
		next.ServeHTTP(w, r)
	})
}

// withAudit audits a request as the policy says: RequestReceived before
// it is served, ResponseStarted when a long-running request answers,
// ResponseComplete when it is done, Panic if serving it panicked. It runs
// after authentication (the event names the user) and before
// impersonation and authorization (their decisions are in the event).
func (s *Server) withAudit(next http.Handler) http.Handler {
	if s.audit == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := s.newAuditRecord(r)
		if rec == nil {
			next.ServeHTTP(w, r)
			return
		}
		rec.ProcessStage(auditv1.StageRequestReceived)
		info := request.InfoFrom(r.Context())
		aw := &auditWriter{ResponseWriter: w, rec: rec, longRunning: info != nil && info.LongRunning()}
		aw.capture = rec.Level() == auditv1.LevelRequestResponse && !aw.longRunning
		defer func() {
			if p := recover(); p != nil {
				if p != http.ErrAbortHandler {
					rec.LogResponseStatus(&metav1.Status{
						Code: http.StatusInternalServerError, Status: metav1.StatusFailure,
						Reason: metav1.StatusReasonInternalError, Message: fmt.Sprintf("APIServer panic'd: %v", p),
					})
					rec.ProcessStage(auditv1.StagePanic)
				}
				panic(p)
			}
			if !rec.HasResponseStatus() {
				// The handler never answered: the client went away.
				rec.LogResponseStatus(&metav1.Status{Code: http.StatusOK, Status: metav1.StatusSuccess, Message: "Connection closed early"})
				if aw.longRunning {
					rec.ProcessStage(auditv1.StageResponseStarted)
				}
			}
			if aw.capture {
				rec.LogResponseBody(aw.body.Bytes())
			}
			rec.ProcessStage(auditv1.StageResponseComplete)
		}()
		next.ServeHTTP(aw, r.WithContext(audit.WithRecord(r.Context(), rec)))
	})
}

// auditFailedAuthentication audits a request that authenticated as no
// one, as kube-apiserver: one event, at stage ResponseStarted, with the
// 401 status.
func (s *Server) auditFailedAuthentication(failed http.Handler) http.Handler {
	if s.audit == nil {
		return failed
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := s.newAuditRecord(r)
		if rec == nil {
			failed.ServeHTTP(w, r)
			return
		}
		rec.LogResponseStatus(&metav1.Status{Message: authenticationMethods(r)})
		aw := &auditWriter{ResponseWriter: w, rec: rec, longRunning: true}
		failed.ServeHTTP(aw, r.WithContext(audit.WithRecord(r.Context(), rec)))
	})
}

// newAuditRecord evaluates the policy for r and starts its event, or
// returns nil when the request is audited at level None.
func (s *Server) newAuditRecord(r *http.Request) *audit.Record {
	attrs := attributesFor(r)
	cfg := s.audit.policy.Evaluate(auth.UpstreamAttributes(attrs))
	if cfg.Level == auditv1.LevelNone {
		return nil
	}
	start, ok := r.Context().Value(auditIDKey{}).(auditStart)
	if !ok {
		start = auditStart{id: uuid.NewUUID(), received: time.Now()}
	}
	rec := audit.NewRecord(start.id, start.received, cfg, s.audit.log)
	rec.Update(func(ev *auditv1.Event) {
		ev.Verb = attrs.Verb
		ev.RequestURI = r.URL.RequestURI()
		ev.UserAgent = r.UserAgent()
		if len(ev.UserAgent) > maxUserAgentLength {
			ev.UserAgent = ev.UserAgent[:maxUserAgentLength] + userAgentTruncateSuffix
		}
		for _, ip := range utilnet.SourceIPs(r) {
			ev.SourceIPs = append(ev.SourceIPs, ip.String())
		}
		if attrs.ResourceRequest {
			ev.ObjectRef = &auditv1.ObjectReference{
				Resource: attrs.Resource, Subresource: attrs.Subresource,
				Namespace: attrs.Namespace, Name: attrs.Name,
				APIGroup: attrs.APIGroup, APIVersion: attrs.APIVersion,
			}
		}
	})
	if u := attrs.User; u != nil {
		rec.SetUser(u.Name, u.UID, u.Groups, u.Extra)
	}
	return rec
}

// authenticationMethods names the credentials a request that failed to
// authenticate carried, in kube-apiserver's words.
func authenticationMethods(r *http.Request) string {
	var methods []string
	if _, _, ok := r.BasicAuth(); ok {
		methods = append(methods, "basic")
	}
	if parts := strings.Split(strings.TrimSpace(r.Header.Get("Authorization")), " "); len(parts) > 1 && strings.EqualFold(parts[0], "bearer") {
		methods = append(methods, "bearer")
	}
	if strings.TrimSpace(r.URL.Query().Get("access_token")) != "" {
		methods = append(methods, "access_token")
	}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		methods = append(methods, "x509")
	}
	if len(methods) == 0 {
		return "Authentication failed, no credentials provided"
	}
	return "Authentication failed, attempted: " + strings.Join(methods, ", ")
}

// auditWriter records the response code on the first write (and, for a
// long-running request, emits ResponseStarted then), and keeps the body
// when the event wants it.
type auditWriter struct {
	http.ResponseWriter
	rec         *audit.Record
	longRunning bool
	capture     bool
	body        bytes.Buffer
}

func (a *auditWriter) started(code int) {
	if a.rec.SetResponseCode(code) && a.longRunning {
		a.rec.ProcessStage(auditv1.StageResponseStarted)
	}
}

func (a *auditWriter) WriteHeader(code int) {
	a.started(code)
	a.ResponseWriter.WriteHeader(code)
}

func (a *auditWriter) Write(b []byte) (int, error) {
	a.started(http.StatusOK)
	if a.capture {
		if a.body.Len()+len(b) > maxAuditedResponseBytes {
			a.capture = false
			a.body = bytes.Buffer{}
		} else {
			a.body.Write(b)
		}
	}
	return a.ResponseWriter.Write(b)
}

func (a *auditWriter) Flush() {
	a.started(http.StatusOK)
	if f, ok := a.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (a *auditWriter) Unwrap() http.ResponseWriter { return a.ResponseWriter }
