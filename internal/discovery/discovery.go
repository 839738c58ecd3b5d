// Package discovery serves /api and /apis: the legacy per-group documents
// and the aggregated apidiscovery.k8s.io/v2 form kubectl prefers. Documents
// are built from the resource registry and rebuilt only when its
// generation changes.
package discovery

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"sort"
	"strings"
	"sync"

	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/version"

	"github.com/trellis-project/trellis/internal/resource"
)

const aggregatedContentType = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"

// Handler serves the discovery endpoints.
type Handler struct {
	Registry *resource.Registry

	mu    sync.Mutex
	gen   int64
	cache *documents
}

// documents are the encoded discovery responses for one registry
// generation.
type documents struct {
	legacyAPI      []byte            // /api
	groupList      []byte            // /apis
	groups         map[string][]byte // /apis/{group}
	resourceLists  map[string][]byte // "v1" or "group/version"
	aggregatedCore []byte
	aggregatedAPIs []byte
	etagCore       string
	etagAPIs       string
}

func (h *Handler) docs() *documents {
	h.mu.Lock()
	defer h.mu.Unlock()
	gen := h.Registry.Generation()
	if h.cache == nil || gen != h.gen {
		h.cache = build(h.Registry.All())
		h.gen = gen
	}
	return h.cache
}

// ServeHTTP answers /api, /api/v1, /apis, /apis/{g}, /apis/{g}/{v}; it
// reports false (via 404) for anything else.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	d := h.docs()
	path := strings.TrimSuffix(r.URL.Path, "/")
	aggregated := wantsAggregated(r)
	switch {
	case path == "/api":
		if aggregated {
			writeAggregated(w, r, d.aggregatedCore, d.etagCore)
			return
		}
		writeJSON(w, d.legacyAPI)
	case path == "/apis":
		if aggregated {
			writeAggregated(w, r, d.aggregatedAPIs, d.etagAPIs)
			return
		}
		writeJSON(w, d.groupList)
	case path == "/api/v1":
		if b, ok := d.resourceLists["v1"]; ok {
			writeJSON(w, b)
			return
		}
		notFound(w)
	case strings.HasPrefix(path, "/apis/"):
		parts := strings.Split(strings.TrimPrefix(path, "/apis/"), "/")
		switch len(parts) {
		case 1:
			if b, ok := d.groups[parts[0]]; ok {
				writeJSON(w, b)
				return
			}
		case 2:
			if b, ok := d.resourceLists[parts[0]+"/"+parts[1]]; ok {
				writeJSON(w, b)
				return
			}
		}
		notFound(w)
	default:
		notFound(w)
	}
}

func wantsAggregated(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil || mt != "application/json" {
			continue
		}
		if params["g"] == "apidiscovery.k8s.io" && params["v"] == "v2" && params["as"] == "APIGroupDiscoveryList" {
			return true
		}
		if params["as"] == "" {
			return false // plain JSON listed first
		}
	}
	return false
}

func writeJSON(w http.ResponseWriter, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

func writeAggregated(w http.ResponseWriter, r *http.Request, b []byte, etag string) {
	w.Header().Set("Content-Type", aggregatedContentType)
	w.Header().Set("Vary", "Accept")
	w.Header().Set("ETag", etag)
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Write(b)
}

func notFound(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusNotFound)
	w.Write([]byte(`{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"the server could not find the requested resource","reason":"NotFound","details":{},"code":404}` + "\n"))
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return append(b, '\n')
}

// subresourceVerbs are the verbs discovery lists for each subresource.
var subresourceVerbs = map[string][]string{
	"status":              {"get", "patch", "update"},
	"scale":               {"get", "patch", "update"},
	"finalize":            {"update"},
	"approval":            {"get", "patch", "update"},
	"ephemeralcontainers": {"get", "patch", "update"},
	"resize":              {"get", "patch", "update"},
}

