package policy

import (
	"sort"
	"sync"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/tools/cache"
)

// definition is what dispatch needs of a policy of either kind.
type definition struct {
	name             string
	paramKind        *admissionregistrationv1.ParamKind
	matchConstraints *admissionregistrationv1.MatchResources
	failurePolicy    *admissionregistrationv1.FailurePolicyType
}

// failOpen reports whether errors are ignored (failurePolicy Ignore);
// an unset policy fails closed.
func (d *definition) failOpen() bool {
	return d.failurePolicy != nil && *d.failurePolicy == admissionregistrationv1.Ignore
}

// binding is what dispatch needs of a binding of either kind.
type binding struct {
	name           string
	policyName     string
	paramRef       *admissionregistrationv1.ParamRef
	matchResources *admissionregistrationv1.MatchResources
	actions        []admissionregistrationv1.ValidationAction // validating bindings only
}

// hook is a policy with a compiled evaluator E and the bindings that
// refer to it. A policy without bindings has no hook: it does nothing.
type hook[E any] struct {
	def       definition
	evaluator E
	bindings  []binding
}

// kindFuncs read one kind of policy and binding out of an informer's
// objects and compile the policy.
type kindFuncs[E any] struct {
	definition func(obj any) (definition, bool)
	compile    func(obj any) E
	binding    func(obj any) (binding, bool)
}

// source keeps the hooks of one kind, rebuilding them only after a policy
// or binding changed, and compiling a policy again only after it changed.
// Hooks are ordered by policy name, their bindings by binding name, so
// that the first denial is the same on every request (kube-apiserver's
// order is that of a map).
type source[E any] struct {
	policies, bindings cache.SharedIndexInformer
	funcs              kindFuncs[E]

	mu       sync.Mutex
	dirty    bool
	hooks    []*hook[E]
	compiled map[string]compiledPolicy[E] // by UID
}

type compiledPolicy[E any] struct {
	resourceVersion string
	evaluator       E
}

func newSource[E any](policies, bindings cache.SharedIndexInformer, funcs kindFuncs[E]) *source[E] {
	s := &source[E]{policies: policies, bindings: bindings, funcs: funcs, dirty: true, compiled: map[string]compiledPolicy[E]{}}
	mark := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { s.markDirty() },
		UpdateFunc: func(any, any) { s.markDirty() },
		DeleteFunc: func(any) { s.markDirty() },
	}
	policies.AddEventHandler(mark)
	bindings.AddEventHandler(mark)
	return s
}

func (s *source[E]) markDirty() {
	s.mu.Lock()
	s.dirty = true
	s.mu.Unlock()
}

// HasSynced reports whether both informers have listed.
func (s *source[E]) HasSynced() bool {
	return s.policies.HasSynced() && s.bindings.HasSynced()
}

// current returns the hooks; the slice is shared and must not be changed.
func (s *source[E]) current() []*hook[E] {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.dirty {
		return s.hooks
	}
	s.dirty = false
	byPolicy := map[string][]binding{}
	for _, obj := range s.bindings.GetStore().List() {
		if b, ok := s.funcs.binding(obj); ok {
			byPolicy[b.policyName] = append(byPolicy[b.policyName], b)
		}
	}
	seen := map[string]bool{}
	hooks := make([]*hook[E], 0, len(byPolicy))
	for _, obj := range s.policies.GetStore().List() {
		m, err := meta.Accessor(obj)
		if err != nil {
			continue
		}
		uid := string(m.GetUID())
		seen[uid] = true
		def, ok := s.funcs.definition(obj)
		bs := byPolicy[def.name]
		if !ok || len(bs) == 0 {
			continue
		}
		c, ok := s.compiled[uid]
		if !ok || c.resourceVersion != m.GetResourceVersion() {
			c = compiledPolicy[E]{resourceVersion: m.GetResourceVersion(), evaluator: s.funcs.compile(obj)}
			s.compiled[uid] = c
		}
		sort.Slice(bs, func(i, j int) bool { return bs[i].name < bs[j].name })
		hooks = append(hooks, &hook[E]{def: def, evaluator: c.evaluator, bindings: bs})
	}
	for uid := range s.compiled {
		if !seen[uid] {
			delete(s.compiled, uid)
		}
	}
	sort.Slice(hooks, func(i, j int) bool { return hooks[i].def.name < hooks[j].def.name })
	s.hooks = hooks
	return hooks
}
