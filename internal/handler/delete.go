package handler

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metainternalversionscheme "k8s.io/apimachinery/pkg/apis/meta/internalversion/scheme"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/trellis-project/trellis/internal/store"
)

// deleteOptions reads DeleteOptions from the body (if any) and the query.
func (rc *reqCtx) deleteOptions() (*metav1.DeleteOptions, error) {
	opts := &metav1.DeleteOptions{}
	body, err := rc.readBody()
	if err != nil {
		return nil, err
	}
	if len(body) > 0 {
		if err := decodeOptionsBody(rc.r, body, opts); err != nil {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("invalid DeleteOptions: %v", err))
		}
	}
	q := rc.r.URL.Query()
	if len(q) > 0 {
		var fromQuery metav1.DeleteOptions
		if err := metainternalversionscheme.ParameterCodec.DecodeParameters(q, metav1.SchemeGroupVersion, &fromQuery); err != nil {
			return nil, apierrors.NewBadRequest(err.Error())
		}
		if fromQuery.GracePeriodSeconds != nil {
			opts.GracePeriodSeconds = fromQuery.GracePeriodSeconds
		}
		if fromQuery.PropagationPolicy != nil {
			opts.PropagationPolicy = fromQuery.PropagationPolicy
		}
		if fromQuery.OrphanDependents != nil {
			opts.OrphanDependents = fromQuery.OrphanDependents
		}
		if len(fromQuery.DryRun) > 0 {
			opts.DryRun = fromQuery.DryRun
		}
	}
	for _, v := range opts.DryRun {
		if v != metav1.DryRunAll {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("Invalid dry run value: %q (supported: All)", v))
		}
	}
	if p := opts.PropagationPolicy; p != nil {
		switch *p {
		case metav1.DeletePropagationBackground, metav1.DeletePropagationForeground, metav1.DeletePropagationOrphan:
		default:
			return nil, apierrors.NewBadRequest(fmt.Sprintf("propagationPolicy: Unsupported value: %q: supported values: \"Foreground\", \"Background\", \"Orphan\"", *p))
		}
	}
	return opts, nil
}

func (rc *reqCtx) delete() {
	opts, err := rc.deleteOptions()
	if err != nil {
		rc.fail(err)
		return
	}
	rc.deleteOpts = opts
	obj, code, err := rc.deleteOne(rc.namespace, rc.info.Name, opts)
	if err != nil {
		rc.fail(err)
		return
	}
	if code == http.StatusOK && !rc.d.ReturnDeletedObject {
		m, _ := meta.Accessor(obj)
		st := metav1.Status{
			TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
			Status:   metav1.StatusSuccess,
			Details:  &metav1.StatusDetails{Name: m.GetName(), Group: rc.d.Group, Kind: rc.d.Resource, UID: m.GetUID()},
		}
		out, _ := rc.negotiate(false)
		writeObject(rc.w, rc.r, http.StatusOK, output{yaml: out.yaml, proto: out.proto, scheme: out.scheme}, &st)
		return
	}
	rc.respond(code, obj, 0)
}