func build(all []*resource.Descriptor) *documents {
	d := &documents{groups: map[string][]byte{}, resourceLists: map[string][]byte{}}

	// versions per group, and resources per group-version, in order.
	byGV := map[string][]*resource.Descriptor{}
	versions := map[string][]string{}
	for _, r := range all {
		gv := r.GroupVersion().String()
		if _, ok := byGV[gv]; !ok {
			versions[r.Group] = append(versions[r.Group], r.Version)
		}
		byGV[gv] = append(byGV[gv], r)
	}
	for g := range versions {
		sort.Slice(versions[g], func(i, j int) bool {
			return version.CompareKubeAwareVersionStrings(versions[g][i], versions[g][j]) > 0
		})
	}

	for gv, rs := range byGV {
		list := metav1.APIResourceList{TypeMeta: metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"}, GroupVersion: gv}
		for _, r := range rs {
			list.APIResources = append(list.APIResources, metav1.APIResource{
				Name: r.Resource, SingularName: r.Singular, Namespaced: r.Namespaced,
				Kind: r.Kind, Verbs: r.Verbs, ShortNames: r.ShortNames, Categories: r.Categories,
				StorageVersionHash: storageVersionHash(r),
			})
			for _, sub := range r.Subresources {
				res := metav1.APIResource{
					Name: r.Resource + "/" + sub, Namespaced: r.Namespaced, Kind: r.Kind,
					Verbs: subresourceVerbs[sub],
				}
				if sub == "scale" {
					res.Group, res.Version, res.Kind = "autoscaling", "v1", "Scale"
				}
				list.APIResources = append(list.APIResources, res)
			}
			for _, sub := range r.CreaterNames() {
				k := r.Creaters[sub].Kind
				list.APIResources = append(list.APIResources, metav1.APIResource{
					Name: r.Resource + "/" + sub, Namespaced: r.Namespaced,
					Group: k.Group, Version: k.Version, Kind: k.Kind, Verbs: []string{"create"},
				})
			}
		}
		d.resourceLists[gv] = mustJSON(list)
	}

	d.legacyAPI = mustJSON(metav1.APIVersions{
		TypeMeta: metav1.TypeMeta{Kind: "APIVersions"},
		Versions: versions[""],
		ServerAddressByClientCIDRs: []metav1.ServerAddressByClientCIDR{{
			ClientCIDR: "0.0.0.0/0",
		}},
	})

	var groupNames []string
	for g := range versions {
		if g != "" {
			groupNames = append(groupNames, g)
		}
	}
	sort.Strings(groupNames)
	groupList := metav1.APIGroupList{TypeMeta: metav1.TypeMeta{Kind: "APIGroupList", APIVersion: "v1"}, Groups: []metav1.APIGroup{}}
	for _, g := range groupNames {
		group := metav1.APIGroup{Name: g}
		for _, v := range versions[g] {
			group.Versions = append(group.Versions, metav1.GroupVersionForDiscovery{GroupVersion: g + "/" + v, Version: v})
		}
		group.PreferredVersion = group.Versions[0]
		groupList.Groups = append(groupList.Groups, group)
		single := group
		single.TypeMeta = metav1.TypeMeta{Kind: "APIGroup", APIVersion: "v1"}
		d.groups[g] = mustJSON(single)
	}
	d.groupList = mustJSON(groupList)

	aggregated := func(groups []string) ([]byte, string) {
		list := apidiscoveryv2.APIGroupDiscoveryList{TypeMeta: metav1.TypeMeta{Kind: "APIGroupDiscoveryList", APIVersion: "apidiscovery.k8s.io/v2"}}
		list.Items = []apidiscoveryv2.APIGroupDiscovery{}
		for _, g := range groups {
			item := apidiscoveryv2.APIGroupDiscovery{ObjectMeta: metav1.ObjectMeta{Name: g}}
			for _, v := range versions[g] {
				vd := apidiscoveryv2.APIVersionDiscovery{Version: v, Freshness: apidiscoveryv2.DiscoveryFreshnessCurrent}
				gv := v
				if g != "" {
					gv = g + "/" + v
				}
				for _, r := range byGV[gv] {
					scope := apidiscoveryv2.ScopeCluster
					if r.Namespaced {
						scope = apidiscoveryv2.ScopeNamespace
					}
					rd := apidiscoveryv2.APIResourceDiscovery{
						Resource: r.Resource, SingularResource: r.Singular, Scope: scope,
						ResponseKind: &metav1.GroupVersionKind{Group: r.Group, Version: r.Version, Kind: r.Kind},
						Verbs:        r.Verbs, ShortNames: r.ShortNames, Categories: r.Categories,
					}
					for _, sub := range r.Subresources {
						kind := &metav1.GroupVersionKind{Group: r.Group, Version: r.Version, Kind: r.Kind}
						if sub == "scale" {
							kind = &metav1.GroupVersionKind{Group: "autoscaling", Version: "v1", Kind: "Scale"}
						}
						rd.Subresources = append(rd.Subresources, apidiscoveryv2.APISubresourceDiscovery{
							Subresource: sub, ResponseKind: kind, Verbs: subresourceVerbs[sub],
						})
					}
					for _, sub := range r.CreaterNames() {
						k := r.Creaters[sub].Kind
						rd.Subresources = append(rd.Subresources, apidiscoveryv2.APISubresourceDiscovery{
							Subresource: sub, Verbs: []string{"create"},
							ResponseKind: &metav1.GroupVersionKind{Group: k.Group, Version: k.Version, Kind: k.Kind},
						})
					}
					vd.Resources = append(vd.Resources, rd)
				}
				item.Versions = append(item.Versions, vd)
			}
			list.Items = append(list.Items, item)
		}
		b := mustJSON(list)
		sum := sha256.Sum256(b)
		return b, fmt.Sprintf("%q", fmt.Sprintf("%X", sum[:16]))
	}
	d.aggregatedCore, d.etagCore = aggregated([]string{""})
	d.aggregatedAPIs, d.etagAPIs = aggregated(groupNames)
	return d
}

// storageVersionHash is an opaque digest of where objects are stored,
// which clients use to notice storage version changes; resources that
// are not stored have none.
func storageVersionHash(r *resource.Descriptor) string {
	if !r.Stored() {
		return ""
	}
	sum := sha256.Sum256([]byte(r.StorageVersion.Group + "/" + r.StorageVersion.Version + "/" + r.Kind))
	return base64.StdEncoding.EncodeToString(sum[:8])
}
