package handler

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/apimachinery/pkg/util/validation/field"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/trellis-project/trellis/internal/admission"
	"github.com/trellis-project/trellis/internal/admission/initializer"
	"github.com/trellis-project/trellis/internal/audit"
	"github.com/trellis-project/trellis/internal/store"
)

// readBody reads a request body up to kube-apiserver's limit.
func (rc *reqCtx) readBody() ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(rc.r.Body, MaxRequestBodyBytes+1))
	if err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	if len(body) > MaxRequestBodyBytes {
		return nil, apierrors.NewRequestEntityTooLargeError(fmt.Sprintf("limit is %d", MaxRequestBodyBytes))
	}
	audit.From(rc.ctx()).LogRequestBody(body)
	return body, nil
}

// fieldValidation is the fieldValidation query parameter.
func (rc *reqCtx) fieldValidation() (string, error) {
	v := rc.r.URL.Query().Get("fieldValidation")
	switch v {
	case "":
		return "Warn", nil
	case "Ignore", "Warn", "Strict":
		return v, nil
	}
	return "", apierrors.NewBadRequest(fmt.Sprintf("fieldValidation parameter unsupported: %s. Supported values are: Ignore, Warn, Strict", v))
}

func (rc *reqCtx) dryRun() (bool, error) {
	for _, v := range rc.r.URL.Query()["dryRun"] {
		if v != "All" {
			return false, apierrors.NewBadRequest(fmt.Sprintf("Invalid dry run value: %q (supported: All)", v))
		}
		return true, nil
	}
	return false, nil
}

// decodeBody decodes a JSON (or YAML) object of the served kind, honouring
// fieldValidation: Strict turns unknown and duplicate fields into a 400,
// Warn into Warning headers.
func (rc *reqCtx) decodeBody(body []byte, format bodyFormat) (runtime.Object, error) {
	if format == bodyProtobuf {
		return rc.decodeProtobuf(body)
	}
	if format == bodyYAML {
		j, err := yaml.YAMLToJSON(body)
		if err != nil {
			return nil, apierrors.NewBadRequest(err.Error())
		}
		body = j
	}
	validation, err := rc.fieldValidation()
	if err != nil {
		return nil, err
	}
	want := rc.d.GroupVersionKind()
	// A kind with its own decoder validates the JSON as it decodes: its
	// type metadata is checked on the result (when it decodes the body
	// cleanly; otherwise the steps below word the error).
	fast, fastOK := decodeFast(rc.d, body, want.GroupVersion())
	var tm metav1.TypeMeta
	peeked := false
	if fastOK {
		// A typed object's ObjectKind is its TypeMeta, as decoded.
		t, ok := fast.GetObjectKind().(*metav1.TypeMeta)
		if peeked = ok; peeked {
			tm = *t
		}
		fastOK = peeked
	}
	if !peeked {
		if tm, peeked = peekTypeMeta(body); !peeked {
			if err := sigsjson.UnmarshalCaseSensitivePreserveInts(body, &tm); err != nil {
				return nil, apierrors.NewBadRequest(fmt.Sprintf("couldn't get version/kind; json parse error: %v", err))
			}
		}
	}
	if tm.APIVersion != "" && tm.APIVersion != want.GroupVersion().String() {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the API version in the data (%s) does not match the expected API version (%s)", tm.APIVersion, want.GroupVersion()))
	}
	if tm.Kind != "" && tm.Kind != want.Kind {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the kind in the data (%s) does not match the expected kind (%s)", tm.Kind, want.Kind))
	}
	obj := rc.d.Strategy.New()
	var strictErrs []error
	if u, ok := obj.(*unstructured.Unstructured); ok {
		content := map[string]any{}
		if strictErrs, err = sigsjson.UnmarshalStrict(body, &content); err != nil {
			return nil, apierrors.NewBadRequest(err.Error())
		}
		u.Object = content
		u.SetGroupVersionKind(want)
	} else if fastOK {
		obj = fast
	} else if strictErrs, err = sigsjson.UnmarshalStrict(body, obj); err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	if d, ok := rc.d.Strategy.(decodedHook); ok {
		unknown, err := d.Decoded(obj)
		if err != nil {
			return nil, apierrors.NewBadRequest(err.Error())
		}
		for _, path := range unknown {
			strictErrs = append(strictErrs, fmt.Errorf("unknown field %q", path))
		}
	}
	if err := rc.reportUnknownFields(validation, strictErrs); err != nil {
		return nil, err
	}
	obj.GetObjectKind().SetGroupVersionKind(want)
	return obj, nil
}

