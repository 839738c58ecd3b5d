package apiextensions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsv1beta1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1beta1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/rest"

	"github.com/trellis-project/trellis/internal/webhook"
)

// DefaultWebhookTimeout bounds a conversion webhook call, as
// kube-apiserver's webhook clients do.
const DefaultWebhookTimeout = 30 * time.Second

// webhookConverter sends ConversionReviews to a CRD's conversion webhook.
type webhookConverter struct {
	client *rest.RESTClient
	// reviewVersion is the first of conversionReviewVersions this server
	// speaks: "v1" or "v1beta1".
	reviewVersion string
	// newUID makes request UIDs; tests replace it.
	newUID func() types.UID
}

// webhookClients keeps one webhook client per CRD and builds a new one
// only when the CRD's webhook configuration changes, so connections are
// reused across the CRD's other updates (status, schema, names).
type webhookClients struct {
	resolver webhook.ServiceResolver
	timeout  time.Duration

	mu      sync.Mutex
	clients map[string]webhookClient // CRD name → client
}

type webhookClient struct {
	key    string // the configuration it was built from
	client *rest.RESTClient
}

func newWebhookClients(resolver webhook.ServiceResolver, timeout time.Duration) *webhookClients {
	if timeout <= 0 {
		timeout = DefaultWebhookTimeout
	}
	return &webhookClients{resolver: resolver, timeout: timeout, clients: map[string]webhookClient{}}
}

// converterFor returns the converter crd's conversion strategy asks for.
func (w *webhookClients) converterFor(crd *apiextensionsv1.CustomResourceDefinition) (converter, error) {
	conv := crd.Spec.Conversion
	if conv == nil || conv.Strategy == apiextensionsv1.NoneConverter || conv.Strategy == "" {
		w.forget(crd.Name)
		return noneConverter{}, nil
	}
	if conv.Strategy != apiextensionsv1.WebhookConverter {
		return nil, fmt.Errorf("unknown conversion strategy %q for CRD %s", conv.Strategy, crd.Name)
	}
	if conv.Webhook == nil || conv.Webhook.ClientConfig == nil {
		return nil, fmt.Errorf("CRD %s: webhook conversion without a clientConfig", crd.Name)
	}
	version := ""
	for _, v := range conv.Webhook.ConversionReviewVersions {
		if v == apiextensionsv1.SchemeGroupVersion.Version || v == apiextensionsv1beta1.SchemeGroupVersion.Version {
			version = v
			break
		}
	}
	if version == "" {
		return nil, errors.New("no supported conversion review versions")
	}
	client, err := w.client(crd.Name, conv.Webhook.ClientConfig)
	if err != nil {
		return nil, err
	}
	return &webhookConverter{client: client, reviewVersion: version, newUID: uuid.NewUUID}, nil
}

func (w *webhookClients) forget(crdName string) {
	w.mu.Lock()
	delete(w.clients, crdName)
	w.mu.Unlock()
}

func (w *webhookClients) client(crdName string, cc *apiextensionsv1.WebhookClientConfig) (*rest.RESTClient, error) {
	raw, err := json.Marshal(cc)
	if err != nil {
		return nil, err
	}
	key := string(raw)
	w.mu.Lock()
	defer w.mu.Unlock()
	if c, ok := w.clients[crdName]; ok && c.key == key {
		return c.client, nil
	}
	cfg, err := w.restConfig(cc)
	if err != nil {
		return nil, err
	}
	client, err := rest.UnversionedRESTClientFor(cfg)
	if err != nil {
		return nil, err
	}
	w.clients[crdName] = webhookClient{key: key, client: client}
	return client, nil
}

// reviewCodecs let the REST client decode a Status a webhook may answer
// an error with.
var reviewCodecs = func() serializer.CodecFactory {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{apiextensionsv1.AddToScheme, apiextensionsv1beta1.AddToScheme} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return serializer.NewCodecFactory(s)
}()

// restConfig builds the client configuration of a conversion webhook
// (see webhook.RESTConfig).
func (w *webhookClients) restConfig(cc *apiextensionsv1.WebhookClientConfig) (*rest.Config, error) {
	shared := webhook.ClientConfig{URL: cc.URL, CABundle: cc.CABundle}
	if svc := cc.Service; svc != nil {
		shared.Service = &webhook.ServiceReference{Namespace: svc.Namespace, Name: svc.Name, Path: svc.Path, Port: svc.Port}
	}
	return webhook.RESTConfig(shared, w.resolver, w.timeout, reviewCodecs.WithoutConversion())
}

