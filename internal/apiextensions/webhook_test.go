package apiextensions

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

func TestConversionReviewResponse(t *testing.T) {
	const uid = types.UID("req-1")
	for _, tc := range []struct {
		name, version, body string
		wantErr             string // "" for success
		wantObjects         int
	}{
		{"v1 success", "v1", `{"apiVersion":"apiextensions.k8s.io/v1","kind":"ConversionReview","response":{"uid":"req-1","result":{"status":"Success"},"convertedObjects":[{"kind":"Widget"}]}}`, "", 1},
		{"v1 wrong kind", "v1", `{"apiVersion":"apiextensions.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"req-1","result":{"status":"Success"}}}`,
			"expected webhook response of apiextensions.k8s.io/v1, Kind=ConversionReview, got apiextensions.k8s.io/v1, Kind=AdmissionReview", 0},
		{"v1 without type", "v1", `{"response":{"uid":"req-1","result":{"status":"Success"}}}`,
			"expected webhook response of apiextensions.k8s.io/v1, Kind=ConversionReview, got /, Kind=", 0},
		{"v1 uid mismatch", "v1", `{"apiVersion":"apiextensions.k8s.io/v1","kind":"ConversionReview","response":{"uid":"other","result":{"status":"Success"}}}`,
			`expected response.uid="req-1", got "other"`, 0},
		{"v1 no response", "v1", `{"apiVersion":"apiextensions.k8s.io/v1","kind":"ConversionReview"}`, "no response provided", 0},
		{"v1 failure with message", "v1", `{"apiVersion":"apiextensions.k8s.io/v1","kind":"ConversionReview","response":{"uid":"req-1","result":{"status":"Failure","message":"cannot convert"}}}`,
			"cannot convert", 0},
		{"v1 failure without message", "v1", `{"apiVersion":"apiextensions.k8s.io/v1","kind":"ConversionReview","response":{"uid":"req-1","result":{}}}`,
			"response.result.status was '', not 'Success'", 0},
		// v1beta1 answers were never checked for type or UID upstream.
		{"v1beta1 lenient", "v1beta1", `{"response":{"uid":"whatever","result":{"status":"Success"},"convertedObjects":[{},{}]}}`, "", 2},
		{"v1beta1 failure", "v1beta1", `{"response":{"result":{"status":"Failure","message":"nope"}}}`, "nope", 0},
		{"not JSON", "v1", `<html>`, "invalid character", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs, err := reviewResponse([]byte(tc.body), tc.version, uid)
			if tc.wantErr == "" {
				if err != nil || len(objs) != tc.wantObjects {
					t.Fatalf("got %d objects, %v; want %d", len(objs), err, tc.wantObjects)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func widgetObj(apiVersion string, meta map[string]any, spec map[string]any) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{"apiVersion": apiVersion, "kind": "Widget", "metadata": meta, "spec": spec}}
}

func TestCheckConverted(t *testing.T) {
	inGVK := schema.GroupVersionKind{Group: "example.com", Version: "v1", Kind: "Widget"}
	to := schema.GroupVersion{Group: "example.com", Version: "v2"}
	original := func() *unstructured.Unstructured {
		return widgetObj("example.com/v1", map[string]any{
			"name": "w1", "namespace": "ns", "uid": "u-1", "generation": int64(3),
			"labels": map[string]any{"app": "a"}, "annotations": map[string]any{"note": "n"},
			"finalizers": []any{"example.com/f"}, "resourceVersion": "17",
		}, map[string]any{"size": "3"})
	}
	// returned is the webhook's answer: original converted to v2, then
	// edited by each case.
	returned := func(edit func(m map[string]any)) runtime.RawExtension {
		u := original()
		u.SetAPIVersion("example.com/v2")
		u.Object["spec"] = map[string]any{"size": int64(3)}
		if edit != nil {
			edit(u.Object)
		}
		raw, _ := json.Marshal(u.Object)
		return runtime.RawExtension{Raw: raw}
	}
	meta := func(m map[string]any) map[string]any { return m["metadata"].(map[string]any) }

	for _, tc := range []struct {
		name    string
		edit    func(m map[string]any)
		batch   bool
		wantErr string
		check   func(t *testing.T, u *unstructured.Unstructured)
	}{
		{name: "unchanged", check: func(t *testing.T, u *unstructured.Unstructured) {
			if u.GetAPIVersion() != "example.com/v2" || u.Object["spec"].(map[string]any)["size"] != int64(3) {
				t.Errorf("converted object lost: %v", u.Object)
			}
			if u.GetResourceVersion() != "17" || u.GetGeneration() != 3 {
				t.Errorf("metadata not kept: %v", u.Object["metadata"])
			}
		}},
		{name: "metadata other than labels and annotations is restored", edit: func(m map[string]any) {
			md := meta(m)
			md["generation"] = int64(42)
			md["finalizers"] = []any{"example.com/other"}
			md["garbage"] = "x"
			delete(md, "resourceVersion")
		}, check: func(t *testing.T, u *unstructured.Unstructured) {
			if u.GetGeneration() != 3 || len(u.GetFinalizers()) != 1 || u.GetFinalizers()[0] != "example.com/f" || u.GetResourceVersion() != "17" {
				t.Errorf("metadata not restored: %v", u.Object["metadata"])
			}
			if _, ok := meta(u.Object)["garbage"]; ok {
				t.Error("unknown metadata field kept")
			}
		}},
		{name: "labels and annotations may change", edit: func(m map[string]any) {
			meta(m)["labels"] = map[string]any{"app": "b", "new": "yes"}
			delete(meta(m), "annotations")
		}, check: func(t *testing.T, u *unstructured.Unstructured) {
			if l := u.GetLabels(); l["app"] != "b" || l["new"] != "yes" || len(l) != 2 {
				t.Errorf("labels %v", l)
			}
			if a := u.GetAnnotations(); a != nil {
				t.Errorf("annotations %v, want removed", a)
			}
		}},
		{name: "invalid label value", edit: func(m map[string]any) {
			meta(m)["labels"] = map[string]any{"app": "not valid!"}
		}, wantErr: `conversion webhook for example.com/v1, Kind=Widget returned invalid metadata: metadata.labels: Invalid value: "not valid!"`},
		{name: "invalid annotation key in a list", batch: true, edit: func(m map[string]any) {
			meta(m)["annotations"] = map[string]any{"-bad-": "x"}
		}, wantErr: `conversion webhook for example.com/v1, Kind=Widget returned invalid metadata in object at index 2: metadata.annotation: Invalid value: "-bad-"`},
		{name: "non-string label", edit: func(m map[string]any) {
			meta(m)["labels"] = map[string]any{"app": int64(1)}
		}, wantErr: "metadata.labels[app] must be a string, but is int64 in converted object"},
		{name: "labels not a map", edit: func(m map[string]any) {
			meta(m)["labels"] = "app"
		}, wantErr: "invalid metadata.labels of type string in converted object"},
		{name: "no metadata", edit: func(m map[string]any) { delete(m, "metadata") },
			wantErr: "conversion webhook for example.com/v1, Kind=Widget returned invalid object: must have the same name: w1 != "},
		{name: "renamed", edit: func(m map[string]any) { meta(m)["name"] = "w2" },
			wantErr: "conversion webhook for example.com/v1, Kind=Widget returned invalid object: must have the same name: w1 != w2"},
		{name: "renamed in a list", batch: true, edit: func(m map[string]any) { meta(m)["name"] = "w2" },
			wantErr: "conversion webhook for example.com/v1, Kind=Widget returned invalid converted object at index 2: must have the same name: w1 != w2"},
		{name: "moved", edit: func(m map[string]any) { meta(m)["namespace"] = "other" },
			wantErr: "must have the same namespace: ns != other"},
		{name: "new uid", edit: func(m map[string]any) { meta(m)["uid"] = "u-2" },
			wantErr: "must have the same UID: u-1 != u-2"},
		{name: "wrong version", edit: func(m map[string]any) { m["apiVersion"] = "example.com/v1" },
			wantErr: "conversion webhook for example.com/v1, Kind=Widget returned invalid object at index 0: invalid groupVersion (expected example.com/v2, received example.com/v1)"},
		{name: "wrong kind in a list", batch: true, edit: func(m map[string]any) { m["kind"] = "Gadget" },
			wantErr: "conversion webhook for example.com/v1, Kind=Widget returned invalid converted object at index 2: invalid kind (expected Widget, received Gadget)"},
		{name: "no kind", edit: func(m map[string]any) { delete(m, "kind") },
			wantErr: "Object 'Kind' is missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := original()
			got, err := checkConverted(inGVK, in, returned(tc.edit), to, 2, tc.batch)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, got)
			if in.GetResourceVersion() != "17" || in.GetAPIVersion() != "example.com/v1" {
				t.Errorf("input modified: %v", in.Object)
			}
		})
	}
}

// fakeWebhook answers every review with reply(request).
func fakeWebhook(t *testing.T, reply func(req apiextensionsv1.ConversionReview) any) (*webhookConverter, *[]apiextensionsv1.ConversionReview) {
	t.Helper()
	var seen []apiextensionsv1.ConversionReview
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var review apiextensionsv1.ConversionReview
		if err := json.NewDecoder(r.Body).Decode(&review); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		seen = append(seen, review)
		json.NewEncoder(w).Encode(reply(review))
	}))
	t.Cleanup(srv.Close)
	crd := &apiextensionsv1.CustomResourceDefinition{}
	crd.Name = "widgets.example.com"
	crd.Spec.Conversion = &apiextensionsv1.CustomResourceConversion{
		Strategy: apiextensionsv1.WebhookConverter,
		Webhook: &apiextensionsv1.WebhookConversion{
			ClientConfig:             &apiextensionsv1.WebhookClientConfig{URL: ptr.To(srv.URL + "/convert")},
			ConversionReviewVersions: []string{"v2", "v1"},
		},
	}
	conv, err := newWebhookClients(nil, 0).converterFor(crd)
	if err != nil {
		t.Fatal(err)
	}
	return conv.(*webhookConverter), &seen
}

