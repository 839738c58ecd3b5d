package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/trellis-project/trellis/trellistest"
)

// gadgetCRD has two versions with the None strategy. v1 is stored; each
// version knows fields the other does not, and each has its own default,
// so pruning and defaulting on the way in and out are visible.
func gadgetCRD() *apiextensionsv1.CustomResourceDefinition {
	str := func(def string) apiextensionsv1.JSONSchemaProps {
		p := apiextensionsv1.JSONSchemaProps{Type: "string"}
		if def != "" {
			p.Default = &apiextensionsv1.JSON{Raw: []byte(strconv.Quote(def))}
		}
		return p
	}
	version := func(name string, storage bool, spec map[string]apiextensionsv1.JSONSchemaProps) apiextensionsv1.CustomResourceDefinitionVersion {
		return apiextensionsv1.CustomResourceDefinitionVersion{
			Name: name, Served: true, Storage: storage,
			Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
				Type:       "object",
				Properties: map[string]apiextensionsv1.JSONSchemaProps{"spec": {Type: "object", Properties: spec}},
			}},
		}
	}
	return &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "gadgets.example.com"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: "example.com",
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "gadgets", Singular: "gadget", Kind: "Gadget", ListKind: "GadgetList"},
			Scope: apiextensionsv1.NamespaceScoped,
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{
				// tier: known to both, defaulted by the storage version only.
				version("v1", true, map[string]apiextensionsv1.JSONSchemaProps{"color": str(""), "tier": str("standard")}),
				// shape is v2 only; flavor is v2 only and defaulted there.
				version("v2", false, map[string]apiextensionsv1.JSONSchemaProps{"color": str(""), "tier": str(""), "shape": str(""), "flavor": str("vanilla")}),
			},
			Conversion: &apiextensionsv1.CustomResourceConversion{Strategy: apiextensionsv1.NoneConverter},
		},
	}
}

func gadget(version, name string, spec map[string]any) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "example.com/" + version, "kind": "Gadget",
		"metadata": map[string]any{"name": name},
		"spec":     spec,
	}}
}

func specString(u *unstructured.Unstructured, f string) (string, bool) {
	s, found, _ := unstructured.NestedString(u.Object, "spec", f)
	return s, found
}