// convert sends one ConversionReview with every object and checks the
// answer as kube-apiserver does. Errors carry upstream's messages.
func (c *webhookConverter) convert(objs []*unstructured.Unstructured, to schema.GroupVersion, batch bool) ([]*unstructured.Unstructured, error) {
	if len(objs) == 0 {
		return objs, nil
	}
	// Upstream names the kind of the object it was asked to convert.
	inGVK := objs[0].GroupVersionKind()
	body, uid, err := c.review(objs, to)
	if err != nil {
		return nil, err
	}
	raw, err := c.client.Post().SetHeader("Content-Type", runtime.ContentTypeJSON).Body(body).Do(context.Background()).Raw()
	if err != nil {
		return nil, fmt.Errorf("conversion webhook for %v failed: %v", inGVK, err)
	}
	converted, err := reviewResponse(raw, c.reviewVersion, uid)
	if err != nil {
		return nil, fmt.Errorf("conversion webhook for %v failed: %v", inGVK, err)
	}
	if len(converted) != len(objs) {
		return nil, fmt.Errorf("conversion webhook for %v returned %d objects, expected %d", inGVK, len(converted), len(objs))
	}
	out := make([]*unstructured.Unstructured, len(objs))
	for i := range converted {
		got, err := checkConverted(inGVK, objs[i], converted[i], to, i, batch)
		if err != nil {
			return nil, err
		}
		out[i] = got
	}
	return out, nil
}

// review encodes the ConversionReview request. Objects are sent without
// resourceVersion, as kube-apiserver's storage codec sees them.
func (c *webhookConverter) review(objs []*unstructured.Unstructured, to schema.GroupVersion) ([]byte, types.UID, error) {
	items := make([]runtime.RawExtension, len(objs))
	for i, u := range objs {
		rv := u.GetResourceVersion()
		if rv != "" {
			u.SetResourceVersion("")
		}
		raw, err := u.MarshalJSON()
		if rv != "" {
			u.SetResourceVersion(rv)
		}
		if err != nil {
			return nil, "", err
		}
		items[i] = runtime.RawExtension{Raw: raw}
	}
	uid := c.newUID()
	review := apiextensionsv1.ConversionReview{
		Request:  &apiextensionsv1.ConversionRequest{UID: uid, DesiredAPIVersion: to.String(), Objects: items},
		Response: &apiextensionsv1.ConversionResponse{},
	}
	// v1beta1 reviews have the same fields under another apiVersion.
	review.APIVersion = apiextensionsv1.SchemeGroupVersion.Group + "/" + c.reviewVersion
	review.Kind = "ConversionReview"
	body, err := json.Marshal(&review)
	return body, uid, err
}

// reviewResponse checks a webhook's answer and returns the converted
// objects. A v1 answer must be a v1 ConversionReview for our request's
// UID; v1beta1 answers were never checked upstream and are not here.
func reviewResponse(raw []byte, version string, uid types.UID) ([]runtime.RawExtension, error) {
	var review apiextensionsv1.ConversionReview
	if err := json.Unmarshal(raw, &review); err != nil {
		return nil, err
	}
	if version == apiextensionsv1.SchemeGroupVersion.Version {
		want := apiextensionsv1.SchemeGroupVersion.WithKind("ConversionReview")
		if got := review.GroupVersionKind(); got != want {
			return nil, fmt.Errorf("expected webhook response of %v, got %v", want, got)
		}
	}
	if review.Response == nil {
		return nil, errors.New("no response provided")
	}
	if version == apiextensionsv1.SchemeGroupVersion.Version && review.Response.UID != uid {
		return nil, fmt.Errorf("expected response.uid=%q, got %q", uid, review.Response.UID)
	}
	if review.Response.Result.Status != metav1.StatusSuccess {
		if review.Response.Result.Message != "" {
			return nil, errors.New(review.Response.Result.Message)
		}
		return nil, fmt.Errorf("response.result.status was '%s', not 'Success'", review.Response.Result.Status)
	}
	return review.Response.ConvertedObjects, nil
}

