package apiextensions

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apiextensionslisters "k8s.io/apiextensions-apiserver/pkg/client/listers/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/version"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/trellis-project/trellis/internal/budget"
	"github.com/trellis-project/trellis/internal/controller"
	"github.com/trellis-project/trellis/internal/fieldmanager"

	"github.com/trellis-project/trellis/internal/resource"
	"github.com/trellis-project/trellis/internal/resource/builtin"
	"github.com/trellis-project/trellis/internal/webhook"
)

// Controller keeps the registry in step with the CustomResourceDefinitions:
// it registers a descriptor per served version as soon as a CRD's names
// are accepted, reports NamesAccepted and Established, and on deletion
// removes every custom resource before letting the CRD go.
type Controller struct {
	client   apiextensionsclient.Interface
	dynamic  dynamic.Interface
	registry *resource.Registry

	informer cache.SharedIndexInformer
	lister   apiextensionslisters.CustomResourceDefinitionLister
	queue    workqueue.TypedRateLimitingInterface[string]

	mu     sync.Mutex
	served map[string][]schema.GroupVersionResource // CRD name → registered versions
	// registrations holds what each CRD's descriptors share.
	registrations map[string]*registration
	// pool bounds the memory of compiled schemas.
	pool *budget.Pool
	// fieldTypes, if set, is used to build a new CRD's managed-fields
	// type information while its schemas compile.
	fieldTypes *fieldmanager.BuiltinTypes
	// revision reads a stored CRD's resourceVersion (nil: over the API).
	revision    func(ctx context.Context, name string) (string, error)
	initialized chan struct{}
	// registeredAt is when each CRD's descriptors last changed, that is
	// when a new generation of it was first registered.
	registeredAt  map[string]time.Time
	registeredGen map[string]int64
	registeredKey map[string]string // generation and storedVersions last registered

	// webhooks holds each CRD's conversion webhook client.
	webhooks *webhookClients

	// observed holds CRDs the API handler has just stored, newer than
	// the informer's copies, until the lister holds them (a sync then
	// drops them).
	observedMu sync.Mutex
	observed   map[string]*apiextensionsv1.CustomResourceDefinition
	observedT  map[string]time.Time // when each was handed over

	// stash holds the version schemas the informer left out of each CRD,
	// until the next sync of that CRD.
	stashMu sync.Mutex
	stash   map[string]stashedSchemas

	// speculative holds the schemas of CRDs being validated, compiled
	// while the API validates and stores them, by CRD name, until a
	// registration takes them or they expire.
	specMu      sync.Mutex
	speculative map[string][]*speculation
}

// stashedSchemas are the version schemas (in spec.versions order) of one
// resourceVersion of a CRD.
type stashedSchemas struct {
	resourceVersion string
	schemas         []json.RawMessage // nil for a version without
}

// Option configures the controller.
type Option func(*options)

type options struct {
	resolver       webhook.ServiceResolver
	webhookTimeout time.Duration
	pool           *budget.Pool
	fieldTypes     *fieldmanager.BuiltinTypes
	revision       func(ctx context.Context, name string) (string, error)
}

// WithFieldTypes has the controller build a newly registered CRD's
// managed-fields type information at once, beside the rest of its
// registration, instead of in its first write.
func WithFieldTypes(builtin *fieldmanager.BuiltinTypes) Option {
	return func(o *options) { o.fieldTypes = builtin }
}

// WithStoredRevision gives the controller a cheap way to read the
// resourceVersion of a stored CRD (a NotFound error if there is none),
// used to confirm a CRD handed over by the API handler still exists.
func WithStoredRevision(f func(ctx context.Context, name string) (string, error)) Option {
	return func(o *options) { o.revision = f }
}

// WithSchemaPool keeps CRDs' compiled schemas in pool, which evicts the
// least recently used when full (nil: keep them all).
func WithSchemaPool(pool *budget.Pool) Option {
	return func(o *options) { o.pool = pool }
}

