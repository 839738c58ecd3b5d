package auth

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"

	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apiserver/pkg/authentication/serviceaccount"
	"k8s.io/apiserver/pkg/authentication/user"
)

// Impersonation follows kube-apiserver v1.37, where constrained
// impersonation (KEP-5284) is on by default: a request carrying
// Impersonate-* headers is served as the impersonated user if one of
// these modes, tried in order, allows it:
//
//	associated-node  a service account acting as the node its pod runs on
//	arbitrary-node   any node ("system:node:<name>"), username only
//	serviceaccount   any service account, username only
//	user-info        any other user, with uid, groups and extra
//	legacy           the impersonate verb on users, groups, uids,
//	                 userextras/<key> and serviceaccounts
//
// A constrained mode needs two grants: impersonate-on:<mode>:<verb> on what
// the request touches, and impersonate:<mode> on each impersonated value
// (users, nodes, serviceaccounts, uids, groups, userextras/<key> in
// authentication.k8s.io). When every mode fails the first mode's refusal is
// returned, so a plain `kubectl --as bob` that is not allowed reads
// `cannot impersonate-on:user-info:<verb> ...`, as it does upstream.
// Upstream remembers which mode last worked per requestor and tries it
// first; that changes only which refusal is reported, and Trellis always
// reports in the fixed order.

// WantedUser reads the Impersonate-* headers. It returns nil when the
// request does not impersonate, and a 400 when uid, groups or extra come
// without a user name. When it returns a user it removes the headers, so
// nothing downstream can tell that impersonation happened.
func WantedUser(h http.Header) (*user.DefaultInfo, error) {
	wanted := &user.DefaultInfo{
		Name: h.Get(authenticationv1.ImpersonateUserHeader),
		UID:  h.Get(authenticationv1.ImpersonateUIDHeader),
	}
	wanted.Groups = append(wanted.Groups, h[authenticationv1.ImpersonateGroupHeader]...)
	hasExtra := false
	for name, values := range h {
		if !strings.HasPrefix(name, authenticationv1.ImpersonateUserExtraHeaderPrefix) {
			continue
		}
		hasExtra = true
		if len(values) == 0 {
			continue
		}
		key := strings.ToLower(name[len(authenticationv1.ImpersonateUserExtraHeaderPrefix):])
		if unescaped, err := url.PathUnescape(key); err == nil {
			key = unescaped
		}
		if wanted.Extra == nil {
			wanted.Extra = map[string][]string{}
		}
		wanted.Extra[key] = append(wanted.Extra[key], values...)
	}
	if wanted.Name == "" {
		if wanted.UID != "" || len(wanted.Groups) > 0 || hasExtra {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("requested %#v without impersonating a user name", wanted))
		}
		return nil, nil
	}
	h.Del(authenticationv1.ImpersonateUserHeader)
	h.Del(authenticationv1.ImpersonateUIDHeader)
	h.Del(authenticationv1.ImpersonateGroupHeader)
	for name := range h {
		if strings.HasPrefix(name, authenticationv1.ImpersonateUserExtraHeaderPrefix) {
			h.Del(name)
		}
	}
	return wanted, nil
}

// Impersonate decides whether req.User may make the request described by
// req as wanted. It returns the user to serve the request as, or the 403
// Status explaining the refusal.
func Impersonate(ctx context.Context, az Authorizer, req Attributes, wanted *user.DefaultInfo) (*User, error) {
	var firstErr error
	for _, m := range impersonationModes {
		u, err := m.check(ctx, az, req, wanted)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		if u != nil {
			return u, nil
		}
	}
	if firstErr == nil {
		// Legacy impersonation always decides; fail closed regardless.
		firstErr = apierrors.NewInternalError(fmt.Errorf("all impersonation modes failed"))
	}
	return nil, firstErr
}

// impersonationMode is one way of being allowed to impersonate.
type impersonationMode struct {
	// name is the constrained mode ("user-info"), "" for legacy.
	name string
	// applies reports whether the mode can impersonate wanted at all.
	applies func(wanted *user.DefaultInfo, requestor *User) bool
	// adjust rewrites every authorization check of the mode
	// (associated-node asks about its requestor in a node-independent
	// form).
	adjust func(a Attributes) Attributes
}