// checkConverted validates the object a webhook returned for in and
// gives it in's metadata back, except for labels and annotations, which a
// webhook may change. Errors carry upstream's messages, worded for a list
// when batch is set.
func checkConverted(inGVK schema.GroupVersionKind, in *unstructured.Unstructured, rx runtime.RawExtension, to schema.GroupVersion, i int, batch bool) (*unstructured.Unstructured, error) {
	invalid := fmt.Sprintf("conversion webhook for %v returned invalid object", inGVK)
	at := " at index 0"
	if batch {
		invalid = fmt.Sprintf("conversion webhook for %v returned invalid converted object", inGVK)
		at = fmt.Sprintf(" at index %d", i)
	}
	out := &unstructured.Unstructured{}
	if err := out.UnmarshalJSON(rx.Raw); err != nil {
		if !batch {
			return nil, err // upstream returns this one bare
		}
		return nil, fmt.Errorf("%s%s: %v", invalid, at, err)
	}
	if got := out.GroupVersionKind().GroupVersion(); got != to {
		return nil, fmt.Errorf("%s%s: invalid groupVersion (expected %v, received %v)", invalid, at, to, got)
	}
	if want, got := in.GetKind(), out.GetKind(); want != got {
		return nil, fmt.Errorf("%s%s: invalid kind (expected %v, received %v)", invalid, at, want, got)
	}
	if !batch {
		at = ""
	}
	if err := sameIdentity(in, out); err != nil {
		return nil, fmt.Errorf("%s%s: %v", invalid, at, err)
	}
	if err := restoreMeta(in, out); err != nil {
		if batch {
			return nil, fmt.Errorf("conversion webhook for %v returned invalid metadata in object%s: %v", inGVK, at, err)
		}
		return nil, fmt.Errorf("conversion webhook for %v returned invalid metadata: %v", inGVK, err)
	}
	return out, nil
}

// sameIdentity refuses a converted object that names another object.
func sameIdentity(in, out *unstructured.Unstructured) error {
	if a, b := in.GetKind(), out.GetKind(); a != b {
		return fmt.Errorf("must have the same kind: %v != %v", a, b)
	}
	if a, b := in.GetName(), out.GetName(); a != b {
		return fmt.Errorf("must have the same name: %v != %v", a, b)
	}
	if a, b := in.GetNamespace(), out.GetNamespace(); a != b {
		return fmt.Errorf("must have the same namespace: %v != %v", a, b)
	}
	if a, b := in.GetUID(), out.GetUID(); a != b {
		return fmt.Errorf("must have the same UID: %v != %v", a, b)
	}
	return nil
}

// restoreMeta replaces out's metadata with in's, keeping the labels and
// annotations the webhook returned (absent means removed). Changed labels
// and annotations must still be valid.
func restoreMeta(in, out *unstructured.Unstructured) error {
	returned, ok := out.Object["metadata"]
	if !ok {
		return errors.New("missing metadata in converted object")
	}
	returnedMeta, ok := returned.(map[string]any)
	if !ok {
		return fmt.Errorf("invalid metadata of type %T in converted object", returned)
	}
	meta := map[string]any{}
	if m, ok := in.Object["metadata"].(map[string]any); ok {
		meta = runtime.DeepCopyJSONValue(m).(map[string]any)
	}
	for _, name := range []string{"labels", "annotations"} {
		v, found := returnedMeta[name]
		if !found || v == nil {
			delete(meta, name)
			continue
		}
		values, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("invalid metadata.%s of type %T in converted object", name, v)
		}
		before, ok := meta[name].(map[string]any)
		if !ok && meta[name] != nil {
			return fmt.Errorf("invalid metadata.%s of type %T in original object", name, meta[name])
		}
		changed := len(before) != len(values)
		strs := make(map[string]string, len(values))
		for k, x := range values {
			s, ok := x.(string)
			if !ok {
				return fmt.Errorf("metadata.%s[%s] must be a string, but is %T in converted object", name, k, x)
			}
			strs[k] = s
			if old, ok := before[k].(string); !ok || old != s {
				changed = true
			}
		}
		if changed {
			var errs field.ErrorList
			if name == "labels" {
				errs = metav1validation.ValidateLabels(strs, field.NewPath("metadata", "labels"))
			} else {
				// Upstream names the path "metadata.annotation".
				errs = apivalidation.ValidateAnnotations(strs, field.NewPath("metadata", "annotation"))
			}
			if len(errs) > 0 {
				return errs.ToAggregate()
			}
		}
		meta[name] = values
	}
	out.Object["metadata"] = meta
	return nil
}
