// Package openapi serves /openapi/v2 and /openapi/v3 for the resources in
// a resource.Registry, in the shape kube-apiserver publishes: one v2
// document, and a v3 discovery document pointing at one document per
// group-version (plus the small "api", "apis", "apis/{group}" and "version"
// documents).
//
// Paths and operations are built from the descriptors — the same verbs,
// scopes and subresources the generic handler serves — and never from
// go-restful routes. Schemas are not written here: built-in kinds use
// kube-openapi's generated definitions of the k8s.io/api types
// (Config.Definitions), found by the Go type the scheme (or the strategy)
// returns for the descriptor's kind; a strategy without a Go type supplies
// its own schema through SchemaProvider.
//
// Documents are built on first request and cached. When the registry's
// generation changes, only the group-versions whose descriptors changed
// get new documents; the others keep their bytes, ETags and hashes.
package openapi