var impersonationModes = []impersonationMode{
	{
		name: "associated-node",
		applies: func(w *user.DefaultInfo, requestor *User) bool {
			node, ok := nodeName(w.Name)
			if !onlyUsername(w) || !ok {
				return false
			}
			if _, _, err := serviceaccount.SplitUsername(requestor.Name); err != nil {
				return false
			}
			v := requestor.Extra[serviceaccount.NodeNameKey]
			return len(v) == 1 && v[0] == node
		},
		adjust: func(a Attributes) Attributes {
			keys := make([]string, 0, len(a.User.Extra))
			for k := range a.User.Extra {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			a.User = &User{Name: a.User.Name, UID: a.User.UID, Groups: a.User.Groups,
				Extra: map[string][]string{"authentication.kubernetes.io/associated-node-keys": keys}}
			if a.Verb == "impersonate:associated-node" {
				a.Name = "*"
			}
			return a
		},
	},
	{
		name: "arbitrary-node",
		applies: func(w *user.DefaultInfo, _ *User) bool {
			_, ok := nodeName(w.Name)
			return onlyUsername(w) && ok
		},
	},
	{
		name: "serviceaccount",
		applies: func(w *user.DefaultInfo, _ *User) bool {
			_, _, err := serviceaccount.SplitUsername(w.Name)
			return onlyUsername(w) && err == nil
		},
	},
	{
		name: "user-info",
		applies: func(w *user.DefaultInfo, _ *User) bool {
			if _, ok := nodeName(w.Name); ok {
				return false
			}
			_, _, err := serviceaccount.SplitUsername(w.Name)
			return err != nil
		},
	},
	{name: ""}, // legacy
}

// manyChecks is how many groups or extra values make a constrained mode
// first try one wildcard check instead of one check per value.
const manyChecks = 4

func (m impersonationMode) constrained() bool { return m.name != "" }

func (m impersonationMode) verb() string {
	if m.constrained() {
		return "impersonate:" + m.name
	}
	return "impersonate"
}

// allowed asks az about a, as the mode sees it, and words a refusal as
// kube-apiserver does.
func (m impersonationMode) allowed(ctx context.Context, az Authorizer, a Attributes) error {
	if m.adjust != nil {
		a = m.adjust(a)
	}
	d, reason, err := az.Authorize(ctx, a)
	if d == Allow {
		return nil
	}
	if apierrors.IsForbidden(err) {
		return err
	}
	msg := reason
	switch {
	case err != nil && reason != "":
		msg = fmt.Sprintf("%v: %s", err, reason)
	case err != nil:
		msg = err.Error()
	}
	return ForbiddenError(a, msg)
}

// refuse is a refusal decided before asking the authorizer.
func (m impersonationMode) refuse(a Attributes, reason string) error {
	if m.adjust != nil {
		a = m.adjust(a)
	}
	return ForbiddenError(a, reason)
}

// check returns the impersonated user, nil if the mode does not apply, or
// the refusal.
func (m impersonationMode) check(ctx context.Context, az Authorizer, req Attributes, wanted *user.DefaultInfo) (*User, error) {
	requestor := req.User
	if m.constrained() {
		if !m.applies(wanted, requestor) {
			return nil, nil
		}
		on := req
		on.Verb = "impersonate-on:" + m.name + ":" + req.Verb
		if err := m.allowed(ctx, az, on); err != nil {
			return nil, err
		}
	}
	group := authenticationv1.SchemeGroupVersion.Group
	usersGroup := group // users, groups, nodes, serviceaccounts
	if !m.constrained() {
		usersGroup = "" // legacy asks about them in the core group
	}
	attrs := func(g, resource, name string) Attributes {
		return Attributes{User: requestor, Verb: m.verb(), ResourceRequest: true,
			APIGroup: g, APIVersion: "v1", Resource: resource, Name: name}
	}
	out := &User{Name: wanted.Name, UID: wanted.UID, Groups: wanted.Groups, Extra: wanted.Extra}

	// The user name.
	a := attrs(usersGroup, "users", wanted.Name)
	if node, ok := nodeName(wanted.Name); ok && m.constrained() {
		a.Resource, a.Name = "nodes", node
		if len(wanted.Groups) > 0 {
			return nil, m.refuse(a, fmt.Sprintf("when impersonating a node, cannot impersonate groups %q", wanted.Groups))
		}
		out.Groups = []string{user.NodesGroup}
	}
	if ns, name, err := serviceaccount.SplitUsername(wanted.Name); err == nil {
		a.Resource, a.Namespace, a.Name = "serviceaccounts", ns, name
		if m.constrained() && len(wanted.Groups) > 0 {
			return nil, m.refuse(a, fmt.Sprintf("when impersonating a service account, cannot impersonate groups %q", wanted.Groups))
		}
		if len(wanted.Groups) == 0 {
			out.Groups = serviceaccount.MakeGroupNames(ns)
		}
	}
	if err := m.allowed(ctx, az, a); err != nil {
		return nil, err
	}

	if wanted.UID != "" {
		if err := m.allowed(ctx, az, attrs(group, "uids", wanted.UID)); err != nil {
			return nil, err
		}
	}

	if len(wanted.Groups) > 0 {
		a := attrs(usersGroup, "groups", "")
		if m.constrained() {
			if slices.Contains(wanted.Groups, "") {
				return nil, m.refuse(a, "impersonating the empty string group is not allowed")
			}
			if slices.Contains(wanted.Groups, user.SystemPrivilegedGroup) {
				a.Name = user.SystemPrivilegedGroup
				return nil, m.refuse(a, "impersonating the system:masters group is not allowed")
			}
		}
		all := false
		if m.constrained() && len(wanted.Groups) >= manyChecks {
			a.Name = "*"
			all = m.allowed(ctx, az, a) == nil
		}
		for _, g := range wanted.Groups {
			if all {
				break
			}
			a.Name = g
			if err := m.allowed(ctx, az, a); err != nil {
				return nil, err
			}
		}
	}

	if len(wanted.Extra) > 0 {
		a := attrs(group, "userextras", "")
		if m.constrained() {
			if err := validateImpersonatedExtra(wanted.Extra); err != nil {
				return nil, m.refuse(a, err.Error())
			}
		}
		all := false
		if m.constrained() && manyExtra(wanted.Extra) {
			a.Subresource, a.Name = "*", "*"
			all = m.allowed(ctx, az, a) == nil
		}
		keys := make([]string, 0, len(wanted.Extra))
		for k := range wanted.Extra {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			for _, v := range wanted.Extra[k] {
				if all {
					break
				}
				a.Subresource, a.Name = k, v
				if err := m.allowed(ctx, az, a); err != nil {
					return nil, err
				}
			}
		}
	}

	switch {
	case out.Name == user.Anonymous:
		out.Groups = withGroup(out.Groups, user.AllUnauthenticated)
	case !slices.Contains(out.Groups, user.AllUnauthenticated):
		out.Groups = withGroup(out.Groups, user.AllAuthenticated)
	}
	return out, nil
}

// withGroup returns groups with g added if missing, never changing the
// caller's slice.
func withGroup(groups []string, g string) []string {
	if slices.Contains(groups, g) {
		return groups
	}
	return append(slices.Clip(groups), g)
}

func onlyUsername(u *user.DefaultInfo) bool {
	return u.UID == "" && len(u.Groups) == 0 && len(u.Extra) == 0
}

// nodeName returns the node of a "system:node:<name>" user name.
func nodeName(username string) (string, bool) {
	const prefix = "system:node:"
	name, ok := strings.CutPrefix(username, prefix)
	if !ok || len(apivalidation.NameIsDNSSubdomain(name, false)) > 0 {
		return "", false
	}
	return name, true
}

func manyExtra(extra map[string][]string) bool {
	if len(extra) >= manyChecks {
		return true
	}
	n := 0
	for _, v := range extra {
		n += len(v)
	}
	return n >= manyChecks
}

// validateImpersonatedExtra holds constrained modes to sane extra keys
// and values; legacy impersonation accepts anything.
func validateImpersonatedExtra(extra map[string][]string) error {
	fp := field.NewPath("extra", "key")
	keys := make([]string, 0, len(extra))
	for k := range extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		values := extra[key]
		if key == "" {
			return fmt.Errorf("impersonating the empty string key in extra is not allowed")
		}
		if err := utilvalidation.IsDomainPrefixedPath(fp, key).ToAggregate(); err != nil {
			return fmt.Errorf("impersonating an invalid key in extra is not allowed: %w", err)
		}
		if key != strings.ToLower(key) {
			return fmt.Errorf("impersonating a non-lowercase key in extra is not allowed: %q", key)
		}
		if len(values) == 0 {
			return fmt.Errorf("impersonating empty values in extra is not allowed")
		}
		if slices.Contains(values, "") {
			return fmt.Errorf("impersonating the empty string value in extra is not allowed")
		}
	}
	return nil
}
