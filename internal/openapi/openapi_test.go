package openapi_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/cli-runtime/pkg/resource"
	"k8s.io/client-go/discovery"
	clientopenapi "k8s.io/client-go/openapi"
	"k8s.io/client-go/openapi3"
	"k8s.io/client-go/rest"
	"k8s.io/kube-openapi/pkg/spec3"
	"k8s.io/kube-openapi/pkg/validation/spec"
	kexplain "k8s.io/kubectl/pkg/explain"
	explainv2 "k8s.io/kubectl/pkg/explain/v2"
	kubectlopenapi "k8s.io/kubectl/pkg/util/openapi"
	generated "k8s.io/kubernetes/pkg/generated/openapi"

	"github.com/trellis-project/trellis/internal/openapi"
	trellisresource "github.com/trellis-project/trellis/internal/resource"
	"github.com/trellis-project/trellis/internal/resource/builtin"
)

// fixture is a Service over a registry behind an HTTP server, counting
// the documents it builds.
type fixture struct {
	reg    *trellisresource.Registry
	srv    *httptest.Server
	config *rest.Config

	mu     sync.Mutex
	builds map[string]int
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{reg: trellisresource.NewRegistry(), builds: map[string]int{}}
	builtin.Register(f.reg)
	svc := openapi.New(f.reg, openapi.Config{
		Definitions: generated.GetOpenAPIDefinitions,
		Scheme:      builtin.Scheme,
		OnBuild: func(path string, _ time.Duration, err error) {
			if err != nil {
				t.Errorf("building %s: %v", path, err)
			}
			f.mu.Lock()
			f.builds[path]++
			f.mu.Unlock()
		},
	})
	f.srv = httptest.NewServer(svc)
	t.Cleanup(f.srv.Close)
	f.config = &rest.Config{Host: f.srv.URL}
	return f
}

// takeBuilds returns the builds since the last call.
func (f *fixture) takeBuilds() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	b := f.builds
	f.builds = map[string]int{}
	return b
}

func (f *fixture) discovery() *discovery.DiscoveryClient {
	return discovery.NewDiscoveryClientForConfigOrDie(f.config)
}

func (f *fixture) get(t *testing.T, path string, header http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, f.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

var configMapGVK = schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}

// schemaWithGVK finds the component whose x-kubernetes-group-version-kind
// lists gvk, the way kubectl explain finds a kind's schema.
func schemaWithGVK(t *testing.T, doc *spec3.OpenAPI, gvk schema.GroupVersionKind) (string, *spec.Schema) {
	t.Helper()
	for name, s := range doc.Components.Schemas {
		var gvks []map[string]string
		if err := s.Extensions.GetObject("x-kubernetes-group-version-kind", &gvks); err != nil {
			continue
		}
		for _, g := range gvks {
			if g["group"] == gvk.Group && g["version"] == gvk.Version && g["kind"] == gvk.Kind {
				return name, s
			}
		}
	}
	t.Fatalf("no schema lists %v", gvk)
	return "", nil
}