// WithServiceResolver resolves the Services that conversion webhooks name
// in clientConfig.service (see webhook.EndpointsResolver).
func WithServiceResolver(r webhook.ServiceResolver) Option {
	return func(o *options) { o.resolver = r }
}

// WithWebhookTimeout bounds each conversion webhook call
// (DefaultWebhookTimeout when zero).
func WithWebhookTimeout(d time.Duration) Option {
	return func(o *options) { o.webhookTimeout = d }
}

// NewController builds the controller; Run starts it.
func NewController(client apiextensionsclient.Interface, dyn dynamic.Interface, reg *resource.Registry, opts ...Option) *Controller {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	c := &Controller{
		client: client, dynamic: dyn, registry: reg,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](20*time.Millisecond, 2*time.Second),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "crd"}),
		served:        map[string][]schema.GroupVersionResource{},
		registrations: map[string]*registration{},
		pool:          o.pool,
		fieldTypes:    o.fieldTypes,
		revision:      o.revision,
		initialized:   make(chan struct{}),
		registeredAt:  map[string]time.Time{},
		registeredGen: map[string]int64{},
		registeredKey: map[string]string{},
		webhooks:      newWebhookClients(o.resolver, o.webhookTimeout),
		stash:         map[string]stashedSchemas{},
		speculative:   map[string][]*speculation{},
		observed:      map[string]*apiextensionsv1.CustomResourceDefinition{},
		observedT:     map[string]time.Time{},
	}
	// The informer keeps CRDs without their schemas and managed fields,
	// which are nearly all of a large CRD's bytes; registration compiles
	// the schemas and the pool keeps what they compile to.
	c.informer = cache.NewSharedIndexInformer(crdListWatch(client.ApiextensionsV1().RESTClient(), c.keepSchemas),
		&apiextensionsv1.CustomResourceDefinition{}, 0, cache.Indexers{})
	c.lister = apiextensionslisters.NewCustomResourceDefinitionLister(c.informer.GetIndexer())
	enqueue := func(obj any) {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		if crd, ok := obj.(*apiextensionsv1.CustomResourceDefinition); ok {
			c.queue.Add(crd.Name)
		}
	}
	c.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueue, UpdateFunc: func(_, o any) { enqueue(o) },
		DeleteFunc: func(obj any) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if crd, ok := obj.(*apiextensionsv1.CustomResourceDefinition); ok {
				c.observedMu.Lock()
				delete(c.observed, crd.Name)
				delete(c.observedT, crd.Name)
				c.observedMu.Unlock()
			}
			enqueue(obj)
		},
	})
	return c
}

// keepSchemas stashes the schemas of a CRD the informer decoded, for the
// CRD's next sync.
func (c *Controller) keepSchemas(name, rv string, schemas []json.RawMessage) {
	c.stashMu.Lock()
	c.stash[name] = stashedSchemas{resourceVersion: rv, schemas: schemas}
	c.stashMu.Unlock()
}

// restoreSchemas puts the version schemas back into crd, a copy of the
// informer's stripped object: from the stash when it holds crd's
// resourceVersion, else from the server.
func (c *Controller) restoreSchemas(ctx context.Context, crd *apiextensionsv1.CustomResourceDefinition) error {
	if hasSchemas(crd) {
		return nil // handed over by the API handler, whole
	}
	c.stashMu.Lock()
	st, ok := c.stash[crd.Name]
	c.stashMu.Unlock()
	if ok && st.resourceVersion == crd.ResourceVersion && len(st.schemas) == len(crd.Spec.Versions) {
		for i := range crd.Spec.Versions {
			raw := st.schemas[i]
			if raw == nil {
				continue
			}
			// Versions with the same schema share its decoded form.
			for j := range i {
				if bytes.Equal(st.schemas[j], raw) {
					crd.Spec.Versions[i].Schema = crd.Spec.Versions[j].Schema
					break
				}
			}
			if crd.Spec.Versions[i].Schema != nil {
				continue
			}
			v, err := builtin.DecodeCRDSchema(raw)
			if err != nil {
				return fmt.Errorf("schema of version %s: %w", crd.Spec.Versions[i].Name, err)
			}
			crd.Spec.Versions[i].Schema = v
		}
		return nil
	}
	full, err := c.client.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, crd.Name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	// Newer than the informer's copy: register what is stored now; the
	// informer's event for it will find it registered.
	full.ManagedFields = nil
	*crd = *full
	return nil
}

