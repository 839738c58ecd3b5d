package builtin_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/trellis-project/trellis/internal/resource"
	"github.com/trellis-project/trellis/internal/resource/builtin"
)

// notServed are the resources and subresources of kube-apiserver v1.37
// that are not stored objects (reviews, proxies, streams) or belong to
// other parts of Trellis (aggregation).
var notServed = map[string]bool{
	"authentication.k8s.io/v1/tokenreviews":             true,
	"authentication.k8s.io/v1/selfsubjectreviews":       true,
	"authorization.k8s.io/v1/subjectaccessreviews":      true,
	"authorization.k8s.io/v1/selfsubjectaccessreviews":  true,
	"authorization.k8s.io/v1/localsubjectaccessreviews": true,
	"authorization.k8s.io/v1/selfsubjectrulesreviews":   true,
	"apiregistration.k8s.io/v1/apiservices":             true,
	"v1/bindings":                                       true,
	"v1/componentstatuses":                              true,
	"v1/pods/attach":                                    true,
	"v1/pods/binding":                                   true,
	"v1/pods/eviction":                                  true,
	"v1/pods/exec":                                      true,
	"v1/pods/log":                                       true,
	"v1/pods/portforward":                               true,
	"v1/pods/proxy":                                     true,
	"v1/nodes/proxy":                                    true,
	"v1/services/proxy":                                 true,
	"v1/serviceaccounts/token":                          true,
}

// upstreamResource is what discovery says about one resource.
type upstreamResource struct {
	namespaced                     bool
	kind, singular                 string
	verbs, short, categories, subs []string
}

// upstreamDir is the k8s.io/kubernetes module, whose api/discovery holds
// kube-apiserver's own discovery documents.
func upstreamDir(t *testing.T) string {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "k8s.io/kubernetes").Output()
	if err != nil {
		t.Fatalf("cannot locate k8s.io/kubernetes: %v", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "api", "discovery")
}

// stableUpstream reads the GA resources kube-apiserver v1.37 serves, keyed
// by "group/version/resource" ("v1/pods" for core).
func stableUpstream(t *testing.T) map[string]upstreamResource {
	dir := upstreamDir(t)
	out := map[string]upstreamResource{}

	var groups apidiscoveryv2.APIGroupDiscoveryList
	readJSON(t, filepath.Join(dir, "aggregated_v2.json"), &groups)
	for _, g := range groups.Items {
		for _, v := range g.Versions {
			if strings.Contains(v.Version, "alpha") || strings.Contains(v.Version, "beta") {
				continue
			}
			for _, r := range v.Resources {
				u := upstreamResource{
					namespaced: r.Scope == apidiscoveryv2.ScopeNamespace, kind: r.ResponseKind.Kind,
					singular: r.SingularResource, verbs: r.Verbs, short: r.ShortNames, categories: r.Categories,
				}
				key := g.Name + "/" + v.Version + "/" + r.Resource
				for _, s := range r.Subresources {
					if !notServed[key+"/"+s.Subresource] {
						u.subs = append(u.subs, s.Subresource)
					}
				}
				out[key] = u
			}
		}
	}

	var core metav1.APIResourceList
	readJSON(t, filepath.Join(dir, "api__v1.json"), &core)
	for _, r := range core.APIResources {
		name, sub, isSub := strings.Cut(r.Name, "/")
		key := "v1/" + name
		if isSub {
			if !notServed[key+"/"+sub] {
				u := out[key]
				u.subs = append(u.subs, sub)
				out[key] = u
			}
			continue
		}
		u := out[key]
		u.namespaced, u.kind, u.singular = r.Namespaced, r.Kind, r.SingularName
		u.verbs, u.short, u.categories = r.Verbs, r.ShortNames, r.Categories
		out[key] = u
	}
	for key := range out {
		if notServed[key] {
			delete(out, key)
		}
	}
	return out
}

func readJSON(t *testing.T, path string, into any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("upstream discovery not available: %v", err)
	}
	if err := json.Unmarshal(b, into); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func key(d *resource.Descriptor) string {
	gv := d.Version
	if d.Group != "" {
		gv = d.Group + "/" + d.Version
	}
	return gv + "/" + d.Resource
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	sort.Strings(s)
	return s
}