func TestV3ConfigMapSchemaThroughClientGo(t *testing.T) {
	f := newFixture(t)
	root := openapi3.NewRoot(f.discovery().OpenAPIV3())

	gvs, err := root.GroupVersions()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []schema.GroupVersion{{Version: "v1"}, {Group: "coordination.k8s.io", Version: "v1"}, {Group: "events.k8s.io", Version: "v1"}} {
		if !containsGV(gvs, want) {
			t.Errorf("GroupVersions() = %v, missing %v", gvs, want)
		}
	}

	doc, err := root.GVSpec(schema.GroupVersion{Version: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	name, cm := schemaWithGVK(t, doc, configMapGVK)
	if name != "io.k8s.api.core.v1.ConfigMap" {
		t.Errorf("ConfigMap schema is named %q", name)
	}
	data := cm.Properties["data"]
	if !data.Type.Contains("object") || data.AdditionalProperties == nil || data.AdditionalProperties.Schema == nil ||
		!data.AdditionalProperties.Schema.Type.Contains("string") {
		t.Errorf("ConfigMap.data is not a map of strings: %+v", data)
	}
	// A reference with siblings is wrapped in allOf in v3, as upstream does.
	meta := cm.Properties["metadata"]
	if len(meta.AllOf) != 1 || meta.AllOf[0].Ref.String() != "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta" {
		t.Errorf("ConfigMap.metadata = %+v, want allOf a reference to ObjectMeta", meta)
	}
	if _, ok := doc.Components.Schemas["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]; !ok {
		t.Error("ObjectMeta, referred to, is not in the document")
	}

	// Every write operation takes dryRun, fieldManager and fieldValidation.
	item := doc.Paths.Paths["/api/v1/namespaces/{namespace}/configmaps/{name}"]
	if item == nil {
		t.Fatal("no ConfigMap item path")
	}
	for method, op := range map[string]*spec3.Operation{"put": item.Put, "patch": item.Patch} {
		for _, p := range []string{"dryRun", "fieldManager", "fieldValidation"} {
			if !hasQueryParam(op, p) {
				t.Errorf("%s %s lacks %s", method, "configmaps/{name}", p)
			}
		}
	}
	create := doc.Paths.Paths["/api/v1/namespaces/{namespace}/configmaps"].Post
	if !hasQueryParam(create, "fieldValidation") {
		t.Error("create ConfigMap lacks fieldValidation")
	}
	if got := create.Extensions["x-kubernetes-action"]; got != "post" {
		t.Errorf("create action = %v", got)
	}
}

func TestKubectlFieldValidationCheck(t *testing.T) {
	f := newFixture(t)
	verifier := resource.NewQueryParamVerifierV3(nil, f.discovery().OpenAPIV3(), resource.QueryParamFieldValidation)
	for _, gvk := range []schema.GroupVersionKind{
		configMapGVK,
		{Version: "v1", Kind: "Namespace"},
		{Group: "coordination.k8s.io", Version: "v1", Kind: "Lease"},
		{Group: "events.k8s.io", Version: "v1", Kind: "Event"},
	} {
		if err := verifier.HasSupport(gvk); err != nil {
			t.Errorf("HasSupport(%v) = %v", gvk, err)
		}
	}
}

func TestExplainV3(t *testing.T) {
	f := newFixture(t)
	client := f.discovery().OpenAPIV3()

	var out bytes.Buffer
	gvr := schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	if err := explainv2.PrintModelDescription([]string{"data"}, &out, client, gvr, false, 0, "plaintext"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"KIND:       ConfigMap", "VERSION:    v1", "FIELD: data <map[string]string>", "Data contains the configuration data."} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("explain configmap.data lacks %q:\n%s", want, out.String())
		}
	}

	out.Reset()
	gvr = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
	if err := explainv2.PrintModelDescription([]string{"spec"}, &out, client, gvr, true, 0, "plaintext"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "finalizers\t<[]string>") {
		t.Errorf("explain namespaces.spec --recursive lacks finalizers:\n%s", out.String())
	}
}

func TestV2ThroughDiscoveryClient(t *testing.T) {
	f := newFixture(t)
	// OpenAPISchema asks for protobuf and parses it.
	doc, err := f.discovery().OpenAPISchema()
	if err != nil {
		t.Fatal(err)
	}
	resources, err := kubectlopenapi.NewOpenAPIData(doc)
	if err != nil {
		t.Fatal(err)
	}
	cm := resources.LookupResource(configMapGVK)
	if cm == nil {
		t.Fatal("no v2 model for ConfigMap")
	}
	var out bytes.Buffer
	if err := kexplain.PrintModelDescription([]string{"data"}, &out, cm, configMapGVK, false, 0); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "data <map[string]string>") || !strings.Contains(out.String(), "KIND:     ConfigMap") {
		t.Errorf("v2 explain configmap.data:\n%s", out.String())
	}
	if got := resources.GetConsumes(configMapGVK, "PATCH"); !contains(got, "application/strategic-merge-patch+json") {
		t.Errorf("PATCH ConfigMap consumes %v", got)
	}

	// JSON is served too, without defaults (kube-apiserver prunes them
	// from v2).
	resp, body := f.get(t, "/openapi/v2", http.Header{"Accept": {"application/json"}})
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /openapi/v2 as JSON: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	var swagger spec.Swagger
	if err := json.Unmarshal(body, &swagger); err != nil {
		t.Fatal(err)
	}
	meta := swagger.Definitions["io.k8s.api.core.v1.ConfigMap"].Properties["metadata"]
	if meta.Default != nil || meta.Ref.String() != "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta" {
		t.Errorf("v2 ConfigMap.metadata = %+v", meta)
	}
	if !hasV2QueryParam(swagger.Paths.Paths["/api/v1/namespaces/{namespace}/configmaps/{name}"].Patch, "fieldValidation") {
		t.Error("v2 patch ConfigMap lacks fieldValidation")
	}
}