// peekTypeMeta reads a body's top-level apiVersion and kind without
// decoding the rest (a large CRD is hundreds of kilobytes); ok is false
// when either is missing or escaped, or the body is not JSON, and the
// caller decodes (and words the error as upstream).
func peekTypeMeta(body []byte) (tm metav1.TypeMeta, ok bool) {
	if !json.Valid(body) {
		return tm, false
	}
	for _, f := range []struct {
		key  string
		into *string
	}{{"apiVersion", &tm.APIVersion}, {"kind", &tm.Kind}} {
		start, end, found := topLevelValue(body, f.key, '"')
		if !found || bytes.IndexByte(body[start:end], '\\') >= 0 {
			return metav1.TypeMeta{}, false
		}
		*f.into = string(body[start+1 : end-1])
	}
	return tm, true
}

// reportUnknownFields applies fieldValidation to what strict decoding
// found: Strict refuses the request (400), Warn sends Warning headers,
// Ignore drops them.
func (rc *reqCtx) reportUnknownFields(validation string, strictErrs []error) error {
	if len(strictErrs) == 0 {
		return nil
	}
	switch validation {
	case "Strict":
		msgs := make([]string, len(strictErrs))
		for i, e := range strictErrs {
			msgs[i] = e.Error()
		}
		return apierrors.NewBadRequest("strict decoding error: " + strings.Join(msgs, ", "))
	case "Warn":
		for _, e := range strictErrs {
			addWarning(rc.w, e.Error())
		}
	}
	return nil
}

func addWarning(w http.ResponseWriter, msg string) {
	w.Header().Add("Warning", `299 - `+strconv.Quote(msg))
}

// encodeForStorage converts to the storage version and encodes without a
// resourceVersion.
func (rc *reqCtx) encodeForStorage(obj runtime.Object) ([]byte, error) {
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil, err
	}
	rv := m.GetResourceVersion()
	m.SetResourceVersion("")
	defer m.SetResourceVersion(rv)
	stored, err := rc.d.Strategy.ToStorage(obj)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	if sm, err := meta.Accessor(stored); err == nil {
		sm.SetResourceVersion("")
	}
	stored.GetObjectKind().SetGroupVersionKind(rc.d.StorageVersion.WithKind(rc.d.Kind))
	raw, err := rc.encodeJSON(stored)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	if len(raw) > maxObjectBytes {
		return nil, apierrors.NewRequestEntityTooLargeError(fmt.Sprintf("object is %d bytes, limit is %d", len(raw), maxObjectBytes))
	}
	return raw, nil
}

// maxObjectBytes is etcd's default request limit, which bounds a stored
// object in kube-apiserver.
const maxObjectBytes = 1536 * 1024

func (rc *reqCtx) invalid(obj runtime.Object, errs field.ErrorList) error {
	name := ""
	if m, err := meta.Accessor(obj); err == nil {
		name = m.GetName()
	}
	return apierrors.NewInvalid(schema.GroupKind{Group: rc.d.Group, Kind: rc.d.Kind}, name, errs)
}

// respond writes the stored object with its new resourceVersion.
func (rc *reqCtx) respond(code int, obj runtime.Object, rev int64) {
	out, err := rc.negotiate(false)
	if err != nil {
		out = output{}
	}
	if m, err := meta.Accessor(obj); err == nil && rev > 0 {
		m.SetResourceVersion(strconv.FormatInt(rev, 10))
	}
	rc.writeOne(code, out, obj)
}

// respondStored answers a write with the bytes just stored, stamped with
// their resourceVersion, when those are what encoding obj would give (a
// JSON object of the storage version): a large object is not encoded
// twice.
func (rc *reqCtx) respondStored(code int, obj runtime.Object, raw []byte, rev int64) {
	out, err := rc.negotiate(false)
	if err == nil && rc.respondAs == nil && out.kind == asObject && !out.proto && !out.yaml && rc.servesStoredBytes() && rc.storedAsServed(raw) {
		if stamped := SetResourceVersion(raw, rev); stamped != nil {
			if m, err := meta.Accessor(obj); err == nil {
				m.SetResourceVersion(strconv.FormatInt(rev, 10))
			}
			writeRaw(rc.w, code, out, stamped)
			return
		}
	}
	rc.respond(code, obj, rev)
}