// TestDescriptorsMatchUpstreamDiscovery checks every descriptor against
// kube-apiserver v1.37's own discovery documents: the same resources,
// scope, kind, names, verbs, short names, categories and subresources.
func TestDescriptorsMatchUpstreamDiscovery(t *testing.T) {
	want := stableUpstream(t)
	got := map[string]*resource.Descriptor{}
	for _, d := range builtin.Descriptors() {
		got[key(d)] = d
	}
	for k, u := range want {
		d, ok := got[k]
		if !ok {
			t.Errorf("%s: not served", k)
			continue
		}
		if d.Namespaced != u.namespaced || d.Kind != u.kind || d.Singular != u.singular {
			t.Errorf("%s: namespaced %v kind %s singular %s, upstream %v %s %s", k, d.Namespaced, d.Kind, d.Singular, u.namespaced, u.kind, u.singular)
		}
		for _, c := range []struct {
			what      string
			got, want []string
		}{
			{"verbs", d.Verbs, u.verbs},
			{"short names", d.ShortNames, u.short},
			{"categories", d.Categories, u.categories},
			{"subresources", d.Subresources, u.subs},
		} {
			if !slices.Equal(sorted(c.got), sorted(c.want)) {
				t.Errorf("%s: %s %v, upstream %v", k, c.what, c.got, c.want)
			}
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: served, but not by kube-apiserver v1.37", k)
		}
	}
	t.Logf("%d resources in %d group-versions", len(got), countGroupVersions(got))
}

func countGroupVersions(ds map[string]*resource.Descriptor) int {
	gvs := map[string]bool{}
	for _, d := range ds {
		gvs[d.Group+"/"+d.Version] = true
	}
	return len(gvs)
}

// TestEveryKindPrintsAndSelects renders an empty object and list of every
// kind as a Table and computes its selectable fields: no kind lacks
// upstream's printer or panics converting.
func TestEveryKindPrintsAndSelects(t *testing.T) {
	ctx := context.Background()
	for _, d := range builtin.Descriptors() {
		s := d.Strategy
		if _, err := s.Table(ctx, s.NewList(), &metav1.TableOptions{}); err != nil {
			t.Errorf("%s: table of a list: %v", key(d), err)
		}
		obj := s.New()
		s.Default(obj)
		table, err := s.Table(ctx, obj, &metav1.TableOptions{})
		if err != nil || len(table.ColumnDefinitions) == 0 {
			t.Errorf("%s: table: %v", key(d), err)
		}
		f := s.Fields(obj)
		if _, ok := f["metadata.name"]; !ok {
			t.Errorf("%s: metadata.name not selectable: %v", key(d), f)
		}
		// certificates.k8s.io/v1's field label conversion leaves out
		// metadata.namespace for PodCertificateRequests.
		if _, ok := f["metadata.namespace"]; d.Namespaced && !ok && d.Resource != "podcertificaterequests" {
			t.Errorf("%s: metadata.namespace not selectable: %v", key(d), f)
		}
	}
}

// TestSelectableFields pins the field labels kube-apiserver accepts for
// the kinds that have their own: the labels the version's field label
// conversion allows, valued from upstream's selectable fields.
func TestSelectableFields(t *testing.T) {
	byKey := map[string]*resource.Descriptor{}
	for _, d := range builtin.Descriptors() {
		byKey[key(d)] = d
	}
	for k, want := range map[string][]string{
		"v1/pods": {"spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
			"spec.hostNetwork", "status.phase", "status.podIP", "status.nominatedNodeName"},
		"v1/nodes":                  {"spec.unschedulable"},
		"v1/replicationcontrollers": {"status.replicas"},
		"v1/secrets":                {"type"},
		"v1/namespaces":             {"status.phase"},
		"v1/services":               {"spec.clusterIP", "spec.type"},
		"v1/events":                 {"involvedObject.kind", "reason", "source", "type"},
		"events.k8s.io/v1/events":   {"regarding.kind", "regarding.name", "reportingController", "type"},
		"batch/v1/jobs":             {"status.successful"},
		"certificates.k8s.io/v1/certificatesigningrequests": {"spec.signerName"},
		"certificates.k8s.io/v1/podcertificaterequests":     {"spec.signerName", "spec.podName", "spec.nodeName"},
		"resource.k8s.io/v1/resourceslices":                 {"spec.nodeName", "spec.driver", "spec.pool.name"},
	} {
		d := byKey[k]
		f := d.Strategy.Fields(d.Strategy.New())
		for _, label := range want {
			if _, ok := f[label]; !ok {
				t.Errorf("%s: %s not selectable (have %v)", k, label, f)
			}
		}
	}
	// apps/v1 registers no field label conversion: ReplicaSets select on
	// metadata only, although the internal selectable fields include
	// status.replicas.
	rs := byKey["apps/v1/replicasets"]
	if f := rs.Strategy.Fields(rs.Strategy.New()); len(f) != 2 {
		t.Errorf("apps/v1 replicasets select on %v, want metadata only", f)
	}
}
