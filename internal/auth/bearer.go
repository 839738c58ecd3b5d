package auth

import (
	"net/http"
	"slices"

	"k8s.io/apiserver/pkg/authentication/authenticator"
)

// Bearer authenticates bearer tokens with a k8s.io/apiserver token
// authenticator (upstream's service-account JWT authenticator). The user
// it answers with is also in system:authenticated, as kube-apiserver adds
// that group to every authenticated user.
type Bearer struct {
	Token authenticator.Token
}

func (b Bearer) Authenticate(r *http.Request) (*User, bool, error) {
	token, ok := bearerToken(r)
	if !ok {
		return nil, false, nil
	}
	resp, ok, err := b.Token.AuthenticateToken(r.Context(), token)
	if !ok || err != nil {
		return nil, false, err
	}
	info := resp.User
	return &User{
		Name: info.GetName(), UID: info.GetUID(),
		Groups: withAuthenticated(slices.Clone(info.GetGroups())),
		Extra:  info.GetExtra(),
	}, true, nil
}