// deleteOne deletes one object, or marks it for deletion when finalizers
// must run first (202 Accepted, as kube-apiserver answers).
func (rc *reqCtx) deleteOne(namespace, name string, opts *metav1.DeleteOptions) (runtime.Object, int, error) {
	dryRun := len(opts.DryRun) > 0
	key := rc.d.Key(namespace, name)
	for attempt := 0; ; attempt++ {
		kv, err := rc.store.Get(rc.ctx(), key)
		if err != nil {
			return nil, 0, rc.storeError(err, name)
		}
		obj, err := rc.decodeStored(kv.Value, kv.ModRevision)
		if err != nil {
			return nil, 0, apierrors.NewInternalError(err)
		}
		m, _ := meta.Accessor(obj)
		if p := opts.Preconditions; p != nil {
			if p.UID != nil && *p.UID != m.GetUID() {
				return nil, 0, apierrors.NewConflict(rc.d.GroupResource(), name,
					fmt.Errorf("Precondition failed: UID in precondition: %v, UID in object meta: %v", *p.UID, m.GetUID()))
			}
			if p.ResourceVersion != nil && *p.ResourceVersion != m.GetResourceVersion() {
				return nil, 0, apierrors.NewConflict(rc.d.GroupResource(), name,
					fmt.Errorf("Precondition failed: ResourceVersion in precondition: %v, ResourceVersion in object meta: %v", *p.ResourceVersion, m.GetResourceVersion()))
			}
		}
		if err := rc.admitDelete(obj); err != nil {
			return nil, 0, err
		}
		deferred := len(m.GetFinalizers()) > 0
		if b, ok := rc.d.Strategy.(interface {
			BeginDelete(obj runtime.Object) bool
		}); ok {
			deferred = b.BeginDelete(obj) || deferred
		}
		if deferred {
			if m.GetDeletionTimestamp() != nil {
				return obj, http.StatusAccepted, nil
			}
			now := metav1.NewTime(rc.h.now().Truncate(1e9))
			zero := int64(0)
			m.SetDeletionTimestamp(&now)
			m.SetDeletionGracePeriodSeconds(&zero)
			if dryRun {
				return obj, http.StatusAccepted, nil
			}
			raw, err := rc.encodeForStorage(obj)
			if err != nil {
				return nil, 0, err
			}
			newKV, err := rc.store.Update(rc.ctx(), key, raw, store.Precondition{ModRevision: kv.ModRevision})
			if errors.Is(err, store.ErrConflict) && attempt < 10 {
				continue
			}
			if err != nil {
				return nil, 0, rc.storeError(err, name)
			}
			m.SetResourceVersion(strconv.FormatInt(newKV.ModRevision, 10))
			return obj, http.StatusAccepted, nil
		}
		if dryRun {
			return obj, http.StatusOK, nil
		}
		last, err := rc.store.Delete(rc.ctx(), key, store.Precondition{ModRevision: kv.ModRevision})
		if errors.Is(err, store.ErrConflict) && attempt < 10 {
			continue
		}
		if err != nil {
			return nil, 0, rc.storeError(err, name)
		}
		m.SetResourceVersion(strconv.FormatInt(last.ModRevision, 10))
		return obj, http.StatusOK, nil
	}
}

// finishDeletion removes an object whose last finalizer was just cleared.
func (rc *reqCtx) finishDeletion(kv store.KV, obj runtime.Object, dryRun bool) {
	if !dryRun {
		last, err := rc.store.Delete(rc.ctx(), kv.Key, store.Precondition{ModRevision: kv.ModRevision})
		if err != nil {
			rc.fail(rc.storeError(err, rc.info.Name))
			return
		}
		kv.ModRevision = last.ModRevision
	}
	rc.respond(http.StatusOK, obj, kv.ModRevision)
}

func (rc *reqCtx) deleteCollection() {
	opts, err := rc.deleteOptions()
	if err != nil {
		rc.fail(err)
		return
	}
	rc.deleteOpts = opts
	listOpts, err := rc.listOptions()
	if err != nil {
		rc.fail(err)
		return
	}
	lo := &metainternalversion.ListOptions{LabelSelector: listOpts.LabelSelector, FieldSelector: listOpts.FieldSelector}
	page, err := rc.collect(lo, rc.newFilter(lo))
	if err != nil {
		rc.fail(err)
		return
	}
	deleted := make([]runtime.Object, 0, len(page.items))
	for _, kv := range page.items {
		m, err := peekMeta(kv.Value)
		if err != nil {
			rc.fail(apierrors.NewInternalError(err))
			return
		}
		obj, _, err := rc.deleteOne(m.Metadata.Namespace, m.Metadata.Name, opts)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			rc.fail(err)
			return
		}
		deleted = append(deleted, obj)
	}
	out, _ := rc.negotiate(true)
	rc.writeList(output{yaml: out.yaml, proto: out.proto, scheme: out.scheme}, metav1.ListMeta{ResourceVersion: strconv.FormatInt(page.revision, 10)}, deleted)
}

// decodeOptionsBody decodes DeleteOptions sent as JSON, YAML or in the
// protobuf envelope (client-go's typed clients send protobuf).
func decodeOptionsBody(r *http.Request, body []byte, opts *metav1.DeleteOptions) error {
	format, err := requestBodyFormat(r, false)
	if err != nil {
		return err
	}
	switch format {
	case bodyProtobuf:
		var unk runtime.Unknown
		if !bytes.HasPrefix(body, protobufMagic) {
			return errors.New("missing protobuf envelope")
		}
		if err := unk.Unmarshal(body[len(protobufMagic):]); err != nil {
			return err
		}
		return opts.Unmarshal(unk.Raw)
	case bodyYAML:
		j, err := yaml.YAMLToJSON(body)
		if err != nil {
			return err
		}
		body = j
	}
	return sigsjson.UnmarshalCaseSensitivePreserveInts(body, opts)
}

// protobufMagic starts every Kubernetes protobuf message.
var protobufMagic = []byte{0x6b, 0x38, 0x73, 0x00}