func (rc *reqCtx) create() {
	if err := rc.createAllowed(); err != nil {
		rc.fail(err)
		return
	}
	obj, m, err := rc.readObject("CreateOptions")
	if err != nil {
		rc.fail(err)
		return
	}
	dryRun, err := rc.dryRun()
	if err != nil {
		rc.fail(err)
		return
	}
	if err := rc.checkNamespace(m); err != nil {
		rc.fail(err)
		return
	}
	// As kube-apiserver's storage, which a dry run never reaches.
	if m.GetResourceVersion() != "" && !dryRun {
		rc.fail(apierrors.NewInternalError(errors.New("resourceVersion should not be set on objects to be created")))
		return
	}
	rc.storeNew(obj, m, dryRun)
}

// storeNew runs a new object through the create path — server-owned
// metadata, defaulting, managedFields, the strategy, validation, namespace
// lifecycle — and stores it (unless dryRun), answering 201.
func (rc *reqCtx) storeNew(obj runtime.Object, m metav1.Object, dryRun bool) {
	rc.d.Strategy.Default(obj)
	rc.recordManagedFields(rc.d.Strategy.New(), obj)
	// Namespace lifecycle comes first in kube-apiserver's admission chain.
	if err := rc.admitNamespace(m.GetName()); err != nil {
		rc.fail(err)
		return
	}
	obj, err := rc.admit(admission.Create, obj, nil)
	if err != nil {
		rc.fail(err)
		return
	}
	m, _ = meta.Accessor(obj)
	if m.GetName() == "" && m.GetGenerateName() != "" {
		m.SetName(m.GetGenerateName() + utilrand.String(5))
	}
	rc.fillCreateMeta(m)
	rc.d.Strategy.PrepareForCreate(rc.ctx(), obj)
	if err := rc.guardWrite(obj, nil); err != nil {
		rc.fail(err)
		return
	}
	if rc.d.Validating != nil && !dryRun {
		rc.d.Validating(obj)
	}
	if errs := rc.d.Strategy.Validate(rc.ctx(), obj); len(errs) > 0 {
		rc.fail(rc.invalid(obj, errs))
		return
	}
	if err := rc.validateAdmission(admission.Create, obj, nil); err != nil {
		rc.fail(err)
		return
	}
	raw, err := rc.encodeWritten(obj)
	if err != nil {
		rc.fail(err)
		return
	}
	if dryRun {
		rc.respond(http.StatusCreated, obj, 0)
		return
	}
	key := rc.d.Key(rc.namespace, m.GetName())
	rev, err := rc.store.Create(rc.ctx(), key, raw)
	if err != nil {
		if errors.Is(err, store.ErrExists) && m.GetGenerateName() != "" {
			rc.fail(apierrors.NewGenerateNameConflict(rc.d.GroupResource(), m.GetName(), 1))
			return
		}
		rc.fail(rc.storeError(err, m.GetName()))
		return
	}
	if len(initializer.PendingOf(obj)) > 0 && !rc.includeUninitialized() {
		rc.awaitInitialization(key, rev, m.GetUID())
		return
	}
	rc.respondStored(http.StatusCreated, obj, raw, rev)
	rc.keepWritten(key, obj, raw, rev)
	if rc.d.Written != nil {
		rc.d.Written(obj)
	}
}

// createAllowed refuses creates the strategy refuses (custom resources
// of a CRD being deleted).
func (rc *reqCtx) createAllowed() error {
	if g, ok := rc.d.Strategy.(interface{ CreateAllowed() error }); ok {
		return g.CreateAllowed()
	}
	return nil
}

