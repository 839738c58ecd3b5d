package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"slices"
)

// ensureServiceAccountKey loads the token signing key from keyPath, or
// generates one if it is absent, and makes sure pubPath holds its public
// half. ECDSA P-256 (ES256), which kube-apiserver signs and verifies
// service-account tokens with; an RSA key takes hundreds of milliseconds to
// generate, which every embedded test server would pay on start.
//
// sa.key is the source of truth: a missing sa.pub is rewritten from it,
// while an existing sa.pub must contain its public key (it may hold others,
// for rotation); one that does not would make every token fail to verify,
// so it is an error rather than something to paper over.
func ensureServiceAccountKey(keyPath, pubPath string) (crypto.Signer, error) {
	key, err := readPrivateKey(keyPath)
	if errors.Is(err, fs.ErrNotExist) {
		if key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			return nil, fmt.Errorf("pki: generating %s: %w", keyPath, err)
		}
		keyPEM, err := encodePrivateKey(key)
		if err != nil {
			return nil, fmt.Errorf("pki: %s: %w", keyPath, err)
		}
		if err := writeFileAtomic(keyPath, keyPEM, 0o600); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, err
	}

	pubs, err := readPublicKeys(pubPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		pubPEM, err := encodePublicKey(key.Public())
		if err != nil {
			return nil, fmt.Errorf("pki: %s: %w", pubPath, err)
		}
		if err := writeFileAtomic(pubPath, pubPEM, 0o644); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	case !slices.ContainsFunc(pubs, func(p crypto.PublicKey) bool { return samePublicKey(p, key.Public()) }):
		return nil, fmt.Errorf("pki: %s does not contain the public key of %s", pubPath, keyPath)
	}
	return key, nil
}