// cronTabs is a custom resource's strategy: only its schema is used here.
type cronTabs struct {
	trellisresource.Strategy
	schema *spec.Schema
}

func (c cronTabs) OpenAPISchema() *spec.Schema { return c.schema }

func cronTabDescriptor(resource, kind string) *trellisresource.Descriptor {
	s := &spec.Schema{SchemaProps: spec.SchemaProps{
		Type: []string{"object"},
		Properties: map[string]spec.Schema{
			"spec": {SchemaProps: spec.SchemaProps{
				Type: []string{"object"},
				Properties: map[string]spec.Schema{
					"cronSpec": {SchemaProps: spec.SchemaProps{Type: []string{"string"}, Description: "When to run."}},
					// nullable has no v2 form: the v2 document must drop it.
					"image": {SchemaProps: spec.SchemaProps{Type: []string{"string"}, Nullable: true}},
				},
			}},
		},
	}}
	return &trellisresource.Descriptor{
		Group: "stable.example.com", Version: "v1", Kind: kind, ListKind: kind + "List",
		Resource: resource, Singular: strings.ToLower(kind), Namespaced: true,
		Verbs: trellisresource.StandardVerbs, Subresources: []string{"status", "scale"},
		Strategy: cronTabs{schema: s},
	}
}

func TestAddingAResourceRebuildsOnlyItsGroupVersion(t *testing.T) {
	f := newFixture(t)
	client := f.discovery().OpenAPIV3()
	before := hashes(t, client)
	if got := f.takeBuilds(); got["/openapi/v3/api/v1"] != 1 || got["/openapi/v3/apis/coordination.k8s.io/v1"] != 1 {
		t.Fatalf("first discovery built %v", got)
	}
	// Served again from cache.
	hashes(t, client)
	if got := f.takeBuilds(); len(got) != 0 {
		t.Errorf("unchanged registry rebuilt %v", got)
	}

	f.reg.Add(cronTabDescriptor("crontabs", "CronTab"))
	after := hashes(t, client)
	want := map[string]int{"/openapi/v3": 1, "/openapi/v3/apis/stable.example.com/v1": 1, "/openapi/v3/apis/stable.example.com": 1}
	if got := f.takeBuilds(); !equalCounts(got, want) {
		t.Errorf("adding a group built %v, want %v", got, want)
	}
	for key, h := range before {
		if after[key] != h {
			t.Errorf("hash of unrelated %s changed", key)
		}
	}

	// A second resource in the same group-version rebuilds that document
	// only.
	f.reg.Add(cronTabDescriptor("cronjobs", "CronJob"))
	again := hashes(t, client)
	want = map[string]int{"/openapi/v3": 1, "/openapi/v3/apis/stable.example.com/v1": 1}
	if got := f.takeBuilds(); !equalCounts(got, want) {
		t.Errorf("adding a resource built %v, want %v", got, want)
	}
	if again["apis/stable.example.com/v1"] == after["apis/stable.example.com/v1"] {
		t.Error("the changed document kept its hash")
	}

	root := openapi3.NewRoot(client)
	doc, err := root.GVSpec(schema.GroupVersion{Group: "stable.example.com", Version: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	name, ct := schemaWithGVK(t, doc, schema.GroupVersionKind{Group: "stable.example.com", Version: "v1", Kind: "CronTab"})
	if name != "com.example.stable.v1.CronTab" {
		t.Errorf("CronTab schema is named %q", name)
	}
	if _, ok := ct.Properties["spec"].Properties["cronSpec"]; !ok {
		t.Errorf("CronTab schema lacks spec.cronSpec: %+v", ct)
	}
	for _, p := range []string{"apiVersion", "kind", "metadata"} {
		if _, ok := ct.Properties[p]; !ok {
			t.Errorf("CronTab schema lacks %s", p)
		}
	}
	schemaWithGVK(t, doc, schema.GroupVersionKind{Group: "stable.example.com", Version: "v1", Kind: "CronTabList"})
	patch := doc.Paths.Paths["/apis/stable.example.com/v1/namespaces/{namespace}/crontabs/{name}"].Patch
	if _, ok := patch.RequestBody.Content["application/strategic-merge-patch+json"]; ok {
		t.Error("a custom kind offers strategic merge patch")
	}
	scale := doc.Paths.Paths["/apis/stable.example.com/v1/namespaces/{namespace}/crontabs/{name}/scale"]
	if scale == nil || scale.Get == nil || scale.Get.Extensions["x-kubernetes-group-version-kind"].(map[string]interface{})["kind"] != "Scale" {
		t.Errorf("scale subresource: %+v", scale)
	}
	verifier := resource.NewQueryParamVerifierV3(nil, client, resource.QueryParamFieldValidation)
	if err := verifier.HasSupport(schema.GroupVersionKind{Group: "stable.example.com", Version: "v1", Kind: "CronTab"}); err != nil {
		t.Errorf("fieldValidation on CronTab: %v", err)
	}

	// v2 has the new kind too, in a form its protobuf encoding accepts.
	v2, err := f.discovery().OpenAPISchema()
	if err != nil {
		t.Fatal(err)
	}
	resources, err := kubectlopenapi.NewOpenAPIData(v2)
	if err != nil {
		t.Fatal(err)
	}
	if resources.LookupResource(schema.GroupVersionKind{Group: "stable.example.com", Version: "v1", Kind: "CronTab"}) == nil {
		t.Error("v2 lacks CronTab")
	}

	// Removing the group takes its documents away.
	f.reg.Remove(schema.GroupVersionResource{Group: "stable.example.com", Version: "v1", Resource: "crontabs"})
	f.reg.Remove(schema.GroupVersionResource{Group: "stable.example.com", Version: "v1", Resource: "cronjobs"})
	final := hashes(t, client)
	if _, ok := final["apis/stable.example.com/v1"]; ok {
		t.Error("removed group-version still listed")
	}
	if resp, _ := f.get(t, "/openapi/v3/apis/stable.example.com/v1", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("removed group-version: %s", resp.Status)
	}
}

// untyped is a strategy whose objects have no Go type and which states
// no schema.
type untyped struct{ trellisresource.Strategy }

func (untyped) New() runtime.Object     { return &unstructured.Unstructured{} }
func (untyped) NewList() runtime.Object { return &unstructured.UnstructuredList{} }

func TestKindWithoutSchemaAcceptsAnyObject(t *testing.T) {
	f := newFixture(t)
	gvk := schema.GroupVersionKind{Group: "example.com", Version: "v1", Kind: "Widget"}
	f.reg.Add(&trellisresource.Descriptor{
		Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind, ListKind: "WidgetList",
		Resource: "widgets", Singular: "widget", Verbs: trellisresource.StandardVerbs,
		Strategy: untyped{},
	})
	doc, err := openapi3.NewRoot(f.discovery().OpenAPIV3()).GVSpec(gvk.GroupVersion())
	if err != nil {
		t.Fatal(err)
	}
	name, s := schemaWithGVK(t, doc, gvk)
	if name != "com.example.v1.Widget" {
		t.Errorf("Widget schema is named %q", name)
	}
	if preserve, _ := s.Extensions.GetBool("x-kubernetes-preserve-unknown-fields"); !preserve {
		t.Errorf("Widget schema does not preserve unknown fields: %+v", s)
	}
	if doc.Paths.Paths["/apis/example.com/v1/widgets/{name}"] == nil {
		t.Error("no cluster-scoped item path for widgets")
	}
	v2, err := f.discovery().OpenAPISchema()
	if err != nil {
		t.Fatal(err)
	}
	resources, err := kubectlopenapi.NewOpenAPIData(v2)
	if err != nil {
		t.Fatal(err)
	}
	if resources.LookupResource(gvk) == nil {
		t.Error("v2 lacks Widget")
	}
}

func TestCachingHeaders(t *testing.T) {
	f := newFixture(t)
	paths, err := f.discovery().OpenAPIV3().Paths()
	if err != nil {
		t.Fatal(err)
	}
	current := paths["api/v1"].ServerRelativeURL()

	resp, _ := f.get(t, current, nil)
	if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "public, immutable" {
		t.Errorf("GET %s: %s, Cache-Control %q", current, resp.Status, resp.Header.Get("Cache-Control"))
	}
	etag := resp.Header.Get("Etag")
	if resp, _ := f.get(t, "/openapi/v3/api/v1", http.Header{"If-None-Match": {etag}}); resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match with the current ETag: %s", resp.Status)
	}
	resp, _ = f.get(t, "/openapi/v3/api/v1?hash=stale", nil)
	if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != current {
		t.Errorf("stale hash: %s to %q, want 301 to %q", resp.Status, resp.Header.Get("Location"), current)
	}
	resp, body := f.get(t, "/openapi/v2", http.Header{"Accept-Encoding": {"gzip"}, "Accept": {"application/json"}})
	if resp.Header.Get("Content-Encoding") != "gzip" || len(body) > 1000000 {
		t.Errorf("v2 with Accept-Encoding gzip: encoding %q, %d bytes", resp.Header.Get("Content-Encoding"), len(body))
	}
}

func TestRefusals(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name, method, path, accept string
		code                       int
	}{
		{"unknown group-version", "GET", "/openapi/v3/apis/nope.example.com/v1", "", 404},
		{"unknown document", "GET", "/openapi/v4", "", 404},
		{"write", "POST", "/openapi/v2", "", 405},
		{"unsupported media type", "GET", "/openapi/v2", "application/yaml", 406},
		{"v3 protobuf", "GET", "/openapi/v3/api/v1", clientopenapi.ContentTypeOpenAPIV3PB, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, f.srv.URL+tc.path, nil)
			if tc.accept != "" {
				req.Header.Set("Accept", tc.accept)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.code {
				t.Fatalf("%s %s: %s", tc.method, tc.path, resp.Status)
			}
			if tc.code >= 400 {
				var status struct{ Kind, Reason string }
				if err := json.Unmarshal(body, &status); err != nil || status.Kind != "Status" {
					t.Errorf("error body is not a Status: %s", body)
				}
			} else if ct := resp.Header.Get("Content-Type"); ct != "application/com.github.proto-openapi.spec.v3.v1.0+protobuf" {
				t.Errorf("Content-Type %q", ct)
			}
		})
	}
}