// fillCreateMeta sets the fields the server owns on create.
func (rc *reqCtx) fillCreateMeta(m metav1.Object) {
	m.SetUID(uuid.NewUUID())
	m.SetCreationTimestamp(metav1.NewTime(rc.h.now().Truncate(1e9)))
	m.SetDeletionTimestamp(nil)
	m.SetDeletionGracePeriodSeconds(nil)
	m.SetGeneration(0)
	if g, ok := rc.d.Strategy.(interface{ TracksGeneration() bool }); ok && g.TracksGeneration() {
		m.SetGeneration(1)
	}
}

// checkNamespace makes the object's namespace agree with the URL's.
func (rc *reqCtx) checkNamespace(m metav1.Object) error {
	if !rc.d.Namespaced {
		if m.GetNamespace() != "" {
			m.SetNamespace("")
		}
		return nil
	}
	if m.GetNamespace() == "" {
		m.SetNamespace(rc.namespace)
	}
	if m.GetNamespace() != rc.namespace {
		return apierrors.NewBadRequest("the namespace of the provided object does not match the namespace sent on the request")
	}
	return nil
}

// admitNamespace is kube-apiserver's NamespaceLifecycle admission: no new
// objects in a namespace that is missing or being terminated.
func (rc *reqCtx) admitNamespace(name string) error {
	if !rc.d.Namespaced || rc.h.Namespaces == nil {
		return nil
	}
	_, terminating, found, err := rc.h.Namespaces.NamespacePhase(rc.ctx(), rc.namespace)
	if err != nil {
		return apierrors.NewInternalError(err)
	}
	if !found {
		return apierrors.NewNotFound(schema.GroupResource{Resource: "namespaces"}, rc.namespace)
	}
	if terminating {
		err := apierrors.NewForbidden(rc.d.GroupResource(), name,
			fmt.Errorf("unable to create new content in namespace %s because it is being terminated", rc.namespace))
		err.ErrStatus.Details.Causes = append(err.ErrStatus.Details.Causes, metav1.StatusCause{
			Type:    metav1.CauseType(corev1NamespaceTerminatingCause),
			Message: fmt.Sprintf("namespace %s is being terminated", rc.namespace),
			Field:   "metadata.namespace",
		})
		return err
	}
	return nil
}

const corev1NamespaceTerminatingCause = "NamespaceTerminating"

// readObject reads and decodes the request body of a create or update,
// after checking its options (optionsKind names them in errors).
func (rc *reqCtx) readObject(optionsKind string) (runtime.Object, metav1.Object, error) {
	format, err := requestBodyFormat(rc.r, false)
	if err != nil {
		return nil, nil, err
	}
	body, err := rc.readBody()
	if err != nil {
		return nil, nil, err
	}
	if err := rc.writeOptions(optionsKind); err != nil {
		return nil, nil, err
	}
	obj, err := rc.decodeBody(body, format)
	if err != nil {
		return nil, nil, err
	}
	audit.From(rc.ctx()).LogRequestObject(obj)
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil, nil, apierrors.NewInternalError(err)
	}
	return obj, m, nil
}

func (rc *reqCtx) update() {
	obj, m, err := rc.readObject("UpdateOptions")
	if err != nil {
		rc.fail(err)
		return
	}
	if m.GetName() != rc.info.Name {
		rc.fail(apierrors.NewBadRequest(fmt.Sprintf("the name of the object (%s) does not match the name on the URL (%s)", m.GetName(), rc.info.Name)))
		return
	}
	if err := rc.checkNamespace(m); err != nil {
		rc.fail(err)
		return
	}
	rc.applyUpdate(func(old runtime.Object) (runtime.Object, error) {
		return obj.DeepCopyObject(), nil
	}, m.GetResourceVersion())
}

