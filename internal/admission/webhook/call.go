package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	admissionv1 "k8s.io/api/admission/v1"
	admissionv1beta1 "k8s.io/api/admission/v1beta1"
	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/rest"

	"github.com/trellis-project/trellis/internal/admission"
	"github.com/trellis-project/trellis/internal/webhook"
)

// callError is a webhook that could not be called or answered nonsense:
// its failurePolicy decides. Its message is kube-apiserver's.
type callError struct {
	webhook string
	reason  error
	status  *apierrors.StatusError
	// dryRunUnsupported is the 400 a dryRun request gets from a webhook
	// with side effects (when failurePolicy is Fail).
	dryRunUnsupported *apierrors.StatusError
}

func (e *callError) Error() string {
	return fmt.Sprintf("failed calling webhook %q: %v", e.webhook, e.reason)
}

func (e *callError) Unwrap() error { return e.reason }

// response is the part of an AdmissionResponse admission acts on.
type response struct {
	Allowed          bool
	Result           *metav1.Status
	Patch            []byte
	PatchType        string
	Warnings         []string
	AuditAnnotations map[string]string
}

var reviewCodecs = func() serializer.CodecFactory {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{admissionv1.AddToScheme, admissionv1beta1.AddToScheme} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return serializer.NewCodecFactory(s)
}()

// call sends one AdmissionReview and checks the answer. The call ends at
// the webhook's timeout or the request's deadline, whichever is first;
// a webhook in back-off is not called at all.
func (d *Dispatcher) call(ctx context.Context, inv *invocation, a *admission.Attributes, obj, old runtime.Object) (*response, error) {
	h := inv.hook
	if a.DryRun && !sideEffectsAllowDryRun(h.sideEffects) {
		if h.sideEffects == nil {
			return nil, &callError{webhook: h.name, reason: errors.New("Webhook SideEffects is nil"), status: apierrors.NewBadRequest("Webhook SideEffects is nil")}
		}
		st := apierrors.NewBadRequest(fmt.Sprintf("admission webhook %q does not support dry run", h.name))
		return nil, &callError{webhook: h.name, reason: st, status: st, dryRunUnsupported: st}
	}
	if h.reviewVersion == "" {
		return nil, &callError{webhook: h.name, reason: errors.New("webhook does not accept known AdmissionReview versions"), status: apierrors.NewInternalError(errors.New("webhook does not accept known AdmissionReview versions"))}
	}
	b := d.breaker(h.key)
	if until, last, open := b.open(d.now()); open {
		reason := fmt.Errorf("webhook is backing off until %s after %d consecutive failures; last error: %v",
			until.UTC().Format(time.RFC3339), b.failuresNow(), last)
		d.metrics.skipped(h)
		return nil, &callError{webhook: h.name, reason: reason, status: apierrors.NewServiceUnavailable("webhook is backing off")}
	}
	res, err := d.post(ctx, inv, a, obj, old)
	if err != nil {
		// A failure caused by the request's own deadline is not the
		// webhook's fault.
		if ctx.Err() == nil {
			b.failed(d.now(), err, d.threshold, d.backoff)
		}
		return nil, err
	}
	b.succeeded()
	return res, nil
}

func (d *Dispatcher) post(ctx context.Context, inv *invocation, a *admission.Attributes, obj, old runtime.Object) (*response, error) {
	h := inv.hook
	client, err := d.client(h)
	if err != nil {
		return nil, &callError{webhook: h.name, reason: fmt.Errorf("could not get REST client: %w", err), status: apierrors.NewInternalError(err)}
	}
	uid := uuid.NewUUID()
	body, err := reviewRequest(h.reviewVersion, uid, inv, a, obj, old)
	if err != nil {
		return nil, &callError{webhook: h.name, reason: fmt.Errorf("could not create admission objects: %w", err), status: apierrors.NewBadRequest("error creating admission objects")}
	}
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	// client-go sets Content-Type only for object bodies; webhook servers
	// (controller-runtime's among them) refuse a review without it.
	req := client.Post().SetHeader("Content-Type", runtime.ContentTypeJSON).Body(body)
	if deadline, ok := ctx.Deadline(); ok {
		// Tell the webhook how long it has, in whole seconds, rounded up.
		if left := time.Until(deadline); left > 0 {
			if t := left.Truncate(time.Second); t != left {
				left = t + time.Second
			}
			req = req.Timeout(left)
		}
	}
	raw, err := req.Do(ctx).Raw()
	if err != nil {
		var st *apierrors.StatusError
		if !errors.As(err, &st) {
			st = apierrors.NewServiceUnavailable("error calling webhook")
		}
		return nil, &callError{webhook: h.name, reason: fmt.Errorf("failed to call webhook: %w", err), status: st}
	}
	res, err := verifyResponse(raw, h.reviewVersion, uid, h.mutating)
	if err != nil {
		return nil, &callError{webhook: h.name, reason: fmt.Errorf("received invalid webhook response: %w", err), status: apierrors.NewServiceUnavailable("error validating webhook response")}
	}
	return res, nil
}