// echo converts by rewriting apiVersion only.
func echo(req apiextensionsv1.ConversionReview) any {
	var out []runtime.RawExtension
	for _, o := range req.Request.Objects {
		var m map[string]any
		json.Unmarshal(o.Raw, &m)
		m["apiVersion"] = req.Request.DesiredAPIVersion
		raw, _ := json.Marshal(m)
		out = append(out, runtime.RawExtension{Raw: raw})
	}
	return map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
		"response": map[string]any{"uid": req.Request.UID, "result": map[string]any{"status": "Success"}, "convertedObjects": out},
	}
}

func TestWebhookConverterReview(t *testing.T) {
	conv, seen := fakeWebhook(t, echo)
	to := schema.GroupVersion{Group: "example.com", Version: "v2"}
	objs := []*unstructured.Unstructured{
		widgetObj("example.com/v1", map[string]any{"name": "a", "resourceVersion": "5"}, nil),
		widgetObj("example.com/v1", map[string]any{"name": "b", "resourceVersion": "6"}, nil),
	}
	out, err := conv.convert(objs, to, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(*seen) != 1 {
		t.Fatalf("%d reviews for one batch", len(*seen))
	}
	req := (*seen)[0]
	if req.APIVersion != "apiextensions.k8s.io/v1" || req.Kind != "ConversionReview" || req.Request.DesiredAPIVersion != "example.com/v2" || req.Request.UID == "" || len(req.Request.Objects) != 2 {
		t.Errorf("review sent: %+v", req)
	}
	for i, o := range req.Request.Objects {
		if strings.Contains(string(o.Raw), "resourceVersion") {
			t.Errorf("object %d sent with a resourceVersion: %s", i, o.Raw)
		}
	}
	for i, u := range out {
		if u.GetAPIVersion() != "example.com/v2" || u.GetName() != objs[i].GetName() || u.GetResourceVersion() != objs[i].GetResourceVersion() {
			t.Errorf("converted %d: %v", i, u.Object)
		}
	}
	if objs[0].GetResourceVersion() != "5" {
		t.Error("input lost its resourceVersion")
	}
}

func TestWebhookConverterFailures(t *testing.T) {
	to := schema.GroupVersion{Group: "example.com", Version: "v2"}
	in := func() []*unstructured.Unstructured {
		return []*unstructured.Unstructured{widgetObj("example.com/v1", map[string]any{"name": "a"}, nil)}
	}
	for _, tc := range []struct {
		name    string
		reply   func(req apiextensionsv1.ConversionReview) any
		wantErr string
	}{
		{"failure", func(req apiextensionsv1.ConversionReview) any {
			return map[string]any{"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
				"response": map[string]any{"uid": req.Request.UID, "result": map[string]any{"status": "Failure", "message": "boom"}}}
		}, "conversion webhook for example.com/v1, Kind=Widget failed: boom"},
		{"uid mismatch", func(req apiextensionsv1.ConversionReview) any {
			return map[string]any{"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
				"response": map[string]any{"uid": "nope", "result": map[string]any{"status": "Success"}}}
		}, `conversion webhook for example.com/v1, Kind=Widget failed: expected response.uid=`},
		{"too few objects", func(req apiextensionsv1.ConversionReview) any {
			return map[string]any{"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
				"response": map[string]any{"uid": req.Request.UID, "result": map[string]any{"status": "Success"}, "convertedObjects": []any{}}}
		}, "conversion webhook for example.com/v1, Kind=Widget returned 0 objects, expected 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conv, _ := fakeWebhook(t, tc.reply)
			_, err := conv.convert(in(), to, false)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
		})
	}

	// An HTTP error: the REST client's wording, as upstream.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "go away", http.StatusBadRequest)
	}))
	defer srv.Close()
	crd := &apiextensionsv1.CustomResourceDefinition{}
	crd.Spec.Conversion = &apiextensionsv1.CustomResourceConversion{Strategy: apiextensionsv1.WebhookConverter, Webhook: &apiextensionsv1.WebhookConversion{
		ClientConfig: &apiextensionsv1.WebhookClientConfig{URL: ptr.To(srv.URL)}, ConversionReviewVersions: []string{"v1"},
	}}
	conv, err := newWebhookClients(nil, 0).converterFor(crd)
	if err != nil {
		t.Fatal(err)
	}
	_, err = conv.convert(in(), to, false)
	if want := "conversion webhook for example.com/v1, Kind=Widget failed: the server rejected our request"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("HTTP 400: %v, want %q", err, want)
	}
}

