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
	var mconfigs []configView
	for _, c := range ms {
		v := configView{key: "m/" + string(c.UID), name: c.Name, resourceVersion: c.ResourceVersion}
		for _, w := range c.Webhooks {
			v.webhooks = append(v.webhooks, mutatingFields(w))
		}
		mconfigs = append(mconfigs, v)
	}
	s.mutating = s.collect(mconfigs, true, seen)
	vs, _ := s.validatingLister.List(labels.Everything())
	var vconfigs []configView
	for _, c := range vs {
		v := configView{key: "v/" + string(c.UID), name: c.Name, resourceVersion: c.ResourceVersion}
		for _, w := range c.Webhooks {
			v.webhooks = append(v.webhooks, validatingFields(w))
		}
		vconfigs = append(vconfigs, v)
	}
	s.validating = s.collect(vconfigs, false, seen)
	for key := range s.byConfig {
		if !seen[key] {
			delete(s.byConfig, key)
		}
	}
	return s.mutating, s.validating
}

// configView is what source needs of either kind of configuration.
type configView struct {
	key, name, resourceVersion string
	webhooks                   []webhookFields
}

// collect orders configurations by name and returns their hooks, reusing
// those of configurations whose resourceVersion did not change.
func (s *source) collect(configs []configView, mutating bool, seen map[string]bool) []*hook {
	sort.Slice(configs, func(i, j int) bool { return configs[i].name < configs[j].name })
	var out []*hook
	for _, c := range configs {
		seen[c.key] = true
		ch, ok := s.byConfig[c.key]
		if !ok || ch.resourceVersion != c.resourceVersion {
			ch = configHooks{resourceVersion: c.resourceVersion}
			for _, w := range c.webhooks {
				ch.hooks = append(ch.hooks, newHook(c.name, mutating, w))
			}
			s.byConfig[c.key] = ch
		}
		out = append(out, ch.hooks...)
	}
	return out
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
