// Package auth authenticates requests: client certificates verified
// against the client CA, bearer tokens from a static token file, and the
// server's own loopback token.
package auth

import (
	"context"
	"crypto/x509"
	"encoding/csv"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// User is an authenticated identity.
type User struct {
	Name   string
	UID    string
	Groups []string
	Extra  map[string][]string
}

type userKey struct{}

// WithUser stores u in ctx.
func WithUser(ctx context.Context, u *User) context.Context {
	return context.WithValue(ctx, userKey{}, u)
}

// UserFrom returns the authenticated user, or nil.
func UserFrom(ctx context.Context) *User {
	u, _ := ctx.Value(userKey{}).(*User)
	return u
}

// Authenticator identifies the caller of a request. ok=false means "no
// credentials I recognise"; err means credentials were presented and are
// invalid.
type Authenticator interface {
	Authenticate(r *http.Request) (u *User, ok bool, err error)
}

// Chain tries each authenticator in turn.
type Chain []Authenticator

func (c Chain) Authenticate(r *http.Request) (*User, bool, error) {
	var firstErr error
	for _, a := range c {
		u, ok, err := a.Authenticate(r)
		if ok {
			return u, true, nil
		}
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return nil, false, firstErr
}

// ClientCert authenticates by the client certificate, verified against
// Roots: the subject's common name is the user, its organizations the
// groups. As kube-apiserver, the TLS handshake only requests a certificate
// and verification happens here, so a certificate from another CA is a 401
// (or loses to a valid bearer token) instead of a failed handshake. With
// Roots nil, only chains the TLS layer verified count.
//
// The chain is verified once per connection when the request's context
// came from WithConnVerification (signature checks cost tens of
// microseconds); the validity period is still checked on every request.
type ClientCert struct {
	Roots *x509.CertPool
}

func (c ClientCert) Authenticate(r *http.Request) (*User, bool, error) {
	if r.TLS == nil {
		return nil, false, nil
	}
	var leaf *x509.Certificate
	switch {
	case c.Roots != nil && len(r.TLS.PeerCertificates) > 0:
		leaf = r.TLS.PeerCertificates[0]
		var err error
		if memo, ok := r.Context().Value(connVerificationKey{}).(*connVerification); ok {
			memo.once.Do(func() { memo.err = c.verify(r.TLS.PeerCertificates) })
			err = memo.err
			if now := time.Now(); err == nil && (now.Before(leaf.NotBefore) || now.After(leaf.NotAfter)) {
				err = c.verify(r.TLS.PeerCertificates) // expired since: say so as Verify does
			}
		} else {
			err = c.verify(r.TLS.PeerCertificates)
		}
		if err != nil {
			return nil, false, err
		}
	case len(r.TLS.VerifiedChains) > 0 && len(r.TLS.VerifiedChains[0]) > 0:
		leaf = r.TLS.VerifiedChains[0][0]
	default:
		return nil, false, nil
	}
	if leaf.Subject.CommonName == "" {
		return nil, false, fmt.Errorf("client certificate has no common name")
	}
	groups := append([]string(nil), leaf.Subject.Organization...)
	return &User{Name: leaf.Subject.CommonName, Groups: withAuthenticated(groups)}, true, nil
}

func (c ClientCert) verify(certs []*x509.Certificate) error {
	opts := x509.VerifyOptions{Roots: c.Roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if len(certs) > 1 {
		opts.Intermediates = x509.NewCertPool()
		for _, c := range certs[1:] {
			opts.Intermediates.AddCert(c)
		}
	}
	if _, err := certs[0].Verify(opts); err != nil {
		return fmt.Errorf("verifying client certificate %q: %w", certs[0].Subject.CommonName, err)
	}
	return nil
}

type connVerificationKey struct{}

// connVerification remembers one connection's certificate verification.
type connVerification struct {
	once sync.Once
	err  error
}

// WithConnVerification returns a context for one connection's requests
// (http.Server.ConnContext) under which ClientCert verifies the peer's
// chain once, not on every request. A connection's certificates cannot
// change after the handshake.
func WithConnVerification(ctx context.Context) context.Context {
	return context.WithValue(ctx, connVerificationKey{}, &connVerification{})
}

// Tokens authenticates bearer tokens from a fixed table.
type Tokens map[string]*User

func (t Tokens) Authenticate(r *http.Request) (*User, bool, error) {
	token, ok := bearerToken(r)
	if !ok {
		return nil, false, nil
	}
	if u, found := t[token]; found {
		return u, true, nil
	}
	// Not an error: another authenticator may know the token, and a
	// TokenReview of an unknown token reports no error, as upstream's.
	return nil, false, nil
}

// HasBearerToken reports whether r presents a (non-empty) bearer token.
// A token no authenticator accepts is a refusal, not an anonymous
// request, as kube-apiserver's bearer-token authenticator answers.
func HasBearerToken(r *http.Request) bool {
	_, ok := bearerToken(r)
	return ok
}

func bearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	const prefix = "bearer "
	if len(h) <= len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return "", false
	}
	token := strings.TrimSpace(h[len(prefix):])
	return token, token != ""
}

// LoadTokenFile reads kube-apiserver's --token-auth-file format: CSV
// lines of token,user,uid[,"group1,group2"].
func LoadTokenFile(path string) (Tokens, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("token file: %w", err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = -1
	r.TrimLeadingSpace = true
	tokens := Tokens{}
	for line := 1; ; line++ {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("token file %s: %w", path, err)
		}
		if len(rec) == 0 || strings.HasPrefix(rec[0], "#") {
			continue
		}
		if len(rec) < 3 {
			return nil, fmt.Errorf("token file %s line %d: want token,user,uid[,groups]", path, line)
		}
		u := &User{Name: rec[1], UID: rec[2]}
		if len(rec) > 3 && rec[3] != "" {
			for _, g := range strings.Split(rec[3], ",") {
				u.Groups = append(u.Groups, strings.TrimSpace(g))
			}
		}
		u.Groups = withAuthenticated(u.Groups)
		if _, dup := tokens[rec[0]]; dup {
			return nil, fmt.Errorf("token file %s line %d: duplicate token", path, line)
		}
		tokens[rec[0]] = u
	}
	return tokens, nil
}

func withAuthenticated(groups []string) []string {
	for _, g := range groups {
		if g == "system:authenticated" {
			return groups
		}
	}
	return append(groups, "system:authenticated")
}