// client builds a webhook's REST client once per configuration.
func (d *Dispatcher) client(h *hook) (*rest.RESTClient, error) {
	h.clientOnce.Do(func() {
		var cfg *rest.Config
		cfg, h.clientErr = webhook.RESTConfig(h.clientConfig, d.resolver, 0, reviewCodecs.WithoutConversion())
		if h.clientErr == nil {
			h.client, h.clientErr = rest.UnversionedRESTClientFor(cfg)
		}
	})
	return h.client, h.clientErr
}

// reviewRequest encodes the AdmissionReview for one call.
func reviewRequest(version string, uid types.UID, inv *invocation, a *admission.Attributes, obj, old runtime.Object) ([]byte, error) {
	req := admissionv1.AdmissionRequest{
		UID:                uid,
		Kind:               metav1.GroupVersionKind(inv.kind),
		Resource:           metav1.GroupVersionResource(inv.resource),
		SubResource:        a.Subresource,
		RequestKind:        ptr(metav1.GroupVersionKind(a.Kind)),
		RequestResource:    ptr(metav1.GroupVersionResource(a.Resource)),
		RequestSubResource: a.Subresource,
		Name:               a.Name,
		Namespace:          a.Namespace,
		Operation:          admissionv1.Operation(a.Operation),
		DryRun:             ptr(a.DryRun),
	}
	if u := a.User; u != nil {
		req.UserInfo = authenticationv1.UserInfo{Username: u.Name, UID: u.UID, Groups: u.Groups}
		if len(u.Extra) > 0 {
			req.UserInfo.Extra = map[string]authenticationv1.ExtraValue{}
			for k, v := range u.Extra {
				req.UserInfo.Extra[k] = v
			}
		}
	}
	var err error
	for _, x := range []struct {
		in  runtime.Object
		out *runtime.RawExtension
	}{{obj, &req.Object}, {old, &req.OldObject}, {a.Options, &req.Options}} {
		if x.in == nil {
			continue
		}
		if x.out.Raw, err = json.Marshal(x.in); err != nil {
			return nil, err
		}
	}
	if version == "v1beta1" {
		return json.Marshal(admissionv1beta1.AdmissionReview{
			TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1beta1", Kind: "AdmissionReview"},
			Request: &admissionv1beta1.AdmissionRequest{
				UID: req.UID, Kind: req.Kind, Resource: req.Resource, SubResource: req.SubResource,
				RequestKind: req.RequestKind, RequestResource: req.RequestResource, RequestSubResource: req.RequestSubResource,
				Name: req.Name, Namespace: req.Namespace, Operation: admissionv1beta1.Operation(req.Operation),
				UserInfo: req.UserInfo, Object: req.Object, OldObject: req.OldObject, DryRun: req.DryRun, Options: req.Options,
			},
		})
	}
	return json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request:  &req,
	})
}

func ptr[T any](v T) *T { return &v }

