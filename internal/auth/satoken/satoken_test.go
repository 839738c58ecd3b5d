package satoken_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/trellis-project/trellis/internal/auth/satoken"
	"github.com/trellis-project/trellis/internal/resource"
)

func writeECKey(t *testing.T, dir, name string) (*ecdsa.PrivateKey, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalECPrivateKey(key)
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return key, path
}

func TestResolve(t *testing.T) {
	dir := t.TempDir()
	genKey, genPub := writeECKey(t, dir, "generated.key")
	_, signing := writeECKey(t, dir, "signing.key")
	_, other := writeECKey(t, dir, "other.key")
	gen := satoken.Generated{Key: genKey, PublicKeyFile: genPub}

	for _, tc := range []struct {
		name    string
		opts    satoken.Options
		wantErr string
		check   func(t *testing.T, c *satoken.Config)
	}{
		{name: "nothing set: generated key, default issuer and audience", check: func(t *testing.T, c *satoken.Config) {
			if !slices.Equal(c.Issuers, []string{satoken.DefaultIssuer}) || !slices.Equal(c.APIAudiences, c.Issuers) || c.SigningKey != genKey || len(c.PublicKeys) != 1 {
				t.Errorf("%+v", c)
			}
		}},
		{name: "audiences default to all issuers", opts: satoken.Options{Issuers: []string{"https://a", "https://b"}}, check: func(t *testing.T, c *satoken.Config) {
			if !slices.Equal(c.APIAudiences, []string{"https://a", "https://b"}) {
				t.Errorf("audiences %v", c.APIAudiences)
			}
		}},
		{name: "explicit audiences", opts: satoken.Options{APIAudiences: []string{"api"}}, check: func(t *testing.T, c *satoken.Config) {
			if !slices.Equal(c.APIAudiences, []string{"api"}) {
				t.Errorf("audiences %v", c.APIAudiences)
			}
		}},
		{name: "signing key verifies itself without key files", opts: satoken.Options{SigningKeyFile: signing, Issuers: []string{"x"}}, check: func(t *testing.T, c *satoken.Config) {
			if len(c.PublicKeys) != 1 || c.SigningKey == genKey {
				t.Errorf("%+v", c)
			}
		}},
		{name: "key files may add retired keys", opts: satoken.Options{SigningKeyFile: signing, KeyFiles: []string{signing, other}, Issuers: []string{"x"}}, check: func(t *testing.T, c *satoken.Config) {
			if len(c.PublicKeys) != 2 {
				t.Errorf("%d keys", len(c.PublicKeys))
			}
		}},
		{name: "signing key without issuer", opts: satoken.Options{SigningKeyFile: signing},
			wantErr: "--service-account-signing-key-file, --service-account-issuer, and --api-audiences should be specified together"},
		{name: "key files without the signing key", opts: satoken.Options{SigningKeyFile: signing, KeyFiles: []string{other}, Issuers: []string{"x"}},
			wantErr: "the tokens it signs would not verify"},
		{name: "empty issuer", opts: satoken.Options{Issuers: []string{""}}, wantErr: "service-account-issuer should not be an empty string"},
		{name: "duplicate issuer", opts: satoken.Options{Issuers: []string{"a", "a"}}, wantErr: `service-account-issuer "a" is already specified`},
		{name: "max expiration under an hour", opts: satoken.Options{MaxExpiration: time.Minute}, wantErr: "between 1 hour and 2^32 seconds"},
		{name: "http jwks uri", opts: satoken.Options{JWKSURI: "http://x/jwks"}, wantErr: "requires https scheme"},
		{name: "unreadable key file", opts: satoken.Options{KeyFiles: []string{filepath.Join(dir, "missing")}}, wantErr: "missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tc.opts.Resolve(gen)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}

// objects is an in-memory satoken.Objects.
type objects struct {
	sas  map[string]*corev1.ServiceAccount
	pods map[string]*corev1.Pod
}

func notFound(r, name string) error {
	return apierrors.NewNotFound(schema.GroupResource{Resource: r}, name)
}

func (o *objects) GetServiceAccount(_ context.Context, ns, name string) (*corev1.ServiceAccount, error) {
	if sa, ok := o.sas[ns+"/"+name]; ok {
		return sa, nil
	}
	return nil, notFound("serviceaccounts", name)
}
func (o *objects) GetPod(_ context.Context, ns, name string) (*corev1.Pod, error) {
	if p, ok := o.pods[ns+"/"+name]; ok {
		return p, nil
	}
	return nil, notFound("pods", name)
}
func (o *objects) GetSecret(_ context.Context, ns, name string) (*corev1.Secret, error) {
	return nil, notFound("secrets", name)
}
func (o *objects) GetNode(_ context.Context, name string) (*corev1.Node, error) {
	return nil, notFound("nodes", name)
}
func (o *objects) GetValidatingWebhookConfiguration(context.Context, string) (*admissionregistrationv1.ValidatingWebhookConfiguration, error) {
	return nil, notFound("validatingwebhookconfigurations", "")
}
func (o *objects) GetMutatingWebhookConfiguration(context.Context, string) (*admissionregistrationv1.MutatingWebhookConfiguration, error) {
	return nil, notFound("mutatingwebhookconfigurations", "")
}

// TestIssuedTokenIdentity checks the user a pod-bound token authenticates
// as: upstream's name, groups and extra (pod, node, credential id).
func TestIssuedTokenIdentity(t *testing.T) {
	key, pub := writeECKey(t, t.TempDir(), "k")
	cfg, err := satoken.Options{}.Resolve(satoken.Generated{Key: key, PublicKeyFile: pub})
	if err != nil {
		t.Fatal(err)
	}
	objs := &objects{
		sas: map[string]*corev1.ServiceAccount{"team/robot": {ObjectMeta: metav1.ObjectMeta{Name: "robot", Namespace: "team", UID: "sa-uid"}}},
		pods: map[string]*corev1.Pod{"team/worker": {ObjectMeta: metav1.ObjectMeta{Name: "worker", Namespace: "team", UID: "pod-uid"},
			Spec: corev1.PodSpec{ServiceAccountName: "robot", NodeName: "node-1"}}},
	}
	tr, err := satoken.NewTokenRequests(cfg, objs)
	if err != nil {
		t.Fatal(err)
	}
	exp := int64(3600)
	out, err := tr.Creater().Create(context.Background(), &resource.CreateRequest{
		Namespace: "team", Name: "robot", Warn: func(string) {},
		Object: &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
			ExpirationSeconds: &exp,
			BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: "worker"},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	token := out.(*authenticationv1.TokenRequest).Status.Token

	authn, err := cfg.Authenticator(objs, fake.NewClientset().CoreV1())
	if err != nil {
		t.Fatal(err)
	}
	resp, ok, err := authn.AuthenticateToken(context.Background(), token)
	if !ok || err != nil {
		t.Fatalf("token refused: %v", err)
	}
	u := resp.User
	if u.GetName() != "system:serviceaccount:team:robot" || u.GetUID() != "sa-uid" ||
		!slices.Equal(u.GetGroups(), []string{"system:serviceaccounts", "system:serviceaccounts:team"}) {
		t.Errorf("user %q uid %q groups %v", u.GetName(), u.GetUID(), u.GetGroups())
	}
	extra := u.GetExtra()
	for k, want := range map[string]string{
		"authentication.kubernetes.io/pod-name": "worker", "authentication.kubernetes.io/pod-uid": "pod-uid",
		"authentication.kubernetes.io/node-name": "node-1",
	} {
		if got := extra[k]; len(got) != 1 || got[0] != want {
			t.Errorf("extra %s = %v, want %s", k, got, want)
		}
	}
	if id := extra["authentication.kubernetes.io/credential-id"]; len(id) != 1 || !strings.HasPrefix(id[0], "JTI=") {
		t.Errorf("credential-id = %v", id)
	}

	// The pod's deletion invalidates the token.
	delete(objs.pods, "team/worker")
	if _, ok, _ := authn.AuthenticateToken(context.Background(), token); ok {
		t.Error("token bound to a deleted pod accepted")
	}
}