// applyUpdate runs the read-modify-write loop shared by update and patch.
// mutate builds the new object from the current one, which it must not
// modify (copying a large object costs milliseconds, and most writes
// only read it); expectRV, if set, is the client's precondition. Without
// one the write retries on conflict.
func (rc *reqCtx) applyUpdate(mutate func(old runtime.Object) (runtime.Object, error), expectRV string) {
	dryRun, err := rc.dryRun()
	if err != nil {
		rc.fail(err)
		return
	}
	key := rc.d.Key(rc.namespace, rc.info.Name)
	for attempt := 0; ; attempt++ {
		kv, err := rc.store.Get(rc.ctx(), key)
		createOnUpdate := rc.d.AllowCreateOnUpdate && rc.info.Verb == "update" || rc.applying
		if errors.Is(err, store.ErrNotFound) && createOnUpdate && rc.info.Subresource == "" {
			rc.createFromUpdate(mutate, dryRun)
			return
		}
		if err != nil {
			rc.fail(rc.storeError(err, rc.info.Name))
			return
		}
		old, kept := rc.h.written.get(rc.d, key, kv.ModRevision)
		if !kept {
			if old, err = rc.decodeStored(kv.Value, kv.ModRevision); err != nil {
				rc.fail(apierrors.NewInternalError(err))
				return
			}
		}
		obj, err := mutate(old)
		if err != nil {
			rc.fail(err)
			return
		}
		m, _ := meta.Accessor(obj)
		oldMeta, _ := meta.Accessor(old)
		rv := m.GetResourceVersion()
		if expectRV != "" {
			rv = expectRV
		}
		if rv != "" && rv != strconv.FormatInt(kv.ModRevision, 10) {
			if _, err := strconv.ParseInt(rv, 10, 64); err != nil {
				rc.fail(rc.invalid(obj, field.ErrorList{field.Invalid(field.NewPath("metadata", "resourceVersion"), rv, "must be a valid resource version")}))
				return
			}
			rc.fail(apierrors.NewConflict(rc.d.GroupResource(), rc.info.Name, errors.New(optimisticLockMsg)))
			return
		}
		conditional := rv != ""

		// What the server owns is carried over from the stored object
		// (again after mutating admission, which may not change it).
		keepServerFields := func(m metav1.Object) {
			m.SetUID(oldMeta.GetUID())
			m.SetCreationTimestamp(oldMeta.GetCreationTimestamp())
			m.SetDeletionTimestamp(oldMeta.GetDeletionTimestamp())
			if m.GetDeletionGracePeriodSeconds() == nil {
				m.SetDeletionGracePeriodSeconds(oldMeta.GetDeletionGracePeriodSeconds())
			}
			m.SetGeneration(oldMeta.GetGeneration())
			m.SetResourceVersion(oldMeta.GetResourceVersion())
		}
		keepServerFields(m)
		rc.d.Strategy.Default(obj)
		rc.recordManagedFields(old, obj)
		if _, custom := obj.(*unstructured.Unstructured); custom && rc.info.Subresource == "status" {
			// A status write changes status only: metadata stays as stored
			// (but for the managed fields just recorded). Built-in kinds'
			// status strategies decide for themselves in PrepareForUpdate:
			// a Deployment's keeps labels but takes new annotations.
			metav1.ResetObjectMetaForStatus(m, oldMeta)
		}
		if obj, err = rc.admit(admission.Update, obj, old); err != nil {
			rc.fail(err)
			return
		}
		m, _ = meta.Accessor(obj)
		keepServerFields(m)
		rc.d.Strategy.PrepareForUpdate(rc.ctx(), obj, old, rc.info.Subresource)
		// A status write keeps the stored spec (its strategy copies it),
		// so only other writes can move generation; comparing a large
		// spec costs milliseconds.
		if rc.info.Subresource != "status" && rc.d.Strategy.SpecChanged(obj, old) {
			m.SetGeneration(oldMeta.GetGeneration() + 1)
		}
		if err := rc.guardWrite(obj, old); err != nil {
			rc.fail(err)
			return
		}
		if rc.d.Validating != nil && !dryRun && rc.info.Subresource == "" {
			rc.d.Validating(obj)
		}
		if errs := rc.d.Strategy.ValidateUpdate(rc.ctx(), obj, old, rc.info.Subresource); len(errs) > 0 {
			rc.fail(rc.invalid(obj, errs))
			return
		}
		if err := rc.validateAdmission(admission.Update, obj, old); err != nil {
			rc.fail(err)
			return
		}
		if oldMeta.GetDeletionTimestamp() != nil && len(m.GetFinalizers()) == 0 && !rc.hasPendingFinalizers(obj) {
			// The last finalizer is gone from an object being deleted.
			rc.finishDeletion(kv, obj, dryRun)
			return
		}
		raw, err := rc.encodeWritten(obj)
		if err != nil {
			rc.fail(err)
			return
		}
		if bytes.Equal(SetResourceVersion(raw, kv.ModRevision), kv.Value) {
			// Nothing changed: kube-apiserver skips the write and keeps
			// the resourceVersion. The comparison is with the stored bytes,
			// so a write that only re-encodes the object (into a new
			// storage version) does happen.
			rc.respond(http.StatusOK, obj, kv.ModRevision)
			return
		}
		if dryRun {
			rc.respond(http.StatusOK, obj, kv.ModRevision)
			return
		}
		newKV, err := rc.store.Update(rc.ctx(), key, raw, store.Precondition{ModRevision: kv.ModRevision})
		if errors.Is(err, store.ErrConflict) && !conditional && attempt < 10 {
			continue
		}
		if err != nil {
			rc.fail(rc.storeError(err, rc.info.Name))
			return
		}
		if _, failed := initializer.FailureOf(obj); failed {
			rc.deleteFailedInitialization(key, newKV, obj)
			return
		}
		rc.respondStored(http.StatusOK, obj, raw, newKV.ModRevision)
		rc.keepWritten(key, obj, raw, newKV.ModRevision)
		if rc.d.Written != nil {
			rc.d.Written(obj)
		}
		return
	}
}

