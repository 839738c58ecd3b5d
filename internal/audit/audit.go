// Package audit records what the API server did for each request as
// kube-apiserver's audit events (audit.k8s.io/v1 Event): a per-request
// Record that the filters and the resource handler fill in, a Policy that
// decides each request's level, and a JSON-lines log Backend.
//
// The request path owns the Record: the audit filter creates it, puts it
// in the request's context, and emits a stage through a Sink; later
// stages (impersonation, authorization, admission, the handler) add to it
// through the context helpers, which do nothing when the request is not
// audited.
package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"sync"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
)

// Sink receives events as their stages complete. Process must not keep
// ev beyond the call's effects on its own copy and must not block for
// long: it is called on the request path.
type Sink interface {
	Process(ev *auditv1.Event)
}

// Config is how one request is audited, as the policy decided.
type Config struct {
	Level             auditv1.Level
	OmitStages        []auditv1.Stage
	OmitManagedFields bool
}

// Record is the audit event of one request in progress. Its methods are
// safe for concurrent use and do nothing on a nil Record.
type Record struct {
	mu   sync.Mutex
	ev   auditv1.Event
	cfg  Config
	sink Sink
	// codeSet is whether the response code is known (the first write).
	codeSet bool
}

// NewRecord starts the event of a request audited at cfg.Level > None.
func NewRecord(id types.UID, received time.Time, cfg Config, sink Sink) *Record {
	return &Record{
		cfg:  cfg,
		sink: sink,
		ev: auditv1.Event{
			TypeMeta:                 metav1.TypeMeta{APIVersion: auditv1.SchemeGroupVersion.String(), Kind: "Event"},
			Level:                    cfg.Level,
			AuditID:                  id,
			RequestReceivedTimestamp: metav1.NewMicroTime(received),
		},
	}
}

// Level is the level the request is audited at.
func (r *Record) Level() auditv1.Level {
	if r == nil {
		return auditv1.LevelNone
	}
	return r.cfg.Level
}

// Update runs f on the event under the record's lock; the filters use it
// to fill in the request's metadata.
func (r *Record) Update(f func(ev *auditv1.Event)) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	f(&r.ev)
}

// AddAnnotation records key=value; as kube-apiserver, the first value of
// a key stays.
func (r *Record) AddAnnotation(key, value string) {
	r.Update(func(ev *auditv1.Event) {
		if ev.Annotations == nil {
			ev.Annotations = map[string]string{}
		}
		if _, ok := ev.Annotations[key]; !ok {
			ev.Annotations[key] = value
		}
	})
}

// SetUser records the authenticated user.
func (r *Record) SetUser(name, uid string, groups []string, extra map[string][]string) {
	r.Update(func(ev *auditv1.Event) { ev.User = userInfo(name, uid, groups, extra) })
}

// SetImpersonatedUser records who the request acts as.
func (r *Record) SetImpersonatedUser(name, uid string, groups []string, extra map[string][]string) {
	r.Update(func(ev *auditv1.Event) {
		u := userInfo(name, uid, groups, extra)
		ev.ImpersonatedUser = &u
	})
}

func userInfo(name, uid string, groups []string, extra map[string][]string) authnv1.UserInfo {
	u := authnv1.UserInfo{Username: name, UID: uid, Groups: groups}
	if len(extra) > 0 {
		u.Extra = make(map[string]authnv1.ExtraValue, len(extra))
		for k, v := range extra {
			u.Extra[k] = authnv1.ExtraValue(v)
		}
	}
	return u
}

// LogRequestBody records the request's body as the event's request
// object, at level Request and above, if it is JSON (an object, or a JSON
// patch).
func (r *Record) LogRequestBody(body []byte) {
	if r == nil || r.cfg.Level == auditv1.LevelNone || r.cfg.Level == auditv1.LevelMetadata {
		return
	}
	body = bytes.TrimSpace(body)
	if len(body) == 0 || (body[0] != '{' && body[0] != '[') || !json.Valid(body) {
		return // protobuf, YAML or empty: LogRequestObject may record it
	}
	obj := r.object(body)
	r.Update(func(ev *auditv1.Event) { ev.RequestObject = obj })
}

// LogRequestObject records the decoded object of a create or update:
// its name, namespace, uid and resourceVersion in the object reference
// where the URL did not give them, and, at level Request and above when
// the body was not JSON (client-go's typed clients send protobuf), the
// object itself encoded as JSON.
func (r *Record) LogRequestObject(obj runtime.Object) {
	if r == nil || r.cfg.Level == auditv1.LevelNone {
		return
	}
	m, err := meta.Accessor(obj)
	if err != nil {
		return
	}
	var body *runtime.Unknown
	if r.cfg.Level != auditv1.LevelMetadata {
		if raw, err := json.Marshal(obj); err == nil {
			body = r.object(raw)
		}
	}
	r.Update(func(ev *auditv1.Event) {
		if ref := ev.ObjectRef; ref != nil {
			if ref.Name == "" {
				ref.Name = m.GetName()
			}
			if ref.Namespace == "" {
				ref.Namespace = m.GetNamespace()
			}
			if ref.UID == "" {
				ref.UID = m.GetUID()
			}
			if ref.ResourceVersion == "" {
				ref.ResourceVersion = m.GetResourceVersion()
			}
		}
		if body != nil && ev.RequestObject == nil {
			ev.RequestObject = body
		}
	})
}

