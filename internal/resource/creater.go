package resource

import (
	"context"
	"sort"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// SubresourceCreater serves a subresource that is not a view of the
// stored object but a request of its own kind: the only verb is create,
// the body and the answer are of Kind, and nothing is stored under it
// (serviceaccounts/token takes and answers an authentication.k8s.io/v1
// TokenRequest). Discovery lists it with verb create and Kind.
type SubresourceCreater struct {
	// Kind of the request and the response.
	Kind schema.GroupVersionKind
	// New returns an empty request object of Kind.
	New func() runtime.Object
	// Create answers one request. Errors should be API statuses
	// (apierrors); others become 500s.
	Create func(ctx context.Context, req *CreateRequest) (runtime.Object, error)
}

// CreateRequest is one create on a SubresourceCreater.
type CreateRequest struct {
	// Namespace and Name of the parent object, from the URL.
	Namespace, Name string
	// Object is the decoded body, of the creater's Kind.
	Object runtime.Object
	// Warn sends a Warning header with the response.
	Warn func(msg string)
}

// WithCreater returns a copy of d that also serves sub through c. The
// copy is meant to replace d in the Registry, which keeps discovery
// current.
func (d *Descriptor) WithCreater(sub string, c *SubresourceCreater) *Descriptor {
	out := *d
	out.Creaters = make(map[string]*SubresourceCreater, len(d.Creaters)+1)
	for k, v := range d.Creaters {
		out.Creaters[k] = v
	}
	out.Creaters[sub] = c
	return &out
}

// CreaterNames lists the creater subresources in a stable order.
func (d *Descriptor) CreaterNames() []string {
	names := make([]string, 0, len(d.Creaters))
	for n := range d.Creaters {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
