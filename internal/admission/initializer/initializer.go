// Package initializer revives Kubernetes' alpha initializers (removed in
// 1.14) for today's clients. An InitializerConfiguration
// (admission.trellis.dev/v1alpha1) names initializers and the resources
// they apply to; a matching create gets them as pending, in order. While
// any is pending the object is hidden from reads that do not ask for
// uninitialized objects, and its creator waits. The first pending
// initializer finishes by updating the object with the done annotation
// set to its name, or fails it with the failed annotation (a Status): the
// object is then deleted and the create fails with that Status.
//
// Today's ObjectMeta has no initializers field, so the pending list is an
// annotation the server owns: whatever a client sends for it is replaced
// by the stored value, and an update from a typed client that never saw
// it cannot clear it.
package initializer

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"github.com/trellis-project/trellis/internal/admission"
)

// The annotations of the contract.
const (
	// PendingAnnotation lists the pending initializers, comma-separated,
	// first to act first. Server-owned.
	PendingAnnotation = "initializers.trellis.dev/pending"
	// DoneAnnotation, set by the first pending initializer to its own
	// name in an update, removes it from the pending list.
	DoneAnnotation = "initializers.trellis.dev/done"
	// FailedAnnotation, set by the first pending initializer to a
	// metav1.Status in JSON (or a plain message), fails the
	// initialization: the object is deleted and its create fails with
	// that Status (403 unless the Status says otherwise).
	FailedAnnotation = "initializers.trellis.dev/failed"
	// IncludeUninitializedParam on get, list, watch and create shows
	// objects still being initialized (and makes a create return at once).
	IncludeUninitializedParam = "includeUninitialized"
)

// ConfigurationResource is where InitializerConfigurations are served.
var ConfigurationResource = schema.GroupVersionResource{Group: "admission.trellis.dev", Version: "v1alpha1", Resource: "initializerconfigurations"}

// pendingKey is what Pending searches for first: the annotation key
// without its opening quote. bytes.Index scans for a pattern's first byte,
// and '"', the commonest byte in JSON, made the search of an 8 KB
// Deployment about 40 times slower (18 µs), which every list paid per
// object.
var pendingKey = []byte(PendingAnnotation + `"`)