// storedRevision returns the resourceVersion of the stored CRD name,
// without decoding its schemas: through the store when the server gave
// the controller a way to read it, else as a metadata-only read.
func (c *Controller) storedRevision(ctx context.Context, name string) (string, error) {
	if c.revision != nil {
		return c.revision(ctx, name)
	}
	raw, err := c.client.ApiextensionsV1().RESTClient().Get().Resource("customresourcedefinitions").Name(name).
		SetHeader("Accept", "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1").Do(ctx).Raw()
	if err != nil {
		return "", err
	}
	var m metav1.PartialObjectMetadata
	if err := json.Unmarshal(raw, &m); err != nil {
		return "", err
	}
	return m.ResourceVersion, nil
}

// Observe is handed each CRD the API handler has just stored (see
// resource.Descriptor.Written): the controller serves a new CRD without
// waiting for its watch to deliver it and decode its hundreds of
// kilobytes again. It takes ownership of obj.
func (c *Controller) Observe(obj runtime.Object) {
	stored, ok := obj.(*apiextensionsv1.CustomResourceDefinition)
	if !ok {
		return
	}
	// The handler may keep the object: change a copy (sharing the spec,
	// which nothing modifies).
	crd := &apiextensionsv1.CustomResourceDefinition{TypeMeta: stored.TypeMeta, Spec: stored.Spec}
	stored.ObjectMeta.DeepCopyInto(&crd.ObjectMeta)
	stored.Status.DeepCopyInto(&crd.Status)
	crd.ManagedFields = nil
	c.observedMu.Lock()
	if o, ok := c.observed[crd.Name]; !ok || newer(crd.ResourceVersion, o.ResourceVersion) {
		c.observed[crd.Name], c.observedT[crd.Name] = crd, time.Now()
	}
	c.observedMu.Unlock()
	c.queue.Add(crd.Name)
}

// observedPatience is how long a handed-over CRD the watch cache does not
// show is waited for before it is taken as deleted.
const observedPatience = 10 * time.Second

func (c *Controller) observedAt(name string) time.Time {
	c.observedMu.Lock()
	defer c.observedMu.Unlock()
	return c.observedT[name]
}

// newer reports whether resourceVersion a is after b (both the store's
// revisions).
func newer(a, b string) bool {
	x, errA := strconv.ParseInt(a, 10, 64)
	y, errB := strconv.ParseInt(b, 10, 64)
	return errA == nil && errB == nil && x > y
}

// current returns the newest copy of a CRD the controller knows: the
// informer's (without schemas), or one the handler has just stored that
// the informer has not delivered yet. A CRD the informer does not have
// is confirmed to still exist, so a handed-over CRD deleted meanwhile is
// not served.
func (c *Controller) current(ctx context.Context, name string) (*apiextensionsv1.CustomResourceDefinition, error) {
	crd, err := c.lister.Get(name)
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, err
	}
	c.observedMu.Lock()
	o := c.observed[name]
	c.observedMu.Unlock()
	if o == nil || (crd != nil && !newer(o.ResourceVersion, crd.ResourceVersion)) {
		if crd == nil {
			return nil, err
		}
		if o == nil {
			return crd.DeepCopy(), nil
		}
		// The lister has caught up. (Not earlier: the informer's decoder
		// sees an object before the lister holds it.)
		c.observedMu.Lock()
		if c.observed[name] == o {
			delete(c.observed, name)
			delete(c.observedT, name)
		}
		c.observedMu.Unlock()
		if o.ResourceVersion != crd.ResourceVersion {
			return crd.DeepCopy(), nil
		}
		// The same version: register from the handed-over copy, which
		// has the schemas (and whatever was compiled from them while the
		// API validated it).
	}
	if crd == nil {
		// Confirm the CRD in the watch cache, which may lag the write by a
		// moment: until it shows this version, retry rather than unserve.
		// A CRD that stays absent was deleted before the informer saw it.
		rv, err := c.storedRevision(ctx, name)
		switch {
		case err == nil && rv == o.ResourceVersion:
		case apierrors.IsNotFound(err) && time.Since(c.observedAt(name)) > observedPatience:
			c.observedMu.Lock()
			if c.observed[name] == o {
				delete(c.observed, name)
				delete(c.observedT, name)
			}
			c.observedMu.Unlock()
			return nil, err
		case err != nil && !apierrors.IsNotFound(err):
			return nil, err
		default:
			return nil, fmt.Errorf("CRD %s resourceVersion %s is not in the watch cache yet", name, o.ResourceVersion)
		}
	}
	// A copy whose spec (never modified by a sync) is shared: copying a
	// large CRD's schemas costs milliseconds.
	cp := *o
	cp.ObjectMeta = *o.ObjectMeta.DeepCopy()
	cp.Status = *o.Status.DeepCopy()
	return &cp, nil
}

