package builtin

import (
	"context"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/apiserver/pkg/registry/rest"

	"github.com/trellis-project/trellis/internal/resource"
)

// Register adds the built-in kinds to reg.
func Register(reg *resource.Registry) {
	for _, d := range Descriptors() {
		reg.Add(d)
	}
}

// Descriptors returns a fresh descriptor for every built-in resource that
// kube-apiserver v1.37 stores, one per served group-version.
func Descriptors() []*resource.Descriptor {
	var out []*resource.Descriptor
	for _, group := range [][]kindDef{
		coreKinds(), admissionRegistrationKinds(), appsKinds(), autoscalingKinds(),
		batchKinds(), certificatesKinds(), coordinationKinds(), discoveryKinds(),
		eventsKinds(), flowcontrolKinds(), networkingKinds(), nodeKinds(), policyKinds(),
		rbacKinds(), draKinds(), schedulingKinds(), storageKinds(), storageMigrationKinds(),
		{customResourceDefinitions()},
	} {
		for _, k := range group {
			out = append(out, k.describe())
		}
	}
	return out
}

// kindDef is the data that tells one built-in resource from another.
// Zero fields take kube-apiserver's defaults.
type kindDef struct {
	gv         schema.GroupVersion
	kind       string
	resource   string
	short      []string
	categories []string
	namespaced bool
	// storage is the version objects are stored in (default: gv).
	storage schema.GroupVersion
	// prefix is the store prefix (default: "/registry/<resource>/", as
	// kube-apiserver's etcd layout).
	prefix string
	// verbs served on the main resource (default: resource.StandardVerbs).
	verbs []string
	// returnDeleted makes DELETE answer with the object, as upstream's
	// stores with ReturnDeletedObject do.
	returnDeleted bool

	rules rest.RESTCreateUpdateStrategy
	subs  map[string]rest.RESTUpdateStrategy
	// before runs ahead of the rules' prepare step (typed.before).
	before func(ctx context.Context, obj, old runtime.Object, sub string)
	// fields returns the kind's own selectable fields (upstream's
	// GetAttrs); fieldLabels are labels the served version spells
	// differently from them.
	fields      func(obj runtime.Object) fields.Set
	fieldLabels []string
	// table replaces upstream's printers for kinds kube-apiserver serves
	// with the default columns (NAME, CREATED AT).
	table rest.TableConvertor
	// scale serves /scale.
	scale func(obj runtime.Object) scaleFields
	// replicasPaths says where each group/version the kind was ever
	// served in keeps the replicas /scale writes (typed.ReplicasPaths).
	replicasPaths managedfields.ResourcePathMappings

	beginDelete       func(obj runtime.Object) bool
	pendingFinalizers func(obj runtime.Object) bool
	reset             map[string][]string
	specField         string
	// prepareServed has the rules' prepare steps take the served
	// (versioned) object rather than the internal one, sparing a
	// conversion each way; for kinds whose prepare steps are Trellis's
	// own hooks and whose objects are large (CRDs).
	prepareServed bool
	// statusLight returns a shallow copy of a served object without the
	// parts validation of a /status write never reads (a CRD's schemas),
	// so that write does not convert them to the internal version.
	statusLight func(obj runtime.Object) runtime.Object
	// json encodes and decodes the kind's objects faster than
	// encoding/json, with the same result (nil: encoding/json).
	json jsonCodec
}

// all is the category of `kubectl get all`.
var all = []string{"all"}

func (k kindDef) describe() *resource.Descriptor {
	storage := k.storage
	if storage == (schema.GroupVersion{}) {
		storage = k.gv
	}
	prefix := k.prefix
	if prefix == "" {
		prefix = "/registry/" + k.resource + "/"
	}
	verbs := k.verbs
	if verbs == nil {
		verbs = resource.StandardVerbs
	}
	t := &typed{
		served:            k.gv.WithKind(k.kind),
		storage:           storage,
		internal:          schema.GroupVersion{Group: k.gv.Group, Version: runtime.APIVersionInternal},
		rules:             rules{main: k.rules, subs: k.subs},
		before:            k.before,
		specField:         k.specField,
		fields:            k.fields,
		table:             k.table,
		scale:             k.scale,
		replicasPaths:     k.replicasPaths,
		beginDelete:       k.beginDelete,
		pendingFinalizers: k.pendingFinalizers,
		reset:             k.reset,
		prepareServed:     k.prepareServed,
		statusLight:       k.statusLight,
		json:              k.json,
	}
	if h := hooksOf(k.rules); h != nil {
		h.namespaced = k.namespaced
	}
	var subresources []string
	for sub, s := range k.subs {
		if h := hooksOf(s); h != nil {
			h.namespaced = k.namespaced
		}
		subresources = append(subresources, sub)
	}
	if k.scale != nil {
		subresources = append(subresources, "scale")
	}
	sort.Strings(subresources)
	t.selectable = t.selectableLabels(k.fieldLabels)
	return &resource.Descriptor{
		Group: k.gv.Group, Version: k.gv.Version,
		Kind: k.kind, ListKind: k.kind + "List",
		Resource: k.resource, Singular: strings.ToLower(k.kind),
		ShortNames: k.short, Categories: k.categories,
		Namespaced: k.namespaced, Verbs: verbs,
		StoragePrefix: prefix, StorageVersion: storage,
		Subresources:        subresources,
		ReturnDeletedObject: k.returnDeleted,
		AllowCreateOnUpdate: k.rules.AllowCreateOnUpdate(context.Background()),
		Strategy:            t,
	}
}

// attrs adapts an upstream GetAttrs function to typed.fields.
func attrs(get func(runtime.Object) (labels.Set, fields.Set, error)) func(runtime.Object) fields.Set {
	return func(obj runtime.Object) fields.Set {
		_, set, err := get(obj)
		if err != nil {
			return nil
		}
		return set
	}
}

// selectorScale is the /scale of kinds with a label selector and
// replicas in spec: upstream's Deployments, ReplicaSets, StatefulSets.
func selectorScale(replicas *int32, status int32, sel *metav1.LabelSelector) scaleFields {
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		s = labels.Nothing()
	}
	return scaleFields{replicas: replicas, status: status, selector: s.String()}
}
