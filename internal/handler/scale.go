package handler

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/apimachinery/pkg/util/validation/field"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// Scaler is implemented by strategies that serve a /scale subresource: it
// maps an object to an autoscaling/v1 Scale and writes a Scale's replicas
// back.
type Scaler interface {
	ScaleOf(obj runtime.Object) (*autoscalingv1.Scale, error)
	SetReplicas(obj runtime.Object, replicas int32) error
}

var scaleGVK = autoscalingv1.SchemeGroupVersion.WithKind("Scale")

// optionalReplicas is implemented by Scalers whose objects may lack the
// replicas field (custom resources). kube-apiserver then refuses to read
// the Scale (500) and to write one that leaves replicas unset (400).
type optionalReplicas interface {
	// UnsetReplicas reports whether obj lacks replicas, and where they
	// would be (".spec.replicas").
	UnsetReplicas(obj runtime.Object) (path string, unset bool)
}

// noReplicas marks a Scale of an object without replicas while a write
// runs, as upstream marks it: no client can send it.
const noReplicas = math.MinInt32

// scale serves GET, PUT and PATCH on /scale, as kube-apiserver does for
// custom resources: the body and the answer are autoscaling/v1 Scale, and
// only spec.replicas is written back.
func (rc *reqCtx) scale() {
	scaler, ok := rc.d.Strategy.(Scaler)
	if !ok {
		rc.fail(notFoundPath())
		return
	}
	switch rc.info.Verb {
	case "get":
		kv, err := rc.store.Get(rc.ctx(), rc.d.Key(rc.namespace, rc.info.Name))
		if err != nil {
			rc.fail(rc.storeError(err, rc.info.Name))
			return
		}
		obj, err := rc.decodeStored(kv.Value, kv.ModRevision)
		if err != nil {
			rc.fail(err)
			return
		}
		if o, ok := scaler.(optionalReplicas); ok {
			if path, unset := o.UnsetReplicas(obj); unset {
				rc.fail(apierrors.NewInternalError(fmt.Errorf("the spec replicas field %q does not exist", path)))
				return
			}
		}
		rc.writeScale(http.StatusOK, scaler, obj)
	case "update":
		format, err := requestBodyFormat(rc.r, false)
		if err != nil {
			rc.fail(err)
			return
		}
		body, err := rc.readBody()
		if err != nil {
			rc.fail(err)
			return
		}
		if err := rc.writeOptions("UpdateOptions"); err != nil {
			rc.fail(err)
			return
		}
		sc, err := decodeScale(body, format, rc.h.Scheme)
		if err != nil {
			rc.fail(err)
			return
		}
		if sc.Name != rc.info.Name {
			rc.fail(apierrors.NewBadRequest(fmt.Sprintf("the name of the object (%s) does not match the name on the URL (%s)", sc.Name, rc.info.Name)))
			return
		}
		rc.updateScale(scaler, func(*autoscalingv1.Scale) (*autoscalingv1.Scale, error) { return sc.DeepCopy(), nil }, sc.ResourceVersion)
	case "patch":
		format, err := rc.patchFormat()
		if err != nil {
			rc.fail(err)
			return
		}
		if format == bodyApplyPatch {
			rc.applyScale(scaler)
			return
		}
		patchBytes, err := rc.readBody()
		if err != nil {
			rc.fail(err)
			return
		}
		// An apply to /scale names the fields it sets, replicas; it is
		// served as a merge of the applied spec. Its managed fields are
		// recorded as an update by the applier (kube-apiserver records an
		// Apply on the parent's spec.replicas).
		rc.applying = format == bodyApplyPatch
		err = rc.writeOptions("PatchOptions")
		rc.applying = false
		if err != nil {
			rc.fail(err)
			return
		}
		if err := validPatchJSON(patchBytes); err != nil {
			rc.fail(err)
			return
		}
		rc.updateScale(scaler, func(cur *autoscalingv1.Scale) (*autoscalingv1.Scale, error) {
			original, _ := json.Marshal(cur)
			var patched []byte
			var err error
			switch format {
			case bodyJSONPatch:
				var p jsonpatch.Patch
				if p, err = jsonpatch.DecodePatch(patchBytes); err == nil {
					patched, err = p.Apply(original)
				}
			case bodyMergePatch:
				patched, err = jsonpatch.MergePatch(original, patchBytes)
			case bodyStrategicMergePatch:
				patched, err = strategicpatch.StrategicMergePatch(original, patchBytes, &autoscalingv1.Scale{})
			}
			if err != nil {
				return nil, apierrors.NewInvalid(scaleGVK.GroupKind(), rc.info.Name, field.ErrorList{field.Invalid(field.NewPath("patch"), string(patchBytes), err.Error())})
			}
			sc, err := decodeScale(patched, bodyJSON, nil)
			if err != nil {
				return nil, err
			}
			if sc.ResourceVersion == cur.ResourceVersion {
				sc.ResourceVersion = "" // unchanged: not a precondition
			}
			return sc, nil
		}, "")
	default:
		rc.fail(methodNotSupported(rc.d, rc.info))
	}
}