func hasSchemas(crd *apiextensionsv1.CustomResourceDefinition) bool {
	for _, v := range crd.Spec.Versions {
		if v.Schema == nil {
			return false
		}
	}
	return len(crd.Spec.Versions) > 0
}

// dropStash forgets the schemas stashed for resourceVersion rv of a CRD,
// once its sync is done; a newer version's stay for their own sync.
func (c *Controller) dropStash(name, rv string) {
	c.stashMu.Lock()
	defer c.stashMu.Unlock()
	if st, ok := c.stash[name]; ok && st.resourceVersion == rv {
		delete(c.stash, name)
	}
}

// Run processes CRDs until ctx ends.
func (c *Controller) Run(ctx context.Context) {
	defer c.queue.ShutDown()
	go c.informer.RunWithContext(ctx)
	if !controller.WaitForSync(ctx, c.informer.HasSynced) {
		return
	}
	// Serve the CRDs that already exist before reporting ready.
	if crds, err := c.lister.List(labelsEverything()); err == nil {
		for _, crd := range crds {
			if _, err := c.sync(ctx, crd.Name); err != nil {
				c.queue.AddRateLimited(crd.Name)
			}
		}
	}
	close(c.initialized)
	go func() {
		for c.next(ctx) {
		}
	}()
	<-ctx.Done()
}

// Initialized is closed once the CRDs that existed at start are served.
func (c *Controller) Initialized() <-chan struct{} { return c.initialized }

func (c *Controller) next(ctx context.Context) bool {
	name, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(name)
	requeue, err := c.sync(ctx, name)
	if err != nil || requeue {
		c.queue.AddRateLimited(name)
	} else {
		c.queue.Forget(name)
	}
	return true
}

