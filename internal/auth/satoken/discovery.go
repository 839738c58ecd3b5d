package satoken

import (
	"fmt"
	"net/http"

	upstream "k8s.io/kubernetes/pkg/serviceaccount"
)

// Paths of the issuer discovery documents.
const (
	OpenIDConfigPath = upstream.OpenIDConfigPath // "/.well-known/openid-configuration"
	JWKSPath         = upstream.JWKSPath         // "/openid/v1/jwks"
)

// DiscoveryHandler serves the OpenID discovery document and the key set
// of the issuer, with kube-apiserver's content types and caching headers.
// externalAddress ("host:port") makes the default jwks_uri. Like
// kube-apiserver, there are no discovery documents (an error) when the
// first issuer is not an https URL without query or fragment.
//
// Who may read them is RBAC's business: the bootstrap ClusterRole
// system:service-account-issuer-discovery, bound to all service accounts.
func (c *Config) DiscoveryHandler(externalAddress string) (http.Handler, error) {
	keys, err := c.keysGetter()
	if err != nil {
		return nil, err
	}
	md, err := upstream.NewOpenIDMetadataProvider(c.Issuers[0], c.JWKSURI, externalAddress, keys)
	if err != nil {
		return nil, err
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body []byte
		var maxAge int
		var contentType string
		switch r.URL.Path {
		case OpenIDConfigPath, OpenIDConfigPath + "/":
			body, maxAge = md.GetConfigJSON()
			contentType = "application/json"
		case JWKSPath, JWKSPath + "/":
			body, maxAge = md.GetKeysetJSON()
			contentType = "application/jwk-set+json"
		default:
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET")
			http.Error(w, "405: Method Not Allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", contentType)
		w.Header().Set("Cache-Control", fmt.Sprintf("public, max-age=%d", maxAge))
		w.Write(body)
	}), nil
}