func TestWebhookClientsCachePerCRD(t *testing.T) {
	clients := newWebhookClients(nil, 0)
	crd := func(url string, versions ...string) *apiextensionsv1.CustomResourceDefinition {
		c := &apiextensionsv1.CustomResourceDefinition{}
		c.Name = "widgets.example.com"
		c.Spec.Conversion = &apiextensionsv1.CustomResourceConversion{Strategy: apiextensionsv1.WebhookConverter, Webhook: &apiextensionsv1.WebhookConversion{
			ClientConfig: &apiextensionsv1.WebhookClientConfig{URL: ptr.To(url)}, ConversionReviewVersions: versions,
		}}
		return c
	}
	get := func(c *apiextensionsv1.CustomResourceDefinition) *webhookConverter {
		t.Helper()
		conv, err := clients.converterFor(c)
		if err != nil {
			t.Fatal(err)
		}
		return conv.(*webhookConverter)
	}
	a := get(crd("https://a.example/convert", "v1"))
	if b := get(crd("https://a.example/convert", "v1beta1", "v1")); b.client != a.client || b.reviewVersion != "v1beta1" {
		t.Error("same clientConfig did not reuse the client")
	}
	if c := get(crd("https://b.example/convert", "v1")); c.client == a.client {
		t.Error("changed clientConfig reused the old client")
	}
	none := crd("https://b.example/convert", "v1")
	none.Spec.Conversion = &apiextensionsv1.CustomResourceConversion{Strategy: apiextensionsv1.NoneConverter}
	if _, err := clients.converterFor(none); err != nil {
		t.Fatal(err)
	}
	if len(clients.clients) != 0 {
		t.Error("switching to None kept the webhook client")
	}
	if _, err := clients.converterFor(crd("https://a.example/convert", "v2")); err == nil || err.Error() != "no supported conversion review versions" {
		t.Errorf("unsupported review versions: %v", err)
	}
}