func (c *Controller) sync(ctx context.Context, name string) (bool, error) {
	crd, err := c.current(ctx, name)
	if apierrors.IsNotFound(err) {
		c.unregister(name)
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer c.dropStash(name, crd.ResourceVersion)
	if crd.DeletionTimestamp != nil {
		return c.finalize(ctx, crd)
	}

	accepted, reason, message := c.namesAccepted(crd)
	if accepted {
		if err := c.register(ctx, crd); err != nil {
			setCondition(crd, apiextensionsv1.Established, apiextensionsv1.ConditionFalse, "InstallationFailure", err.Error())
			return false, c.updateStatus(ctx, crd)
		}
		crd.Status.AcceptedNames = crd.Spec.Names
		setCondition(crd, apiextensionsv1.NamesAccepted, apiextensionsv1.ConditionTrue, "NoConflicts", "no conflicts found")
		setCondition(crd, apiextensionsv1.Established, apiextensionsv1.ConditionTrue, "InitialNamesAccepted", "the initial names have been accepted")
		if err := c.updateStatus(ctx, crd); err != nil {
			return false, err
		}
		return c.migrateStoredVersions(ctx, crd)
	} else {
		setCondition(crd, apiextensionsv1.NamesAccepted, apiextensionsv1.ConditionFalse, reason, message)
		if !hasCondition(crd, apiextensionsv1.Established, apiextensionsv1.ConditionTrue) {
			setCondition(crd, apiextensionsv1.Established, apiextensionsv1.ConditionFalse, "NotAccepted", "not all names are accepted")
		}
	}
	return false, c.updateStatus(ctx, crd)
}

// namesAccepted checks crd's names against every other CRD of its group,
// as upstream's naming controller does: the first to claim a name keeps it.
func (c *Controller) namesAccepted(crd *apiextensionsv1.CustomResourceDefinition) (bool, string, string) {
	all, err := c.lister.List(labelsEverything())
	if err != nil {
		return false, "NameConflict", err.Error()
	}
	plurals, kinds := map[string]bool{}, map[string]bool{}
	for _, other := range all {
		if other.Name == crd.Name || other.Spec.Group != crd.Spec.Group {
			continue
		}
		n := other.Status.AcceptedNames
		for _, s := range append([]string{n.Plural, n.Singular}, n.ShortNames...) {
			if s != "" {
				plurals[s] = true
			}
		}
		for _, k := range []string{n.Kind, n.ListKind} {
			if k != "" {
				kinds[k] = true
			}
		}
	}
	n := crd.Spec.Names
	for _, s := range append([]string{n.Plural, n.Singular}, n.ShortNames...) {
		if plurals[s] {
			return false, "NameConflict", fmt.Sprintf("%q is already in use", s)
		}
	}
	for _, k := range []string{n.Kind, n.ListKind} {
		if kinds[k] {
			return false, "NameConflict", fmt.Sprintf("%q is already in use", k)
		}
	}
	return true, "", ""
}

// register adds a descriptor for each served version and removes versions
// no longer served. Only this CRD's entries change: nothing else is rebuilt.
func (c *Controller) register(ctx context.Context, crd *apiextensionsv1.CustomResourceDefinition) error {
	// Status-only changes (conditions) need no new descriptors: replacing
	// them would rebuild the group's discovery and OpenAPI documents.
	key := fmt.Sprint(crd.Generation, crd.Status.StoredVersions)
	c.mu.Lock()
	same := c.registeredKey[crd.Name] == key
	c.mu.Unlock()
	if same {
		return nil
	}
	if err := c.restoreSchemas(ctx, crd); err != nil {
		return err
	}
	key = fmt.Sprint(crd.Generation, crd.Status.StoredVersions) // the stored CRD may be newer
	conv, err := c.webhooks.converterFor(crd)
	if err != nil {
		return err
	}
	var warmed sync.WaitGroup
	reg, err := descriptorsFor(crd, conv, c.pool, c.takeSpeculation(crd, conv), func(k *fieldmanager.CustomKind) {
		if c.fieldTypes != nil {
			warmed.Go(func() { k.Warm(c.fieldTypes) })
		}
	})
	if err != nil {
		warmed.Wait()
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var gvrs []schema.GroupVersionResource
	for _, d := range reg.descs {
		gvr := schema.GroupVersionResource{Group: d.Group, Version: d.Version, Resource: d.Resource}
		gvrs = append(gvrs, gvr)
		c.registry.Add(d)
	}
	for _, old := range c.served[crd.Name] {
		if !slices.Contains(gvrs, old) {
			c.registry.Remove(old)
		}
	}
	c.served[crd.Name] = gvrs
	if old := c.registrations[crd.Name]; old != nil {
		old.release()
	}
	c.registrations[crd.Name] = reg
	c.registeredKey[crd.Name] = key
	if c.registeredGen[crd.Name] != crd.Generation {
		c.registeredGen[crd.Name] = crd.Generation
		c.registeredAt[crd.Name] = time.Now()
	}
	return nil
}

// registration is what serving one generation of a CRD holds: its
// descriptors, and the compiled schemas and type information they share.
type registration struct {
	descs   []*resource.Descriptor
	schemas crdSchemas
	kind    *fieldmanager.CustomKind
}

// release lets the schema pool forget the registration's compiled schemas
// and type converter once other descriptors serve the CRD.
func (r *registration) release() {
	r.schemas.release()
	r.kind.Release()
}

// descriptorsFor builds the descriptors of crd's served versions; their
// compiled schemas live in pool. built, if set, holds crd's schemas
// compiled already, and may hold its type information.
func descriptorsFor(crd *apiextensionsv1.CustomResourceDefinition, conv converter, pool *budget.Pool, built speculated, kindReady func(*fieldmanager.CustomKind)) (*registration, error) {
	storage := ""
	for _, v := range crd.Spec.Versions {
		if v.Storage {
			storage = v.Name
		}
	}
	schemas, kind := built.schemas, built.kind // kind is only built with schemas
	if schemas == nil {
		var err error
		if schemas, err = newCRDSchemas(pool, crd); err != nil {
			return nil, err
		}
	}
	if kind == nil {
		kind = newCustomKind(crd, conv, schemas, pool)
	}
	if kindReady != nil {
		// The type information needs only the schemas' sources: it can
		// be built while they compile.
		kindReady(kind)
	}
	if err := schemas.compile(); err != nil {
		kind.Release()
		return nil, err
	}
	conversion := newCRDConversion(crd, conv, schemas)
	reg := &registration{schemas: schemas, kind: kind}
	for i := range crd.Spec.Versions {
		v := &crd.Spec.Versions[i]
		if !v.Served {
			continue
		}
		strategy, err := newCustomResource(crd, v, storage, reg.kind, schemas)
		if err != nil {
			reg.release()
			return nil, err
		}
		strategy.conv = conversion
		d := &resource.Descriptor{
			Group: crd.Spec.Group, Version: v.Name,
			Kind: crd.Spec.Names.Kind, ListKind: crd.Spec.Names.ListKind,
			Resource: crd.Spec.Names.Plural, Singular: crd.Spec.Names.Singular,
			ShortNames: crd.Spec.Names.ShortNames, Categories: crd.Spec.Names.Categories,
			Namespaced:     crd.Spec.Scope == apiextensionsv1.NamespaceScoped,
			Verbs:          resource.StandardVerbs,
			StoragePrefix:  "/registry/" + crd.Spec.Group + "/" + crd.Spec.Names.Plural + "/",
			StorageVersion: schema.GroupVersion{Group: crd.Spec.Group, Version: storage},
			Strategy:       strategy,
		}
		if v.Subresources != nil && v.Subresources.Scale != nil {
			d.Subresources = append(d.Subresources, "scale")
		}
		if v.Deprecated {
			if v.DeprecationWarning != nil {
				d.DeprecationWarning = *v.DeprecationWarning
			} else {
				d.DeprecationWarning = defaultDeprecationWarning(crd.Spec, v.Name)
			}
		}
		if v.Subresources != nil && v.Subresources.Status != nil {
			d.Subresources = append(d.Subresources, "status")
		}
		reg.descs = append(reg.descs, d)
	}
	return reg, nil
}

// BuiltinDescriptors serves a resource the server itself defines with a
// CRD-shaped schema (one version, no conversion) without storing a
// CustomResourceDefinition object: Trellis's own configuration kinds.
func BuiltinDescriptors(crd *apiextensionsv1.CustomResourceDefinition) ([]*resource.Descriptor, error) {
	reg, err := descriptorsFor(crd, noneConverter{}, nil, speculated{}, nil)
	if err != nil {
		return nil, err
	}
	return reg.descs, nil
}

func (c *Controller) unregister(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, gvr := range c.served[name] {
		c.registry.Remove(gvr)
	}
	delete(c.served, name)
	delete(c.registeredKey, name)
	if reg := c.registrations[name]; reg != nil {
		reg.release()
		delete(c.registrations, name)
	}
	c.webhooks.forget(name)
	// The informer's delete event stashed the schemas of the CRD's last
	// state; nothing will register them.
	c.stashMu.Lock()
	delete(c.stash, name)
	c.stashMu.Unlock()
}

// finalize deletes every custom resource of a CRD being deleted, then
// removes the cleanup finalizer.
func (c *Controller) finalize(ctx context.Context, crd *apiextensionsv1.CustomResourceDefinition) (bool, error) {
	if !slices.Contains(crd.Finalizers, builtin.CRDCleanupFinalizer) {
		return false, nil
	}
	if !hasCondition(crd, apiextensionsv1.Terminating, apiextensionsv1.ConditionTrue) {
		setCondition(crd, apiextensionsv1.Terminating, apiextensionsv1.ConditionTrue, "InstanceDeletionInProgress", "CustomResource deletion is in progress")
		if err := c.updateStatus(ctx, crd); err != nil {
			return false, err
		}
	}
	c.mu.Lock()
	gvrs := append([]schema.GroupVersionResource(nil), c.served[crd.Name]...)
	for _, gvr := range gvrs {
		if d, ok := c.registry.Lookup(gvr); ok {
			if cr, ok := d.Strategy.(*customResource); ok {
				cr.terminating.Store(true)
			}
		}
	}
	c.mu.Unlock()
	if len(gvrs) > 0 {
		ri := c.dynamic.Resource(gvrs[0])
		if err := ri.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return false, err
		}
		left, err := ri.List(ctx, metav1.ListOptions{Limit: 1})
		if err != nil && !apierrors.IsNotFound(err) {
			return false, err
		}
		if left != nil && len(left.Items) > 0 {
			return true, nil
		}
	}
	// Nothing is left: stop serving before the CRD disappears, so a client
	// that sees it gone also sees its resource gone.
	c.unregister(crd.Name)
	latest, err := c.client.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, crd.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	latest.Finalizers = slices.DeleteFunc(latest.Finalizers, func(f string) bool { return f == builtin.CRDCleanupFinalizer })
	_, err = c.client.ApiextensionsV1().CustomResourceDefinitions().Update(ctx, latest, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	return false, err
}

func (c *Controller) updateStatus(ctx context.Context, crd *apiextensionsv1.CustomResourceDefinition) error {
	old, err := c.lister.Get(crd.Name)
	if err == nil && equalStatus(old.Status, crd.Status) {
		return nil
	}
	// The handler may have handed over a newer copy than the lister's
	// (this controller's own last status write): no need to write what
	// it already holds.
	c.observedMu.Lock()
	o := c.observed[crd.Name]
	c.observedMu.Unlock()
	if o != nil && (old == nil || newer(o.ResourceVersion, old.ResourceVersion)) && equalStatus(o.Status, crd.Status) {
		return nil
	}
	// A status write keeps the stored spec, so the schemas need not be
	// sent: for a large CRD they are nearly all of its bytes.
	body := *crd
	body.Spec.Versions = slices.Clone(crd.Spec.Versions)
	for i := range body.Spec.Versions {
		body.Spec.Versions[i].Schema = nil
	}
	// The answer is not decoded (the informer delivers the CRD anyway),
	// and asked for as metadata only: a large CRD is hundreds of
	// kilobytes to send and read.
	err = c.client.ApiextensionsV1().RESTClient().Put().Resource("customresourcedefinitions").
		Name(crd.Name).SubResource("status").SetHeader("Accept", "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1").
		Body(&body).Do(ctx).Error()
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// defaultDeprecationWarning words the warning for a deprecated version
// without its own, as upstream: "<group>/<version> <Kind> is deprecated",
// naming the preferred newer served version if there is one.
func defaultDeprecationWarning(spec apiextensionsv1.CustomResourceDefinitionSpec, deprecated string) string {
	msg := fmt.Sprintf("%s/%s %s is deprecated", spec.Group, deprecated, spec.Names.Kind)
	best := ""
	for _, v := range spec.Versions {
		if !v.Served || v.Deprecated || version.CompareKubeAwareVersionStrings(deprecated, v.Name) >= 0 {
			continue
		}
		if best == "" || version.CompareKubeAwareVersionStrings(v.Name, best) > 0 {
			best = v.Name
		}
	}
	if best == "" {
		return msg
	}
	return msg + fmt.Sprintf("; use %s/%s %s", spec.Group, best, spec.Names.Kind)
}