// keepWritten keeps obj, just stored as raw at rev and answered, for an
// update that may follow (see resource.Descriptor.KeepWritten).
func (rc *reqCtx) keepWritten(key string, obj runtime.Object, raw []byte, rev int64) {
	if !rc.d.KeepWritten {
		return
	}
	m, err := meta.Accessor(obj)
	if err != nil {
		return
	}
	m.SetResourceVersion(strconv.FormatInt(rev, 10))
	obj.GetObjectKind().SetGroupVersionKind(rc.d.GroupVersionKind())
	rc.h.written.put(rc.d, key, rev, obj, len(raw))
}

// hasPendingFinalizers covers kinds with finalizers outside metadata (the
// namespace's spec.finalizers).
func (rc *reqCtx) hasPendingFinalizers(obj runtime.Object) bool {
	if f, ok := rc.d.Strategy.(interface {
		PendingFinalizers(runtime.Object) bool
	}); ok {
		return f.PendingFinalizers(obj)
	}
	return false
}

// createFromUpdate handles PUT of a missing object for kinds that allow
// it, and apply to a missing object.
func (rc *reqCtx) createFromUpdate(mutate func(old runtime.Object) (runtime.Object, error), dryRun bool) {
	if err := rc.createAllowed(); err != nil {
		rc.fail(err)
		return
	}
	obj, err := mutate(rc.d.Strategy.New())
	if err != nil {
		rc.fail(err)
		return
	}
	m, _ := meta.Accessor(obj)
	if m.GetResourceVersion() != "" {
		rc.fail(apierrors.NewNotFound(rc.d.GroupResource(), rc.info.Name))
		return
	}
	rc.storeNew(obj, m, dryRun)
}

// decodedHook lets a strategy post-process a decoded request body; custom
// resources prune unknown fields and report them.
type decodedHook interface {
	Decoded(obj runtime.Object) (unknownFields []string, err error)
}

// isUnstructured reports descriptors served as unstructured objects (custom
// resources), which, as upstream, take neither protobuf nor strategic merge
// patches.
func (rc *reqCtx) isUnstructured() bool {
	u, ok := rc.d.Strategy.(interface{ Unstructured() bool })
	return ok && u.Unstructured()
}

// decodeProtobuf decodes a built-in kind sent in the protobuf envelope.
func (rc *reqCtx) decodeProtobuf(body []byte) (runtime.Object, error) {
	if rc.h.Scheme == nil || rc.isUnstructured() {
		return nil, unsupportedMediaType(ProtobufMediaType, false)
	}
	want := rc.d.GroupVersionKind()
	obj := rc.d.Strategy.New()
	out, gvk, err := protobuf.NewSerializer(rc.h.Scheme, rc.h.Scheme).Decode(body, &want, obj)
	if err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	if gvk != nil && (gvk.Kind != "" && gvk.Kind != want.Kind || gvk.GroupVersion() != want.GroupVersion() && gvk.Version != "") {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the kind in the data (%s) does not match the expected kind (%s)", gvk, want))
	}
	out.GetObjectKind().SetGroupVersionKind(want)
	return out, nil
}
