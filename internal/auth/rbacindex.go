package auth

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apiserver/pkg/authentication/serviceaccount"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/client-go/tools/cache"
	rbacregistryvalidation "k8s.io/kubernetes/pkg/registry/rbac/validation"
)

// Upstream's rule resolver lists every ClusterRoleBinding, and every
// RoleBinding of the request's namespace, and tests each against the user:
// with a thousand bindings that is a thousand subject comparisons per
// request. The binding index answers "which bindings name this user, one
// of its groups, or its service account" with a few map lookups, and the
// resolver then runs unchanged over just those bindings. The index is a
// filter that may only over-approximate (upstream's own subject matching
// still decides), so semantics stay upstream's.
//
// The index is rebuilt lazily, on the first decision after a binding
// changed: Invalidate, called from the binding informers' event handlers,
// bumps a generation, and an index built for an older generation is not
// used. Roles and ClusterRoles are not indexed; the resolver reads them by
// name from the listers, as upstream's does.

// bindingIndex maps a subject key to the bindings that name it.
type bindingIndex struct {
	gen        uint64
	cluster    map[subjectKey][]*rbacv1.ClusterRoleBinding
	namespaced map[namespacedKey][]*rbacv1.RoleBinding
}

// subjectKey is a user name (service accounts by their user name,
// system:serviceaccount:<ns>:<name>) or a group name. A struct, not a
// prefixed string, so that looking one up allocates nothing.
type subjectKey struct {
	group bool
	name  string
}

type namespacedKey struct {
	namespace string
	subject   subjectKey
}

// keyOf is the key a binding subject is found under; ok is false for a
// subject that can never apply (as upstream's appliesToUser decides).
// namespace is the binding's namespace, the default for service accounts.
func keyOf(s rbacv1.Subject, namespace string) (k subjectKey, ok bool) {
	switch s.Kind {
	case rbacv1.UserKind:
		return subjectKey{name: s.Name}, true
	case rbacv1.GroupKind:
		return subjectKey{group: true, name: s.Name}, true
	case rbacv1.ServiceAccountKind:
		ns := namespace
		if s.Namespace != "" {
			ns = s.Namespace
		}
		if ns == "" {
			return subjectKey{}, false
		}
		return subjectKey{name: serviceaccount.MakeUsername(ns, s.Name)}, true
	}
	return subjectKey{}, false
}

func buildBindingIndex(gen uint64, l RBACListers) (*bindingIndex, error) {
	crbs, err := l.ClusterRoleBindings.List(labels.Everything())
	if err != nil {
		return nil, err
	}
	rbs, err := l.RoleBindings.List(labels.Everything())
	if err != nil {
		return nil, err
	}
	idx := &bindingIndex{
		gen:        gen,
		cluster:    make(map[subjectKey][]*rbacv1.ClusterRoleBinding),
		namespaced: make(map[namespacedKey][]*rbacv1.RoleBinding),
	}
	for _, b := range crbs {
		for _, k := range bindingKeys(b.Subjects, "") {
			idx.cluster[k] = append(idx.cluster[k], b)
		}
	}
	for _, b := range rbs {
		for _, k := range bindingKeys(b.Subjects, b.Namespace) {
			nk := namespacedKey{b.Namespace, k}
			idx.namespaced[nk] = append(idx.namespaced[nk], b)
		}
	}
	return idx, nil
}

// bindingKeys are the distinct keys of a binding's subjects, so that a
// binding is listed once per key.
func bindingKeys(subjects []rbacv1.Subject, namespace string) []subjectKey {
	keys := make([]subjectKey, 0, len(subjects))
	for _, s := range subjects {
		if k, ok := keyOf(s, namespace); ok && !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	return keys
}

// candidates are the bindings that may apply to u: those filed under its
// name or one of its groups, each once.
func (idx *bindingIndex) candidates(u user.Info, namespace string) *subjectBindings {
	c := &subjectBindings{}
	c.add(idx, subjectKey{name: u.GetName()}, namespace)
	for _, g := range u.GetGroups() {
		c.add(idx, subjectKey{group: true, name: g}, namespace)
	}
	return c
}

// add appends the bindings filed under k that are not there yet.
func (c *subjectBindings) add(idx *bindingIndex, k subjectKey, namespace string) {
	for _, b := range idx.cluster[k] {
		if !slices.Contains(c.cluster, b) {
			c.cluster = append(c.cluster, b)
		}
	}
	if namespace == "" {
		return
	}
	for _, b := range idx.namespaced[namespacedKey{namespace, k}] {
		if !slices.Contains(c.namespaced, b) {
			c.namespaced = append(c.namespaced, b)
		}
	}
}

// subjectBindings are one user's candidate bindings, served to upstream's
// resolver as its binding listers.
type subjectBindings struct {
	cluster    []*rbacv1.ClusterRoleBinding
	namespaced []*rbacv1.RoleBinding
}

func (s *subjectBindings) ListClusterRoleBindings(context.Context) ([]*rbacv1.ClusterRoleBinding, error) {
	return s.cluster, nil
}

// ListRoleBindings returns the candidates of the namespace the candidates
// were chosen for; the resolver asks only for that one.
func (s *subjectBindings) ListRoleBindings(context.Context, string) ([]*rbacv1.RoleBinding, error) {
	return s.namespaced, nil
}

// indexState is the RBAC authorizer's current index and its generation.
type indexState struct {
	gen   atomic.Uint64
	index atomic.Pointer[bindingIndex]
	build sync.Mutex // one rebuild at a time
}

// Invalidate discards the binding index; the next decision rebuilds it
// from the listers. Call it after any RoleBinding or ClusterRoleBinding
// changes (InvalidateOn does, from informer events).
func (r *RBAC) Invalidate() { r.state.gen.Add(1) }

// InvalidateOn registers r to be invalidated on every event of the
// informers, which must be those of RoleBindings and ClusterRoleBindings
// behind r's listers. Handlers run after the informer's cache holds the
// change.
func (r *RBAC) InvalidateOn(informers ...cache.SharedInformer) error {
	h := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { r.Invalidate() },
		UpdateFunc: func(any, any) { r.Invalidate() },
		DeleteFunc: func(any) { r.Invalidate() },
	}
	for _, inf := range informers {
		if _, err := inf.AddEventHandler(h); err != nil {
			return err
		}
	}
	return nil
}

// currentIndex returns an index of the current generation, building one
// if needed; nil if the listers failed (the caller then scans).
func (r *RBAC) currentIndex() *bindingIndex {
	st := &r.state
	gen := st.gen.Load()
	if idx := st.index.Load(); idx != nil && idx.gen == gen {
		return idx
	}
	st.build.Lock()
	defer st.build.Unlock()
	// The generation is read before listing: a change that lands while
	// the index is built bumps it again, and the next decision rebuilds.
	gen = st.gen.Load()
	if idx := st.index.Load(); idx != nil && idx.gen == gen {
		return idx
	}
	idx, err := buildBindingIndex(gen, r.listers)
	if err != nil {
		return nil
	}
	st.index.Store(idx)
	return idx
}

// resolverFor is upstream's rule resolver over the bindings that may apply
// to u in namespace (and cluster-wide).
func (r *RBAC) resolverFor(u user.Info, namespace string) *rbacregistryvalidation.DefaultRuleResolver {
	idx := r.currentIndex()
	if idx == nil {
		return r.resolver
	}
	c := idx.candidates(u, namespace)
	return rbacregistryvalidation.NewDefaultRuleResolver(r.getters, c, r.getters, c)
}