func TestWebhookTimeout(t *testing.T) {
	release := make(chan struct{})
	timeouts := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		timeouts <- r.URL.Query().Get("timeout")
		<-release
	}))
	defer srv.Close()
	defer close(release)
	crd := &apiextensionsv1.CustomResourceDefinition{}
	crd.Spec.Conversion = &apiextensionsv1.CustomResourceConversion{Strategy: apiextensionsv1.WebhookConverter, Webhook: &apiextensionsv1.WebhookConversion{
		ClientConfig: &apiextensionsv1.WebhookClientConfig{URL: ptr.To(srv.URL)}, ConversionReviewVersions: []string{"v1"},
	}}
	conv, err := newWebhookClients(nil, 100*time.Millisecond).converterFor(crd)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = conv.convert([]*unstructured.Unstructured{widgetObj("example.com/v1", map[string]any{"name": "a"}, nil)}, schema.GroupVersion{Group: "example.com", Version: "v2"}, false)
	if err == nil || !strings.HasPrefix(err.Error(), "conversion webhook for example.com/v1, Kind=Widget failed: ") {
		t.Fatalf("slow webhook: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("call took %v with a 100ms timeout", d)
	}
	if got := <-timeouts; got != "100ms" {
		t.Errorf("webhook told timeout=%q, want 100ms", got)
	}
}