func TestCustomResourceConversionNone(t *testing.T) {
	ctx := context.Background()
	cfg := trellistest.Start(t)
	installCRD(t, cfg, gadgetCRD())
	dyn := dynamic.NewForConfigOrDie(cfg)
	in := func(version string) dynamic.ResourceInterface {
		return dyn.Resource(schema.GroupVersionResource{Group: "example.com", Version: version, Resource: "gadgets"}).Namespace("default")
	}

	// A v2 watch started before any write sees every later write in v2.
	w, err := in("v2").Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()

	// Created in the storage version, read in both.
	if _, err := in("v1").Create(ctx, gadget("v1", "g1", map[string]any{"color": "red"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := in("v2").Get(ctx, "g1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetAPIVersion() != "example.com/v2" {
		t.Errorf("v2 get: apiVersion %q", got.GetAPIVersion())
	}
	if c, _ := specString(got, "color"); c != "red" {
		t.Errorf("v2 get: color %q", c)
	}
	// Reads default with the storage version's schema only: tier from
	// v1, never v2's flavor.
	if tier, _ := specString(got, "tier"); tier != "standard" {
		t.Errorf("v2 get: tier %q, want the storage version's default", tier)
	}
	if f, found := specString(got, "flavor"); found {
		t.Errorf("v2 get: flavor %q defaulted on read; only storage defaults apply", f)
	}

	// Created in v2: v2's defaults apply to the request, then the object is
	// stored as v1, which drops what v1 does not know (shape, flavor).
	if _, err := in("v2").Create(ctx, gadget("v2", "g2", map[string]any{"color": "blue", "shape": "round"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	v1g2, err := in("v1").Get(ctx, "g2", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if v1g2.GetAPIVersion() != "example.com/v1" {
		t.Errorf("v1 get: apiVersion %q", v1g2.GetAPIVersion())
	}
	for _, f := range []string{"shape", "flavor"} {
		if v, found := specString(v1g2, f); found {
			t.Errorf("v1 get of a v2 write: %s=%q survived storage in v1", f, v)
		}
	}
	// The storage version's default shows up although it was never
	// written: the stored bytes are not served as they are.
	if tier, _ := specString(v1g2, "tier"); tier != "standard" {
		t.Errorf("v1 get of a v2 write: tier %q, want the default applied on read", tier)
	}
	v2g2, err := in("v2").Get(ctx, "g2", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if v, found := specString(v2g2, "shape"); found {
		t.Errorf("v2 get: shape %q was not pruned by the storage version", v)
	}

	// Lists in both versions.
	for _, version := range []string{"v1", "v2"} {
		list, err := in(version).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if list.GetAPIVersion() != "example.com/"+version || len(list.Items) != 2 {
			t.Fatalf("%s list: apiVersion %q, %d items", version, list.GetAPIVersion(), len(list.Items))
		}
		for _, it := range list.Items {
			if it.GetAPIVersion() != "example.com/"+version {
				t.Errorf("%s list: item %s has apiVersion %q", version, it.GetName(), it.GetAPIVersion())
			}
			if tier, _ := specString(&it, "tier"); tier != "standard" {
				t.Errorf("%s list: item %s tier %q", version, it.GetName(), tier)
			}
		}
	}

	// Updated in v2 (not the storage version), read back in v1.
	v2g2.Object["spec"].(map[string]any)["color"] = "green"
	if _, err := in("v2").Update(ctx, v2g2, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if back, err := in("v1").Get(ctx, "g2", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	} else if c, _ := specString(back, "color"); c != "green" {
		t.Errorf("v1 get after v2 update: color %q", c)
	}

	// The v2 watch saw the v1 create, the v2 create and the v2 update, all
	// in v2 with the storage version's defaults.
	want := []struct {
		typ   watch.EventType
		name  string
		color string
	}{{watch.Added, "g1", "red"}, {watch.Added, "g2", "blue"}, {watch.Modified, "g2", "green"}}
	for _, ev := range want {
		select {
		case e := <-w.ResultChan():
			u, ok := e.Object.(*unstructured.Unstructured)
			if !ok {
				t.Fatalf("watch event %v: %T %+v", e.Type, e.Object, e.Object)
			}
			c, _ := specString(u, "color")
			tier, _ := specString(u, "tier")
			if e.Type != ev.typ || u.GetName() != ev.name || c != ev.color || u.GetAPIVersion() != "example.com/v2" || tier != "standard" {
				t.Errorf("watch event %s %s (%s, color %q, tier %q), want %s %s color %q in v2", e.Type, u.GetName(), u.GetAPIVersion(), c, tier, ev.typ, ev.name, ev.color)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no watch event for %s %s", ev.typ, ev.name)
		}
	}
}

// reviewLog records the ConversionReviews a test webhook received.
type reviewLog struct {
	mu      sync.Mutex
	reviews []recordedReview
	mode    string // "", "fail", "rename", "label", "drop"
}

type recordedReview struct {
	APIVersion        string
	DesiredAPIVersion string
	Objects           []map[string]any
	Path, ServerName  string
	Timeout           string
}

func (l *reviewLog) setMode(m string) {
	l.mu.Lock()
	l.mode = m
	l.mu.Unlock()
}

func (l *reviewLog) take() []recordedReview {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.reviews
	l.reviews = nil
	return out
}

// ServeHTTP converts Widgets between v1 (spec.size is a string) and v2
// (spec.size is an integer), answering in the review's own version.
func (l *reviewLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var review struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Request    struct {
			UID               string           `json:"uid"`
			DesiredAPIVersion string           `json:"desiredAPIVersion"`
			Objects           []map[string]any `json:"objects"`
		} `json:"request"`
	}
	if err := json.Unmarshal(body, &review); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rec := recordedReview{APIVersion: review.APIVersion, DesiredAPIVersion: review.Request.DesiredAPIVersion, Path: r.URL.Path, Timeout: r.URL.Query().Get("timeout")}
	if r.TLS != nil {
		rec.ServerName = r.TLS.ServerName
	}
	for _, o := range review.Request.Objects {
		rec.Objects = append(rec.Objects, runtime.DeepCopyJSON(o))
	}
	l.mu.Lock()
	l.reviews = append(l.reviews, rec)
	mode := l.mode
	l.mu.Unlock()

	result := map[string]any{"status": "Success"}
	converted := []any{}
	for _, o := range review.Request.Objects {
		u := &unstructured.Unstructured{Object: o}
		spec, _, _ := unstructured.NestedMap(o, "spec")
		switch size := spec["size"].(type) {
		case string:
			n, _ := strconv.Atoi(size)
			spec["size"] = int64(n)
		case float64:
			spec["size"] = strconv.Itoa(int(size))
		}
		if spec != nil {
			u.Object["spec"] = spec
		}
		u.SetAPIVersion(review.Request.DesiredAPIVersion)
		switch mode {
		case "rename":
			u.SetName("renamed")
		case "label":
			u.SetLabels(map[string]string{"converted-by": "webhook"})
			u.SetGeneration(42)
			u.SetFinalizers([]string{"example.com/sneaky"})
		}
		converted = append(converted, u.Object)
	}
	switch mode {
	case "fail":
		result = map[string]any{"status": "Failure", "message": "widget converter is down"}
		converted = nil
	case "drop":
		converted = converted[:0]
	}
	json.NewEncoder(w).Encode(map[string]any{
		"apiVersion": review.APIVersion, "kind": "ConversionReview",
		"response": map[string]any{"uid": review.Request.UID, "result": result, "convertedObjects": converted},
	})
}

// webhookCert makes a self-signed certificate for 127.0.0.1 and dnsName;
// it is also the caBundle that trusts it.
func webhookCert(t testing.TB, dnsName string) (tls.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: dnsName},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true,
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{dnsName},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// startConversionWebhook serves log over TLS with a certificate for
// 127.0.0.1 and conv-webhook.default.svc, on ln if given.
func startConversionWebhook(t *testing.T, log *reviewLog, ln net.Listener) (*httptest.Server, []byte) {
	cert, caPEM := webhookCert(t, "conv-webhook.default.svc")
	srv := httptest.NewUnstartedServer(log)
	if ln != nil {
		srv.Listener.Close()
		srv.Listener = ln
	}
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, caPEM
}

// listenOutsideLoopback listens on a global unicast IPv4 address of this
// machine: Endpoints may not name loopback addresses.
func listenOutsideLoopback(t *testing.T) net.Listener {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Skipf("no interface addresses: %v", err)
	}
	for _, a := range addrs {
		ipnet, ok := a.(*net.IPNet)
		if !ok || ipnet.IP.To4() == nil || !ipnet.IP.IsGlobalUnicast() {
			continue
		}
		if ln, err := net.Listen("tcp", net.JoinHostPort(ipnet.IP.String(), "0")); err == nil {
			return ln
		}
	}
	t.Skip("no non-loopback IPv4 address to serve the webhook on")
	return nil
}

// convWidgetCRD has v1 (stored; spec.size a string) and v2 (spec.size an
// integer), converted by a webhook.
func convWidgetCRD(cc apiextensionsv1.WebhookClientConfig) *apiextensionsv1.CustomResourceDefinition {
	version := func(name string, storage bool, size string) apiextensionsv1.CustomResourceDefinitionVersion {
		return apiextensionsv1.CustomResourceDefinitionVersion{
			Name: name, Served: true, Storage: storage,
			Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
				Type: "object",
				Properties: map[string]apiextensionsv1.JSONSchemaProps{"spec": {Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{
					"size": {Type: size}, "color": {Type: "string"},
				}}},
			}},
		}
	}
	return &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "widgets.example.com"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group:    "example.com",
			Names:    apiextensionsv1.CustomResourceDefinitionNames{Plural: "widgets", Singular: "widget", Kind: "Widget", ListKind: "WidgetList"},
			Scope:    apiextensionsv1.NamespaceScoped,
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{version("v1", true, "string"), version("v2", false, "integer")},
			Conversion: &apiextensionsv1.CustomResourceConversion{
				Strategy: apiextensionsv1.WebhookConverter,
				Webhook:  &apiextensionsv1.WebhookConversion{ClientConfig: &cc, ConversionReviewVersions: []string{"v1", "v1beta1"}},
			},
		},
	}
}

func cwidget(version, name string, size any) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "example.com/" + version, "kind": "Widget",
		"metadata": map[string]any{"name": name},
		"spec":     map[string]any{"size": size, "color": "red"},
	}}
}

func widgetsIn(dyn dynamic.Interface, version string) dynamic.ResourceInterface {
	return dyn.Resource(schema.GroupVersionResource{Group: "example.com", Version: version, Resource: "widgets"}).Namespace("default")
}

// checkSize fails unless u is in version with spec.size == want (a string
// in v1, an integer in v2).
func checkSize(t *testing.T, what string, u *unstructured.Unstructured, version string, want int) {
	t.Helper()
	if u.GetAPIVersion() != "example.com/"+version {
		t.Errorf("%s: apiVersion %q, want example.com/%s", what, u.GetAPIVersion(), version)
	}
	size := u.Object["spec"].(map[string]any)["size"]
	ok := false
	switch version {
	case "v1":
		ok = size == strconv.Itoa(want)
	case "v2":
		ok = size == int64(want)
	}
	if !ok {
		t.Errorf("%s: spec.size %#v, want %d in %s form", what, size, want, version)
	}
}

func TestCustomResourceConversionWebhook(t *testing.T) {
	ctx := context.Background()
	log := &reviewLog{}
	hook, caPEM := startConversionWebhook(t, log, nil)
	cfg := trellistest.Start(t)
	installCRD(t, cfg, convWidgetCRD(apiextensionsv1.WebhookClientConfig{URL: ptr.To(hook.URL + "/convert"), CABundle: caPEM}))
	dyn := dynamic.NewForConfigOrDie(cfg)
	v1, v2 := widgetsIn(dyn, "v1"), widgetsIn(dyn, "v2")

	// Created in the storage version: no conversion.
	if _, err := v1.Create(ctx, cwidget("v1", "w1", "3"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if r := log.take(); len(r) != 0 {
		t.Errorf("create in the storage version sent %d reviews", len(r))
	}

	// Read in v2: one review for one object, in the v1 review format.
	got, err := v2.Get(ctx, "w1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkSize(t, "v2 get", got, "v2", 3)
	reviews := log.take()
	if len(reviews) != 1 {
		t.Fatalf("v2 get sent %d reviews, want 1", len(reviews))
	}
	r := reviews[0]
	if r.APIVersion != "apiextensions.k8s.io/v1" || r.DesiredAPIVersion != "example.com/v2" || len(r.Objects) != 1 {
		t.Errorf("review %s to %s with %d objects", r.APIVersion, r.DesiredAPIVersion, len(r.Objects))
	} else {
		o := &unstructured.Unstructured{Object: r.Objects[0]}
		if o.GetAPIVersion() != "example.com/v1" || o.GetName() != "w1" || o.GetUID() == "" {
			t.Errorf("review object: %v", o.Object)
		}
		if rv := o.GetResourceVersion(); rv != "" {
			t.Errorf("review object carries resourceVersion %q; kube-apiserver sends none", rv)
		}
	}
	if r.Path != "/convert" || r.Timeout != "30s" {
		t.Errorf("webhook called at %s with timeout %q", r.Path, r.Timeout)
	}

	// Created in v2: converted to v1 for storage.
	created, err := v2.Create(ctx, cwidget("v2", "w2", int64(5)), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkSize(t, "v2 create", created, "v2", 5)
	reviews = log.take()
	if len(reviews) == 0 || reviews[0].DesiredAPIVersion != "example.com/v1" {
		t.Errorf("v2 create: reviews %+v, want one to example.com/v1", reviews)
	}
	if back, err := v1.Get(ctx, "w2", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	} else {
		checkSize(t, "v1 get of a v2 create", back, "v1", 5)
	}
	log.take()

	// A v2 list converts the whole page in one review.
	list, err := v2.List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 2 || list.GetAPIVersion() != "example.com/v2" {
		t.Fatalf("v2 list: %s with %d items", list.GetAPIVersion(), len(list.Items))
	}
	checkSize(t, "v2 list w1", &list.Items[0], "v2", 3)
	checkSize(t, "v2 list w2", &list.Items[1], "v2", 5)
	if reviews := log.take(); len(reviews) != 1 || len(reviews[0].Objects) != 2 {
		t.Errorf("v2 list sent %d reviews (want one with both objects)", len(reviews))
	}
	// A v1 list needs no conversion.
	if l1, err := v1.List(ctx, metav1.ListOptions{}); err != nil || len(l1.Items) != 2 {
		t.Fatalf("v1 list: %v", err)
	} else {
		checkSize(t, "v1 list w2", &l1.Items[1], "v1", 5)
	}
	if reviews := log.take(); len(reviews) != 0 {
		t.Errorf("v1 list sent %d reviews", len(reviews))
	}

	// Watch in v2, write in both versions.
	wv2, err := v2.Watch(ctx, metav1.ListOptions{ResourceVersion: list.GetResourceVersion()})
	if err != nil {
		t.Fatal(err)
	}
	defer wv2.Stop()
	got.Object["spec"].(map[string]any)["size"] = int64(7)
	if up, err := v2.Update(ctx, got, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	} else {
		checkSize(t, "v2 update", up, "v2", 7)
	}
	if back, err := v1.Get(ctx, "w1", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	} else {
		checkSize(t, "v1 get after v2 update", back, "v1", 7)
		back.Object["spec"].(map[string]any)["size"] = "8"
		if _, err := v1.Update(ctx, back, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []int{7, 8} {
		select {
		case e := <-wv2.ResultChan():
			u, ok := e.Object.(*unstructured.Unstructured)
			if e.Type != watch.Modified || !ok {
				t.Fatalf("watch: %s %T", e.Type, e.Object)
			}
			checkSize(t, "v2 watch event", u, "v2", want)
		case <-time.After(10 * time.Second):
			t.Fatal("no watch event")
		}
	}
	log.take()

	// Labels and annotations may change; other metadata is restored.
	log.setMode("label")
	if u, err := v2.Get(ctx, "w1", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	} else if u.GetLabels()["converted-by"] != "webhook" || u.GetGeneration() == 42 || len(u.GetFinalizers()) != 0 {
		t.Errorf("metadata after conversion: labels %v, generation %d, finalizers %v", u.GetLabels(), u.GetGeneration(), u.GetFinalizers())
	}

	// A failing webhook: 500 with upstream's message, for reads and writes.
	log.setMode("fail")
	_, err = v2.Get(ctx, "w1", metav1.GetOptions{})
	wantStatus(t, "get with a failing webhook", err, "conversion webhook for example.com/v1, Kind=Widget failed: widget converter is down")
	_, err = v2.List(ctx, metav1.ListOptions{})
	wantStatus(t, "list with a failing webhook", err, "conversion webhook for example.com/v1, Kind=Widget failed: widget converter is down")
	_, err = v2.Create(ctx, cwidget("v2", "w3", int64(1)), metav1.CreateOptions{})
	wantStatus(t, "create with a failing webhook", err, "conversion webhook for example.com/v2, Kind=Widget failed: widget converter is down")
	if _, err := v1.Get(ctx, "w3", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("a create whose conversion failed was stored: %v", err)
	}

	// A webhook may not rename the object, nor lose it.
	log.setMode("rename")
	_, err = v2.Get(ctx, "w1", metav1.GetOptions{})
	wantStatus(t, "renaming webhook", err, "conversion webhook for example.com/v1, Kind=Widget returned invalid object: must have the same name: w1 != renamed")
	_, err = v2.List(ctx, metav1.ListOptions{})
	wantStatus(t, "renaming webhook on list", err, "conversion webhook for example.com/v1, Kind=Widget returned invalid converted object at index 0: must have the same name: w1 != renamed")
	log.setMode("drop")
	_, err = v2.Get(ctx, "w1", metav1.GetOptions{})
	wantStatus(t, "webhook returning nothing", err, "conversion webhook for example.com/v1, Kind=Widget returned 0 objects, expected 1")
	log.setMode("")

	// v1beta1 reviews, when the CRD prefers them.
	updateCRD(t, cfg, "widgets.example.com", func(crd *apiextensionsv1.CustomResourceDefinition) {
		crd.Spec.Conversion.Webhook.ConversionReviewVersions = []string{"v1beta1", "v1"}
	})
	log.take()
	waitFor(t, "v1beta1 reviews", func() bool {
		if _, err := v2.Get(ctx, "w1", metav1.GetOptions{}); err != nil {
			t.Fatal(err)
		}
		reviews := log.take()
		return len(reviews) == 1 && reviews[0].APIVersion == "apiextensions.k8s.io/v1beta1"
	})

	// The storage version moves to v2: objects stored as v1 are still
	// converted from v1, new writes are stored as v2.
	updateCRD(t, cfg, "widgets.example.com", func(crd *apiextensionsv1.CustomResourceDefinition) {
		crd.Spec.Versions[0].Storage, crd.Spec.Versions[1].Storage = false, true
	})
	i := 0
	waitFor(t, "storage version v2", func() bool {
		i++
		name := fmt.Sprintf("probe-%d", i)
		if _, err := v1.Create(ctx, cwidget("v1", name, "1"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		stored := false
		for _, r := range log.take() {
			stored = stored || r.DesiredAPIVersion == "example.com/v2"
		}
		return stored
	})
	if u, err := v2.Get(ctx, "w1", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	} else {
		checkSize(t, "v2 get of an object stored as v1 before the switch", u, "v2", 8)
	}
	// The built-in storage-version migration rewrites w1 as v2 through the
	// webhook; once storedVersions is trimmed, a v2 read needs no review.
	ext := apiextensionsclient.NewForConfigOrDie(cfg).ApiextensionsV1().CustomResourceDefinitions()
	waitFor(t, "storedVersions [v2]", func() bool {
		crd, err := ext.Get(ctx, "widgets.example.com", metav1.GetOptions{})
		return err == nil && len(crd.Status.StoredVersions) == 1 && crd.Status.StoredVersions[0] == "v2"
	})
	log.take()
	if u, err := v2.Get(ctx, "w1", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	} else {
		checkSize(t, "v2 get after the migration", u, "v2", 8)
	}
	if reviews := log.take(); len(reviews) != 0 {
		t.Errorf("reading a migrated object in its storage version: reviews %+v", reviews)
	}
	l2, err := v2.List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range l2.Items {
		if _, ok := it.Object["spec"].(map[string]any)["size"].(int64); !ok || it.GetAPIVersion() != "example.com/v2" {
			t.Errorf("v2 list after the storage switch: %s is %s with size %#v", it.GetName(), it.GetAPIVersion(), it.Object["spec"])
		}
	}
}

func TestCustomResourceConversionWebhookService(t *testing.T) {
	ctx := context.Background()
	log := &reviewLog{}
	hook, caPEM := startConversionWebhook(t, log, listenOutsideLoopback(t))
	hostAddr := hook.Listener.Addr().(*net.TCPAddr)
	port := hostAddr.Port
	cfg := trellistest.Start(t)
	kube := kubernetes.NewForConfigOrDie(cfg)

	// A Service whose cluster IP leads nowhere, and Endpoints that lead to
	// the test's webhook.
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "conv-webhook", Namespace: "default"},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "https", Port: 443, TargetPort: intstr.FromInt32(int32(port))}}},
	}
	if _, err := kube.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	installCRD(t, cfg, convWidgetCRD(apiextensionsv1.WebhookClientConfig{
		Service:  &apiextensionsv1.ServiceReference{Namespace: "default", Name: "conv-webhook", Path: ptr.To("/convert"), Port: ptr.To[int32](443)},
		CABundle: caPEM,
	}))
	dyn := dynamic.NewForConfigOrDie(cfg)
	v1, v2 := widgetsIn(dyn, "v1"), widgetsIn(dyn, "v2")
	if _, err := v1.Create(ctx, cwidget("v1", "w1", "4"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// No Endpoints yet: the service cannot be reached.
	_, err := v2.Get(ctx, "w1", metav1.GetOptions{})
	wantStatus(t, "service without endpoints", err, `no endpoints available for service "conv-webhook"`)

	eps := &corev1.Endpoints{
		ObjectMeta: metav1.ObjectMeta{Name: "conv-webhook", Namespace: "default"},
		Subsets: []corev1.EndpointSubset{{
			Addresses: []corev1.EndpointAddress{{IP: hostAddr.IP.String()}},
			Ports:     []corev1.EndpointPort{{Name: "https", Port: int32(port)}},
		}},
	}
	if _, err := kube.CoreV1().Endpoints("default").Create(ctx, eps, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := v2.Get(ctx, "w1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkSize(t, "v2 get through the service", got, "v2", 4)
	reviews := log.take()
	if len(reviews) != 1 {
		t.Fatalf("%d reviews, want 1", len(reviews))
	}
	// The certificate was checked against the service's DNS name.
	if r := reviews[0]; r.ServerName != "conv-webhook.default.svc" || r.Path != "/convert" {
		t.Errorf("webhook reached with server name %q at %s", r.ServerName, r.Path)
	}
	if _, err := v2.Create(ctx, cwidget("v2", "w2", int64(6)), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if back, err := v1.Get(ctx, "w2", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	} else {
		checkSize(t, "v1 get of a v2 create through the service", back, "v1", 6)
	}
}

// wantStatus fails unless err is a 500 Status with message msg.
func wantStatus(t *testing.T, what string, err error, msg string) {
	t.Helper()
	st, ok := err.(apierrors.APIStatus)
	if !ok {
		t.Errorf("%s: %v, want a 500 Status", what, err)
		return
	}
	if s := st.Status(); s.Code != http.StatusInternalServerError || !strings.Contains(s.Message, msg) {
		t.Errorf("%s: %d %q, want 500 with %q", what, s.Code, s.Message, msg)
	}
}

func updateCRD(t *testing.T, cfg *rest.Config, name string, edit func(*apiextensionsv1.CustomResourceDefinition)) {
	t.Helper()
	ext := apiextensionsclient.NewForConfigOrDie(cfg).ApiextensionsV1().CustomResourceDefinitions()
	for range 10 {
		crd, err := ext.Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		edit(crd)
		if _, err = ext.Update(context.Background(), crd, metav1.UpdateOptions{}); err == nil {
			return
		} else if !apierrors.IsConflict(err) {
			t.Fatal(err)
		}
	}
	t.Fatalf("CRD %s: too many conflicts", name)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		return cond(), nil
	})
	if err != nil {
		t.Fatalf("timed out waiting for %s", what)
	}
}

// BenchmarkListCustomResources lists 5,000 ~1 KB custom resources through
// the whole request path: served as stored (no defaults in the schema),
// decoded to apply the storage version's defaults, and converted to
// another version (None strategy).
func BenchmarkListCustomResources(b *testing.B) {
	for _, tc := range []struct {
		name     string
		defaults bool
		version  string
	}{{"StoredBytes", false, "v1"}, {"DefaultedOnRead", true, "v1"}, {"ConvertedToV2", false, "v2"}} {
		b.Run(tc.name, func(b *testing.B) {
			cfg := trellistest.Start(b)
			crd := gadgetCRD()
			if !tc.defaults {
				crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"].Properties["tier"] = apiextensionsv1.JSONSchemaProps{Type: "string"}
			}
			crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"].Properties["note"] = apiextensionsv1.JSONSchemaProps{Type: "string"}
			ext := apiextensionsclient.NewForConfigOrDie(cfg).ApiextensionsV1().CustomResourceDefinitions()
			if _, err := ext.Create(context.Background(), crd, metav1.CreateOptions{}); err != nil {
				b.Fatal(err)
			}
			dyn := dynamic.NewForConfigOrDie(cfg)
			gadgets := dyn.Resource(schema.GroupVersionResource{Group: "example.com", Version: "v1", Resource: "gadgets"}).Namespace("default")
			for _, err := gadgets.List(context.Background(), metav1.ListOptions{}); err != nil; _, err = gadgets.List(context.Background(), metav1.ListOptions{}) {
				time.Sleep(5 * time.Millisecond) // until the CRD is served
			}
			var wg sync.WaitGroup
			work := make(chan int)
			for range 16 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range work {
						g := gadget("v1", fmt.Sprintf("g-%05d", i), map[string]any{"color": "red", "note": strings.Repeat("n", 800)})
						if _, err := gadgets.Create(context.Background(), g, metav1.CreateOptions{}); err != nil {
							b.Error(err)
						}
					}
				}()
			}
			for i := range 5000 {
				work <- i
			}
			close(work)
			wg.Wait()
			rc := kubernetes.NewForConfigOrDie(cfg).CoreV1().RESTClient()
			path := "/apis/example.com/" + tc.version + "/namespaces/default/gadgets"
			b.ResetTimer()
			for b.Loop() {
				raw, err := rc.Get().AbsPath(path).DoRaw(context.Background())
				if err != nil {
					b.Fatal(err)
				}
				b.SetBytes(int64(len(raw)))
			}
		})
	}
}
