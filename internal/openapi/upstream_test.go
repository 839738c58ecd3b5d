package openapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// Documents are cross-checked against the ones kube-apiserver publishes:
// the k8s.io/kubernetes module ships them (api/openapi-spec), generated
// by a real kube-apiserver of the same version. Every path, operation and
// definition Trellis serves must be what kube-apiserver serves, except
// for the deliberate differences below.

// deviations are operations that differ on purpose, by "path method".
var deviations = map[string]string{
	// Trellis serves every standard verb on namespaces; kube-apiserver has
	// no deletecollection for them.
	"/api/v1/namespaces delete": "namespaces deletecollection is served",
	// DELETE of a namespace answers with the Namespace (its finalizers
	// keep it), which the descriptor says; kube-apiserver documents a
	// Status.
	"/api/v1/namespaces/{name} delete": "deleting a namespace returns it",
}

// upstreamSpecs returns the folder of kube-apiserver's published
// documents, or skips the test.
func upstreamSpecs(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "k8s.io/kubernetes").Output()
	if err != nil {
		t.Fatalf("cannot locate the k8s.io/kubernetes module: %v", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "api", "openapi-spec")
	if _, err := os.Stat(filepath.Join(dir, "swagger.json")); err != nil {
		t.Fatalf("no published documents: %v", err)
	}
	return dir
}

func TestV3MatchesKubeAPIServer(t *testing.T) {
	dir := upstreamSpecs(t)
	f := newFixture(t)
	paths, err := f.discovery().OpenAPIV3().Paths()
	if err != nil {
		t.Fatal(err)
	}
	keys := make([]string, 0, len(paths))
	for k := range paths {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		t.Run(key, func(t *testing.T) {
			file := filepath.Join(dir, "v3", strings.ReplaceAll(key, "/", "__")+"_openapi.json")
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("kube-apiserver publishes no %s: %v", key, err)
			}
			var want map[string]interface{}
			if err := json.Unmarshal(raw, &want); err != nil {
				t.Fatal(err)
			}
			resp, body := f.get(t, "/openapi/v3/"+key, nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET %s: %s", key, resp.Status)
			}
			var got map[string]interface{}
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatal(err)
			}
			for _, d := range compareDocuments(got, want, "components", "schemas") {
				t.Error(d)
			}
		})
	}
}

