package handler

import (
	"fmt"
	"net/http"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/trellis-project/trellis/internal/resource"
)

// createSubresource serves a SubresourceCreater, as kube-apiserver's
// create handler serves a named creater such as serviceaccounts/token:
// the body is decoded as the creater's kind and defaulted, its namespace
// must match the URL's, and the answer is 201 with the creater's object.
func (rc *reqCtx) createSubresource(c *resource.SubresourceCreater) {
	if rc.info.Verb != "create" {
		rc.fail(methodNotSupported(rc.d, rc.info))
		return
	}
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
	if _, err := rc.dryRun(); err != nil {
		rc.fail(err)
		return
	}
	obj, err := rc.decodeKind(body, format, c.Kind, c.New())
	if err != nil {
		rc.fail(err)
		return
	}
	if rc.h.Scheme != nil && rc.h.Scheme.Recognizes(c.Kind) {
		rc.h.Scheme.Default(obj)
	}
	if m, err := meta.Accessor(obj); err == nil {
		switch ns := m.GetNamespace(); {
		case ns == "":
			m.SetNamespace(rc.namespace)
		case ns != rc.namespace:
			rc.fail(apierrors.NewBadRequest("the namespace of the provided object does not match the namespace sent on the request"))
			return
		}
	}
	out, err := c.Create(rc.ctx(), &resource.CreateRequest{
		Namespace: rc.namespace, Name: rc.info.Name, Object: obj,
		Warn: func(msg string) { addWarning(rc.w, msg) },
	})
	if err != nil {
		rc.fail(err)
		return
	}
	// A creater may answer with a Status (pods/eviction) instead of Kind.
	if out.GetObjectKind().GroupVersionKind().Empty() {
		out.GetObjectKind().SetGroupVersionKind(c.Kind)
	}
	o, _ := rc.negotiate(false)
	writeObject(rc.w, rc.r, http.StatusCreated, output{yaml: o.yaml}, out)
}

// decodeKind decodes a JSON, YAML or protobuf body into obj, a typed
// object of kind want, honouring fieldValidation as decodeBody does.
func (rc *reqCtx) decodeKind(body []byte, format bodyFormat, want schema.GroupVersionKind, obj runtime.Object) (runtime.Object, error) {
	mismatch := func(got string) error {
		return apierrors.NewBadRequest(fmt.Sprintf("the kind in the data (%s) does not match the expected kind (%s)", got, want))
	}
	if format == bodyProtobuf {
		if rc.h.Scheme == nil {
			return nil, unsupportedMediaType(ProtobufMediaType, false)
		}
		out, gvk, err := protobuf.NewSerializer(rc.h.Scheme, rc.h.Scheme).Decode(body, &want, obj)
		if err != nil {
			return nil, apierrors.NewBadRequest(err.Error())
		}
		if gvk != nil && gvk.Kind != "" && *gvk != want {
			return nil, mismatch(gvk.String())
		}
		return out, nil
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
	var tm metav1.TypeMeta
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(body, &tm); err != nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("couldn't get version/kind; json parse error: %v", err))
	}
	if tm.APIVersion != "" && tm.APIVersion != want.GroupVersion().String() {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the API version in the data (%s) does not match the expected API version (%s)", tm.APIVersion, want.GroupVersion()))
	}
	if tm.Kind != "" && tm.Kind != want.Kind {
		return nil, mismatch(tm.Kind)
	}
	strictErrs, err := sigsjson.UnmarshalStrict(body, obj)
	if err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	if err := rc.reportUnknownFields(validation, strictErrs); err != nil {
		return nil, err
	}
	obj.GetObjectKind().SetGroupVersionKind(want)
	return obj, nil
}