// Pending reports whether stored bytes of an object have initializers
// pending. The byte search keeps the common case (no initializers) cheap.
func Pending(raw []byte) bool {
	if !bytes.Contains(raw, pendingKey) {
		return false
	}
	var m struct {
		Metadata struct {
			Annotations map[string]string `json:"annotations"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return false
	}
	return m.Metadata.Annotations[PendingAnnotation] != ""
}

// PendingOf returns obj's pending initializers.
func PendingOf(obj runtime.Object) []string {
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil
	}
	return split(m.GetAnnotations()[PendingAnnotation])
}

// FailureOf returns the Status an initializer failed obj with.
func FailureOf(obj runtime.Object) (*apierrors.StatusError, bool) {
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil, false
	}
	v, ok := m.GetAnnotations()[FailedAnnotation]
	if !ok {
		return nil, false
	}
	var st metav1.Status
	if err := json.Unmarshal([]byte(v), &st); err != nil || st.Message == "" && st.Reason == "" {
		st = metav1.Status{Message: v}
	}
	st.TypeMeta = metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}
	st.Status = metav1.StatusFailure
	if st.Code < http.StatusBadRequest {
		st.Code = http.StatusForbidden
		if st.Reason == "" {
			st.Reason = metav1.StatusReasonForbidden
		}
	}
	return &apierrors.StatusError{ErrStatus: st}, true
}

func split(v string) []string {
	if v == "" {
		return nil
	}
	return strings.Split(v, ",")
}

// Plugin assigns pending initializers on create and guards the pending
// list on update. It runs first in the admission chain, so webhooks and
// policies see the list the object will be stored with.
type Plugin struct {
	configs cache.GenericLister
}

var _ admission.Mutator = (*Plugin)(nil)

// New reads configurations through an informer on ConfigurationResource.
func New(configs cache.GenericLister) *Plugin { return &Plugin{configs: configs} }

// Handles creates and updates.
func (p *Plugin) Handles(op admission.Operation) bool {
	return op == admission.Create || op == admission.Update
}

// Admit sets or keeps the pending list.
func (p *Plugin) Admit(_ context.Context, a *admission.Attributes) error {
	if a.Subresource != "" || a.Object == nil {
		return nil
	}
	m, err := meta.Accessor(a.Object)
	if err != nil {
		return nil
	}
	annotations := m.GetAnnotations()
	if a.Operation == admission.Create {
		delete(annotations, DoneAnnotation)
		delete(annotations, FailedAnnotation)
		delete(annotations, PendingAnnotation)
		if names := p.initializersFor(a); len(names) > 0 {
			if annotations == nil {
				annotations = map[string]string{}
			}
			annotations[PendingAnnotation] = strings.Join(names, ",")
		}
		setAnnotations(m, annotations)
		return nil
	}
	pending := PendingOf(a.OldObject)
	done, doneSet := annotations[DoneAnnotation]
	_, failed := annotations[FailedAnnotation]
	delete(annotations, DoneAnnotation)
	delete(annotations, PendingAnnotation)
	if len(pending) == 0 {
		// Initialized objects stay initialized.
		delete(annotations, FailedAnnotation)
		setAnnotations(m, annotations)
		if doneSet {
			return apierrors.NewBadRequest(fmt.Sprintf("%s is initialized: no initializer is pending", a.Name))
		}
		return nil
	}
	if failed {
		// The handler stores the failure (still hidden), then deletes.
		annotations[PendingAnnotation] = strings.Join(pending, ",")
		setAnnotations(m, annotations)
		return nil
	}
	if doneSet {
		if done != pending[0] {
			return apierrors.NewForbidden(a.Resource.GroupResource(), a.Name,
				fmt.Errorf("initializer %q may not finish before %q, the first pending initializer", done, pending[0]))
		}
		pending = pending[1:]
	}
	if len(pending) > 0 {
		if annotations == nil {
			annotations = map[string]string{}
		}
		annotations[PendingAnnotation] = strings.Join(pending, ",")
	}
	setAnnotations(m, annotations)
	return nil
}

func setAnnotations(m metav1.Object, annotations map[string]string) {
	if len(annotations) == 0 {
		annotations = nil
	}
	m.SetAnnotations(annotations)
}

// initializersFor lists the initializers whose rules match a create:
// configurations by name, initializers in their order, each name once.
func (p *Plugin) initializersFor(a *admission.Attributes) []string {
	if p.configs == nil {
		return nil
	}
	objs, err := p.configs.List(labels.Everything())
	if err != nil || len(objs) == 0 {
		return nil
	}
	var configs []*unstructured.Unstructured
	for _, o := range objs {
		if u, ok := o.(*unstructured.Unstructured); ok {
			configs = append(configs, u)
		}
	}
	sort.Slice(configs, func(i, j int) bool { return configs[i].GetName() < configs[j].GetName() })
	var names []string
	seen := map[string]bool{}
	for _, c := range configs {
		var cfg configuration
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(c.Object, &cfg); err != nil {
			continue
		}
		for _, in := range cfg.Initializers {
			if seen[in.Name] || !in.matches(a.Resource) {
				continue
			}
			seen[in.Name] = true
			names = append(names, in.Name)
		}
	}
	return names
}

type configuration struct {
	Initializers []initializerSpec `json:"initializers"`
}

type initializerSpec struct {
	Name  string `json:"name"`
	Rules []rule `json:"rules"`
}

type rule struct {
	APIGroups   []string `json:"apiGroups"`
	APIVersions []string `json:"apiVersions"`
	Resources   []string `json:"resources"`
}

func (in initializerSpec) matches(gvr schema.GroupVersionResource) bool {
	for _, r := range in.Rules {
		if anyOf(r.APIGroups, gvr.Group) && anyOf(r.APIVersions, gvr.Version) && anyOf(r.Resources, gvr.Resource) {
			return true
		}
	}
	return false
}

func anyOf(values []string, v string) bool {
	for _, x := range values {
		if x == "*" || x == v {
			return true
		}
	}
	return false
}

// ConfigurationCRD defines InitializerConfiguration: cluster-scoped, a
// list of initializers each with a fully qualified name and rules.
func ConfigurationCRD() *apiextensionsv1.CustomResourceDefinition {
	strings := func() apiextensionsv1.JSONSchemaProps {
		return apiextensionsv1.JSONSchemaProps{Type: "array", Items: &apiextensionsv1.JSONSchemaPropsOrArray{Schema: &apiextensionsv1.JSONSchemaProps{Type: "string"}}}
	}
	ruleSchema := apiextensionsv1.JSONSchemaProps{Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{
		"apiGroups": strings(), "apiVersions": strings(), "resources": strings(),
	}}
	initializer := apiextensionsv1.JSONSchemaProps{
		Type:     "object",
		Required: []string{"name"},
		Properties: map[string]apiextensionsv1.JSONSchemaProps{
			"name":  {Type: "string", Pattern: `^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?){2,}$`},
			"rules": {Type: "array", Items: &apiextensionsv1.JSONSchemaPropsOrArray{Schema: &ruleSchema}},
		},
	}
	return &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "initializerconfigurations.admission.trellis.dev"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: ConfigurationResource.Group,
			Names: apiextensionsv1.CustomResourceDefinitionNames{
				Plural: "initializerconfigurations", Singular: "initializerconfiguration",
				Kind: "InitializerConfiguration", ListKind: "InitializerConfigurationList",
			},
			Scope: apiextensionsv1.ClusterScoped,
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name: ConfigurationResource.Version, Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object",
					Properties: map[string]apiextensionsv1.JSONSchemaProps{
						"apiVersion":   {Type: "string"},
						"kind":         {Type: "string"},
						"metadata":     {Type: "object"},
						"initializers": {Type: "array", Items: &apiextensionsv1.JSONSchemaPropsOrArray{Schema: &initializer}, XListType: ptr.To("map"), XListMapKeys: []string{"name"}},
					},
				}},
			}},
		},
	}
}
