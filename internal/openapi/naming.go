package openapi

import (
	"reflect"
	"strings"
	"unicode"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/kube-openapi/pkg/util"
)

// ModelName is the OpenAPI definition name of a Go API type, as
// kube-apiserver names it: what the type's OpenAPIModelName method says
// ("io.k8s.api.core.v1.ConfigMap"), else its package path and type name
// with the leading domain reversed ("k8s.io/api/core/v1.Pod" becomes
// "io.k8s.api.core.v1.Pod").
func ModelName(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if namer, ok := reflect.New(t).Interface().(util.OpenAPIModelNamer); ok {
		return namer.OpenAPIModelName()
	}
	if t.PkgPath() == "" {
		return t.Name()
	}
	return restFriendlyName(t.PkgPath() + "." + t.Name())
}

// restFriendlyName turns "k8s.io/api/core/v1.Pod" into
// "io.k8s.api.core.v1.Pod": slashes become dots and the first path
// element, when it is a domain, is reversed.
func restFriendlyName(name string) string {
	parts := strings.Split(name, "/")
	if strings.Contains(parts[0], ".") {
		parts[0] = reverseDomain(parts[0])
	}
	return strings.Join(parts, ".")
}

func reverseDomain(domain string) string {
	labels := strings.Split(domain, ".")
	for i, j := 0, len(labels)-1; i < j; i, j = i+1, j-1 {
		labels[i], labels[j] = labels[j], labels[i]
	}
	return strings.Join(labels, ".")
}

// CustomModelName names the definition of a kind without a Go type, as
// kube-apiserver names custom resources: the reversed group, the version
// and the kind ("com.example.stable.v1.CronTab").
func CustomModelName(gvk schema.GroupVersionKind) string {
	return reverseDomain(gvk.Group) + "." + gvk.Version + "." + gvk.Kind
}

// operationID and tags follow kube-apiserver's scheme: the verb, then the
// group (without ".k8s.io") and version taken from the path, then the
// rest: "list" + "/api/v1/..." + "NamespacedConfigMap" gives
// "listCoreV1NamespacedConfigMap" tagged "core_v1".
func operationID(verb, rest, path string) (string, []string) {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	if parts[0] == "api" {
		// The legacy group is named "core" in IDs and tags.
		parts = append([]string{"apis", "core"}, parts[1:]...)
	}
	id := verb
	var tag string
	if len(parts) >= 2 && parts[0] == "apis" {
		group := strings.TrimSuffix(parts[1], ".k8s.io")
		id += camel(group, true)
		tag = camel(group, false)
		if len(parts) > 2 {
			id += camel(parts[2], true)
			tag += "_" + camel(parts[2], false)
		}
	} else {
		tag = camel(parts[0], false)
	}
	return id + camel(rest, true), []string{tag}
}

// camel keeps letters, underscores and (not leading) digits, and starts a
// capital after every other character: "flowcontrol.apiserver" becomes
// "FlowcontrolApiserver" (or "flowcontrolApiserver" when first is false).
func camel(s string, first bool) string {
	var b strings.Builder
	upper := first
	for i, r := range s {
		if unicode.IsLetter(r) || r == '_' || (i != 0 && unicode.IsDigit(r)) {
			if upper {
				r = unicode.ToUpper(r)
				upper = false
			}
			b.WriteRune(r)
			continue
		}
		upper = true
	}
	return b.String()
}

// article is " a ", " an " or, for a plural kind such as Endpoints, " ".
func article(noun string) string {
	if strings.HasSuffix(noun, "s") && !strings.HasSuffix(noun, "ss") {
		return " "
	}
	if noun != "" && strings.ContainsRune("aeiou", unicode.ToLower(rune(noun[0]))) {
		return " an "
	}
	return " a "
}

// title capitalises a subresource name for operation IDs ("status" →
// "Status").
func title(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
