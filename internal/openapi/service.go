package openapi

import (
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/kube-openapi/pkg/common"
	"k8s.io/kube-openapi/pkg/handler3"

	"github.com/trellis-project/trellis/internal/resource"
)

// Config says where schemas come from and how documents describe the
// server.
type Config struct {
	// Definitions are the generated definitions of the Go API types, keyed
	// by model name (k8s.io/kubernetes/pkg/generated/openapi's
	// GetOpenAPIDefinitions). They are loaded on the first request.
	Definitions common.GetOpenAPIDefinitions
	// Scheme finds the Go type of a descriptor's kind and list, and lists
	// the kinds each definition is registered as
	// (x-kubernetes-group-version-kind). Descriptors the scheme does not
	// know fall back to their strategy's New and NewList.
	Scheme *runtime.Scheme

	// Title and Version fill the documents' info ("Kubernetes",
	// "unversioned" when empty).
	Title, Version string
	// MediaTypes are the encodings responses are documented in;
	// StreamMediaTypes are added for list operations (watch). Empty means
	// kube-apiserver's: JSON, YAML, protobuf and CBOR.
	MediaTypes, StreamMediaTypes []string

	// WriteError answers a request the service refuses (404, 405, 406,
	// 500) with a Status; nil writes a minimal Status itself.
	WriteError func(w http.ResponseWriter, r *http.Request, err error)
	// OnBuild, if set, is told of every document built: its path
	// ("/openapi/v2", "/openapi/v3/api/v1"), how long it took and whether
	// it failed.
	OnBuild func(path string, took time.Duration, err error)
}

var (
	defaultMediaTypes  = []string{"application/json", "application/yaml", "application/vnd.kubernetes.protobuf", "application/cbor"}
	defaultStreamTypes = []string{"application/json;stream=watch", "application/vnd.kubernetes.protobuf;stream=watch", "application/cbor-seq"}
)

// Service serves /openapi/v2 and /openapi/v3 for a registry.
type Service struct {
	reg *resource.Registry
	cfg Config
	cat *catalog

	paramsOnce sync.Once
	params     *optionParams

	mu   sync.Mutex
	snap *snapshot
}

var _ http.Handler = (*Service)(nil)

// New returns a Service for reg. Nothing is built until a request comes.
func New(reg *resource.Registry, cfg Config) *Service {
	if cfg.Title == "" {
		cfg.Title = "Kubernetes"
	}
	if cfg.Version == "" {
		cfg.Version = "unversioned"
	}
	if len(cfg.MediaTypes) == 0 {
		cfg.MediaTypes = defaultMediaTypes
	}
	if cfg.StreamMediaTypes == nil {
		cfg.StreamMediaTypes = defaultStreamTypes
	}
	if cfg.WriteError == nil {
		cfg.WriteError = writeStatus
	}
	return &Service{reg: reg, cfg: cfg, cat: &catalog{load: cfg.Definitions, scheme: cfg.Scheme}}
}

// snapshot is the set of documents for one registry generation. It is
// never modified once made; documents carried over from the previous
// snapshot keep what they built.
type snapshot struct {
	gen       int64
	v3        map[string]*entry // by discovery key: "api/v1", "apis/apps/v1", "version", ...
	v2        *document
	discovery *document
}

// entry is one v3 document and the descriptors it was made from; the
// same descriptors (by identity) mean the same document.
type entry struct {
	descs []*resource.Descriptor
	doc   *document
}

