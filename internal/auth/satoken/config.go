// Package satoken issues and verifies ServiceAccount tokens as
// kube-apiserver does: signed JWTs whose claims name the service account
// and, optionally, a Pod, Secret or Node the token is bound to. It serves
// the TokenRequest subresource (serviceaccounts/token), authenticates
// bound and legacy (secret-based) tokens, and renders the issuer's OpenID
// discovery documents.
//
// The claims, the signing and the verification are upstream's own
// (k8s.io/kubernetes/pkg/serviceaccount), so tokens are interchangeable
// with kube-apiserver's; this package wires them to Trellis's
// configuration, objects and request path.
package satoken

import (
	"crypto"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"k8s.io/client-go/util/keyutil"
	upstream "k8s.io/kubernetes/pkg/serviceaccount"
)

// DefaultIssuer is the issuer used when none is configured: the in-cluster
// name of the API server, as cluster installers configure it.
const DefaultIssuer = "https://kubernetes.default.svc.cluster.local"

// Options are kube-apiserver's service-account flags.
type Options struct {
	// KeyFiles (--service-account-key-file) hold PEM public or private
	// keys that verify tokens; several keys allow rotation.
	KeyFiles []string
	// SigningKeyFile (--service-account-signing-key-file) holds the PEM
	// private key that signs new tokens.
	SigningKeyFile string
	// Issuers (--service-account-issuer): the first is written into new
	// tokens, all are accepted.
	Issuers []string
	// APIAudiences (--api-audiences) are the audiences the API server
	// accepts; they default to Issuers.
	APIAudiences []string
	// MaxExpiration (--service-account-max-token-expiration) caps a
	// TokenRequest's expirationSeconds; 0 is no cap.
	MaxExpiration time.Duration
	// JWKSURI (--service-account-jwks-uri) overrides the jwks_uri of the
	// discovery document.
	JWKSURI string
}

// Generated is the signing key `trellis serve` keeps in its data
// directory, used when no signing key file is configured.
type Generated struct {
	Key crypto.Signer
	// PublicKeyFile holds Key's public half and possibly retired keys.
	PublicKeyFile string
}

// Config is the resolved service-account token configuration.
type Config struct {
	Issuers       []string
	APIAudiences  []string
	SigningKey    any   // *rsa.PrivateKey or *ecdsa.PrivateKey
	PublicKeys    []any // verify tokens
	MaxExpiration time.Duration
	JWKSURI       string
	// ExtendExpiration lets pod-bound tokens that kubelets request for
	// one hour and seven seconds live a year, warning after the hour, as
	// kube-apiserver's --service-account-extend-token-expiration (on by
	// default) does.
	ExtendExpiration bool
}

// Resolve validates o as kube-apiserver validates its flags and fills in
// what is not set: without a signing key file the generated key signs;
// without issuers the issuer is DefaultIssuer; without key files the
// signing key's public key (and, for the generated key, its public key
// file) verifies.
func (o Options) Resolve(gen Generated) (*Config, error) {
	c := &Config{
		Issuers: o.Issuers, APIAudiences: o.APIAudiences, MaxExpiration: o.MaxExpiration,
		JWKSURI: o.JWKSURI, ExtendExpiration: true,
	}
	if o.SigningKeyFile != "" && len(o.Issuers) == 0 {
		return nil, errors.New("--service-account-signing-key-file, --service-account-issuer, and --api-audiences should be specified together")
	}
	if len(c.Issuers) == 0 {
		c.Issuers = []string{DefaultIssuer}
	}
	seen := map[string]bool{}
	for _, iss := range c.Issuers {
		switch {
		case iss == "":
			return nil, errors.New("service-account-issuer should not be an empty string")
		case seen[iss]:
			return nil, fmt.Errorf("service-account-issuer %q is already specified", iss)
		case strings.Contains(iss, ":"):
			if _, err := url.Parse(iss); err != nil {
				return nil, fmt.Errorf("service-account-issuer %q contained a ':' but was not a valid URL: %v", iss, err)
			}
		}
		seen[iss] = true
	}
	if len(c.APIAudiences) == 0 {
		c.APIAudiences = c.Issuers
	}
	if c.MaxExpiration != 0 && (c.MaxExpiration < time.Hour || c.MaxExpiration > time.Duration(1<<32)*time.Second) {
		return nil, errors.New("the service-account-max-token-expiration must be between 1 hour and 2^32 seconds")
	}
	if c.JWKSURI != "" {
		if u, err := url.Parse(c.JWKSURI); err != nil {
			return nil, fmt.Errorf("service-account-jwks-uri must be a valid URL: %v", err)
		} else if u.Scheme != "https" {
			return nil, fmt.Errorf("service-account-jwks-uri requires https scheme, parsed as: %v", u.String())
		}
	}

	var signingPublic crypto.PublicKey
	if o.SigningKeyFile != "" {
		key, err := keyutil.PrivateKeyFromFile(o.SigningKeyFile)
		if err != nil {
			return nil, fmt.Errorf("failed to parse service-account-issuer-key-file: %w", err)
		}
		signer, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("%s: unsupported private key type %T", o.SigningKeyFile, key)
		}
		c.SigningKey, signingPublic = key, signer.Public()
	} else {
		if gen.Key == nil {
			return nil, errors.New("no service-account signing key")
		}
		c.SigningKey, signingPublic = gen.Key, gen.Key.Public()
	}

	keyFiles := o.KeyFiles
	if len(keyFiles) == 0 && o.SigningKeyFile == "" && gen.PublicKeyFile != "" {
		keyFiles = []string{gen.PublicKeyFile}
	}
	for _, f := range keyFiles {
		keys, err := keyutil.PublicKeysFromFile(f)
		if err != nil {
			return nil, err
		}
		c.PublicKeys = append(c.PublicKeys, keys...)
	}
	if len(o.KeyFiles) == 0 && !containsKey(c.PublicKeys, signingPublic) {
		c.PublicKeys = append(c.PublicKeys, signingPublic)
	}
	if !containsKey(c.PublicKeys, signingPublic) {
		return nil, errors.New("no --service-account-key-file holds the public key of the signing key: the tokens it signs would not verify")
	}
	return c, nil
}

func containsKey(keys []any, k crypto.PublicKey) bool {
	for _, have := range keys {
		if eq, ok := have.(interface{ Equal(crypto.PublicKey) bool }); ok && eq.Equal(k) {
			return true
		}
	}
	return false
}

// keysGetter serves the verification keys to upstream's authenticator and
// discovery documents.
func (c *Config) keysGetter() (upstream.PublicKeysGetter, error) {
	return upstream.StaticPublicKeysGetter(c.PublicKeys)
}
