package webhook

import (
	"sort"
	"sync"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/labels"
	admissionlisters "k8s.io/client-go/listers/admissionregistration/v1"
	"k8s.io/client-go/tools/cache"
)

// source keeps the webhooks of every configuration, ordered as
// kube-apiserver calls them: configurations by name, webhooks in the order
// their configuration lists them. It rebuilds the list only after a
// configuration changed, and keeps the hooks (with their clients and
// compiled conditions) of configurations that did not.
type source struct {
	mutatingLister   admissionlisters.MutatingWebhookConfigurationLister
	validatingLister admissionlisters.ValidatingWebhookConfigurationLister

	mu         sync.Mutex
	dirty      bool
	byConfig   map[string]configHooks // "m/<uid>" or "v/<uid>"
	mutating   []*hook
	validating []*hook
}

type configHooks struct {
	resourceVersion string
	hooks           []*hook
}

func newSource(m cache.SharedIndexInformer, v cache.SharedIndexInformer) *source {
	s := &source{
		mutatingLister:   admissionlisters.NewMutatingWebhookConfigurationLister(m.GetIndexer()),
		validatingLister: admissionlisters.NewValidatingWebhookConfigurationLister(v.GetIndexer()),
		byConfig:         map[string]configHooks{},
		dirty:            true,
	}
	mark := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { s.markDirty() },
		UpdateFunc: func(any, any) { s.markDirty() },
		DeleteFunc: func(any) { s.markDirty() },
	}
	m.AddEventHandler(mark)
	v.AddEventHandler(mark)
	return s
}

func (s *source) markDirty() {
	s.mu.Lock()
	s.dirty = true
	s.mu.Unlock()
}

// hooks returns the current mutating and validating webhooks.
func (s *source) hooks() (mutating, validating []*hook) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.dirty {
		return s.mutating, s.validating
	}
	s.dirty = false
	seen := map[string]bool{}
	ms, _ := s.mutatingLister.List(labels.Everything())
	sort.Slice(ms, func(i, j int) bool { return ms[i].Name < ms[j].Name })
	s.mutating = s.mutating[:0:0]
	for _, c := range ms {
		key := "m/" + string(c.UID)
		seen[key] = true
		ch, ok := s.byConfig[key]
		if !ok || ch.resourceVersion != c.ResourceVersion {
			ch = configHooks{resourceVersion: c.ResourceVersion}
			for _, w := range c.Webhooks {
				ch.hooks = append(ch.hooks, newHook(c.Name, true, mutatingFields(w)))
			}
			s.byConfig[key] = ch
		}
		s.mutating = append(s.mutating, ch.hooks...)
	}
	vs, _ := s.validatingLister.List(labels.Everything())
	sort.Slice(vs, func(i, j int) bool { return vs[i].Name < vs[j].Name })
	s.validating = s.validating[:0:0]
	for _, c := range vs {
		key := "v/" + string(c.UID)
		seen[key] = true
		ch, ok := s.byConfig[key]
		if !ok || ch.resourceVersion != c.ResourceVersion {
			ch = configHooks{resourceVersion: c.ResourceVersion}
			for _, w := range c.Webhooks {
				ch.hooks = append(ch.hooks, newHook(c.Name, false, validatingFields(w)))
			}
			s.byConfig[key] = ch
		}
		s.validating = append(s.validating, ch.hooks...)
	}
	for key := range s.byConfig {
		if !seen[key] {
			delete(s.byConfig, key)
		}
	}
	return s.mutating, s.validating
}

func mutatingFields(w admissionregistrationv1.MutatingWebhook) webhookFields {
	f := webhookFields{
		Name: w.Name, ClientConfig: w.ClientConfig, Rules: w.Rules, FailurePolicy: w.FailurePolicy,
		MatchPolicy: w.MatchPolicy, NamespaceSelector: w.NamespaceSelector, ObjectSelector: w.ObjectSelector,
		SideEffects: w.SideEffects, TimeoutSeconds: w.TimeoutSeconds,
		AdmissionReviewVersions: w.AdmissionReviewVersions, MatchConditions: w.MatchConditions,
		ReinvocationPolicy: w.ReinvocationPolicy,
	}
	return f
}

func validatingFields(w admissionregistrationv1.ValidatingWebhook) webhookFields {
	return webhookFields{
		Name: w.Name, ClientConfig: w.ClientConfig, Rules: w.Rules, FailurePolicy: w.FailurePolicy,
		MatchPolicy: w.MatchPolicy, NamespaceSelector: w.NamespaceSelector, ObjectSelector: w.ObjectSelector,
		SideEffects: w.SideEffects, TimeoutSeconds: w.TimeoutSeconds,
		AdmissionReviewVersions: w.AdmissionReviewVersions, MatchConditions: w.MatchConditions,
	}
}