func hashes(t *testing.T, client clientopenapi.Client) map[string]string {
	t.Helper()
	paths, err := client.Paths()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for k, gv := range paths {
		out[k] = gv.ServerRelativeURL()
	}
	return out
}

func equalCounts(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func containsGV(list []schema.GroupVersion, gv schema.GroupVersion) bool {
	for _, g := range list {
		if g == gv {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

func hasQueryParam(op *spec3.Operation, name string) bool {
	if op == nil {
		return false
	}
	for _, p := range op.Parameters {
		if p.Name == name && p.In == "query" {
			return true
		}
	}
	return false
}

func hasV2QueryParam(op *spec.Operation, name string) bool {
	if op == nil {
		return false
	}
	for _, p := range op.Parameters {
		if p.Name == name && p.In == "query" {
			return true
		}
	}
	return false
}

// BenchmarkBuildCoreGroupVersion measures a cold build of /openapi/v3/api/v1
// (the largest built-in document) on a fresh service.
func BenchmarkBuildCoreGroupVersion(b *testing.B) {
	reg := trellisresource.NewRegistry()
	builtin.Register(reg)
	for i := 0; i < b.N; i++ {
		svc := openapi.New(reg, openapi.Config{Definitions: generated.GetOpenAPIDefinitions, Scheme: builtin.Scheme})
		rec := httptest.NewRecorder()
		svc.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/openapi/v3/api/v1", nil))
		if rec.Code != http.StatusOK {
			b.Fatalf("GET /openapi/v3/api/v1: %d", rec.Code)
		}
	}
}