// current returns the snapshot of the registry's generation, reusing
// every document whose inputs did not change.
func (s *Service) current() *snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Read the generation before the descriptors: a change racing with us
	// then shows up as a newer generation on the next request.
	gen := s.reg.Generation()
	if s.snap != nil && s.snap.gen == gen {
		return s.snap
	}
	old := map[string]*entry{}
	if s.snap != nil {
		old = s.snap.v3
	}

	byGV := map[schema.GroupVersion][]*resource.Descriptor{}
	var gvs []schema.GroupVersion
	groupSet := map[string]bool{}
	for _, d := range s.reg.All() {
		gv := d.GroupVersion()
		if _, ok := byGV[gv]; !ok {
			gvs = append(gvs, gv)
		}
		byGV[gv] = append(byGV[gv], d)
		if gv.Group != "" {
			groupSet[gv.Group] = true
		}
	}
	groups := make([]string, 0, len(groupSet))
	for g := range groupSet {
		groups = append(groups, g)
	}
	sort.Strings(groups)

	next := &snapshot{gen: gen, v3: map[string]*entry{}}
	changed := s.snap == nil
	keep := func(key string, descs []*resource.Descriptor, build func() ([]byte, error)) {
		if e, ok := old[key]; ok && sameDescriptors(e.descs, descs) {
			next.v3[key] = e
			return
		}
		changed = true
		next.v3[key] = &entry{descs: descs, doc: s.newDocument("/openapi/v3/"+key, v3, build)}
	}
	keep("api", nil, func() ([]byte, error) { return s.buildV3(s.apiRoutes(), nil, nil) })
	keep("apis", nil, func() ([]byte, error) { return s.buildV3(s.apisRoutes(), nil, nil) })
	keep("version", nil, func() ([]byte, error) { return s.buildV3(s.versionRoutes(), nil, nil) })
	for _, g := range groups {
		g := g
		keep("apis/"+g, nil, func() ([]byte, error) { return s.buildV3(s.groupRoutes(g), nil, nil) })
	}
	inputs := make([]gvInput, 0, len(gvs))
	for _, gv := range gvs {
		in := gvInput{gv: gv, descs: byGV[gv]}
		inputs = append(inputs, in)
		keep(discoveryKey(gv), in.descs, func() ([]byte, error) {
			routes, custom := s.gvRoutes(in)
			return s.buildV3(routes, custom, &in.gv)
		})
	}
	if len(next.v3) != len(old) {
		changed = true
	}
	if !changed {
		next.v2, next.discovery = s.snap.v2, s.snap.discovery
	} else {
		next.v2 = s.newDocument("/openapi/v2", v2, func() ([]byte, error) { return s.buildV2(groups, inputs) })
		next.discovery = s.newDocument("/openapi/v3", v3, func() ([]byte, error) { return discoveryJSON(next.v3) })
	}
	s.snap = next
	return next
}

// discoveryKey is a group-version's name in /openapi/v3: "api/v1" or
// "apis/{group}/{version}".
func discoveryKey(gv schema.GroupVersion) string {
	return strings.TrimPrefix(rootPath(gv), "/")
}

func sameDescriptors(a, b []*resource.Descriptor) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// discoveryJSON lists every v3 document with the hash of its content,
// which clients use as a cache key. It builds the documents that are not
// built yet; one that fails to build is left out rather than failing the
// list.
func discoveryJSON(docs map[string]*entry) ([]byte, error) {
	out := handler3.OpenAPIV3Discovery{Paths: map[string]handler3.OpenAPIV3DiscoveryGroupVersion{}}
	for key, e := range docs {
		r := e.doc.get(encJSON)
		if r.err != nil {
			continue
		}
		out.Paths[key] = handler3.OpenAPIV3DiscoveryGroupVersion{ServerRelativeURL: relativeURL(key, r.etag)}
	}
	return json.Marshal(out)
}

func relativeURL(key, hash string) string {
	return "/openapi/v3/" + key + "?hash=" + hash
}

// ServeHTTP answers GET and HEAD on /openapi/v2, /openapi/v3 and
// /openapi/v3/{key}.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		s.cfg.WriteError(w, r, methodNotAllowed(r.Method))
		return
	}
	switch p := r.URL.Path; {
	case p == "/openapi/v2":
		s.serve(w, r, s.current().v2, v2Formats, "")
	case p == "/openapi/v3":
		s.serve(w, r, s.current().discovery, discoveryFormats, "")
	case strings.HasPrefix(p, "/openapi/v3/"):
		key := strings.TrimPrefix(p, "/openapi/v3/")
		e, ok := s.current().v3[key]
		if !ok {
			s.cfg.WriteError(w, r, notFound())
			return
		}
		s.serve(w, r, e.doc, v3Formats, key)
	default:
		s.cfg.WriteError(w, r, notFound())
	}
}
