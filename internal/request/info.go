// Package request parses an HTTP request into the Kubernetes verb and
// resource coordinates that every later stage (authorization, admission,
// the resource handler) works with.
package request

import (
	"context"
	"net/http"
	"strings"
)

// Info describes one API request. For non-resource requests (discovery,
// /healthz, /openapi) IsResourceRequest is false and Path is set.
type Info struct {
	IsResourceRequest bool
	Path              string

	// Verb is the Kubernetes verb: get, list, watch, create, update, patch,
	// delete, deletecollection; for non-resource requests the lowercased
	// HTTP method.
	Verb string

	APIPrefix   string // "api" or "apis"
	APIGroup    string // "" for the core group
	APIVersion  string
	Namespace   string
	Resource    string
	Subresource string
	Name        string
	// Parts are the path segments after the version.
	Parts []string
}

type infoKey struct{}

// WithInfo stores info in ctx.
func WithInfo(ctx context.Context, info *Info) context.Context {
	return context.WithValue(ctx, infoKey{}, info)
}

// InfoFrom returns the Info stored by WithInfo, or nil.
func InfoFrom(ctx context.Context) *Info {
	info, _ := ctx.Value(infoKey{}).(*Info)
	return info
}

// Parse classifies r. Resource paths have one of these shapes:
//
//	/api/v1/{resource}[/{name}[/{subresource}]]
//	/api/v1/namespaces/{ns}/{resource}[/{name}[/{subresource}]]
//	/apis/{group}/{version}/... (the same below the version)
//
// A "watch=true" query on a list or get turns the verb into watch, as
// kube-apiserver does; the deprecated /watch/ path prefix is not served.
func Parse(r *http.Request) *Info {
	info := &Info{Path: r.URL.Path, Verb: strings.ToLower(r.Method)}
	parts := splitPath(r.URL.Path)
	if len(parts) < 1 || (parts[0] != "api" && parts[0] != "apis") {
		return info
	}
	info.APIPrefix = parts[0]
	parts = parts[1:]
	if info.APIPrefix == "apis" {
		if len(parts) < 1 {
			return info
		}
		info.APIGroup = parts[0]
		parts = parts[1:]
	}
	if len(parts) < 1 {
		return info
	}
	info.APIVersion = parts[0]
	parts = parts[1:]
	if len(parts) < 1 {
		return info // group-version discovery
	}
	info.IsResourceRequest = true
	info.Parts = parts

	// /namespaces/{ns}/{resource}... but /namespaces/{name}[/status] and
	// /namespaces/{name}/finalize are the namespace object itself.
	if parts[0] == "namespaces" && len(parts) >= 3 && !namespaceSubresources[parts[2]] {
		info.Namespace = parts[1]
		parts = parts[2:]
	}
	info.Resource = parts[0]
	if len(parts) >= 2 {
		info.Name = parts[1]
	}
	if len(parts) >= 3 {
		info.Subresource = parts[2]
	}
	if info.Resource == "namespaces" && info.Namespace == "" && info.Name != "" {
		// The namespace object is cluster-scoped but kube-apiserver reports
		// its own name as the request's namespace.
		info.Namespace = info.Name
	}

	watch := isTrue(r.URL.Query().Get("watch"))
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		switch {
		case watch:
			info.Verb = "watch"
		case info.Name == "":
			info.Verb = "list"
		default:
			info.Verb = "get"
		}
	case http.MethodPost:
		info.Verb = "create"
	case http.MethodPut:
		info.Verb = "update"
	case http.MethodPatch:
		info.Verb = "patch"
	case http.MethodDelete:
		if info.Name == "" {
			info.Verb = "deletecollection"
		} else {
			info.Verb = "delete"
		}
	}
	return info
}

// LongRunning is kube-apiserver's long-running check: watches, proxies
// and the streaming subresources of pods. Such requests have no deadline
// and, but for watches while they start, take no part in concurrency
// limits.
func (i *Info) LongRunning() bool {
	switch i.Verb {
	case "watch", "proxy":
		return true
	}
	if i.IsResourceRequest {
		switch i.Subresource {
		case "attach", "exec", "proxy", "log", "portforward":
			return true
		}
		return false
	}
	return strings.HasPrefix(i.Path, "/debug/pprof/")
}

// IsTooDeep reports paths with more segments than any resource path has.
func (i *Info) IsTooDeep() bool {
	n := len(i.Parts)
	if i.Namespace != "" && !(i.Resource == "namespaces" && i.Name == i.Namespace && n <= 3) {
		n -= 2
	}
	return n > 3
}

// namespaceSubresources are the subresources of the namespace object, which
// kube-apiserver tells apart from a resource inside the namespace by name.
var namespaceSubresources = map[string]bool{"status": true, "finalize": true}

func splitPath(p string) []string {
	p = strings.Trim(p, "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

func isTrue(v string) bool {
	return v == "true" || v == "1"
}