// applyScale answers a server-side apply of a Scale. As in
// kube-apiserver the object must exist, the apply configuration is an
// autoscaling/v1 Scale, and only its spec.replicas reaches the object.
func (rc *reqCtx) applyScale(scaler Scaler) {
	ap, err := rc.readApplyPatch()
	if err != nil {
		rc.fail(err)
		return
	}
	rc.updateScale(scaler, func(cur *autoscalingv1.Scale) (*autoscalingv1.Scale, error) {
		sc, err := rc.scaleFields.Apply(cur, ap.patch.DeepCopy(), rc.manager, ap.force)
		if err != nil {
			return nil, err
		}
		if err := ap.checkStrict(rc); err != nil {
			return nil, err
		}
		if sc.Namespace != "" && sc.Namespace != rc.namespace {
			return nil, apierrors.NewBadRequest("the namespace of the provided object does not match the namespace sent on the request")
		}
		if sc.Name != rc.info.Name {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("the name of the object (%s) does not match the name on the URL (%s)", sc.Name, rc.info.Name))
		}
		if sc.ResourceVersion == cur.ResourceVersion {
			sc.ResourceVersion = "" // carried over by the merge: not a precondition
		}
		return sc, nil
	}, "")
}

// updateScale runs the shared read-modify-write loop with a Scale edit.
// edit gets the current Scale, with the managed fields of the object's
// replicas (an apply merges with them); the managed fields of the Scale
// it returns go back onto the object's replicas field. A write that is
// not an apply is recorded as an Update of the Scale first. This is how
// kube-apiserver tracks /scale writes: its field manager sees Scales only.
func (rc *reqCtx) updateScale(scaler Scaler, edit func(cur *autoscalingv1.Scale) (*autoscalingv1.Scale, error), expectRV string) {
	if rc.h.FieldManagers != nil {
		sm, err := rc.h.FieldManagers.Scale(rc.d)
		if err != nil {
			rc.fail(apierrors.NewInternalError(err))
			return
		}
		rc.scaleFields = sm
	}
	rc.respondAs = func(obj runtime.Object) (runtime.Object, error) { return scaler.ScaleOf(obj) }
	rc.applyUpdate(func(old runtime.Object) (runtime.Object, error) {
		old = old.DeepCopyObject() // the new object: replicas and managed fields change
		cur, err := scaler.ScaleOf(old)
		if err != nil {
			return nil, apierrors.NewInternalError(err)
		}
		o, optional := scaler.(optionalReplicas)
		replicasPath, unset := "", false
		if optional {
			if replicasPath, unset = o.UnsetReplicas(old); unset {
				cur.Spec.Replicas = noReplicas
			}
		}
		m, _ := meta.Accessor(old)
		entries := m.GetManagedFields()
		if rc.scaleFields != nil {
			if cur.ManagedFields, err = rc.scaleFields.ScaleEntries(entries); err != nil {
				return nil, apierrors.NewInternalError(err)
			}
		}
		live := cur.DeepCopy()
		sc, err := edit(cur)
		if err != nil {
			return nil, err
		}
		if rc.scaleFields != nil && !rc.applying {
			rc.scaleFields.Update(live, sc, rc.manager)
		}
		if optional && sc.Spec.Replicas == noReplicas {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("the spec replicas field %q cannot be empty", replicasPath))
		}
		if sc.Spec.Replicas < 0 {
			return nil, apierrors.NewInvalid(scaleGVK.GroupKind(), rc.info.Name, field.ErrorList{
				field.Invalid(field.NewPath("spec", "replicas"), sc.Spec.Replicas, "must be greater than or equal to 0"),
			})
		}
		if err := scaler.SetReplicas(old, sc.Spec.Replicas); err != nil {
			return nil, apierrors.NewInternalError(err)
		}
		if rc.scaleFields != nil {
			parent, err := rc.scaleFields.ParentEntries(entries, sc.ManagedFields)
			if err != nil {
				return nil, apierrors.NewInternalError(err)
			}
			m.SetManagedFields(parent)
		}
		m.SetResourceVersion(sc.ResourceVersion)
		return old, nil
	}, expectRV)
}

func (rc *reqCtx) writeScale(code int, scaler Scaler, obj runtime.Object) {
	sc, err := scaler.ScaleOf(obj)
	if err != nil {
		rc.fail(apierrors.NewInternalError(err))
		return
	}
	out, _ := rc.negotiate(false)
	writeObject(rc.w, rc.r, code, output{yaml: out.yaml, proto: out.proto, scheme: out.scheme}, sc)
}

// decodeScale decodes a Scale body. Protobuf needs scheme: client-go's
// typed UpdateScale sends it by default.
func decodeScale(body []byte, format bodyFormat, scheme *runtime.Scheme) (*autoscalingv1.Scale, error) {
	if format == bodyYAML {
		j, err := yaml.YAMLToJSON(body)
		if err != nil {
			return nil, apierrors.NewBadRequest(err.Error())
		}
		body = j
	}
	if format == bodyProtobuf {
		if scheme == nil {
			return nil, unsupportedMediaType(ProtobufMediaType, false)
		}
		obj, _, err := protobuf.NewSerializer(scheme, scheme).Decode(body, &scaleGVK, &autoscalingv1.Scale{})
		if err != nil {
			return nil, apierrors.NewBadRequest(err.Error())
		}
		sc, ok := obj.(*autoscalingv1.Scale)
		if !ok {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("the kind in the data (%s) does not match the expected kind (%s)", obj.GetObjectKind().GroupVersionKind(), scaleGVK))
		}
		return sc, nil
	}
	sc := &autoscalingv1.Scale{}
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(body, sc); err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	if sc.APIVersion != "" && schema.FromAPIVersionAndKind(sc.APIVersion, sc.Kind) != scaleGVK {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the kind in the data (%s %s) does not match the expected kind (%s)", sc.APIVersion, sc.Kind, scaleGVK))
	}
	return sc, nil
}