func TestV2MatchesKubeAPIServer(t *testing.T) {
	dir := upstreamSpecs(t)
	f := newFixture(t)
	raw, err := os.ReadFile(filepath.Join(dir, "swagger.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]interface{}
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	// kube-apiserver factors shared parameters out into #/parameters;
	// Trellis states them in place, which means the same.
	shared := want["parameters"].(map[string]interface{})
	want["paths"] = inlineParameters(want["paths"], shared)
	delete(want, "parameters")

	resp, body := f.get(t, "/openapi/v2", http.Header{"Accept": {"application/json"}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /openapi/v2: %s", resp.Status)
	}
	var got map[string]interface{}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	for _, d := range compareDocuments(got, want, "definitions") {
		t.Error(d)
	}
}

// compareDocuments reports how got differs from want: its paths and
// operations must be among want's, each the same, and so must its
// definitions (found under defsPath) and top-level fields.
func compareDocuments(got, want map[string]interface{}, defsPath ...string) []string {
	var diffs []string
	gotPaths, wantPaths := got["paths"].(map[string]interface{}), want["paths"].(map[string]interface{})
	for _, p := range sortedKeys(gotPaths) {
		wantItem, ok := wantPaths[p].(map[string]interface{})
		if !ok {
			diffs = append(diffs, "path not served by kube-apiserver: "+p)
			continue
		}
		gotItem := gotPaths[p].(map[string]interface{})
		for _, k := range sortedKeys(gotItem) {
			if _, deviant := deviations[p+" "+k]; deviant {
				continue
			}
			diffs = append(diffs, diff(p+" "+k, normalize(gotItem[k]), normalize(wantItem[k]))...)
		}
	}
	gotDefs, wantDefs := lookup(got, defsPath...), lookup(want, defsPath...)
	for _, name := range sortedKeys(gotDefs) {
		g, w := normalize(gotDefs[name]).(map[string]interface{}), normalize(wantDefs[name])
		if w == nil {
			diffs = append(diffs, "definition not published by kube-apiserver: "+name)
			continue
		}
		// The meta kinds every group registers list the scheme's groups,
		// which are fewer in Trellis: they must be a subset.
		if gvks, ok := g["x-kubernetes-group-version-kind"].([]interface{}); ok && len(gvks) > 1 {
			wm := w.(map[string]interface{})
			for _, gvk := range gvks {
				if !containsValue(wm["x-kubernetes-group-version-kind"].([]interface{}), gvk) {
					diffs = append(diffs, fmt.Sprintf("%s lists %v, which kube-apiserver does not", name, gvk))
				}
			}
			delete(g, "x-kubernetes-group-version-kind")
			delete(wm, "x-kubernetes-group-version-kind")
		}
		diffs = append(diffs, diff(name, g, w)...)
	}
	for _, k := range sortedKeys(got) {
		if k == "paths" || k == defsPath[0] {
			continue
		}
		diffs = append(diffs, diff(k, got[k], want[k])...)
	}
	if len(defsPath) > 1 {
		gc, wc := got[defsPath[0]].(map[string]interface{}), want[defsPath[0]].(map[string]interface{})
		for _, k := range sortedKeys(gc) {
			if k != defsPath[1] {
				diffs = append(diffs, diff(defsPath[0]+"/"+k, gc[k], wc[k])...)
			}
		}
	}
	return diffs
}

// normalize removes enums: kube-apiserver serves them (the OpenAPIEnums
// feature is on by default) but its published documents are generated
// with the feature off.
func normalize(v interface{}) interface{} {
	switch v := v.(type) {
	case map[string]interface{}:
		out := map[string]interface{}{}
		for k, e := range v {
			if k == "enum" {
				continue
			}
			if s, ok := e.(string); ok && k == "description" {
				if i := strings.Index(s, "\n\nPossible enum values:"); i >= 0 {
					s = s[:i]
				}
				// Enum-typed fields keep a trailing newline once the
				// enum list is cut.
				e = strings.TrimRight(s, "\n")
			}
			out[k] = normalize(e)
		}
		return out
	case []interface{}:
		out := make([]interface{}, len(v))
		for i, e := range v {
			out[i] = normalize(e)
		}
		return out
	}
	return v
}

func inlineParameters(v interface{}, shared map[string]interface{}) interface{} {
	switch v := v.(type) {
	case map[string]interface{}:
		if ref, ok := v["$ref"].(string); ok && len(v) == 1 && strings.HasPrefix(ref, "#/parameters/") {
			return shared[strings.TrimPrefix(ref, "#/parameters/")]
		}
		out := map[string]interface{}{}
		for k, e := range v {
			out[k] = inlineParameters(e, shared)
		}
		return out
	case []interface{}:
		out := make([]interface{}, len(v))
		for i, e := range v {
			out[i] = inlineParameters(e, shared)
		}
		return out
	}
	return v
}

func diff(at string, got, want interface{}) []string {
	if reflect.DeepEqual(got, want) {
		return nil
	}
	g, gok := got.(map[string]interface{})
	w, wok := want.(map[string]interface{})
	if gok && wok {
		var out []string
		for _, k := range sortedKeys(g) {
			if _, ok := w[k]; !ok {
				out = append(out, fmt.Sprintf("%s/%s: not in kube-apiserver's", at, k))
				continue
			}
			out = append(out, diff(at+"/"+k, g[k], w[k])...)
		}
		for _, k := range sortedKeys(w) {
			if _, ok := g[k]; !ok {
				out = append(out, fmt.Sprintf("%s/%s: missing", at, k))
			}
		}
		return out
	}
	gs, _ := json.Marshal(got)
	ws, _ := json.Marshal(want)
	return []string{fmt.Sprintf("%s:\n got  %.300s\n want %.300s", at, gs, ws)}
}

func lookup(m map[string]interface{}, path ...string) map[string]interface{} {
	for _, p := range path {
		m, _ = m[p].(map[string]interface{})
	}
	return m
}

func containsValue(list []interface{}, v interface{}) bool {
	for _, e := range list {
		if reflect.DeepEqual(e, v) {
			return true
		}
	}
	return false
}

func sortedKeys(m map[string]interface{}) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