// verifyResponse checks an AdmissionReview answer as kube-apiserver does:
// v1 answers must name the request's uid and carry patch and patchType
// together; validating webhooks may not patch.
func verifyResponse(raw []byte, version string, uid types.UID, mutating bool) (*response, error) {
	if version == "v1beta1" {
		var r admissionv1beta1.AdmissionReview
		if err := json.Unmarshal(raw, &r); err != nil {
			return nil, err
		}
		if r.Response == nil {
			return nil, errors.New("webhook response was absent")
		}
		out := &response{Allowed: r.Response.Allowed, Result: r.Response.Result, Warnings: r.Response.Warnings, AuditAnnotations: r.Response.AuditAnnotations}
		if mutating && len(r.Response.Patch) > 0 {
			out.Patch, out.PatchType = r.Response.Patch, string(admissionv1.PatchTypeJSONPatch)
		}
		return out, nil
	}
	var r admissionv1.AdmissionReview
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, err
	}
	if r.Response == nil {
		return nil, errors.New("webhook response was absent")
	}
	if r.Response.UID != uid {
		return nil, fmt.Errorf("expected response.uid=%q, got %q", uid, r.Response.UID)
	}
	if gvk := r.GroupVersionKind(); gvk != admissionv1.SchemeGroupVersion.WithKind("AdmissionReview") {
		return nil, fmt.Errorf("expected webhook response of %v, got %v", admissionv1.SchemeGroupVersion.WithKind("AdmissionReview"), gvk)
	}
	out := &response{Allowed: r.Response.Allowed, Result: r.Response.Result, Warnings: r.Response.Warnings, AuditAnnotations: r.Response.AuditAnnotations}
	if mutating {
		if len(r.Response.Patch) > 0 && r.Response.PatchType == nil {
			return nil, errors.New("webhook returned response.patch but not response.patchType")
		}
		if len(r.Response.Patch) == 0 && r.Response.PatchType != nil {
			return nil, errors.New("webhook returned response.patchType but not response.patch")
		}
		out.Patch = r.Response.Patch
		if r.Response.PatchType != nil {
			if *r.Response.PatchType == "" {
				return nil, fmt.Errorf("webhook returned invalid response.patchType of %q", *r.Response.PatchType)
			}
			out.PatchType = string(*r.Response.PatchType)
		}
	} else {
		if len(r.Response.Patch) > 0 {
			return nil, errors.New("validating webhook may not return response.patch")
		}
		if r.Response.PatchType != nil {
			return nil, errors.New("validating webhook may not return response.patchType")
		}
	}
	return out, nil
}

// rejection is the Status a denial answers the client with.
func rejection(webhookName string, result *metav1.Status) *apierrors.StatusError {
	st := metav1.Status{Status: metav1.StatusFailure}
	if result != nil {
		st = *result.DeepCopy()
	}
	if st.Code < http.StatusBadRequest {
		st.Code = http.StatusBadRequest
	}
	if st.Status == "" || st.Status == metav1.StatusSuccess {
		st.Status = metav1.StatusFailure
	}
	deniedBy := fmt.Sprintf("admission webhook %q denied the request", webhookName)
	switch {
	case st.Message != "":
		st.Message = deniedBy + ": " + st.Message
	case st.Reason != "":
		st.Message = deniedBy + ": " + string(st.Reason)
	default:
		st.Message = deniedBy + " without explanation"
	}
	return &apierrors.StatusError{ErrStatus: st}
}

// applyPatch applies a mutating webhook's JSONPatch to obj (of the
// invocation's version) and decodes the result as a request body would
// be. nil means the patch was empty.
func applyPatch(h *hook, a *admission.Attributes, inv *invocation, obj runtime.Object, res *response) (runtime.Object, error) {
	patch, err := jsonpatch.DecodePatch(res.Patch)
	if err != nil {
		return nil, &callError{webhook: h.name, reason: fmt.Errorf("received undecodable patch in webhook response: %w", err), status: apierrors.NewServiceUnavailable("error decoding patch in webhook response")}
	}
	if len(patch) == 0 {
		return nil, nil
	}
	if res.PatchType != string(admissionv1.PatchTypeJSONPatch) {
		return nil, &callError{webhook: h.name, reason: fmt.Errorf("unsupported patch type %q", res.PatchType), status: rejection(h.name, res.Result)}
	}
	if obj == nil {
		return nil, apierrors.NewInternalError(fmt.Errorf("admission webhook %q attempted to modify the object, which is not supported for this operation", h.name))
	}
	original, err := json.Marshal(obj)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	patched, err := patch.Apply(original)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	d := a.Descriptor
	if inv.target != nil {
		d = inv.target
	}
	out, err := a.Decode(d, patched)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	return out, nil
}