// LogResponseBody records a JSON response body at level RequestResponse.
func (r *Record) LogResponseBody(body []byte) {
	if r == nil || r.cfg.Level != auditv1.LevelRequestResponse {
		return
	}
	body = bytes.TrimSpace(body)
	if len(body) == 0 || (body[0] != '{' && body[0] != '[') || !json.Valid(body) {
		return
	}
	obj := r.object(body)
	r.Update(func(ev *auditv1.Event) { ev.ResponseObject = obj })
}

// object wraps a JSON body for the event, without managed fields when
// the policy omits them.
func (r *Record) object(body []byte) *runtime.Unknown {
	raw := append([]byte(nil), body...)
	if r.cfg.OmitManagedFields {
		raw = withoutManagedFields(raw)
	}
	return &runtime.Unknown{Raw: raw, ContentType: runtime.ContentTypeJSON}
}

// withoutManagedFields drops metadata.managedFields of an object and of
// the items of a list.
func withoutManagedFields(raw []byte) []byte {
	var obj map[string]any
	if err := json.Unmarshal(raw, &obj); err != nil {
		return raw
	}
	drop := func(o map[string]any) bool {
		md, ok := o["metadata"].(map[string]any)
		if !ok {
			return false
		}
		_, had := md["managedFields"]
		delete(md, "managedFields")
		return had
	}
	changed := drop(obj)
	if items, ok := obj["items"].([]any); ok {
		for _, it := range items {
			if o, ok := it.(map[string]any); ok && drop(o) {
				changed = true
			}
		}
	}
	if !changed {
		return raw
	}
	out, err := json.Marshal(obj)
	if err != nil {
		return raw
	}
	return out
}

// LogResponseStatus records the Status a failed (or Status-answering)
// request returned, as kube-apiserver copies its bounded fields.
func (r *Record) LogResponseStatus(st *metav1.Status) {
	r.Update(func(ev *auditv1.Event) {
		ev.ResponseStatus = &metav1.Status{
			Status: st.Status, Message: st.Message, Reason: st.Reason,
			Details: st.Details, Code: st.Code,
		}
	})
}

// SetResponseCode records the HTTP status code on the response's first
// write; it reports whether this call was the first.
func (r *Record) SetResponseCode(code int) bool {
	first := false
	r.Update(func(ev *auditv1.Event) {
		if r.codeSet {
			return
		}
		r.codeSet, first = true, true
		if ev.ResponseStatus == nil {
			ev.ResponseStatus = &metav1.Status{}
		}
		ev.ResponseStatus.Code = int32(code)
	})
	return first
}

// HasResponseStatus reports whether a status was recorded.
func (r *Record) HasResponseStatus() bool {
	has := false
	r.Update(func(ev *auditv1.Event) { has = ev.ResponseStatus != nil })
	return has
}

// ProcessStage sends a copy of the event at stage to the sink, unless the
// policy omits the stage.
func (r *Record) ProcessStage(stage auditv1.Stage) {
	if r == nil || r.sink == nil {
		return
	}
	for _, s := range r.cfg.OmitStages {
		if s == stage {
			return
		}
	}
	r.mu.Lock()
	ev := r.ev // the sink may hold the copy while the request goes on
	ev.Stage = stage
	if stage == auditv1.StageRequestReceived {
		ev.StageTimestamp = ev.RequestReceivedTimestamp
	} else {
		ev.StageTimestamp = metav1.NewMicroTime(time.Now())
	}
	if ev.ObjectRef != nil {
		ref := *ev.ObjectRef
		ev.ObjectRef = &ref
	}
	if ev.ResponseStatus != nil {
		st := *ev.ResponseStatus
		ev.ResponseStatus = &st
	}
	if ev.Annotations != nil {
		a := make(map[string]string, len(ev.Annotations))
		for k, v := range ev.Annotations {
			a[k] = v
		}
		ev.Annotations = a
	}
	r.mu.Unlock()
	r.sink.Process(&ev)
}

type recordKey struct{}

// WithRecord stores r in ctx.
func WithRecord(ctx context.Context, r *Record) context.Context {
	return context.WithValue(ctx, recordKey{}, r)
}

// From returns the request's record, or nil when it is not audited.
func From(ctx context.Context) *Record {
	r, _ := ctx.Value(recordKey{}).(*Record)
	return r
}

// AddAnnotations records annotations on the request's event, if any.
func AddAnnotations(ctx context.Context, annotations map[string]string) {
	r := From(ctx)
	if r == nil {
		return
	}
	for k, v := range annotations {
		r.AddAnnotation(k, v)
	}
}
