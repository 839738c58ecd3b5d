// Package admission is the stage of the request path between
// authorization and storage where policy runs: mutating admission changes
// the object a write is about to store, validating admission may refuse
// it. The handler calls one Interface twice per write; the plugins behind
// it (webhooks, CEL policies, initializers) decide what applies.
package admission

import (
	"context"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/trellis-project/trellis/internal/auth"
	"github.com/trellis-project/trellis/internal/resource"
)

// Operation is what a request does to an object, as AdmissionReview
// names it.
type Operation string

const (
	Create  Operation = "CREATE"
	Update  Operation = "UPDATE"
	Delete  Operation = "DELETE"
	Connect Operation = "CONNECT"
)

// Attributes describe one write for admission. Object is of the request's
// version (a typed object for built-in kinds, unstructured for custom
// resources); mutating plugins replace it.
type Attributes struct {
	Operation   Operation
	Kind        schema.GroupVersionKind
	Resource    schema.GroupVersionResource
	Subresource string
	Namespace   string
	Name        string
	Object      runtime.Object
	OldObject   runtime.Object
	// Options are the request's CreateOptions, UpdateOptions,
	// PatchOptions or DeleteOptions (meta.k8s.io/v1).
	Options runtime.Object
	DryRun  bool
	User    *auth.User

	// Descriptor serves the request's resource; Versions finds the
	// descriptors of its other versions (for matchPolicy Equivalent).
	Descriptor *resource.Descriptor
	Versions   VersionLookup
	// Decode turns JSON of d's version (the request's, or an equivalent
	// one) into an object as the handler would have decoded it
	// (defaulted, unknown fields pruned). Mutating plugins use it after
	// patching.
	Decode func(d *resource.Descriptor, json []byte) (runtime.Object, error)

	mu               sync.Mutex
	warnings         []string
	auditAnnotations map[string]string
}

// VersionLookup lists the descriptors that store the same objects as d
// (other versions of one resource).
type VersionLookup interface {
	Equivalents(d *resource.Descriptor) []*resource.Descriptor
}

// AddWarning queues a Warning header for the response. Safe for
// concurrent use (validating webhooks run in parallel).
func (a *Attributes) AddWarning(msg string) {
	a.mu.Lock()
	a.warnings = append(a.warnings, msg)
	a.mu.Unlock()
}

// Warnings returns the queued warnings.
func (a *Attributes) Warnings() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.warnings...)
}

// AddAuditAnnotation records an annotation for the audit event; the first
// value for a key wins.
func (a *Attributes) AddAuditAnnotation(key, value string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.auditAnnotations == nil {
		a.auditAnnotations = map[string]string{}
	}
	if _, ok := a.auditAnnotations[key]; !ok {
		a.auditAnnotations[key] = value
	}
}

// AuditAnnotations returns the recorded annotations.
func (a *Attributes) AuditAnnotations() map[string]string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string]string, len(a.auditAnnotations))
	for k, v := range a.auditAnnotations {
		out[k] = v
	}
	return out
}

// ObjectMeta returns the labels of Object, or OldObject when Object is nil.
func (a *Attributes) ObjectMeta() metav1.Object {
	for _, o := range []runtime.Object{a.Object, a.OldObject} {
		if o == nil {
			continue
		}
		if m, ok := o.(metav1.Object); ok {
			return m
		}
	}
	return nil
}

// Interface is what the handler calls: Admit may change a.Object,
// Validate may only refuse. Errors are Kubernetes Status errors.
type Interface interface {
	Admit(ctx context.Context, a *Attributes) error
	Validate(ctx context.Context, a *Attributes) error
}

// Plugin is one member of a Chain; it implements either phase or both.
type Plugin interface {
	// Handles reports whether the plugin cares about op at all.
	Handles(op Operation) bool
}

// Mutator is a plugin with a mutating phase.
type Mutator interface {
	Plugin
	Admit(ctx context.Context, a *Attributes) error
}

// Validator is a plugin with a validating phase.
type Validator interface {
	Plugin
	Validate(ctx context.Context, a *Attributes) error
}

// Chain runs plugins in order: every mutator, then (on Validate) every
// validator. The first error ends the phase.
type Chain []Plugin

func (c Chain) Admit(ctx context.Context, a *Attributes) error {
	for _, p := range c {
		if m, ok := p.(Mutator); ok && p.Handles(a.Operation) {
			if err := m.Admit(ctx, a); err != nil {
				return err
			}
		}
	}
	return nil
}

func (c Chain) Validate(ctx context.Context, a *Attributes) error {
	for _, p := range c {
		if v, ok := p.(Validator); ok && p.Handles(a.Operation) {
			if err := v.Validate(ctx, a); err != nil {
				return err
			}
		}
	}
	return nil
}
